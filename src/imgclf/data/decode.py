"""Read an image: a file of any common format and mode decoded into a uint8 (C, H, W) tensor,
or a disk-cache entry's array, transformed into a model's view.

torchvision.io (libjpeg-turbo, libpng, libwebp) decodes first: on this project's 2-core CPU it
decodes the photo folder's JPEGs 1.8x faster than PIL (3,580 vs 1,940 images/s, one thread;
`benchmarks/benchmark_data.py` measures the whole pipeline), turns CMYK into RGB, scales 16-bit
PNGs down to 8 bits and applies the EXIF orientation. PIL takes the formats it cannot read
(BMP, TIFF, float and 32-bit modes).
"""

from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms.v2 import functional as F

READ_MODES = {1: ImageReadMode.GRAY, 3: ImageReadMode.RGB}
# PIL's names of JPEG files: MPO is the multi-picture JPEG many cameras write.
DCT_SCALABLE_FORMATS = ("JPEG", "MPO")
PIL_MODES = {1: "L", 3: "RGB"}


class UnreadableImageError(ValueError):
    """The file is not an image that either decoder can read."""


def check_channels(channels: int) -> None:
    if channels not in READ_MODES:
        raise ValueError(f"in_channels={channels}: images are read as 1 (grey) or 3 (RGB)")


def decode_image_file(
    path: str | Path, channels: int = 3, short_side: int | None = None
) -> torch.Tensor:
    """uint8 (channels, height, width), upright as the camera's EXIF orientation says.
    Raises UnreadableImageError naming the file when neither decoder can read it, or when its
    header promises more pixels than PIL's decompression-bomb limit: torchvision's decoders
    check none, and would allocate whatever the header says.

    With `short_side`, for a caller that shrinks the image to that short side anyway: a JPEG
    at least twice as large is decoded at 1/2, 1/4 or 1/8 of its size (libjpeg's DCT scaling,
    through PIL's `draft`), its short side still at least `short_side`. Shrunk to 256 px, a
    12-megapixel photo then decodes 2.8x faster, a 1024 x 768 one 1.15x, and their centre
    views differ from the full decode's by 0.3 to 2 levels on average (libjpeg's scaling
    filter, and a side rounded up by a pixel)."""
    check_channels(channels)
    header = check_header(path)  # ~30 us, beside 2 ms to decode a 500 x 375 JPEG
    scalable = header.format in DCT_SCALABLE_FORMATS
    if short_side is not None and scalable and header.short_side >= 2 * short_side:
        return decode_with_pil(path, channels, draft_short_side=short_side)
    try:
        data = read_file(str(path))
        image = decode_image(data, READ_MODES[channels], apply_exif_orientation=True)
    except RuntimeError:
        image = decode_with_pil(path, channels)
    if image.dtype != torch.uint8:  # 16-bit PNGs
        image = F.to_dtype(image, torch.uint8, scale=True)
    return match_channels(image, channels)


def match_channels(image: torch.Tensor, channels: int) -> torch.Tensor:
    """torchvision's GIF and WebP decoders ignore the grey mode and may keep alpha."""
    if image.shape[0] == channels:
        return image
    image = image[:3]
    if channels == 1:
        return F.rgb_to_grayscale(image) if image.shape[0] == 3 else image[:1]
    return image.expand(3, -1, -1).contiguous() if image.shape[0] == 1 else image


class ImageHeader(NamedTuple):
    width: int
    height: int
    format: str | None  # PIL's name of it: JPEG, PNG, ...

    @property
    def short_side(self) -> int:
        return min(self.width, self.height)


def check_header(path: str | Path) -> ImageHeader:
    """The size and format from the file's header alone: a cheap check that it is an image."""
    try:
        with Image.open(path) as image:
            return ImageHeader(*image.size, image.format)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise UnreadableImageError(f"{path}: not a readable image ({error})") from error


# PIL's modes of more than 8 bits a channel: 16-bit grey (I;16*), 32-bit integers (I, which
# 16-bit files also open as) and floats (F).
WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")


def eight_bit(image: Image.Image) -> np.ndarray:
    """The 8-bit pixels of a wide image, by a fixed scale, never by the image's own range: a
    16-bit TIFF reads as the same PNG does in torchvision (the high byte), integers past 16
    bits are clipped, floats are taken as [0, 1] (or [0, 255] when larger)."""
    values = np.asarray(image)
    if image.mode == "F":
        scale = 255.0 if values.max(initial=0) <= 1 else 1.0
        return np.rint(values * scale).clip(0, 255).astype(np.uint8)
    return (values.astype(np.int64).clip(0, 65535) >> 8).astype(np.uint8)


def decode_with_pil(
    path: str | Path, channels: int, draft_short_side: int | None = None
) -> torch.Tensor:
    """`draft_short_side`: a JPEG is decoded at the smallest of 1/8, 1/4, 1/2 and full size
    whose short side is at least that; other formats ignore it."""
    try:
        with Image.open(path) as opened:
            if draft_short_side is not None:
                opened.draft(PIL_MODES[channels], (draft_short_side, draft_short_side))
            image = ImageOps.exif_transpose(opened)
            if image.mode in WIDE_MODES:
                image = Image.fromarray(eight_bit(image))
            pixels = np.array(image.convert(PIL_MODES[channels]))
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise UnreadableImageError(f"{path}: not a readable image ({error})") from error
    return torch.from_numpy(pixels.reshape(*pixels.shape[:2], channels)).permute(2, 0, 1)


def load_cached(entry: str) -> torch.Tensor:
    # np.load refuses pickled objects by default: a cache entry can only hold an array.
    return torch.from_numpy(np.load(entry))


def read_view(
    source: str, channels: int, cached: bool, transform: Callable, short_side: int | None = None
) -> torch.Tensor:
    """An image file or cache entry, transformed (a picklable function for worker processes).
    `short_side`: the transform shrinks the image to it first (`decode_image_file`)."""
    image = load_cached(source) if cached else decode_image_file(source, channels, short_side)
    return transform(image)
