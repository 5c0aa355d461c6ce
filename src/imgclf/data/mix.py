"""MixUp and CutMix on a training batch, with torchvision.transforms.v2: labels become soft
targets, one row per image summing to 1, which the loss and the training accuracy take."""

import torch
from torchvision.transforms import v2

from imgclf.data.pixels import unit_range


class BatchMix:
    """`mixup` and `cutmix` are the alphas of the Beta distributions the mixing shares are
    drawn from (0: off). With both on, each batch gets one of the two, chosen at random, as in
    timm and torchvision's reference recipes."""

    def __init__(self, num_classes: int, mixup: float = 0.0, cutmix: float = 0.0) -> None:
        if mixup < 0 or cutmix < 0:
            raise ValueError(f"mixup and cutmix are alphas >= 0, got {mixup}, {cutmix}")
        mixes = [v2.MixUp(alpha=mixup, num_classes=num_classes)] if mixup else []
        mixes += [v2.CutMix(alpha=cutmix, num_classes=num_classes)] if cutmix else []
        self.mix = v2.RandomChoice(mixes) if len(mixes) > 1 else next(iter(mixes), None)

    def __call__(
        self, pixels: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw pixels (uint8, or float in [0, 1]) and class indices -> mixed float pixels in
        [0, 1] (a blend of uint8 values would round) and soft targets."""
        if self.mix is None:
            return pixels, labels
        return self.mix(unit_range(pixels), labels)
