"""Augmentation of a whole batch at once on its device: no per-image Python, no workers."""

import torch
import torch.nn.functional as F

PADDING_MODES = ("zeros", "reflect")


def check_padding_mode(padding_mode: str) -> None:
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")


class BatchAugment:
    """Random translation (a crop of the image padded by `crop_padding` pixels, borders
    zero or reflected), horizontal flip and cutout, each drawn independently per image;
    `mixup` and `cutmix` (alphas, 0: off) then mix images and labels (`imgclf.data.mix`).

    With `alternate_flips` the flip is not drawn here: the loader mirrors each image in every
    other epoch instead (`InMemoryBatches`), so over two epochs every image is seen both ways;
    airbench's paper (Jordan 2024) finds this beats coin flips, most of all in short runs.
    """

    def __init__(
        self,
        crop_padding: int = 0,
        horizontal_flip: bool = False,
        padding_mode: str = "zeros",
        cutout: int = 0,
        alternate_flips: bool = False,
        mixup: float = 0.0,
        cutmix: float = 0.0,
    ) -> None:
        if crop_padding < 0 or cutout < 0:
            raise ValueError(f"crop_padding and cutout must be >= 0, got {crop_padding}, {cutout}")
        check_padding_mode(padding_mode)
        self.crop_padding = crop_padding
        self.horizontal_flip = horizontal_flip
        self.padding_mode = padding_mode
        self.cutout = cutout
        self.alternate_flips = alternate_flips
        # Batch mixing's alphas: applied with the labels by the data module (`BatchMix`).
        self.mixup = mixup
        self.cutmix = cutmix

    @property
    def flips_alternately(self) -> bool:
        return self.horizontal_flip and self.alternate_flips

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.crop_padding:
            images = random_crop(images, self.crop_padding, self.padding_mode)
        if self.horizontal_flip and not self.alternate_flips:
            images = random_horizontal_flip(images)
        if self.cutout:
            images = random_cutout(images, self.cutout)
        return images

    def __repr__(self) -> str:
        settings = ", ".join(f"{name}={value!r}" for name, value in vars(self).items())
        return f"BatchAugment({settings})"


def random_crop(images: torch.Tensor, padding: int, padding_mode: str = "zeros") -> torch.Tensor:
    """Each image shifted by its own random offset in [-padding, padding]."""
    count, _, height, width = images.shape
    mode = "constant" if padding_mode == "zeros" else padding_mode
    padded = F.pad(images, (padding,) * 4, mode=mode)
    shift_y = torch.randint(0, 2 * padding + 1, (count, 1), device=images.device)
    shift_x = torch.randint(0, 2 * padding + 1, (count, 1), device=images.device)
    rows = shift_y + torch.arange(height, device=images.device)  # (N, H)
    cols = shift_x + torch.arange(width, device=images.device)  # (N, W)
    batch_index = torch.arange(count, device=images.device)[:, None, None]
    # One gather for the whole batch; indexing channels-last yields (N, H, W, C), and the
    # permute back gives a channels_last tensor, the layout the convolutions want.
    cropped = padded.permute(0, 2, 3, 1)[batch_index, rows[:, :, None], cols[:, None, :]]
    return cropped.permute(0, 3, 1, 2)


def random_horizontal_flip(images: torch.Tensor) -> torch.Tensor:
    flip = torch.rand(len(images), device=images.device) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(3), images)


def random_cutout(images: torch.Tensor, size: int) -> torch.Tensor:
    """Zero a `size` x `size` square (clipped at the borders) at a random centre in each
    image (DeVries & Taylor 2017); on the uint8 batch zero is black."""
    count, _, height, width = images.shape
    centre_y = torch.randint(0, height, (count, 1, 1), device=images.device)
    centre_x = torch.randint(0, width, (count, 1, 1), device=images.device)
    top, left = centre_y - size // 2, centre_x - size // 2
    rows = torch.arange(height, device=images.device)[None, :, None]
    cols = torch.arange(width, device=images.device)[None, None, :]
    inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return images.masked_fill(inside[:, None], 0)
