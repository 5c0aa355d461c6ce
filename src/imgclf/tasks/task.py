"""The seam between the model and the kind of classification it does."""

from typing import Protocol

import torch
from torch import nn
from torchmetrics import MeanMetric, Metric, MetricCollection

Stage = str  # "train", "val" or "test"


class StageMetrics(nn.Module):
    """One stage's metrics: the mean loss and the task's scores, logged each epoch as
    `<stage>/loss` and `<stage>/<score>`, and the confusion counts the views draw (none in
    training)."""

    def __init__(self, scores: MetricCollection, confusion: Metric | None) -> None:
        super().__init__()
        self.loss = MeanMetric(nan_strategy="disable")
        self.scores = scores
        self.confusion = confusion

    def update(self, loss: torch.Tensor, predictions: torch.Tensor, labels: torch.Tensor) -> None:
        self.loss.update(loss, weight=len(labels))
        # update(), not a call: a call also computes each batch's value, which only per-step
        # logging would use; these are logged per epoch.
        self.scores.update(predictions, labels)
        if self.confusion is not None:
            self.confusion.update(predictions, labels)

    def logged(self) -> dict[str, Metric]:
        return {"loss": self.loss, **dict(self.scores.items(keep_base=True, copy_state=False))}


class Task(Protocol):
    # Validation scores whose best value over the epochs is logged as `val/<name>_best`: each
    # can be the checkpoint monitor and the sweep objective.
    tracked_scores: tuple[str, ...]
    # The scores shown in the progress bar.
    progress_bar_scores: tuple[str, ...]

    def loss(self, class_weights: torch.Tensor | None, label_smoothing: float) -> nn.Module:
        """The training loss, taking logits and targets."""
        ...

    def metrics(self, stage: Stage, num_classes: int) -> StageMetrics: ...

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor: ...

    def predictions(self, logits: torch.Tensor) -> torch.Tensor:
        """The labels the model answers with."""
        ...

    def labels(self, targets: torch.Tensor) -> torch.Tensor:
        """The labels of a batch's targets, which training's MixUp and CutMix may soften."""
        ...

    def confidences(self, probabilities: torch.Tensor) -> torch.Tensor:
        """Per image, how sure the model is of its answer."""
        ...

    def correct(self, predictions: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Per image, whether the answer is right."""
        ...

    def ranked(self, probabilities: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per image, the `count` likeliest classes: (probabilities, classes), likeliest first."""
        ...
