"""The classic tutorial CNN: Conv-Conv-MaxPool-Dropout blocks, then Flatten-Dense-Dropout-Dense."""

from collections.abc import Sequence

from torch import Tensor, nn


def conv_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True)]


class SimpleCNN(nn.Module):
    """Keras' CIFAR-10 example network, with "same" padding so it fits any image size."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        widths: Sequence[int] = (32, 64),
        dense_units: int = 512,
        conv_dropout: float = 0.25,
        dense_dropout: float = 0.5,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for width in widths:
            layers += [*conv_relu(channels, width), *conv_relu(width, width)]
            layers += [nn.MaxPool2d(2), nn.Dropout(conv_dropout)]
            channels = width
        side = image_size // 2 ** len(widths)
        if side < 1:
            raise ValueError(
                f"SimpleCNN with {len(widths)} pooling blocks needs images of at least "
                f"{2 ** len(widths)} pixels; got image_size={image_size}"
            )
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * side * side, dense_units),
            nn.ReLU(inplace=True),
            nn.Dropout(dense_dropout),
            nn.Linear(dense_units, num_classes),
        )

    def forward(self, images: Tensor) -> Tensor:
        return self.classifier(self.features(images))
