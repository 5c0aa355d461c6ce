"""What every dataset reader returns, split as found on disk, and the operations on labels that
do not care whether the images are decoded tensors or files: class subsets, stratified splits,
class counts."""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from imgclf.data.iterative_stratification import iterative_stratification
from imgclf.errors import UserError

log = logging.getLogger(__name__)

# How many of the pairs of classes seen together most often the run logs.
CO_OCCURRING_PAIRS_LOGGED = 10
# Past this ratio of the largest class to the smallest, the run warns and names the remedies.
IMBALANCE_WARNING_RATIO = 3.0


@dataclass(frozen=True)
class LabelledImages:
    """Decoded images in memory: the built-in datasets, and image files with `cache=ram`."""

    images: torch.Tensor  # uint8, (N, C, H, W)
    labels: torch.Tensor  # int64 class indices (N,), or float32 multi-hot (N, classes)
    # What names each image to the user: its file's path, or for a built-in dataset
    # "<file's split>/<index>" ("train/123": the 124th image of the training file). Exclude
    # and relabel lists and the audit name images so.
    ids: np.ndarray | None = None  # str, (N,)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: torch.Tensor) -> "LabelledImages":
        return LabelledImages(self.images[indices], self.labels[indices], ids_subset(self, indices))


@dataclass(frozen=True)
class LabelledFiles:
    """Image files, decoded when read. Paths are a NumPy string array, not a list of Python
    strings: DataLoader workers then share its pages instead of copying them as they touch
    each string's reference count."""

    paths: np.ndarray  # str, (N,)
    labels: torch.Tensor  # as LabelledImages.labels
    # As LabelledImages.ids: the listed paths, also once `paths` are disk-cache entries.
    ids: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, indices: torch.Tensor) -> "LabelledFiles":
        return LabelledFiles(
            self.paths[indices.numpy()], self.labels[indices], ids_subset(self, indices)
        )


Labelled = LabelledImages | LabelledFiles


def ids_subset(data: Labelled, indices: torch.Tensor) -> np.ndarray | None:
    return None if data.ids is None else data.ids[indices.cpu().numpy()]


@dataclass(frozen=True)
class DatasetSplits:
    """A dataset's splits. Missing `val` or `test` are carved out of `train` by the datamodule."""

    train: Labelled
    class_names: list[str]
    val: Labelled | None = None
    test: Labelled | None = None

    def present(self) -> dict[str, Labelled]:
        return {
            split: data
            for split, data in (("train", self.train), ("val", self.val), ("test", self.test))
            if data is not None
        }


def named_by_split(splits: DatasetSplits) -> DatasetSplits:
    """A built-in dataset's images named "<split>/<index>" in the files they were read from."""
    named = {
        split: replace(data, ids=np.char.add(f"{split}/", np.arange(len(data)).astype(np.str_)))
        for split, data in splits.present().items()
    }
    return DatasetSplits(class_names=splits.class_names, **named)


def is_multi_label(labels: torch.Tensor) -> bool:
    """Whether labels are multi-hot rows (any number of classes an image) or class indices."""
    return labels.ndim == 2


def select_classes(splits: DatasetSplits, classes: Sequence[str], source: str) -> DatasetSplits:
    """Only the images of `classes`, relabelled 0..len(classes)-1 in the order given. Multi-hot
    labels keep every image, with only those classes' columns: an image of none of them is
    an example of what none of them looks like."""
    unknown = [name for name in classes if name not in splits.class_names]
    if unknown:
        raise UserError(
            f"data.classes names {unknown}, which {source} does not have; its classes are "
            f"{splits.class_names}"
        )
    if len(set(classes)) != len(classes) or len(classes) < 2:
        raise UserError(
            f"data.classes={list(classes)}: name at least 2 different classes, each once"
        )
    new_label = torch.full((len(splits.class_names),), -1, dtype=torch.int64)
    for label, name in enumerate(classes):
        new_label[splits.class_names.index(name)] = label

    def keep(data: Labelled) -> Labelled:
        if is_multi_label(data.labels):
            columns = [splits.class_names.index(name) for name in classes]
            return replace(data, labels=data.labels[:, columns])
        kept = torch.nonzero(new_label[data.labels] >= 0).flatten()
        subset = data.subset(kept)
        return replace(subset, labels=new_label[subset.labels])

    selected = {split: keep(data) for split, data in splits.present().items()}
    return DatasetSplits(class_names=list(classes), **selected)


