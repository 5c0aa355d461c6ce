"""The user's own images, listed (not decoded): a folder with one subfolder per class,
optionally inside train/, val/ and test/, or a CSV of `path,label[,split]` rows, or of
`path,labels[,split]` rows, any number of labels an image (multi-label)."""

import csv
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import numpy as np
import torch

from imgclf.data.splits import DatasetSplits, LabelledFiles
from imgclf.errors import DataNotFoundError, UserError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
SPLIT_NAMES = ("train", "val", "test")
# A CSV's label column: one class an image, or any number of them (multi-label), separated
# by `data.label_separator`.
LABEL_COLUMN, LABELS_COLUMN = "label", "labels"
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


def as_files(paths: list[str], labels: list[int] | list[list[int]]) -> LabelledFiles:
    """Files of one class each (a CSV row's classes: a list holding one)."""
    indices = [label[0] if isinstance(label, list) else label for label in labels]
    listed = np.array(paths, dtype=np.str_)
    return LabelledFiles(listed, torch.tensor(indices, dtype=torch.int64), ids=listed)


def as_multi_hot_files(paths: list[str], labels: list[list[int]], classes: int) -> LabelledFiles:
    """Files of any number of classes each: float32 multi-hot rows, as the loss takes them."""
    multi_hot = torch.zeros(len(labels), classes)
    for row, present in enumerate(labels):
        multi_hot[row, present] = 1.0
    listed = np.array(paths, dtype=np.str_)
    return LabelledFiles(listed, multi_hot, ids=listed)


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


@contextmanager
def label_csv(csv_path: Path) -> Iterator[tuple[list[str], csv.DictReader]]:
    """The CSV's columns and a reader of its rows, once its header names a path column and
    one of label or labels."""
    if not csv_path.is_file():
        raise DataNotFoundError(
            f"label file {csv_path} does not exist. Set data.csv_path to a CSV with the columns "
            "path,label (or path,labels for several labels an image) and optionally split, "
            "paths relative to the CSV."
        )
    with csv_path.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.DictReader(file)
        columns = [name.strip() for name in reader.fieldnames or []]
        label_columns = [name for name in (LABEL_COLUMN, LABELS_COLUMN) if name in columns]
        if "path" not in columns or len(label_columns) != 1:
            missing = ["path"] * ("path" not in columns) + [LABEL_COLUMN] * (not label_columns)
            problem = (
                "both a label and a labels column"
                if len(label_columns) == 2
                else f"no {' or '.join(missing)} column"
            )
            raise UserError(
                f"{csv_path} has {problem} (its header: {','.join(columns) or 'empty'}). The "
                "first line must name the columns path,label (one class an image) or "
                "path,labels (any number, separated by data.label_separator), and optionally "
                "split."
            )
        yield columns, reader


def read_csv_rows(csv_path: Path) -> list[dict[str, str]]:
    with label_csv(csv_path) as (_, reader):
        return [
            {key.strip(): (value or "").strip() for key, value in row.items() if key}
            for row in reader
        ]


def csv_is_multi_label(csv_path: Path) -> bool:
    """Whether the CSV labels images with a `labels` column (any number of classes each): its
    header says, so a config can ask as often as it likes."""
    with label_csv(csv_path) as (columns, _):
        return LABELS_COLUMN in columns


def is_multi_label_rows(rows: list[dict[str, str]]) -> bool:
    return bool(rows) and LABELS_COLUMN in rows[0]


def row_labels(row: dict[str, str], separator: str) -> list[str]:
    """A row's class names: its `label`, or its `labels` split by `separator` (maybe none)."""
    if LABEL_COLUMN in row:
        return [row[LABEL_COLUMN]] if row[LABEL_COLUMN] else []
    return [name.strip() for name in row[LABELS_COLUMN].split(separator) if name.strip()]


def csv_class_names(csv_path: Path, separator: str = ";") -> list[str]:
    return class_names_of(read_csv_rows(csv_path), separator, csv_path)


def class_names_of(rows: list[dict[str, str]], separator: str, csv_path: Path) -> list[str]:
    names = sorted({name for row in rows for name in row_labels(row, separator)})
    if len(names) < 2:
        raise UserError(f"{csv_path} labels {len(names)} class(es); a classifier needs at least 2")
    return names


def list_csv(
    csv_path: Path, separator: str = ";", classes: list[str] | None = None
) -> DatasetSplits:
    """Rows without a path or (in a `label` column) a label, or whose file is missing, are
    skipped, all named in one warning; paths outside the CSV's folder (`../`, absolute) are
    kept and named in another. A row's `split`, when the column is there, puts the image in
    train, val or test.

    A `labels` column gives multi-hot labels (float32, one column per class); a row may name
    no class. Its classes are those found, or `classes`, when given: then a label that is not
    among them is an error."""
    rows = read_csv_rows(csv_path)
    # The CSV is read once: the kind of labels and the classes come from its rows.
    multi_label = is_multi_label_rows(rows)
    class_names = (
        list(classes) if multi_label and classes else class_names_of(rows, separator, csv_path)
    )
    label_of = {name: label for label, name in enumerate(class_names)}
    folder = os.path.normpath(csv_path.parent)
    by_split: dict[str, tuple[list[str], list[list[int]]]] = {}
    skipped: dict[str, list[str]] = {reason: [] for reason in SKIP_REASONS}
    bad_splits, outside, unknown = [], [], []
    for line, row in enumerate(rows, start=2):
        path = Path(os.path.normpath(csv_path.parent / row["path"]))
        names = row_labels(row, separator)
        reason = (
            "no path" if not row["path"]
            else "no label" if not names and not multi_label
            else "an image file that is missing" if not path.is_file()
            else None
        )  # fmt: skip
        if reason:
            skipped[reason].append(f"{row['path'] or ','.join(names)} (line {line})")
            continue
        split = row.get("split") or "train"
        if split not in SPLIT_NAMES:
            bad_splits.append(f"line {line}: {split!r}")
            continue
        unknown += [f"line {line}: {name!r}" for name in names if name not in label_of]
        if not path.is_relative_to(folder):
            outside.append(f"{row['path']} (line {line})")
        paths, labels = by_split.setdefault(split, ([], []))
        paths.append(str(path))
        labels.append([label_of[name] for name in names if name in label_of])
    if bad_splits:
        raise UserError(
            f"{csv_path}: the split column must say train, val or test; {list_names(bad_splits)}"
        )
    if unknown:
        raise UserError(
            f"{csv_path} has labels that are not among data.classes={class_names}: "
            f"{list_names(unknown)}. Add them to data.classes, or correct the CSV."
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
    as_labelled = partial(as_multi_hot_files, classes=len(class_names)) if multi_label else as_files
    splits = {split: as_labelled(*by_split[split]) for split in SPLIT_NAMES if split in by_split}
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
