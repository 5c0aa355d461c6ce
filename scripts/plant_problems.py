"""`python scripts/plant_problems.py FOLDER`: plant known problems in a folder of class folders
with train/ and test/ (as `make_photo_folder.py --per-class` writes), to measure what the
audit finds. It writes FOLDER/planted.csv: each planted image, its kind, and the image it
came from; and FOLDER/labels.csv: every image with its class and split (`data=image_csv`).

- flipped_label: a training image moved into another class's folder;
- exact_copy, resized_copy, jpeg_copy, mirrored_copy: a training image copied into the
  test folder of its class: the same file, resized to 3/4, re-encoded as a JPEG of quality
  60, or mirrored left to right (train/test leakage);
- foreign: an image of another dataset (MNIST digits, in colour, at the folder's sizes)
  put into a training class folder.

Reads MNIST from $IMGCLF_DATA_DIR (or --data-dir).
"""

import argparse
import csv
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from imgclf.data import sources

COPY_KINDS = ["exact_copy", "resized_copy", "jpeg_copy", "mirrored_copy"]


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a folder with train/<class>/ and test/<class>/")
    parser.add_argument("--flipped", type=int, default=20, help="training images relabelled")
    parser.add_argument("--copies", type=int, default=8, help="copies of each kind in test/")
    parser.add_argument("--foreign", type=int, default=10, help="MNIST digits among training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("IMGCLF_DATA_DIR", "data"))
    )
    return parser.parse_args()


def copied(source: Path, target: Path, kind: str) -> Path:
    """`source` copied to `target` (the suffix its kind gives it), changed as `kind` says."""
    if kind == "exact_copy":
        target = target.with_suffix(source.suffix)
        shutil.copyfile(source, target)
        return target
    image = Image.open(source).convert("RGB")
    if kind == "resized_copy":
        image = image.resize((image.width * 3 // 4, image.height * 3 // 4), Image.BICUBIC)
    elif kind == "mirrored_copy":
        image = ImageOps.mirror(image)
    target = target.with_suffix(".png" if kind == "resized_copy" else ".jpg")
    image.save(target, quality=60 if kind == "jpeg_copy" else 90)
    return target


def main() -> None:
    arguments = parse_arguments()
    arguments.folder = arguments.folder.resolve()
    train, test = arguments.folder / "train", arguments.folder / "test"
    if not train.is_dir() or not test.is_dir():
        raise SystemExit(f"{arguments.folder} needs train/ and test/ class folders")
    rng = np.random.default_rng(arguments.seed)
    classes = sorted(path.name for path in train.iterdir() if path.is_dir())
    files = sorted(path for path in train.glob("*/*") if path.is_file())
    sizes = [Image.open(path).size for path in files[:50]]
    chosen = rng.permutation(len(files))
    flipped = [files[i] for i in chosen[: arguments.flipped]]
    sources_of_copies = [files[i] for i in chosen[arguments.flipped :]][
        : arguments.copies * len(COPY_KINDS)
    ]
    planted = []
    for number, path in enumerate(flipped):
        other = rng.choice([name for name in classes if name != path.parent.name])
        target = train / other / f"flipped_{number:03d}{path.suffix}"
        path.rename(target)
        planted.append((target, "flipped_label", path))
    for number, path in enumerate(sources_of_copies):
        kind = COPY_KINDS[number % len(COPY_KINDS)]
        target = copied(path, test / path.parent.name / f"{kind}_{number:03d}", kind)
        planted.append((target, kind, path))
    digits = sources.load("mnist", arguments.data_dir.expanduser()).train.images
    for number, index in enumerate(rng.choice(len(digits), arguments.foreign, replace=False)):
        grey = Image.fromarray(digits[index, 0].numpy())
        width, height = sizes[number % len(sizes)]
        colour = ImageOps.colorize(grey, "black", tuple(int(c) for c in rng.integers(80, 256, 3)))
        target = train / str(rng.choice(classes)) / f"foreign_{number:03d}.jpg"
        colour.resize((width, height), Image.BICUBIC).save(target, quality=90)
        planted.append((target, "foreign", f"mnist train/{index}"))
    with (arguments.folder / "planted.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["path", "kind", "original"])
        writer.writerows((str(path), kind, str(original)) for path, kind, original in planted)
    # Every image with its folder's class and split, for `data=image_csv`, whose
    # `audit.cleaned_csv` writes the list without the flagged images.
    with (arguments.folder / "labels.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["path", "label", "split"])
        for image in sorted(arguments.folder.glob("*/*/*")):
            split, label = image.parent.parent.name, image.parent.name
            writer.writerow([image.relative_to(arguments.folder).as_posix(), label, split])
    print(
        f"planted {len(planted)} problems in {arguments.folder}: {arguments.folder / 'planted.csv'}"
        f", every image listed in {arguments.folder / 'labels.csv'}"
    )


if __name__ == "__main__":
    main()
