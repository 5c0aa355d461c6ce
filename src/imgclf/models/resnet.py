"""ResNet-18 in its CIFAR form: torchvision's network with a 3x3 stem and no max-pool."""

from torch import nn
from torchvision.models import resnet18


def cifar_resnet18(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    """ImageNet's 7x7 stride-2 stem and max-pool would shrink a 32x32 image to 8x8 before the
    first residual block; the CIFAR variant keeps full resolution there instead."""
    if image_size < 8:
        raise ValueError(
            f"ResNet-18 needs images of at least 8 pixels; got image_size={image_size}"
        )
    network = resnet18(num_classes=num_classes)
    network.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    network.maxpool = nn.Identity()
    return network
