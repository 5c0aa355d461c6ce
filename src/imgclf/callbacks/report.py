"""The classification report: per-class precision, recall, F1 and support on the test set."""

from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from imgclf.callbacks.publish import publish_scalars, publish_text, write_json

REPORT_NAME = "classification_report"


def classification_report(matrix: torch.Tensor, class_names: list[str]) -> dict:
    """scikit-learn's classification_report, from a confusion matrix (rows true, columns
    predicted): per class, then macro and support-weighted averages, and the accuracy."""
    counts = matrix.double().cpu()
    true_positives = counts.diag()
    support = counts.sum(dim=1)
    predicted = counts.sum(dim=0)
    # A class never predicted (or never present) gets 0, as scikit-learn's zero_division=0.
    precision = torch.where(predicted > 0, true_positives / predicted.clamp_min(1), 0)
    recall = torch.where(support > 0, true_positives / support.clamp_min(1), 0)
    denominator = precision + recall
    f1 = torch.where(denominator > 0, 2 * precision * recall / denominator.clamp_min(1e-12), 0)
    total = support.sum()

    def row(p: torch.Tensor, r: torch.Tensor, f: torch.Tensor, s: float) -> dict:
        return {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}

    weights = support / total.clamp_min(1)
    return {
        "classes": {
            name: row(precision[i], recall[i], f1[i], support[i])
            for i, name in enumerate(class_names)
        },
        "macro avg": row(precision.mean(), recall.mean(), f1.mean(), total),
        "weighted avg": row(
            (precision * weights).sum(), (recall * weights).sum(), (f1 * weights).sum(), total
        ),
        "accuracy": float(true_positives.sum() / total.clamp_min(1)),
        "support": int(total),
    }


def report_markdown(report: dict) -> str:
    lines = [
        "| class | precision | recall | F1 | support |",
        "|---|---:|---:|---:|---:|",
    ]
    rows = {**report["classes"], "**macro avg**": report["macro avg"]}
    rows["**weighted avg**"] = report["weighted avg"]
    for name, values in rows.items():
        lines.append(
            f"| {name} | {values['precision']:.3f} | {values['recall']:.3f} "
            f"| {values['f1']:.3f} | {values['support']:,} |"
        )
    lines.append(f"\nAccuracy: **{report['accuracy']:.2%}** of {report['support']:,} images.")
    return "\n".join(lines)


class ClassificationReportCallback(Callback):
    """`test/classification_report` (TensorBoard text), `classification_report.md` and `.json`
    in the run folder, and per-class scalars `test/<precision|recall|f1>/<class>`."""

    def __init__(self, output_dir: str) -> None:
        self.output_dir = output_dir

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        matrix = pl_module.test_metrics.confusion.compute()  # every rank: it syncs
        if not trainer.is_global_zero:
            return
        report = classification_report(matrix, pl_module.class_names)
        markdown = report_markdown(report)
        publish_text(trainer, "test/classification_report", markdown)
        publish_scalars(
            trainer,
            {
                f"test/{metric}/{name}": values[metric]
                for name, values in report["classes"].items()
                for metric in ("precision", "recall", "f1")
            },
        )
        folder = Path(self.output_dir)
        write_json(folder / f"{REPORT_NAME}.json", report)
        (folder / f"{REPORT_NAME}.md").write_text(f"# Classification report\n\n{markdown}\n")
