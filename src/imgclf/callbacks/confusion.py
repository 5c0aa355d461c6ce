"""Confusion matrices: which classes the model mixes up, on validation and on the test set."""

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
            figure = build_confusion_figure(matrix, names, f"Validation, epoch {epoch}")
            publish_figure(trainer, "val/confusion_matrix", figure, self.output_dir)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        matrix = pl_module.test_metrics.confusion.compute()
        if not trainer.is_global_zero:
            return
        names = pl_module.class_names
        figure = build_confusion_figure(matrix, names, "Test set")
        publish_figure(trainer, "test/confusion_matrix", figure, self.output_dir, MATRIX_NAME)
        write_json(
            figure_path(self.output_dir, MATRIX_NAME).with_suffix(".json"),
            {"class_names": names, "rows_true_columns_predicted": matrix.tolist()},
        )
