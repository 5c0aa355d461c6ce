"""The user's own images: one subfolder per class, optionally inside train/, val/ and test/."""

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from imgclf.data.splits import DatasetSplits, LabelledImages
from imgclf.errors import DataNotFoundError, UserError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
SPLIT_FOLDERS = ("train", "val", "test")


def class_folder_root(root: Path) -> Path:
    """Where the class subfolders are: `root/train` when the folder brings its own split."""
    if not root.is_dir():
        raise DataNotFoundError(
            f"image folder {root} does not exist. Set data.data_dir to a folder with one "
            "subfolder of images per class (optionally inside train/, val/ and test/)."
        )
    return root / "train" if (root / "train").is_dir() else root


def find_class_names(root: Path) -> list[str]:
    class_root = class_folder_root(root)
    names = sorted(entry.name for entry in class_root.iterdir() if entry.is_dir())
    if len(names) < 2:
        raise UserError(
            f"image folder {class_root} has {len(names)} class subfolder(s); a classifier needs "
            "at least 2. Put each class's images in a subfolder named after the class."
        )
    return names


def read(root: Path, image_size: int, in_channels: int) -> DatasetSplits:
    """Decode every image once, converted and resized to what the network expects."""
    class_names = find_class_names(root)
    if (root / "train").is_dir():
        splits = {
            split: read_split(root / split, class_names, image_size, in_channels)
            for split in SPLIT_FOLDERS
            if (root / split).is_dir()
        }
        return DatasetSplits(class_names=class_names, **splits)
    return DatasetSplits(
        train=read_split(root, class_names, image_size, in_channels), class_names=class_names
    )


def load_image(path: Path, image_size: int, in_channels: int) -> tuple[np.ndarray, tuple]:
    """Any PIL-readable image as uint8 (image_size, image_size, in_channels), converted to grey
    or RGB (alpha and palettes included) and resized, with its size on disk (width, height).
    Raises OSError or ValueError if the file is not a readable image."""
    mode = {1: "L", 3: "RGB"}.get(in_channels)
    if mode is None:
        raise UserError(f"in_channels={in_channels}: images are read as 1 (grey) or 3 (RGB)")
    try:
        with Image.open(path) as image:
            original_size = image.size
            image = image.convert(mode).resize((image_size, image_size), Image.BILINEAR)
            return np.asarray(image).reshape(image_size, image_size, in_channels), original_size
    except UnidentifiedImageError as error:
        raise ValueError(str(error)) from error


def images_to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """(H, W, C) uint8 arrays to one (N, C, H, W) tensor."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def read_split(
    folder: Path, class_names: list[str], image_size: int, in_channels: int
) -> LabelledImages:
    images, labels, unreadable, sizes = [], [], [], {}
    for label, name in enumerate(class_names):
        class_folder = folder / name
        files = (
            sorted(
                path for path in class_folder.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES
            )
            if class_folder.is_dir()
            else []
        )
        if not files:
            raise UserError(
                f"class folder {class_folder} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})."
            )
        readable_before = len(images)
        for path in files:
            try:
                pixels, sizes[path] = load_image(path, image_size, in_channels)
                images.append(pixels)
                labels.append(label)
            except (OSError, ValueError):
                unreadable.append(path)
        if len(images) == readable_before:
            raise UserError(
                f"class folder {class_folder} has no readable image: all {len(files)} file(s) "
                f"fail to decode, e.g. {files[0]}. Replace or remove them."
            )
    if unreadable:
        log.warning(
            "skipped %d unreadable image(s) in %s: %s",
            len(unreadable),
            folder,
            ", ".join(str(path) for path in unreadable[:20]),
        )
    report_mixed_sizes(folder, sizes, image_size)
    return LabelledImages(images_to_tensor(images), torch.tensor(labels, dtype=torch.int64))


def report_mixed_sizes(folder: Path, sizes: dict[Path, tuple], image_size: int) -> None:
    """Mixed sizes are common in a folder of photos, but resizing stretches the non-square
    ones and blurs the small ones: warn, naming the extremes, so a stray image can be found."""
    if len(set(sizes.values())) < 2:
        return
    smallest = min(sizes, key=lambda path: sizes[path][0] * sizes[path][1])
    largest = max(sizes, key=lambda path: sizes[path][0] * sizes[path][1])
    log.warning(
        "%s: images of %d sizes, from %dx%d (%s) to %dx%d (%s), all resized to %dx%d",
        folder,
        len(set(sizes.values())),
        *sizes[smallest],
        smallest,
        *sizes[largest],
        largest,
        image_size,
        image_size,
    )
