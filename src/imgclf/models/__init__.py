"""Networks. Each takes `in_channels`, `num_classes` and `image_size`, so that any model fits
any dataset."""

from imgclf.models.airbench import AirbenchNet
from imgclf.models.resnet import cifar_resnet18
from imgclf.models.simple_cnn import SimpleCNN
from imgclf.models.vgg_cnn import VggCNN

__all__ = ["AirbenchNet", "SimpleCNN", "VggCNN", "cifar_resnet18"]
