"""`python scripts/make_multilabel_folder.py OUTPUT --train 20000 --test 5000`: a multi-label
image set made from real CIFAR-10 images, for training and measuring multi-label models
offline.

Each image is a 64x64 mosaic of a 2x2 grid of 32x32 tiles: 1 to 4 of them (as many of each
count) are CIFAR-10 images at random places, and the others are empty, a flat colour or
noise. Its labels are the classes shown, each once. Training mosaics are made of CIFAR-10's
training images and test mosaics of its test images, so no image is in both splits.

OUTPUT/images/<split>/<number>.jpg, and OUTPUT/labels.csv with the columns
  path    the JPEG, relative to the CSV
  labels  its classes, separated by ';' (in CIFAR-10's class order)
  split   train or test
  tiles   what each tile shows, top-left, top-right, bottom-left, bottom-right, separated by
          ';': a class name, or nothing for an empty tile (the layout an oracle may use)
Reads CIFAR-10 from $IMGCLF_DATA_DIR (or --data-dir).
"""

import argparse
import csv
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from imgclf.data import sources
from imgclf.errors import user_errors_reported

GRID = 2  # tiles a side
TILE = 32  # CIFAR-10's size
SEPARATOR = ";"


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="the folder to write")
    parser.add_argument("--train", type=int, default=20000, help="training mosaics")
    parser.add_argument("--test", type=int, default=5000, help="test mosaics")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("IMGCLF_DATA_DIR", "data"))
    )
    return parser.parse_args()


def empty_tile(rng: np.random.Generator) -> np.ndarray:
    """A tile that shows nothing: one random colour, or uniform noise."""
    if rng.random() < 0.5:
        return np.broadcast_to(rng.integers(0, 256, 3, dtype=np.uint8), (TILE, TILE, 3))
    return rng.integers(0, 256, (TILE, TILE, 3), dtype=np.uint8)


def mosaic_layouts(count: int, pool_size: int, rng: np.random.Generator) -> list[list[int | None]]:
    """For each mosaic, the pool image in each tile (None: empty): 1 to 4 images, as many
    mosaics of each count, each image drawn without replacement from the pool while it lasts."""
    shown = np.resize(np.arange(1, GRID * GRID + 1), count)
    rng.shuffle(shown)
    order = rng.permutation(pool_size)
    layouts, taken = [], 0
    for images in shown:
        if taken + images > pool_size:
            order, taken = rng.permutation(pool_size), 0
        tiles: list[int | None] = [int(i) for i in order[taken : taken + images]]
        taken += images
        tiles += [None] * (GRID * GRID - images)
        layouts.append([tiles[i] for i in rng.permutation(GRID * GRID)])
    return layouts


def write_mosaic(task: tuple[Path, list[np.ndarray], int]) -> None:
    path, tiles, quality = task
    rows = [np.concatenate(tiles[row * GRID : (row + 1) * GRID], axis=1) for row in range(GRID)]
    Image.fromarray(np.concatenate(rows, axis=0)).save(path, quality=quality)


def main() -> None:
    arguments = parse_arguments()
    with user_errors_reported():
        splits = sources.load("cifar10", arguments.data_dir.expanduser())
    names = splits.class_names
    rng = np.random.default_rng(arguments.seed)
    tasks, rows = [], []
    for split, data, count in (
        ("train", splits.train, arguments.train),
        ("test", splits.test, arguments.test),
    ):
        (arguments.output / "images" / split).mkdir(parents=True, exist_ok=True)
        images = data.images.permute(0, 2, 3, 1).numpy()  # (N, H, W, C) for PIL
        labels = data.labels.numpy()
        for number, layout in enumerate(mosaic_layouts(count, len(images), rng)):
            path = Path("images") / split / f"{number:05d}.jpg"
            tiles = [empty_tile(rng) if index is None else images[index] for index in layout]
            tasks.append((arguments.output / path, tiles, arguments.quality))
            shown = [None if index is None else names[labels[index]] for index in layout]
            classes = [name for name in names if name in shown]
            rows.append(
                {
                    "path": str(path),
                    "labels": SEPARATOR.join(classes),
                    "split": split,
                    "tiles": SEPARATOR.join(name or "" for name in shown),
                }
            )
    with ProcessPoolExecutor() as pool:
        list(pool.map(write_mosaic, tasks, chunksize=64))
    with (arguments.output / "labels.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    size = GRID * TILE
    print(
        f"wrote {arguments.train:,} training and {arguments.test:,} test mosaics of "
        f"{size}x{size} px to {arguments.output}, labelled in {arguments.output / 'labels.csv'}"
    )


if __name__ == "__main__":
    main()
