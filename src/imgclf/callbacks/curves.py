"""Learning curves: train and validation loss and accuracy per epoch, as one figure."""

import math
from typing import Any

import matplotlib.pyplot as plt
from lightning.pytorch import Callback, LightningModule, Trainer
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from imgclf.callbacks.publish import figure_path, publish_figure, save_figure, write_json

# The right panel's score, by what the training logs: accuracy, or multi-label's micro F1.
SCORE_NAMES = {"acc": "accuracy", "f1_micro": "micro F1"}


def build_learning_curves_figure(history: list[dict[str, float]]) -> Figure:
    """Loss on the left, accuracy (multi-label: micro F1) on the right; epochs without
    validation leave gaps, and a run without any draws no validation line."""
    figure, (loss_axis, acc_axis) = plt.subplots(1, 2, figsize=(10, 3.8))
    epochs = [row["epoch"] for row in history]
    score = next(
        (name for name in SCORE_NAMES if any(f"train/{name}" in r for r in history)), "acc"
    )
    for axis, quantity in ((loss_axis, "loss"), (acc_axis, score)):
        for stage, style in (("train", "-o"), ("val", "-s")):
            values = [row.get(f"{stage}/{quantity}", math.nan) for row in history]
            if all(math.isnan(value) for value in values):
                continue
            axis.plot(epochs, values, style, markersize=3, label=stage)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylabel(SCORE_NAMES.get(quantity, "loss"))
        axis.grid(alpha=0.3)
        axis.legend()
    loss_axis.set_title("Loss")
    acc_axis.set_title(SCORE_NAMES[score].capitalize())
    figure.tight_layout()
    return figure


class LearningCurvesCallback(Callback):
    """After every epoch: `curves/loss_accuracy`; at the end of fitting, `figures/curves.png`
    and the numbers behind it in `curves.json`. The history is kept in checkpoints, so a
    resumed run draws its whole history."""

    def __init__(self, output_dir: str) -> None:
        self.output_dir = output_dir
        self.history: list[dict[str, float]] = []
        self.validated_epoch = -1

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self.validated_epoch = trainer.current_epoch

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Runs after the epoch's validation, so both stages' epoch metrics are in.
        metrics = trainer.callback_metrics
        row = {"epoch": trainer.current_epoch + 1}
        curve_metrics = [
            f"{stage}/{name}" for stage in ("train", "val") for name in ("loss", *SCORE_NAMES)
        ]
        row.update({name: float(metrics[name]) for name in curve_metrics if name in metrics})
        if self.validated_epoch != trainer.current_epoch:
            # An earlier epoch's validation result lingers in callback_metrics.
            row = {name: value for name, value in row.items() if not name.startswith("val/")}
        self.history.append(row)
        if trainer.is_global_zero:
            publish_figure(
                trainer, "curves/loss_accuracy", build_learning_curves_figure(self.history), ""
            )

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.is_global_zero and self.history:
            figure = build_learning_curves_figure(self.history)
            save_figure(figure, figure_path(self.output_dir, "curves"))
            write_json(figure_path(self.output_dir, "curves").with_suffix(".json"), self.history)

    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict["history"])
