"""Augmentation of a whole batch at once on its device: no per-image Python, no workers."""

import torch
import torch.nn.functional as F


class BatchAugment:
    """Random crop after zero padding (a translation of up to `crop_padding` pixels) and an
    optional horizontal flip, each drawn independently per image."""

    def __init__(self, crop_padding: int = 0, horizontal_flip: bool = False) -> None:
        if crop_padding < 0:
            raise ValueError(f"crop_padding must be >= 0, got {crop_padding}")
        self.crop_padding = crop_padding
        self.horizontal_flip = horizontal_flip

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.crop_padding:
            images = random_crop(images, self.crop_padding)
        if self.horizontal_flip:
            images = random_horizontal_flip(images)
        return images

    def __repr__(self) -> str:
        return (
            f"BatchAugment(crop_padding={self.crop_padding}, "
            f"horizontal_flip={self.horizontal_flip})"
        )


def random_crop(images: torch.Tensor, padding: int) -> torch.Tensor:
    """Each image shifted by its own random offset in [-padding, padding]; borders become zero."""
    count, _, height, width = images.shape
    padded = F.pad(images, (padding,) * 4)
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
