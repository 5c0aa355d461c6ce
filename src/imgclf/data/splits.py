"""What every dataset reader returns: uint8 image tensors and labels, split as found on disk."""

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LabelledImages:
    images: torch.Tensor  # uint8, (N, C, H, W)
    labels: torch.Tensor  # int64, (N,)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: torch.Tensor) -> "LabelledImages":
        return LabelledImages(self.images[indices], self.labels[indices])


@dataclass(frozen=True)
class DatasetSplits:
    """A dataset's splits. Missing `val` or `test` are carved out of `train` by the datamodule."""

    train: LabelledImages
    class_names: list[str]
    val: LabelledImages | None = None
    test: LabelledImages | None = None
