"""Confusion matrices: which classes the model mixes up, on validation and on the test set.
A multi-label model's are one 2x2 matrix per class: its images and the others, against
whether the class was predicted."""

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from matplotlib.figure import Figure

from imgclf.callbacks.publish import figure_path, publish_figure, write_json

# Beyond this many classes the per-cell numbers become unreadable; the colours stay.
MAX_ANNOTATED_CLASSES = 20
MATRIX_NAME = "confusion_matrix"


def build_confusion_figure(matrix: torch.Tensor, class_names: list[str], title: str) -> Figure:
    """Cells coloured by the row-normalised rate (recall on the diagonal), annotated with the
    count and that rate; rows are true classes, columns predicted ones."""
    counts = matrix.cpu().numpy().astype(np.int64)
    rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    size = max(4.5, 0.55 * len(class_names) + 2)
    figure, axis = plt.subplots(figsize=(size + 1.2, size))
    annotate = len(class_names) <= MAX_ANNOTATED_CLASSES
    # Empty cells stay blank, so the mix-ups stand out.
    labels = np.vectorize(lambda count, rate: f"{count}\n{rate:.0%}" if count else "")(
        counts, rates
    )
    sns.heatmap(
        rates,
        annot=labels if annotate else False,
        fmt="",
        annot_kws={"fontsize": 7},
        cmap="Blues",
        vmin=0,
        vmax=1,
        square=True,
        xticklabels=class_names,
        yticklabels=class_names,
        cbar_kws={"label": "share of the true class"},
        ax=axis,
    )
    axis.set_xlabel("predicted class")
    axis.set_ylabel("true class")
    accuracy = np.trace(counts) / max(counts.sum(), 1)
    axis.set_title(f"{title}: {counts.sum():,} images, accuracy {accuracy:.2%}")
    plt.setp(axis.get_xticklabels(), rotation=45, ha="right")
    plt.setp(axis.get_yticklabels(), rotation=0)
    figure.tight_layout()
    return figure


def build_per_class_confusion_figure(
    matrices: torch.Tensor, class_names: list[str], title: str
) -> Figure:
    """One 2x2 panel per class from (classes, 2, 2) counts [[TN, FP], [FN, TP]]: rows
    whether the image holds the class, columns whether the model said so; cells coloured by
    the row's share."""
    counts = matrices.cpu().numpy().astype(np.int64)
    columns = min(5, len(class_names))
    rows = -(-len(class_names) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.3 * columns, 2.3 * rows + 0.6))
    axes = np.atleast_1d(axes).flatten()
    for axis, name, matrix in zip(axes, class_names, counts, strict=False):
        rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        labels = np.vectorize(lambda count, rate: f"{count}\n{rate:.0%}")(matrix, rates)
        sns.heatmap(
            rates, annot=labels, fmt="", annot_kws={"fontsize": 7}, cmap="Blues", vmin=0,
            vmax=1, cbar=False, square=True, xticklabels=["no", "yes"],
            yticklabels=["no", "yes"], ax=axis,
        )  # fmt: skip
        axis.set_title(name, fontsize=9)
        axis.set_xlabel("predicted", fontsize=8)
        axis.set_ylabel("true", fontsize=8)
    for axis in axes[len(class_names) :]:
        axis.axis("off")
    decisions = counts.sum()
    wrong = counts[:, 0, 1].sum() + counts[:, 1, 0].sum()
    figure.suptitle(f"{title}: {decisions:,} decisions, {wrong / max(decisions, 1):.2%} wrong")
    figure.tight_layout()
    return figure


def build_figure(matrix: torch.Tensor, class_names: list[str], title: str) -> Figure:
    """A (classes, classes) matrix, or per-class 2x2 ones (classes, 2, 2)."""
    if matrix.ndim == 3:
        return build_per_class_confusion_figure(matrix, class_names, title)
    return build_confusion_figure(matrix, class_names, title)


class ConfusionMatrixCallback(Callback):
    """`val/confusion_matrix` every `every_n_epochs` epochs and after the last one;
    `test/confusion_matrix` with `figures/confusion_matrix.png` and `confusion_matrix.json`.

    The counts come from the module's torchmetrics confusion matrices, summed over DDP ranks.
    """

    def __init__(self, output_dir: str, every_n_epochs: int = 5) -> None:
        self.output_dir = output_dir
        self.every_n_epochs = every_n_epochs

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        due = epoch % self.every_n_epochs == 0 or epoch == trainer.max_epochs
        if trainer.sanity_checking or not due:
            return
        matrix = pl_module.val_metrics.confusion.compute()  # every rank: it syncs
        if trainer.is_global_zero:
            names = pl_module.class_names
            figure = build_figure(matrix, names, f"Validation, epoch {epoch}")
            publish_figure(trainer, "val/confusion_matrix", figure, self.output_dir)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        matrix = pl_module.test_metrics.confusion.compute()
        if not trainer.is_global_zero:
            return
        names = pl_module.class_names
        figure = build_figure(matrix, names, "Test set")
        publish_figure(trainer, "test/confusion_matrix", figure, self.output_dir, MATRIX_NAME)
        # Rows true, columns predicted; per class [[TN, FP], [FN, TP]] when multi-label.
        key = (
            "per_class_rows_true_columns_predicted"
            if matrix.ndim == 3
            else ("rows_true_columns_predicted")
        )
        write_json(
            figure_path(self.output_dir, MATRIX_NAME).with_suffix(".json"),
            {"class_names": names, key: matrix.tolist()},
        )
