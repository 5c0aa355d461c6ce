"""The user's own images, listed (not decoded): a folder with one subfolder per class,
optionally inside train/, val/ and test/, or a CSV of `path,label[,split]` rows."""

import csv
import logging
import os
from pathlib import Path

import numpy as np
import torch

from imgclf.data.splits import DatasetSplits, LabelledFiles
from imgclf.errors import DataNotFoundError, UserError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
SPLIT_NAMES = ("train", "val", "test")
CSV_COLUMNS = ("path", "label")
# How many problem files a warning names before it only counts the rest.
NAMED_IN_WARNINGS = 20


def list_names(paths: list) -> str:
    named = ", ".join(str(path) for path in paths[:NAMED_IN_WARNINGS])
    rest = len(paths) - NAMED_IN_WARNINGS
    return named + (f" and {rest:,} more" if rest > 0 else "")


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


def image_files_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def as_files(paths: list[str], labels: list[int]) -> LabelledFiles:
    return LabelledFiles(np.array(paths, dtype=np.str_), torch.tensor(labels, dtype=torch.int64))


def list_folder(root: Path) -> DatasetSplits:
    class_names = find_class_names(root)
    split_roots = (
        {split: root / split for split in SPLIT_NAMES if (root / split).is_dir()}
        if (root / "train").is_dir()
        else {"train": root}
    )
    splits = {}
    for split, split_root in split_roots.items():
        paths, labels = [], []
        for label, name in enumerate(class_names):
            files = image_files_in(split_root / name)
            if split == "train" and not files:
                raise UserError(
                    f"class folder {split_root / name} has no images "
                    f"({', '.join(sorted(IMAGE_SUFFIXES))}). Add some, or leave the class out "
                    "with data.classes=[...]."
                )
            paths += [str(path) for path in files]
            labels += [label] * len(files)
        splits[split] = as_files(paths, labels)
    return DatasetSplits(class_names=class_names, **splits)


def read_csv_rows(csv_path: Path) -> list[dict[str, str]]:
    if not csv_path.is_file():
        raise DataNotFoundError(
            f"label file {csv_path} does not exist. Set data.csv_path to a CSV with the columns "
            "path,label (and optionally split), paths relative to the CSV."
        )
    with csv_path.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.DictReader(file)
        columns = [name.strip() for name in reader.fieldnames or []]
        missing = [name for name in CSV_COLUMNS if name not in columns]
        if missing:
            raise UserError(
                f"{csv_path} has no {' or '.join(missing)} column (its header: "
                f"{','.join(columns) or 'empty'}). The first line must name the columns "
                "path,label and optionally split."
            )
        return [
            {key.strip(): (value or "").strip() for key, value in row.items() if key}
            for row in reader
        ]


def csv_class_names(csv_path: Path) -> list[str]:
    names = sorted({row["label"] for row in read_csv_rows(csv_path) if row["label"]})
    if len(names) < 2:
        raise UserError(f"{csv_path} labels {len(names)} class(es); a classifier needs at least 2")
    return names


def list_csv(csv_path: Path) -> DatasetSplits:
    """Rows without a path or a label, or whose file is missing, are skipped, all named in one
    warning; paths outside the CSV's folder (`../`, absolute) are kept and named in another. A
    row's `split`, when the column is there, puts the image in train, val or test."""
    rows = read_csv_rows(csv_path)
    class_names = csv_class_names(csv_path)
    label_of = {name: label for label, name in enumerate(class_names)}
    folder = os.path.normpath(csv_path.parent)
    by_split: dict[str, tuple[list[str], list[int]]] = {}
    skipped: dict[str, list[str]] = {reason: [] for reason in SKIP_REASONS}
    bad_splits, outside = [], []
    for line, row in enumerate(rows, start=2):
        path = Path(os.path.normpath(csv_path.parent / row["path"]))
        reason = (
            "no path" if not row["path"]
            else "no label" if not row["label"]
            else "an image file that is missing" if not path.is_file()
            else None
        )  # fmt: skip
        if reason:
            skipped[reason].append(f"{row['path'] or row['label']} (line {line})")
            continue
        split = row.get("split") or "train"
        if split not in SPLIT_NAMES:
            bad_splits.append(f"line {line}: {split!r}")
            continue
        if not path.is_relative_to(folder):
            outside.append(f"{row['path']} (line {line})")
        paths, labels = by_split.setdefault(split, ([], []))
        paths.append(str(path))
        labels.append(label_of[row["label"]])
    if bad_splits:
        raise UserError(
            f"{csv_path}: the split column must say train, val or test; {list_names(bad_splits)}"
        )
    warn_skipped_rows(csv_path, skipped)
    if outside:
        log.warning(
            "%s: %d row(s) name images outside its folder %s, so the CSV works only where "
            "those paths exist: %s. Paths relative to the CSV keep a dataset movable.",
            csv_path,
            len(outside),
            folder,
            list_names(outside),
        )
    if "train" not in by_split:
        raise UserError(f"{csv_path} lists no training image that exists (0 of {len(rows)} rows)")
    splits = {split: as_files(*by_split[split]) for split in SPLIT_NAMES if split in by_split}
    return DatasetSplits(class_names=class_names, **splits)


# Why a CSV row is skipped, in the order each is checked and reported.
SKIP_REASONS = ("no path", "no label", "an image file that is missing")


def warn_skipped_rows(csv_path: Path, skipped: dict[str, list[str]]) -> None:
    """One warning for all skipped rows, by reason: "skipped 2 row(s) with no label: ..."."""
    parts = [
        f"skipped {len(rows)} row(s) with {reason}: {list_names(rows)}"
        for reason, rows in skipped.items()
        if rows
    ]
    if parts:
        log.warning("%s: %s", csv_path, "; ".join(parts))
