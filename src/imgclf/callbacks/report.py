"""The classification report: per-class precision, recall, F1 and support on the test set."""

from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from imgclf.callbacks.publish import publish_scalars, publish_text, write_json

REPORT_NAME = "classification_report"


def per_class_counts(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(true positives, support, predicted) per class, of a confusion matrix (rows true,
    columns predicted) or of per-class 2x2 ones [[TN, FP], [FN, TP]] (multi-label)."""
    counts = matrix.double().cpu()
    if counts.ndim == 3:
        return counts[:, 1, 1], counts[:, 1].sum(dim=1), counts[:, :, 1].sum(dim=1)
    return counts.diag(), counts.sum(dim=1), counts.sum(dim=0)


def classification_report(matrix: torch.Tensor, class_names: list[str]) -> dict:
    """scikit-learn's classification_report, from a confusion matrix (rows true, columns
    predicted) or per-class 2x2 ones (multi-label): per class, then macro and
    support-weighted averages, and the accuracy (multi-label: the micro average instead, the
    share of all predicted labels that are right and of all true labels found)."""
    true_positives, support, predicted = per_class_counts(matrix)
    multi_label = matrix.ndim == 3
    # A class never predicted (or never present) gets 0, as scikit-learn's zero_division=0.
    precision = torch.where(predicted > 0, true_positives / predicted.clamp_min(1), 0)
    recall = torch.where(support > 0, true_positives / support.clamp_min(1), 0)
    denominator = precision + recall
    f1 = torch.where(denominator > 0, 2 * precision * recall / denominator.clamp_min(1e-12), 0)
    total = support.sum()

    def row(p: torch.Tensor, r: torch.Tensor, f: torch.Tensor, s: float) -> dict:
        return {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}

    weights = support / total.clamp_min(1)
    report = {
        "classes": {
            name: row(precision[i], recall[i], f1[i], support[i])
            for i, name in enumerate(class_names)
        },
        "macro avg": row(precision.mean(), recall.mean(), f1.mean(), total),
        "weighted avg": row(
            (precision * weights).sum(), (recall * weights).sum(), (f1 * weights).sum(), total
        ),
        "support": int(total),
    }
    if multi_label:
        micro_precision = true_positives.sum() / predicted.sum().clamp_min(1)
        micro_recall = true_positives.sum() / total.clamp_min(1)
        micro_f1 = (
            2 * micro_precision * micro_recall / (micro_precision + micro_recall).clamp_min(1e-12)
        )
        report["micro avg"] = row(micro_precision, micro_recall, micro_f1, total)
    else:
        report["accuracy"] = float(true_positives.sum() / total.clamp_min(1))
    return report


def add_average_precision(report: dict, average_precision: torch.Tensor) -> None:
    """Each class's average precision (multi-label), and their mean (mAP) in the macro row."""
    for values, ap in zip(report["classes"].values(), average_precision.tolist(), strict=True):
        values["ap"] = ap
    report["macro avg"]["ap"] = float(average_precision.mean())


def report_markdown(report: dict) -> str:
    with_ap = "ap" in report["macro avg"]
    lines = [
        "| class | precision | recall | F1 | support |" + (" AP |" if with_ap else ""),
        "|---|---:|---:|---:|---:|" + ("---:|" if with_ap else ""),
    ]
    rows = {**report["classes"], "**macro avg**": report["macro avg"]}
    rows["**weighted avg**"] = report["weighted avg"]
    if "micro avg" in report:
        rows["**micro avg**"] = report["micro avg"]
    for name, values in rows.items():
        lines.append(
            f"| {name} | {values['precision']:.3f} | {values['recall']:.3f} "
            f"| {values['f1']:.3f} | {values['support']:,} |"
            + (f" {values['ap']:.3f} |" if "ap" in values else (" |" if with_ap else ""))
        )
    if "accuracy" in report:
        lines.append(f"\nAccuracy: **{report['accuracy']:.2%}** of {report['support']:,} images.")
    else:
        lines.append(f"\n{report['support']:,} labels in the test images.")
    return "\n".join(lines)


class ClassificationReportCallback(Callback):
    """`test/classification_report` (TensorBoard text), `classification_report.md` and `.json`
    in the run folder, and per-class scalars `test/<precision|recall|f1>/<class>` (and
    `test/ap/<class>`, multi-label)."""

    def __init__(self, output_dir: str) -> None:
        self.output_dir = output_dir

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        metrics = pl_module.test_metrics
        matrix = metrics.confusion.compute()  # every rank: it syncs
        average_precision = (
            metrics.probability_views["average_precision"].compute()
            if "average_precision" in metrics.probability_views
            else None
        )
        if not trainer.is_global_zero:
            return
        report = classification_report(matrix, pl_module.class_names)
        if average_precision is not None:
            add_average_precision(report, average_precision)
        markdown = report_markdown(report)
        publish_text(trainer, "test/classification_report", markdown)
        publish_scalars(
            trainer,
            {
                f"test/{metric}/{name}": values[metric]
                for name, values in report["classes"].items()
                for metric in ("precision", "recall", "f1", "ap")
                if metric in values
            },
        )
        folder = Path(self.output_dir)
        write_json(folder / f"{REPORT_NAME}.json", report)
        (folder / f"{REPORT_NAME}.md").write_text(f"# Classification report\n\n{markdown}\n")
