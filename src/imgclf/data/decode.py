"""Decode an image file of any common format and mode into a uint8 (C, H, W) tensor.

torchvision.io (libjpeg-turbo, libpng, libwebp) decodes first: on this project's 2-core CPU it
decodes the photo folder's JPEGs 1.8x faster than PIL (3,580 vs 1,940 images/s, one thread;
`scripts/benchmark_data.py` measures the whole pipeline), turns CMYK into RGB, scales 16-bit
PNGs down to 8 bits and applies the EXIF orientation. PIL takes the formats it cannot read
(BMP, TIFF, float and 32-bit modes).
"""

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms.v2 import functional as F

READ_MODES = {1: ImageReadMode.GRAY, 3: ImageReadMode.RGB}
PIL_MODES = {1: "L", 3: "RGB"}


class UnreadableImageError(ValueError):
    """The file is not an image that either decoder can read."""


def check_channels(channels: int) -> None:
    if channels not in READ_MODES:
        raise ValueError(f"in_channels={channels}: images are read as 1 (grey) or 3 (RGB)")


def decode_image_file(path: str | Path, channels: int = 3) -> torch.Tensor:
    """uint8 (channels, height, width), upright as the camera's EXIF orientation says.
    Raises UnreadableImageError naming the file when neither decoder can read it."""
    check_channels(channels)
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


def check_header(path: str | Path) -> tuple[int, int]:
    """(width, height) from the file's header alone: a cheap check that it is an image."""
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise UnreadableImageError(f"{path}: not a readable image ({error})") from error


def decode_with_pil(path: str | Path, channels: int) -> torch.Tensor:
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)
            if image.mode in ("I", "I;16", "I;16B", "F"):  # 32-bit and float: scale to 8 bits
                pixels = np.asarray(image, dtype=np.float64)
                span = max(float(pixels.max() - pixels.min()), 1e-12)
                image = Image.fromarray(((pixels - pixels.min()) / span * 255).astype(np.uint8))
            pixels = np.array(image.convert(PIL_MODES[channels]))
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise UnreadableImageError(f"{path}: not a readable image ({error})") from error
    return torch.from_numpy(pixels.reshape(*pixels.shape[:2], channels)).permute(2, 0, 1)
