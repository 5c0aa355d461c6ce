"""Test examples worth looking at, picked while the test batches stream by."""

from dataclasses import dataclass
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from imgclf.tasks import Task


@dataclass
class Examples:
    images: torch.Tensor  # as the model saw them, before normalisation: (N, C, H, W) pixels
    targets: torch.Tensor
    predictions: torch.Tensor
    probabilities: torch.Tensor  # (N, classes)
    scores: torch.Tensor  # what they were picked by, highest first

    def __len__(self) -> int:
        return len(self.targets)

    def take(self, keep: torch.Tensor) -> "Examples":
        return Examples(
            self.images[keep],
            self.targets[keep],
            self.predictions[keep],
            self.probabilities[keep],
            self.scores[keep],
        )

    def best(self, count: int) -> "Examples":
        return self.take(self.scores.argsort(descending=True)[:count])

    def titles(self, class_names: list[str], task: Task) -> list[str]:
        return [
            task.describe(target, predicted, probabilities, class_names)
            for target, predicted, probabilities in zip(
                self.targets, self.predictions, self.probabilities, strict=True
            )
        ]


# What a picker keeps: right answers at random, wrong ones by confidence, or one of the
# task's kinds of mistake (`Task.mistakes`) by its score.
CORRECT, WRONG = "correct", "wrong"


class ExamplePicker:
    """Keeps the `count` highest-scoring test predictions of a `kind`: right (`correct`,
    scored at random: a fair sample of what the model gets right), wrong (`wrong`, scored by
    confidence: the most confident mistakes), or a kind of mistake the task names (scored by
    the task: the images with the most missed labels, say)."""

    def __init__(self, count: int, kind: str) -> None:
        self.count = count
        self.kind = kind
        self.kept: Examples | None = None

    def reset(self) -> None:
        self.kept = None

    def update(self, images: torch.Tensor, outputs: dict[str, torch.Tensor], task: Task) -> None:
        predictions, targets = outputs["predictions"], outputs["targets"]
        probabilities = outputs["probabilities"]
        labels = task.labels(targets)
        confidences = task.confidences(probabilities)
        right = task.correct(predictions, labels)
        if self.kind == CORRECT:
            wanted, scores = right, torch.rand_like(confidences)
        elif self.kind == WRONG:
            wanted, scores = ~right, confidences
        else:
            scores = task.mistakes(probabilities, predictions, labels)[self.kind]
            wanted = scores > 0
        batch = Examples(images.detach(), targets, predictions, probabilities, scores)
        batch = batch.take(wanted)
        if self.kept is not None:
            batch = Examples(
                *(
                    torch.cat([old, new])
                    for old, new in zip(vars(self.kept).values(), vars(batch).values(), strict=True)
                )
            )
        self.kept = batch.best(self.count)

    def gather(self, trainer: Trainer, pl_module: LightningModule) -> Examples | None:
        """The best `count` over all DDP ranks (call on every rank; every rank has seen test
        batches). Ranks pad to `count` with score -inf: all_gather needs equal shapes."""
        kept = self.kept
        if kept is None or trainer.world_size == 1:
            return kept
        padding = self.count - len(kept)
        fields = []
        for name, value in vars(kept).items():
            filler = -torch.inf if name == "scores" else 0
            pad = torch.full((padding, *value.shape[1:]), filler, device=value.device)
            fields.append(torch.cat([value, pad.to(value.dtype)]))
        gathered = [pl_module.all_gather(field).flatten(0, 1) for field in fields]
        merged = Examples(*gathered)
        return merged.take(merged.scores > -torch.inf).best(self.count)


class ExamplePickingCallback(Callback):
    """Base of the callbacks that show test examples: runs its pickers over every test batch,
    those of `kinds`, each keeping `count` (`pickers` names the kinds for a task)."""

    def __init__(self, count: int, kinds: tuple[str, ...] = ()) -> None:
        self.count = count
        self.pickers = {kind: ExamplePicker(count, kind) for kind in kinds}

    def kinds(self, task: Task) -> tuple[str, ...]:
        """The kinds of example to pick for the model's task."""
        return tuple(self.pickers)

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.pickers = {
            kind: ExamplePicker(self.count, kind) for kind in self.kinds(pl_module.task)
        }

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        for picker in self.pickers.values():
            picker.update(batch[0], outputs, pl_module.task)

    def gather(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, Examples | None]:
        """Each picker's examples over all ranks (call on every rank)."""
        return {name: picker.gather(trainer, pl_module) for name, picker in self.pickers.items()}
