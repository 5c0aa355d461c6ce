"""A multi-label model's test views: each class's precision-recall curve, and which classes an
image's true labels bring into the answer (co-occurrence, true against predicted). Drawn when
the task's test metrics hold them; single-label models have neither."""

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from matplotlib.figure import Figure

from imgclf.callbacks.confusion import MAX_ANNOTATED_CLASSES
from imgclf.callbacks.publish import figure_path, publish_figure, write_json
from imgclf.callbacks.report import per_class_counts

PRECISION_RECALL_NAME, CO_OCCURRENCE_NAME = "precision_recall", "co_occurrence"


def build_precision_recall_figure(
    precision: torch.Tensor,
    recall: torch.Tensor,
    average_precision: torch.Tensor,
    operating_points: tuple[torch.Tensor, torch.Tensor],
    class_names: list[str],
) -> Figure:
    """One curve per class (precision against recall over the thresholds), its AP in the
    legend, and a dot where the model's own thresholds put it."""
    figure, axis = plt.subplots(figsize=(7.5, 5.5))
    colours = plt.get_cmap("tab20" if len(class_names) > 10 else "tab10")
    for index, name in enumerate(class_names):
        colour = colours(index % colours.N)
        label = f"{name} (AP {float(average_precision[index]):.2f})"
        axis.plot(recall[index], precision[index], color=colour, linewidth=1.2, label=label)
        axis.plot(
            operating_points[1][index], operating_points[0][index], "o", color=colour,
            markersize=5,
        )  # fmt: skip
    axis.set_xlabel("recall")
    axis.set_ylabel("precision")
    axis.set_xlim(0, 1.01)
    axis.set_ylim(0, 1.01)
    axis.grid(alpha=0.3)
    mean = float(average_precision.mean())
    axis.set_title(f"Precision-recall per class (test set): mAP {mean:.3f}; dots: thresholds")
    axis.legend(fontsize=7, loc="lower left", ncol=2 if len(class_names) > 10 else 1)
    figure.tight_layout()
    return figure


def build_co_occurrence_figure(
    counts: torch.Tensor, support: torch.Tensor, class_names: list[str]
) -> Figure:
    """Rows: the images holding a class (`support` of them); cells: how many of them were
    given the column's class, coloured by their share. The diagonal is each class's recall,
    the rest the classes its images bring into the answer."""
    values = counts.cpu().numpy().astype(np.int64)
    shares = values / np.maximum(support.cpu().numpy()[:, None], 1)
    size = max(4.5, 0.55 * len(class_names) + 2)
    figure, axis = plt.subplots(figsize=(size + 1.2, size))
    annotate = len(class_names) <= MAX_ANNOTATED_CLASSES
    sns.heatmap(
        shares, annot=values if annotate else False, fmt="d", annot_kws={"fontsize": 7},
        cmap="Purples", vmin=0, square=True, xticklabels=class_names, yticklabels=class_names,
        vmax=1, cbar_kws={"label": "share of the images holding the row's class"}, ax=axis,
    )  # fmt: skip
    axis.set_xlabel("predicted label")
    axis.set_ylabel("true label")
    axis.set_title("Test images holding the row's class, given the column's")
    plt.setp(axis.get_xticklabels(), rotation=45, ha="right")
    plt.setp(axis.get_yticklabels(), rotation=0)
    figure.tight_layout()
    return figure


class LabelViewsCallback(Callback):
    """`test/precision_recall` with `figures/precision_recall.png`, and `test/co_occurrence`
    with `figures/co_occurrence.png` and `.json`, when the task's test metrics hold them."""

    def __init__(self, output_dir: str) -> None:
        self.output_dir = output_dir

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        metrics = pl_module.test_metrics
        if PRECISION_RECALL_NAME not in metrics.probability_views:
            return
        # Every rank computes: the counts are summed across DDP ranks.
        precision, recall, _ = metrics.probability_views[PRECISION_RECALL_NAME].compute()
        average_precision = metrics.probability_views["average_precision"].compute()
        true_positives, support, predicted = per_class_counts(metrics.confusion.compute())
        co_occurrence = metrics.prediction_views[CO_OCCURRENCE_NAME].compute()
        if not trainer.is_global_zero:
            return
        names = pl_module.class_names
        operating_points = (
            true_positives / predicted.clamp_min(1),
            true_positives / support.clamp_min(1),
        )
        figure = build_precision_recall_figure(
            precision.cpu(), recall.cpu(), average_precision.cpu(), operating_points, names
        )
        publish_figure(
            trainer, f"test/{PRECISION_RECALL_NAME}", figure, self.output_dir,
            PRECISION_RECALL_NAME,
        )  # fmt: skip
        figure = build_co_occurrence_figure(co_occurrence, support, names)
        publish_figure(
            trainer, f"test/{CO_OCCURRENCE_NAME}", figure, self.output_dir, CO_OCCURRENCE_NAME
        )
        write_json(
            figure_path(self.output_dir, CO_OCCURRENCE_NAME).with_suffix(".json"),
            {"class_names": names, "rows_true_columns_predicted": co_occurrence.tolist()},
        )
