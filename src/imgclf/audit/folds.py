"""K-fold cross-validation's folds of the training images: each class shared out evenly, so
that every fold model trains on every class."""

import torch

from imgclf.errors import UserError


def check_fold_count(folds: int, labels: torch.Tensor, class_names: list[str]) -> None:
    """At least 2 folds, and at least as many images of each class as folds: a fold without
    a class would train a model that never saw it."""
    if folds < 2:
        raise UserError(
            f"audit.folds={folds}: cross-validation needs at least 2 folds (each image is "
            "predicted by a model trained on the others); the default is 2. To audit with a "
            "trained model instead, give ckpt_path=<checkpoint>."
        )
    counts = torch.bincount(labels, minlength=len(class_names))
    short = [
        f"{name} ({int(count)})"
        for name, count in zip(class_names, counts, strict=True)
        if count < folds
    ]
    if short:
        raise UserError(
            f"audit.folds={folds} needs at least {folds} training images of each class; "
            f"these have fewer: {', '.join(short)}. Add images, choose fewer folds, or leave "
            "the class out with data.classes=[...]."
        )


def fold_of_each_image(labels: torch.Tensor, folds: int, seed: int) -> torch.Tensor:
    """Each image's fold, 0 to folds - 1: a class's images in a seeded random order, dealt
    out in turn, so that every fold holds its share of every class."""
    generator = torch.Generator().manual_seed(seed)
    fold = torch.empty(len(labels), dtype=torch.int64)
    # Each class is dealt from where the last left off: the folds' sizes differ by one at most.
    start = 0
    for label in labels.unique():
        members = torch.nonzero(labels == label).flatten()
        shuffled = members[torch.randperm(len(members), generator=generator)]
        fold[shuffled] = (torch.arange(len(members)) + start) % folds
        start += len(members)
    return fold
