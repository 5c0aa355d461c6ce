"""Per-image transforms for images streamed from files, from torchvision.transforms.v2: they
run in the DataLoader's worker processes at the images' own resolution, on uint8 tensors."""

from collections.abc import Sequence

import torch
from torchvision.transforms import v2

from imgclf.data.augment import BatchAugment, check_padding_mode

POLICIES = {
    "trivialaugment": v2.TrivialAugmentWide,
    "randaugment": v2.RandAugment,
    "none": None,
}


def resize_size_for(image_size: int, crop_fraction: float) -> int:
    """The short side that evaluation resizes to before cropping the central `image_size`
    square: timm's crop_pct convention (0.875: 146 px for a 128 px crop)."""
    return max(image_size, round(image_size / crop_fraction))


class ImageAugment:
    """Training augmentation of the user's own images.

    Streamed from files (`data.cache=disk|none`): RandomResizedCrop (`scale`, `ratio`),
    horizontal flip, an optional policy (TrivialAugment or RandAugment) and RandomErasing
    (`erasing`: its probability), per image. Held in memory (`data.cache=ram`, images stored
    at `image_size`): the batch path's random translation (`crop_padding`) and flip. Either
    way, `mixup` and `cutmix` (alphas, 0: off) then mix the batch (`imgclf.data.mix`).
    """

    def __init__(
        self,
        scale: Sequence[float] = (0.35, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        horizontal_flip: bool = True,
        policy: str = "none",
        erasing: float = 0.0,
        crop_padding: int = 4,
        padding_mode: str = "zeros",
        mixup: float = 0.0,
        cutmix: float = 0.0,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {list(POLICIES)}, got {policy!r}")
        if not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(f"scale must be (low, high) with 0 < low <= high <= 1, got {scale}")
        if not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"ratio must be (low, high) with 0 < low <= high, got {ratio}")
        if not 0 <= erasing <= 1:
            raise ValueError(f"erasing is a probability in [0, 1], got {erasing}")
        check_padding_mode(padding_mode)
        self.scale = tuple(scale)
        self.ratio = tuple(ratio)
        self.horizontal_flip = horizontal_flip
        self.policy = policy
        self.erasing = erasing
        self.crop_padding = crop_padding
        self.padding_mode = padding_mode
        self.mixup = mixup
        self.cutmix = cutmix

    def per_image(self, image_size: int) -> v2.Compose:
        steps: list[torch.nn.Module] = [
            v2.RandomResizedCrop(image_size, scale=self.scale, ratio=self.ratio, antialias=True)
        ]
        if self.horizontal_flip:
            steps.append(v2.RandomHorizontalFlip())
        if POLICIES[self.policy] is not None:
            steps.append(POLICIES[self.policy]())
        if self.erasing:
            steps.append(v2.RandomErasing(p=self.erasing, value=0))
        return v2.Compose(steps)

    def batched(self) -> BatchAugment:
        return BatchAugment(
            crop_padding=self.crop_padding,
            horizontal_flip=self.horizontal_flip,
            padding_mode=self.padding_mode,
        )

    def __repr__(self) -> str:
        settings = ", ".join(f"{name}={value!r}" for name, value in vars(self).items())
        return f"ImageAugment({settings})"


def evaluation_transform(image_size: int, resize_size: int) -> v2.Compose:
    """Resize the short side to `resize_size`, then crop the central `image_size` square:
    the aspect ratio is kept."""
    return v2.Compose([v2.Resize(resize_size, antialias=True), v2.CenterCrop(image_size)])