def per_class_share(ratio: float, class_sizes: torch.Tensor) -> torch.Tensor:
    """How many images of each class make `ratio` of the whole: round(ratio * total) in
    all, spread in proportion to the class sizes (largest remainders first), so that small
    classes still add up to the ratio."""
    exact = ratio * class_sizes.to(torch.float64)
    counts = exact.floor().long()
    missing = round(ratio * int(class_sizes.sum())) - int(counts.sum())
    by_remainder = torch.argsort(exact - counts, descending=True, stable=True)
    counts[by_remainder[: max(missing, 0)]] += 1
    return counts


def stratified_split(
    labels: torch.Tensor, ratios: dict[str, float], seed: int
) -> dict[str, torch.Tensor]:
    """Indices for each split named in `ratios`, plus "train" for the rest, taken class by
    class (the same fraction of every class), by a seeded permutation so every run gets the
    same split. Every class keeps at least one training image. Multi-hot labels are split by
    iterative stratification, which keeps each label's share as near as it can."""
    if is_multi_label(labels):
        indices = iterative_stratification(labels, ratios, seed)
        return {**indices, "train": indices["train"].sort().values}
    generator = torch.Generator().manual_seed(seed)
    classes = labels.unique()
    members = []
    for label in classes:
        in_class = torch.nonzero(labels == label).flatten()
        members.append(in_class[torch.randperm(len(in_class), generator=generator)])
    sizes = torch.tensor([len(m) for m in members])
    shares = {split: per_class_share(ratio, sizes) for split, ratio in ratios.items()}
    taken: dict[str, list[torch.Tensor]] = {split: [] for split in [*ratios, "train"]}
    for index, in_class in enumerate(members):
        start = 0
        for split in ratios:
            count = max(min(int(shares[split][index]), len(in_class) - start - 1), 0)
            taken[split].append(in_class[start : start + count])
            start += count
        taken["train"].append(in_class[start:])
    # Validation and test in a seeded random order, not class by class: a partial pass
    # (trainer.limit_val_batches) then still sees every class.
    mixed = {split: torch.cat(parts) for split, parts in taken.items()}
    return {
        split: indices.sort().values
        if split == "train"
        else indices[torch.randperm(len(indices), generator=generator)]
        for split, indices in mixed.items()
    }


def class_counts(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Images of each class (multi-hot labels: images that hold it)."""
    if is_multi_label(labels):
        return (labels.cpu() >= 0.5).sum(dim=0)
    return torch.bincount(labels.cpu(), minlength=num_classes)


def co_occurrence(labels: torch.Tensor) -> torch.Tensor:
    """Of multi-hot labels (N, C): (C, C) counts of the images holding both classes; the
    diagonal is each class's count."""
    present = (labels.cpu() >= 0.5).to(torch.int64)
    return present.T @ present


def report_co_occurrence(labels: torch.Tensor, class_names: list[str]) -> None:
    """Log how many labels the training images hold, and the pairs of classes seen together
    most often."""
    present = labels.cpu() >= 0.5
    per_image = torch.bincount(present.sum(dim=1))
    log.info(
        "training images by their number of labels: %s",
        ", ".join(f"{count} {int(images):,}" for count, images in enumerate(per_image) if images),
    )
    pairs = co_occurrence(labels).triu(diagonal=1)
    counts, order = pairs.flatten().sort(descending=True)
    listed = [
        f"{class_names[int(i) // len(class_names)]}+{class_names[int(i) % len(class_names)]} "
        f"{int(count):,}"
        for count, i in zip(counts[:CO_OCCURRING_PAIRS_LOGGED], order, strict=False)
        if count > 0
    ]
    log.info("classes seen together most often: %s", ", ".join(listed) or "none")


def report_class_counts(
    counts: torch.Tensor, class_names: list[str], multi_label: bool = False
) -> None:
    """Log the training images per class; warn when the largest class has more than 3x the
    images of the smallest, naming both and what to do about it."""
    listing = ", ".join(
        f"{name} {int(count):,}" for name, count in zip(class_names, counts, strict=True)
    )
    log.info("training images per class: %s", listing)
    largest, smallest = int(counts.argmax()), int(counts.argmin())
    if counts[largest] > IMBALANCE_WARNING_RATIO * max(int(counts[smallest]), 1):
        remedies = (
            "Consider model.class_weights=auto (positives weighed by their rarity in the loss) "
            "and judge the run by val/map or val/f1_macro"
            if multi_label
            else "Consider model.class_weights=auto (a weighted loss) or data.sampler=balanced, "
            "and judge the run by val/f1_macro or val/acc_balanced"
        )
        log.warning(
            "the classes are imbalanced: %s has %d training images, %s only %d (%.1fx). %s",
            class_names[largest],
            counts[largest],
            class_names[smallest],
            counts[smallest],
            counts[largest] / max(int(counts[smallest]), 1),
            remedies,
        )
