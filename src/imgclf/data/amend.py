"""Images left out (`data.exclude`) or given another label (`data.relabel`), named as the
data names them: a file's path, or "train/123" for a built-in dataset's image (`ids`), as
the audit's issues.csv lists them. The splits are drawn first and amended after, so every
other image stays in the split it would be in anyway, and an excluded image is in none."""

import csv
import logging
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from imgclf.data.splits import Labelled, is_multi_label
from imgclf.errors import UserError

log = logging.getLogger(__name__)

# The column of an exclude or relabel CSV that names the images (issues.csv has it), and
# the one of a relabel CSV that gives each its class.
IMAGE_COLUMN = "image"
LABEL_COLUMN = "label"
# How many names a message lists.
NAMES_LISTED = 5


def read_table(path: Path, key: str, columns: Sequence[str]) -> list[dict[str, str]]:
    if not path.is_file():
        raise UserError(f"{key}={path}: no such file. Give a CSV with the column(s) {columns}.")
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        missing = [column for column in columns if column not in (reader.fieldnames or [])]
        if missing:
            raise UserError(
                f"{key}={path} has no {missing} column(s): its columns are "
                f"{reader.fieldnames}. The audit's issues.csv names images in `image`."
            )
        return list(reader)


def image_name(name: str, base: Path) -> str:
    """A path as the data lists files (absolute, normalised; relative to `base`); a built-in
    dataset's "train/123" passes through unchanged where no such file exists."""
    path = os.path.normpath(base / Path(name).expanduser())
    return path if os.path.exists(path) else name


def exclusion_names(exclude: str | Sequence[str]) -> tuple[set[str], str]:
    """The images `data.exclude` names, and how messages name the setting. A string is a CSV
    whose `image` column names them (relative paths from the CSV's folder); a list names
    them itself (relative paths from the working folder)."""
    if isinstance(exclude, str):
        path = Path(exclude).expanduser().resolve()
        rows = read_table(path, "data.exclude", [IMAGE_COLUMN])
        return {image_name(row[IMAGE_COLUMN], path.parent) for row in rows}, f"data.exclude={path}"
    names = {image_name(str(name), Path.cwd()) for name in exclude}
    return names, "data.exclude"


def relabelling(relabel: str, class_names: list[str]) -> tuple[dict[str, int], str]:
    """Image name -> new class index, from a CSV with `image` and `label` (a class name)."""
    path = Path(relabel).expanduser().resolve()
    key = f"data.relabel={path}"
    rows = read_table(path, "data.relabel", [IMAGE_COLUMN, LABEL_COLUMN])
    unknown = sorted({row[LABEL_COLUMN] for row in rows} - set(class_names))
    if unknown:
        raise UserError(
            f"{key} gives labels that are not classes of the data: {unknown[:NAMES_LISTED]}. "
            f"The classes are {class_names}."
        )
    label_of = {name: index for index, name in enumerate(class_names)}
    return {
        image_name(row[IMAGE_COLUMN], path.parent): label_of[row[LABEL_COLUMN]] for row in rows
    }, key


def check_all_found(named: set[str], found: set[str], key: str, example: str) -> None:
    """An image that the data does not have is a typo or a list made for other data: it stops
    the run, rather than training on what the user meant to leave out."""
    missing = sorted(named - found)
    if missing:
        raise UserError(
            f"{key} names {len(missing):,} image(s) that the data does not have: "
            f"{missing[:NAMES_LISTED]}{' ...' if len(missing) > NAMES_LISTED else ''}. "
            f"Images are named as the audit's issues.csv names them, e.g. {example!r}."
        )


def amended(
    splits: dict[str, Labelled],
    class_names: list[str],
    exclude: str | Sequence[str] | None,
    relabel: str | None,
) -> dict[str, Labelled]:
    """The splits without the excluded images, with the relabelled ones' new labels."""
    if not exclude and not relabel:
        return splits
    ids = {split: data.ids for split, data in splits.items()}
    every_name = set(np.concatenate(list(ids.values())).tolist())
    example = str(ids["train"][0])
    if exclude:
        names, key = exclusion_names(exclude)
        check_all_found(names, every_name, key, example)
        left_out = {}
        for split, data in splits.items():
            kept = ~np.isin(data.ids, list(names))
            left_out[split] = int((~kept).sum())
            splits[split] = data.subset(torch.from_numpy(np.flatnonzero(kept)))
        counts = ", ".join(f"{split} {count:,}" for split, count in left_out.items())
        log.info("%s: left out %d image(s) (%s)", key, sum(left_out.values()), counts)
    if relabel:
        if is_multi_label(splits["train"].labels):
            raise UserError("data.relabel takes single-label data: one class an image")
        new_labels, key = relabelling(relabel, class_names)
        check_all_found(set(new_labels), every_name, key, example)
        changed = 0
        for split, data in splits.items():
            listed = np.flatnonzero(np.isin(data.ids, list(new_labels)))
            new = torch.tensor([new_labels[name] for name in data.ids[listed].tolist()])
            labels = data.labels.clone()
            changed += int((labels[listed] != new.to(labels)).sum())
            labels[listed] = new.to(labels)
            splits[split] = replace(data, labels=labels)
        log.info("%s: %d image(s) given another class", key, changed)
    return splits
