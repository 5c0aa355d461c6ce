"""DataDescription: what the data tells the model it is fitted to, and nothing else of it."""

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DataDescription:
    """Handed to the model before fitting (`ImageDataModule.description`). The model saves the
    names and sizes in its checkpoint, normalises with the statistics unless its starting
    weights bring their own, and weighs its loss by the class counts (`class_weights: auto`).

    The statistics and the sample are computed only when asked for: of image files they cost
    a pass over a thousand or more decoded images, which a pretrained network never needs."""

    dataset: str
    class_names: list[str]
    in_channels: int
    # Evaluation resizes an image's short side to `resize_size`, then keeps the central
    # `image_size` square; the built-in datasets' images are already that square.
    image_size: int
    resize_size: int
    # "single_label" (one class an image) or "multi_label" (multi-hot labels).
    task: str
    # Training images per class, in class order (multi-label: the images holding it).
    class_counts: torch.Tensor
    train_images: int
    # The training split's per-channel mean and std on the [0, 1] scale.
    channel_statistics: Callable[[], tuple[torch.Tensor, torch.Tensor]]
    # The first `count` training images, uint8: for a network's data-dependent start.
    training_sample: Callable[[int], torch.Tensor]
