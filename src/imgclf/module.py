"""ImageClassifier: the LightningModule. It holds the loss, the metrics and the hooks; the
network, optimizer and scheduler come from the config."""

from collections.abc import Callable, Mapping
from typing import Any

import torch
from hydra.utils import instantiate
from lightning.pytorch import LightningModule
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

Batch = tuple[torch.Tensor, torch.Tensor]
# What validation_step and test_step return: the callbacks that draw predictions read it.
StepOutput = dict[str, torch.Tensor]


def as_plain(config: Any) -> Any:
    return (
        OmegaConf.to_container(config, resolve=True) if isinstance(config, DictConfig) else config
    )


def build(config_or_object: Any) -> Any:
    """Instantiate a Hydra `_target_` mapping; pass a ready object (or None) through."""
    if isinstance(config_or_object, Mapping):
        return instantiate(config_or_object)
    return config_or_object


class ImageClassifier(LightningModule):
    """Cross-entropy classification with accuracy tracked by torchmetrics.

    `net`, `optimizer` and `scheduler` are Hydra configs (`_target_` mappings; the optimizer
    and scheduler with `_partial_: true`) or ready objects. Given configs, the checkpoint
    stores only plain data, so `load_from_checkpoint(path)` rebuilds the model with no other
    arguments and loads with `weights_only=True`.
    """

    def __init__(
        self,
        net: Mapping | nn.Module,
        optimizer: Mapping | Callable[..., torch.optim.Optimizer],
        num_classes: int,
        scheduler: Mapping | Callable | None = None,
        label_smoothing: float = 0.0,
        channels_last: bool = True,
        flip_test_time: bool = False,
    ) -> None:
        super().__init__()
        net, optimizer, scheduler = as_plain(net), as_plain(optimizer), as_plain(scheduler)
        self.save_hyperparameters(
            {
                "net": net,
                "optimizer": optimizer,
                "scheduler": scheduler,
                "num_classes": num_classes,
                "label_smoothing": label_smoothing,
                "channels_last": channels_last,
                "flip_test_time": flip_test_time,
            }
        )
        self.net = build(net)
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.optimizer_factory = build(optimizer)
        self.scheduler_factory = build(scheduler)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.flip_test_time = flip_test_time
        stages = ("train", "val", "test")
        # Keyed "<stage>_<metric>": a key "train" would shadow nn.Module.train.
        self.metrics = nn.ModuleDict()
        for stage in stages:
            self.metrics[f"{stage}_acc"] = MulticlassAccuracy(num_classes, average="micro")
            self.metrics[f"{stage}_loss"] = MeanMetric()
        # Counts of (true, predicted) pairs, for the confusion-matrix and report callbacks;
        # torchmetrics sums them across DDP ranks when they are computed.
        for stage in ("val", "test"):
            self.metrics[f"{stage}_confusion"] = MulticlassConfusionMatrix(num_classes)
        self.val_acc_best = MaxMetric()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)

    def evaluation_logits(self, images: torch.Tensor) -> torch.Tensor:
        """The logits the model is judged by: outside training, with `flip_test_time`, the
        average over each image and its mirror. That test-time augmentation is valid only
        where mirrored images are in-distribution, i.e. where training flips them too."""
        logits = self(images)
        if self.flip_test_time and not self.training:
            logits = (logits + self(images.flip(3))) / 2
        return logits.float()

    def model_step(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss, logits, targets) of a batch."""
        images, targets = batch
        logits = self.evaluation_logits(images)
        return self.criterion(logits, targets), logits, targets

    def shared_step(self, batch: Batch, stage: str) -> tuple[torch.Tensor, StepOutput]:
        loss, logits, targets = self.model_step(batch)
        preds = logits.argmax(dim=1)
        self.metrics[f"{stage}_loss"](loss.detach(), weight=len(targets))
        self.metrics[f"{stage}_acc"](preds, targets)
        for name in ("loss", "acc"):
            metric = self.metrics[f"{stage}_{name}"]
            self.log(f"{stage}/{name}", metric, on_step=False, on_epoch=True, prog_bar=True)
        if stage != "train":
            self.metrics[f"{stage}_confusion"].update(preds, targets)
        return loss, {"probabilities": logits.detach().softmax(dim=1), "targets": targets}

    def on_train_start(self) -> None:
        # The sanity check's validation batches must not count towards the best accuracy.
        self.val_acc_best.reset()

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        return self.shared_step(batch, "train")[0]

    def on_validation_epoch_start(self) -> None:
        self.metrics["val_confusion"].reset()

    def validation_step(self, batch: Batch, batch_idx: int) -> StepOutput:
        return self.shared_step(batch, "val")[1]

    def on_validation_epoch_end(self) -> None:
        self.val_acc_best(self.metrics["val_acc"].compute())
        self.log("val/acc_best", self.val_acc_best.compute(), sync_dist=True, prog_bar=True)

    def on_test_epoch_start(self) -> None:
        self.metrics["test_confusion"].reset()

    def test_step(self, batch: Batch, batch_idx: int) -> StepOutput:
        return self.shared_step(batch, "test")[1]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Augmentation and dropout draw from torch's global generators; with their state a
        # run resumed from this checkpoint continues exactly as the uninterrupted run would.
        checkpoint["rng_states"] = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            checkpoint["rng_states"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        states = checkpoint.get("rng_states", {})
        if "cpu" in states:
            torch.set_rng_state(states["cpu"])
        if "cuda" in states and torch.cuda.device_count() == len(states["cuda"]):
            torch.cuda.set_rng_state_all(states["cuda"])

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(
            optimizer=optimizer, total_steps=int(self.trainer.estimated_stepping_batches)
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
