"""Multi-label classification: each image holds any number of the classes, none included."""

import json

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import (
    MultilabelAveragePrecision,
    MultilabelConfusionMatrix,
    MultilabelExactMatch,
    MultilabelF1Score,
    MultilabelHammingDistance,
    MultilabelPrecisionRecallCurve,
)

from imgclf.tasks.task import Stage, StageMetrics

# `model.threshold=tuned`: each class's threshold is the one of these with the best F1 on
# validation. A binned curve: its counts take constant memory and sum across DDP ranks.
CANDIDATE_THRESHOLDS = torch.linspace(0.01, 0.99, 99)
TUNED = "tuned"


class CoOccurrence(Metric):
    """(classes, classes) counts of the images that hold class i (true) and were given class j
    (predicted): the diagonal is each class's true positives, the rest which classes an
    image's true ones bring into the answer. Summed across DDP ranks."""

    full_state_update = False

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.add_state("counts", torch.zeros(num_classes, num_classes, dtype=torch.long), "sum")

    def update(self, predictions: torch.Tensor, labels: torch.Tensor) -> None:
        self.counts += labels.long().T @ predictions.long()

    def compute(self) -> torch.Tensor:
        return self.counts


class MultiLabelLoss(nn.Module):
    """Binary cross-entropy on each class's logit. `pos_weight` weighs each class's positives
    against its negatives (`class_weights`); label smoothing pulls the targets towards 1/2,
    to `smoothing / 2` and `1 - smoothing / 2`."""

    def __init__(self, pos_weight: torch.Tensor | None, smoothing: float) -> None:
        super().__init__()
        self.register_buffer("pos_weight", pos_weight)
        self.smoothing = smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        targets = targets.float() * (1 - self.smoothing) + self.smoothing / 2
        return F.binary_cross_entropy_with_logits(logits, targets, pos_weight=self.pos_weight)


