"""Single-label classification: each image is of exactly one class."""

import torch
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
)

from imgclf.tasks.task import Stage, StageMetrics


class SingleLabel:
    """Cross-entropy on logits, softmax probabilities, the likeliest class as the answer."""

    # Balanced accuracy is the mean of per-class recall.
    tracked_scores = ("acc", "f1_macro", "acc_balanced")
    progress_bar_scores = ("acc",)

    def loss(self, class_weights: torch.Tensor | None, label_smoothing: float) -> nn.Module:
        return nn.CrossEntropyLoss(weight=class_weights, label_smoothing=label_smoothing)

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
        confusion = MulticlassConfusionMatrix(num_classes) if stage != "train" else None
        return StageMetrics(MetricCollection(scores, compute_groups=False), confusion)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.softmax(dim=1)

    def predictions(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(dim=1)

    def labels(self, targets: torch.Tensor) -> torch.Tensor:
        # A mixed image's label is the class with the larger share.
        return targets.argmax(dim=1) if targets.ndim == 2 else targets

    def confidences(self, probabilities: torch.Tensor) -> torch.Tensor:
        return probabilities.max(dim=1).values

    def correct(self, predictions: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return predictions == labels

    def ranked(self, probabilities: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        return probabilities.topk(min(count, probabilities.shape[1]), dim=1)
