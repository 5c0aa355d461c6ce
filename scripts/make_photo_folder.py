"""`python scripts/make_photo_folder.py OUTPUT --count 5000`: a folder of "phone photos" made
from real CIFAR-10 images, to exercise the whole image-file path offline.

Each 32x32 training image is upscaled (bicubic) to a width and a height drawn on their own
between 160 and 480 pixels, so sizes and aspect ratios (up to 3:1) vary as in a folder of
photos, and saved as a JPEG in a subfolder named after its class: OUTPUT/airplane/00042.jpg.
Reads CIFAR-10 from $IMGCLF_DATA_DIR (or --data-dir).
"""

import argparse
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from imgclf.data import cifar10


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="the folder to write (class subfolders)")
    parser.add_argument("--count", type=int, default=5000, help="images to write")
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


def main() -> None:
    arguments = parse_arguments()
    folder = cifar10.find(arguments.data_dir.expanduser())
    if folder is None:
        raise SystemExit(f"CIFAR-10 is not in {arguments.data_dir}: {cifar10.EXPECTED_FILES}")
    splits = cifar10.read(folder)
    count = min(arguments.count, len(splits.train))
    rng = np.random.default_rng(arguments.seed)
    chosen = rng.permutation(len(splits.train))[:count]
    sides = rng.integers(arguments.min_side, arguments.max_side + 1, size=(count, 2))
    for name in splits.class_names:
        (arguments.output / name).mkdir(parents=True, exist_ok=True)
    tasks = []
    for number, (index, (width, height)) in enumerate(zip(chosen, sides, strict=True)):
        label = int(splits.train.labels[index])
        path = arguments.output / splits.class_names[label] / f"{number:05d}.jpg"
        pixels = splits.train.images[index].permute(1, 2, 0).numpy()
        tasks.append((path, pixels, int(width), int(height), arguments.quality))
    with ProcessPoolExecutor() as pool:
        list(pool.map(write_photo, tasks, chunksize=64))
    sides = f"{arguments.min_side}-{arguments.max_side}"
    print(f"wrote {count:,} JPEGs of {sides} px to {arguments.output}")


if __name__ == "__main__":
    main()