class MultiLabel(nn.Module):
    """Independent sigmoid probabilities, one per class; a class is in the answer when its
    probability reaches its threshold: `threshold` for every class, or per class tuned on
    validation (`tuned`). The thresholds are a buffer, so checkpoints carry them to eval,
    predict and export."""

    name = "multi_label"
    headline_score = "map"
    view_average = "probabilities"
    # mAP is the macro average precision: threshold-free, so it judges the ranking alone.
    tracked_scores = ("map", "f1_micro", "f1_macro", "subset_acc")
    progress_bar_scores = ("map",)

    def __init__(self, num_classes: int, threshold: float | str = 0.5) -> None:
        super().__init__()
        self.tuned = threshold == TUNED
        start = 0.5 if self.tuned else float(threshold)
        self.register_buffer("thresholds", torch.full((num_classes,), start))

    def loss(self, class_weights: torch.Tensor | None, label_smoothing: float) -> nn.Module:
        return MultiLabelLoss(class_weights, label_smoothing)

    def auto_class_weights(self, class_counts: torch.Tensor, images: int) -> torch.Tensor:
        """Each class's negatives per positive: its positives then weigh as much as its
        negatives in the loss."""
        positives = class_counts.to(torch.float32)
        if (positives == 0).any():
            raise ValueError(f"every class needs a training image to be weighted, got {positives}")
        return (images - positives) / positives

    def metrics(self, stage: Stage, num_classes: int) -> StageMetrics:
        def f1(average: str) -> MultilabelF1Score:
            return MultilabelF1Score(num_classes, average=average, validate_args=False)

        scores = {"f1_micro": f1("micro")}
        if stage == "train":
            return StageMetrics(MetricCollection(scores, compute_groups=False))
        scores |= {
            "f1_macro": f1("macro"),
            # Subset accuracy: the share of images whose whole label set is right.
            "subset_acc": MultilabelExactMatch(num_classes, validate_args=False),
            # The share of (image, class) decisions that are wrong.
            "hamming_loss": MultilabelHammingDistance(num_classes, validate_args=False),
        }
        ranking = {"map": MultilabelAveragePrecision(num_classes, average="macro")}
        curves = {
            "precision_recall": MultilabelPrecisionRecallCurve(
                num_classes, thresholds=CANDIDATE_THRESHOLDS, validate_args=False
            )
        }
        # (classes, 2, 2) counts: per class, [[TN, FP], [FN, TP]].
        views = {"confusion": MultilabelConfusionMatrix(num_classes)}
        if stage == "test":  # what only the test's views draw
            curves["average_precision"] = MultilabelAveragePrecision(num_classes, average=None)
            views["co_occurrence"] = CoOccurrence(num_classes)
        return StageMetrics(
            MetricCollection(scores, compute_groups=False),
            MetricCollection(ranking, compute_groups=False),
            views,
            curves,
        )

    def tune(self, val_metrics: StageMetrics) -> None:
        """With `tuned` thresholds, each class's becomes the candidate with the best F1 on
        this validation pass (the first on ties)."""
        if not self.tuned:
            return
        precision, recall, thresholds = val_metrics.probability_views["precision_recall"].compute()
        # The curve ends with (precision 1, recall 0), which no threshold gives; a threshold
        # above every probability predicts nothing, whose precision (0/0) is NaN: F1 0.
        precision, recall = precision[:, :-1].nan_to_num(0.0), recall[:, :-1]
        f1 = 2 * precision * recall / (precision + recall).clamp_min(1e-12)
        self.thresholds.copy_(thresholds.to(f1.device)[f1.argmax(dim=1)])

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.sigmoid()

    def predictions(self, logits: torch.Tensor) -> torch.Tensor:
        """Multi-hot (N, classes), int64."""
        return self.decisions(logits.sigmoid())

    def decisions(self, probabilities: torch.Tensor) -> torch.Tensor:
        return (probabilities >= self.thresholds.to(probabilities.device)).long()

    def answer(self, probabilities: torch.Tensor, class_names: list[str]) -> dict[str, object]:
        """The classes whose probability reaches their threshold, likeliest first."""
        chosen = self.decisions(probabilities).nonzero().flatten()
        chosen = chosen[probabilities[chosen].argsort(descending=True)].tolist()
        return {
            "predicted": ";".join(class_names[i] for i in chosen),
            "probabilities": "; ".join(
                f"{class_names[i]} {float(probabilities[i]):.1%}" for i in chosen
            ),
        }

    def margins(self, probabilities: torch.Tensor) -> torch.Tensor:
        thresholds = self.thresholds.to(probabilities.device)
        return (probabilities - thresholds).abs().min(dim=1).values

    def metadata(self) -> dict[str, str]:
        return {
            "task": self.name,
            "decision": "every class whose probability reaches its threshold",
            "thresholds": json.dumps([round(float(t), 4) for t in self.thresholds]),
        }

    def labels(self, targets: torch.Tensor) -> torch.Tensor:
        # A mixed image (MixUp, CutMix) holds the classes of at least half its share.
        return (targets >= 0.5).long()

    def confidences(self, probabilities: torch.Tensor) -> torch.Tensor:
        """How far, on average over the classes, the probabilities are from a coin toss."""
        return (2 * probabilities - 1).abs().mean(dim=1)

    def correct(self, predictions: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The whole label set right."""
        return (predictions == labels).all(dim=1)

    def explained(
        self, predictions: torch.Tensor, probabilities: torch.Tensor, most: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Each image's predicted labels, likeliest first, at most `most`; an image given
        none, its likeliest class."""
        ranked = probabilities.argsort(dim=1, descending=True)
        predicted = predictions.gather(1, ranked).bool()
        predicted[~predicted.any(dim=1), 0] = True
        keep = predicted & (predicted.cumsum(dim=1) <= most)
        images, rank = keep.nonzero(as_tuple=True)
        return images, ranked[images, rank]

    mistake_kinds = {
        "missed": "Test images with the most missed labels (true, not predicted)",
        "spurious": "Test images with the most spurious labels (predicted, not true)",
    }

    def mistakes(
        self, probabilities: torch.Tensor, predictions: torch.Tensor, labels: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The number of missed (spurious) labels, and among images with as many, the ones
        whose probabilities were furthest on the wrong side of their thresholds first."""
        distance = (probabilities - self.thresholds).abs()

        def score(wrong: torch.Tensor) -> torch.Tensor:
            count = wrong.sum(dim=1)
            mean_distance = (distance * wrong).sum(dim=1) / count.clamp_min(1)
            return count + mean_distance * (count > 0)

        return {
            "missed": score((labels == 1) & (predictions == 0)),
            "spurious": score((labels == 0) & (predictions == 1)),
        }

    def label_names(
        self,
        present: torch.Tensor,
        class_names: list[str],
        probabilities: torch.Tensor | None = None,
    ) -> str:
        """The classes `present` holds (multi-hot), each with its probability when given; two
        a line, so a tile's caption stays within its image."""
        held = (present >= 0.5).nonzero().flatten().tolist()
        names = [class_names[i] for i in held]
        if probabilities is not None:
            names = [f"{n} {float(probabilities[i]):.0%}" for n, i in zip(names, held, strict=True)]
        lines = [", ".join(names[i : i + 2]) for i in range(0, len(names), 2)]
        return "\n  ".join(lines) or "none"

    def describe(
        self, target: torch.Tensor, prediction: torch.Tensor, probabilities: torch.Tensor,
        class_names: list[str],
    ) -> str:  # fmt: skip
        truth = self.label_names(target, class_names)
        answer = self.label_names(prediction.float(), class_names, probabilities)
        return f"true: {truth}\npred: {answer}"
