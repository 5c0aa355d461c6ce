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
    confidences: torch.Tensor  # the predicted class's probability
    scores: torch.Tensor  # what they were picked by, highest first

    def __len__(self) -> int:
        return len(self.targets)

    def take(self, keep: torch.Tensor) -> "Examples":
        return Examples(
            self.images[keep],
            self.targets[keep],
            self.predictions[keep],
            self.confidences[keep],
            self.scores[keep],
        )

    def best(self, count: int) -> "Examples":
        return self.take(self.scores.argsort(descending=True)[:count])

    def titles(self, class_names: list[str]) -> list[str]:
        return [
            f"true: {class_names[int(target)]}\npred: {class_names[int(predicted)]} "
            f"({float(confidence):.0%})"
            for target, predicted, confidence in zip(
                self.targets, self.predictions, self.confidences, strict=True
            )
        ]


class ExamplePicker:
    """Keeps the `count` highest-scoring test predictions that are wrong (`correct=False`,
    scored by confidence: the most confident mistakes) or right (`correct=True`, scored at
    random: a fair sample of what the model gets right)."""

    def __init__(self, count: int, correct: bool) -> None:
        self.count = count
        self.correct = correct
        self.kept: Examples | None = None

    def reset(self) -> None:
        self.kept = None

    def update(self, images: torch.Tensor, outputs: dict[str, torch.Tensor], task: Task) -> None:
        predictions, targets = outputs["predictions"], outputs["targets"]
        confidences = task.confidences(outputs["probabilities"])
        right = task.correct(predictions, targets)
        wanted = right if self.correct else ~right
        scores = torch.rand_like(confidences) if self.correct else confidences
        batch = Examples(images.detach(), targets, predictions, confidences, scores)
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
    """Base of the callbacks that show test examples: runs its pickers over every test batch."""

    def __init__(self, pickers: dict[str, ExamplePicker]) -> None:
        self.pickers = pickers

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        for picker in self.pickers.values():
            picker.reset()

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
