"""The seam between the model and the kind of classification it does."""

from typing import Protocol

import torch
from torch import nn
from torchmetrics import MeanMetric, Metric, MetricCollection

Stage = str  # "train", "val" or "test"


class StageMetrics(nn.Module):
    """One stage's metrics: the mean loss and the task's scores, logged each epoch as
    `<stage>/loss` and `<stage>/<score>`; `scores` judge the predictions, `ranking_scores` the
    probabilities (average precision). Not logged: what the views draw, of the predictions
    (`prediction_views`: the confusion counts) and of the probabilities (`probability_views`:
    precision-recall curves, which thresholds are also tuned on)."""

    def __init__(
        self,
        scores: MetricCollection,
        ranking_scores: MetricCollection | None = None,
        prediction_views: dict[str, Metric] | None = None,
        probability_views: dict[str, Metric] | None = None,
    ) -> None:
        super().__init__()
        self.loss = MeanMetric(nan_strategy="disable")
        self.scores = scores
        self.ranking_scores = ranking_scores
        self.prediction_views = nn.ModuleDict(prediction_views or {})
        self.probability_views = nn.ModuleDict(probability_views or {})

    @property
    def confusion(self) -> Metric:
        """The confusion counts: (classes, classes), or per class (classes, 2, 2)."""
        return self.prediction_views["confusion"]

    def update(
        self,
        loss: torch.Tensor,
        probabilities: torch.Tensor,
        predictions: torch.Tensor,
        labels: torch.Tensor,
    ) -> None:
        self.loss.update(loss, weight=len(labels))
        # update(), not a call: a call also computes each batch's value, which only per-step
        # logging would use; these are logged per epoch.
        self.scores.update(predictions, labels)
        for view in self.prediction_views.values():
            view.update(predictions, labels)
        if self.ranking_scores is not None:
            self.ranking_scores.update(probabilities, labels)
        for view in self.probability_views.values():
            view.update(probabilities, labels)

    def logged(self) -> dict[str, Metric]:
        collections = [self.scores] + [self.ranking_scores] * (self.ranking_scores is not None)
        scores = {
            name: metric
            for collection in collections
            for name, metric in collection.items(keep_base=True, copy_state=False)
        }
        return {"loss": self.loss, **scores}

    def score(self, name: str) -> Metric:
        return self.logged()[name]

    def reset_views(self) -> None:
        """Clear what the views read, at the start of a pass."""
        for view in [*self.prediction_views.values(), *self.probability_views.values()]:
            view.reset()


class Task(Protocol):
    # "single_label" or "multi_label": what a checkpoint records, and what the data must be.
    name: str
    # The score that judges a run: the checkpoint monitor and the sweep objective by default.
    headline_score: str
    # Where test-time views are averaged: "logits" or "probabilities".
    view_average: str
    # Validation scores whose best value over the epochs is logged as `val/<name>_best`: each
    # can be the checkpoint monitor and the sweep objective.
    tracked_scores: tuple[str, ...]
    # The scores shown in the progress bar.
    progress_bar_scores: tuple[str, ...]

    def loss(self, class_weights: torch.Tensor | None, label_smoothing: float) -> nn.Module:
        """The training loss, taking logits and targets."""
        ...

    def auto_class_weights(self, class_counts: torch.Tensor, images: int) -> torch.Tensor:
        """The loss's class weights for `class_weights: auto`, from the training split."""
        ...

    def tune(self, val_metrics: StageMetrics) -> None:
        """Learn from a validation pass what the task tunes there (decision thresholds)."""
        ...

    def label_names(self, target: torch.Tensor, class_names: list[str]) -> str:
        """An image's true class(es), as a caption names them."""
        ...

    def describe(
        self, target: torch.Tensor, prediction: torch.Tensor, probabilities: torch.Tensor,
        class_names: list[str],
    ) -> str:  # fmt: skip
        """One image's true and predicted labels, as a figure's caption."""
        ...

    def metrics(self, stage: Stage, num_classes: int) -> StageMetrics: ...

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor: ...

    def predictions(self, logits: torch.Tensor) -> torch.Tensor:
        """The labels the model answers with."""
        ...

    def decisions(self, probabilities: torch.Tensor) -> torch.Tensor:
        """The labels the model answers with, from its probabilities (`predictions`' of its
        logits)."""
        ...

    def answer(self, probabilities: torch.Tensor, class_names: list[str]) -> dict[str, object]:
        """One image's answer (its probabilities, (classes,)), as predict's table lists it."""
        ...

    def margins(self, probabilities: torch.Tensor) -> torch.Tensor:
        """Per image, how far its answer is from changing: the lead of the likeliest class
        over the next, or the distance of the closest class to its threshold."""
        ...

    def metadata(self) -> dict[str, str]:
        """How an exported model's probabilities are read: the task, and its decision rule."""
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

    def explained(
        self, predictions: torch.Tensor, probabilities: torch.Tensor, most: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(image, class) pairs whose evidence Grad-CAM shows, image by image: each image's
        predicted classes (at most `most`, likeliest first)."""
        ...

    # The kinds of mistake the test grids show, by figure name, with their titles.
    mistake_kinds: dict[str, str]

    def mistakes(
        self, probabilities: torch.Tensor, predictions: torch.Tensor, labels: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Per kind of mistake, each image's score: above 0 for an image that makes one, the
        higher the worse."""
        ...
