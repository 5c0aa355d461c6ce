"""Single-label classification: each image is of exactly one class."""

import torch
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
)

from imgclf.data.balance import inverse_frequency_weights
from imgclf.tasks.task import Stage, StageMetrics


class SingleLabel(nn.Module):
    """Cross-entropy on logits, softmax probabilities, the likeliest class as the answer."""

    name = "single_label"
    headline_score = "acc"
    # Airbench's rule: the views' logits are averaged.
    view_average = "logits"

    # Balanced accuracy is the mean of per-class recall.
    tracked_scores = ("acc", "f1_macro", "acc_balanced")
    progress_bar_scores = ("acc",)

    def loss(self, class_weights: torch.Tensor | None, label_smoothing: float) -> nn.Module:
        return nn.CrossEntropyLoss(weight=class_weights, label_smoothing=label_smoothing)

    def auto_class_weights(self, class_counts: torch.Tensor, images: int) -> torch.Tensor:
        return inverse_frequency_weights(class_counts)

    def tune(self, val_metrics: StageMetrics) -> None:
        """Nothing to tune: the answer is the likeliest class."""

    def metrics(self, stage: Stage, num_classes: int) -> StageMetrics:
        # Accuracy without torchmetrics' checks of each batch (labels in range): they read
        # values back from the device, which on a GPU waits for all queued work, every step.
        # The labels are checked when the data loads.
        scores = {"acc": MulticlassAccuracy(num_classes, average="micro", validate_args=False)}
        if stage == "val":
            scores["f1_macro"] = MulticlassF1Score(num_classes, average="macro")
            scores["acc_balanced"] = MulticlassAccuracy(num_classes, average="macro")
        # Counts of (true, predicted) pairs, for the confusion-matrix and report views;
        # torchmetrics sums them across DDP ranks when they are computed.
        views = {"confusion": MulticlassConfusionMatrix(num_classes)} if stage != "train" else {}
        return StageMetrics(MetricCollection(scores, compute_groups=False), prediction_views=views)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.softmax(dim=1)

    def predictions(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(dim=1)

    def decisions(self, probabilities: torch.Tensor) -> torch.Tensor:
        return probabilities.argmax(dim=1)

    def answer(self, probabilities: torch.Tensor, class_names: list[str]) -> dict[str, object]:
        confidence, label = probabilities.max(dim=0)
        return {"predicted": class_names[int(label)], "confidence": round(float(confidence), 4)}

    def margins(self, probabilities: torch.Tensor) -> torch.Tensor:
        top_two = probabilities.topk(2, dim=1).values
        return top_two[:, 0] - top_two[:, 1]

    def metadata(self) -> dict[str, str]:
        return {"task": self.name, "decision": "the class of the highest probability"}

    def labels(self, targets: torch.Tensor) -> torch.Tensor:
        # A mixed image's label is the class with the larger share.
        return targets.argmax(dim=1) if targets.ndim == 2 else targets

    def confidences(self, probabilities: torch.Tensor) -> torch.Tensor:
        return probabilities.max(dim=1).values

    def correct(self, predictions: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return predictions == labels

    def explained(
        self, predictions: torch.Tensor, probabilities: torch.Tensor, most: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.arange(len(predictions), device=predictions.device), predictions

    mistake_kinds = {"misclassified": "Misclassified test images, most confident first"}

    def mistakes(
        self, probabilities: torch.Tensor, predictions: torch.Tensor, labels: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        wrong = ~self.correct(predictions, labels)
        return {"misclassified": torch.where(wrong, self.confidences(probabilities), 0.0)}

    def label_names(self, target: torch.Tensor, class_names: list[str]) -> str:
        return class_names[int(self.labels(target[None])[0])]

    def describe(
        self, target: torch.Tensor, prediction: torch.Tensor, probabilities: torch.Tensor,
        class_names: list[str],
    ) -> str:  # fmt: skip
        confidence = float(probabilities[int(prediction)])
        return (
            f"true: {class_names[int(target)]}\npred: {class_names[int(prediction)]} "
            f"({confidence:.0%})"
        )
