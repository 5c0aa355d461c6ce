"""Batched augmentation moves and mirrors pixels without inventing any."""

import torch

from imgclf.data.augment import BatchAugment, random_crop, random_cutout, random_horizontal_flip


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


def test_reflect_padding_translates_with_mirrored_borders() -> None:
    torch.manual_seed(0)
    images = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    cropped = random_crop(images, padding=2, padding_mode="reflect")
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2), mode="reflect")
    for index in range(len(images)):
        windows = [padded[index, :, y : y + 8, x : x + 8] for y in range(5) for x in range(5)]
        assert any(torch.equal(cropped[index], window) for window in windows)
    assert (cropped != 0).float().mean() > 0.95  # no zero borders


def test_cutout_blacks_out_one_square_per_image_clipped_at_the_border() -> None:
    torch.manual_seed(0)
    images = torch.full((200, 3, 16, 16), 255, dtype=torch.uint8)
    erased = random_cutout(images, size=6) == 0
    assert torch.equal(erased[:, :1].expand_as(erased), erased)  # all channels alike
    areas = erased[:, 0].flatten(1).sum(1)
    assert areas.max() == 36 and areas.min() >= 9  # whole, or clipped to at least 3x3
    rows, cols = erased[:, 0].any(2), erased[:, 0].any(1)
    assert torch.equal(areas, rows.sum(1) * cols.sum(1))  # a rectangle
