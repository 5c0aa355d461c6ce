"""`python scripts/make_photo_folder.py OUTPUT --count 5000`: a folder of "phone photos" made
from real CIFAR-10 images, to exercise the whole image-file path offline.

Each 32x32 image is upscaled (bicubic) to a width and a height drawn on their own between 160
and 480 pixels, so sizes and aspect ratios (up to 3:1) vary as in a folder of photos, and
saved as a JPEG in a subfolder named after its class: OUTPUT/airplane/00042.jpg.

With --per-class N the folder brings its own split instead: N training images of each class
in OUTPUT/train/, --val-per-class more in OUTPUT/val/, and the official test images of those
classes in OUTPUT/test/ (all, or --test-per-class of each; --classes keeps some classes
only). Reads CIFAR-10 from
$IMGCLF_DATA_DIR (or --data-dir).
"""

import argparse
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from imgclf.data import cifar10


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="the folder to write (class subfolders)")
    parser.add_argument("--count", type=int, default=5000, help="images to write")
    parser.add_argument("--classes", help="comma-separated class names to keep (default: all)")
    parser.add_argument("--per-class", type=int, help="a train/val/test folder: N per class")
    parser.add_argument("--val-per-class", type=int, default=20)
    parser.add_argument(
        "--test-per-class", type=int, help="official test images of each class (default: all)"
    )
    parser.add_argument("--min-side", type=int, default=160)
    parser.add_argument("--max-side", type=int, default=480)
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("IMGCLF_DATA_DIR", "data"))
    )
    return parser.parse_args()


def write_photo(task: tuple[Path, np.ndarray, int, int, int]) -> None:
    path, pixels, width, height, quality = task
    image = Image.fromarray(pixels).resize((width, height), Image.BICUBIC)
    image.save(path, quality=quality)


def photo_tasks(
    folder: Path, images: torch.Tensor, labels: torch.Tensor, names: list[str],
    chosen: np.ndarray, arguments: argparse.Namespace, rng: np.random.Generator,
) -> list[tuple]:  # fmt: skip
    """One JPEG to write per chosen image, at a size drawn for it, in its class's folder."""
    sides = rng.integers(arguments.min_side, arguments.max_side + 1, size=(len(chosen), 2))
    for name in {names[int(labels[index])] for index in chosen}:
        (folder / name).mkdir(parents=True, exist_ok=True)
    return [
        (
            folder / names[int(labels[index])] / f"{number:05d}.jpg",
            images[index].permute(1, 2, 0).numpy(),
            int(width),
            int(height),
            arguments.quality,
        )
        for number, (index, (width, height)) in enumerate(zip(chosen, sides, strict=True))
    ]


def per_class(labels: torch.Tensor, keep: list[int], count: int, rng: np.random.Generator):  # noqa: ANN201
    """`count` random indices of each kept class, and the indices left over."""
    chosen, rest = [], []
    for label in keep:
        indices = rng.permutation(np.flatnonzero(labels.numpy() == label))
        chosen.append(indices[:count])
        rest.append(indices[count:])
    return np.concatenate(chosen), np.concatenate(rest)


def main() -> None:
    arguments = parse_arguments()
    folder = cifar10.find(arguments.data_dir.expanduser())
    if folder is None:
        raise SystemExit(f"CIFAR-10 is not in {arguments.data_dir}: {cifar10.EXPECTED_FILES}")
    splits = cifar10.read(folder)
    names = splits.class_names
    wanted = arguments.classes.split(",") if arguments.classes else names
    unknown = sorted(set(wanted) - set(names))
    if unknown:
        raise SystemExit(f"--classes: CIFAR-10 has no {unknown}; it has {names}")
    keep = [names.index(name) for name in wanted]
    rng = np.random.default_rng(arguments.seed)
    train = splits.train
    if arguments.per_class is None:
        kept = np.flatnonzero(np.isin(train.labels.numpy(), keep))
        chosen = rng.permutation(kept)[: arguments.count]
        tasks = photo_tasks(
            arguments.output, train.images, train.labels, names, chosen, arguments, rng
        )
    else:
        chosen, rest = per_class(train.labels, keep, arguments.per_class, rng)
        validation, _ = per_class(train.labels[rest], keep, arguments.val_per_class, rng)
        test = np.flatnonzero(np.isin(splits.test.labels.numpy(), keep))
        if arguments.test_per_class is not None:
            test, _ = per_class(splits.test.labels, keep, arguments.test_per_class, rng)
        parts = {
            "train": (train, chosen),
            "val": (train, rest[validation]),
            "test": (splits.test, test),
        }
        tasks = [
            task
            for split, (data, indices) in parts.items()
            for task in photo_tasks(
                arguments.output / split, data.images, data.labels, names, indices, arguments, rng
            )
        ]
    with ProcessPoolExecutor() as pool:
        list(pool.map(write_photo, tasks, chunksize=64))
    sides = f"{arguments.min_side}-{arguments.max_side}"
    print(f"wrote {len(tasks):,} JPEGs of {sides} px to {arguments.output}")


if __name__ == "__main__":
    main()
