"""Batched augmentation moves and mirrors pixels without inventing any."""

import torch

from imgclf.data.augment import BatchAugment, random_crop, random_horizontal_flip


def test_random_crop_translates_each_image_within_the_padding() -> None:
    torch.manual_seed(0)
    images = torch.arange(1, 2 * 3 * 8 * 8 + 1, dtype=torch.int32).reshape(2, 3, 8, 8)
    cropped = random_crop(images, padding=2)
    assert cropped.shape == images.shape
    for original, shifted in zip(images, cropped, strict=True):
        matches = [
            (dy, dx)
            for dy in range(-2, 3)
            for dx in range(-2, 3)
            if torch.equal(shifted, shift_with_zeros(original, dy, dx))
        ]
        assert len(matches) == 1


def shift_with_zeros(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    padded = torch.nn.functional.pad(image, (2, 2, 2, 2))
    return padded[:, 2 + dy : 2 + dy + image.shape[1], 2 + dx : 2 + dx + image.shape[2]]


def test_horizontal_flip_mirrors_about_half_the_images() -> None:
    torch.manual_seed(0)
    images = torch.rand(1000, 1, 4, 4)
    flipped = random_horizontal_flip(images)
    mirrored = (flipped == images.flip(3)).flatten(1).all(1)
    unchanged = (flipped == images).flatten(1).all(1)
    assert torch.all(mirrored ^ unchanged)
    assert 400 < mirrored.sum() < 600


def test_augment_without_options_is_identity() -> None:
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    assert torch.equal(BatchAugment()(images), images)
