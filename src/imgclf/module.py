"""ImageClassifier: the LightningModule. It holds the task's loss and metrics and the hooks;
the classifier (normalisation, network, test-time views), the optimizer and the scheduler are
built from the config."""

import copy
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from hydra.utils import instantiate
from lightning.pytorch import Callback, LightningModule
from lightning.pytorch.trainer.states import TrainerFn
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torchmetrics import MaxMetric

from imgclf import random_states
from imgclf.callbacks.finetune import FreezeBackbone
from imgclf.checkpoints import (
    check_holds_normalisation,
    read_checkpoint,
    rename_old_state_keys,
)
from imgclf.classifier import Classifier, EvaluationViews
from imgclf.data.description import DataDescription
from imgclf.data.transforms import evaluation_transform
from imgclf.errors import UserError
from imgclf.optim import parameter_groups
from imgclf.starting_weights import start_from_checkpoint, start_from_pretrained
from imgclf.targets import refuse_unknown_targets, rename_old_targets
from imgclf.tasks import StageMetrics, make_task

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]
# What validation_step and test_step return: the callbacks that draw predictions read it.
StepOutput = dict[str, torch.Tensor]
STAGES = ("train", "val", "test")
# The checkpoint's key for the time (UTC, ISO 8601) it was saved.
SAVED_AT = "saved_at"
# `finetune.freeze_epochs`: train only the head for that many epochs; the backbone learns at
# `backbone_lr_ratio` times the learning rate (1.0 and 0: plain training).
DEFAULT_FINETUNE = {"freeze_epochs": 0, "backbone_lr_ratio": 1.0}


def check_task_fits(model_task: str, data_task: str, dataset: str) -> None:
    """A single-label model takes single-label data, a multi-label one multi-label data."""
    if model_task == data_task:
        return
    kinds = {"single_label": "one class", "multi_label": "any number of classes"}
    remedy = (
        "data=image_csv with a CSV whose labels column lists each image's classes"
        if model_task == "multi_label"
        else f"data={dataset} with one class an image (a label column)"
    )
    raise UserError(
        f"the model is a {model_task} classifier ({kinds[model_task]} an image), but the data "
        f"({dataset}) is {data_task} ({kinds[data_task]}). Give it {remedy}, or use a model "
        "trained for this data."
    )


def as_plain(config: Any) -> Any:
    return (
        OmegaConf.to_container(config, resolve=True) if isinstance(config, DictConfig) else config
    )


def build(config: Mapping | None) -> Any:
    """Instantiate a Hydra `_target_` mapping, if it names only what imgclf offers (it may come
    from a checkpoint, also through Lightning's `load_from_checkpoint`)."""
    if config is None:
        return None
    refuse_unknown_targets(config, "the model's hyperparameters")
    config = copy.deepcopy(dict(config))
    rename_old_targets(config)
    return instantiate(config)


class ImageClassifier(LightningModule):
    """Trains and tests a `Classifier` for its task (single- or multi-label classification).

    `net`, `optimizer` and `scheduler` are Hydra configs (`_target_` mappings; the optimizer
    and scheduler with `_partial_: true`): the checkpoint stores only plain data, so
    `load_checkpoint(path)` rebuilds the model with no other arguments and loads with
    `weights_only=True`.
    """

    def __init__(
        self,
        net: Mapping,
        optimizer: Mapping,
        num_classes: int,
        scheduler: Mapping | None = None,
        label_smoothing: float = 0.0,
        channels_last: bool = True,
        flip_test_time: bool = False,
        translate_test_time: bool = False,
        translate_test_time_margin: float | None = None,
        validate_with_test_time_views: bool = True,
        class_weights: str | list[float] | None = None,
        task: str = "single_label",
        threshold: float | str = 0.5,
        in_channels: int = 3,
        image_size: int = 32,
        resize_size: int | None = None,
        class_names: list[str] | None = None,
        dataset: str | None = None,
        name: str | None = None,
        pretrained: bool | str = False,
        init_from: str | None = None,
        finetune: Mapping | None = None,
    ) -> None:
        super().__init__()
        net, optimizer, scheduler = as_plain(net), as_plain(optimizer), as_plain(scheduler)
        finetune = {**DEFAULT_FINETUNE, **(as_plain(finetune) or {})}
        self.save_hyperparameters(
            {
                "net": net,
                "optimizer": optimizer,
                "scheduler": scheduler,
                "num_classes": num_classes,
                "label_smoothing": label_smoothing,
                "channels_last": channels_last,
                "flip_test_time": flip_test_time,
                "translate_test_time": translate_test_time,
                "translate_test_time_margin": translate_test_time_margin,
                "validate_with_test_time_views": validate_with_test_time_views,
                "class_weights": as_plain(class_weights),
                # single_label or multi_label, and a multi-label model's decision threshold
                # (a number, or `tuned`: per class on validation, kept in the state dict).
                "task": task,
                "threshold": threshold,
                # What the model takes and gives: a checkpoint describes itself. Class names,
                # the resize side and the dataset are filled in from the data before fitting.
                "in_channels": in_channels,
                "image_size": image_size,
                "resize_size": resize_size or image_size,
                "class_names": [str(name) for name in class_names] if class_names else None,
                "dataset": dataset,
                # The network's name (timm, torchvision), for the record and the net config.
                "name": name,
                # Where training starts from (`starting_weights`).
                "pretrained": pretrained,
                "init_from": init_from,
                "finetune": finetune,
            }
        )
        if class_names and len(class_names) != num_classes:
            raise UserError(f"{len(class_names)} class names for {num_classes} classes")
        self.task = make_task(task, num_classes, threshold)
        views = EvaluationViews(
            flip_test_time, translate_test_time, translate_test_time_margin,
            average=self.task.view_average,
        )  # fmt: skip
        self.classifier = Classifier(build(net), in_channels, views, channels_last)
        # Whether the starting weights brought the statistics they were trained with; if not,
        # the classifier normalises with the data's.
        self.statistics_from_start = False
        if pretrained:
            start_from_pretrained(self.classifier, pretrained)
            self.statistics_from_start = True
        if init_from:
            self.statistics_from_start = start_from_checkpoint(
                self.classifier, init_from, net.get("_target_")
            )
        self.optimizer_factory = build(optimizer)
        self.scheduler_factory = build(scheduler)
        # The loss's class weights are a buffer, so checkpoints carry what `auto` computed.
        self.criterion = self.task.loss(
            self.initial_class_weights(class_weights, num_classes), label_smoothing
        )
        self.train_metrics, self.val_metrics, self.test_metrics = (
            self.task.metrics(stage, num_classes) for stage in STAGES
        )
        self.best = nn.ModuleDict({name: MaxMetric() for name in self.task.tracked_scores})
        # Whether the next training step logs the training metrics (`on_train_epoch_start`).
        self.register_train_metrics = True

    @property
    def class_names(self) -> list[str]:
        return self.hparams.class_names or [str(label) for label in range(self.hparams.num_classes)]

    def evaluation_transform(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """How an image becomes this model's input, as in evaluation during training: the short
        side resized to `resize_size`, the central `image_size` square kept."""
        return evaluation_transform(self.hparams.image_size, self.hparams.resize_size)

    def describe_input(self) -> str:
        return (
            f"{len(self.class_names)} classes of {self.hparams.in_channels}x"
            f"{self.hparams.image_size}x{self.hparams.image_size} images ({self.hparams.dataset})"
        )

    @staticmethod
    def initial_class_weights(
        class_weights: str | list[float] | None, num_classes: int
    ) -> torch.Tensor | None:
        """None for an unweighted loss; ones for `auto`, until the data's counts are known."""
        if class_weights is None:
            return None
        if class_weights == "auto":
            return torch.ones(num_classes)
        if isinstance(class_weights, str) or len(class_weights) != num_classes:
            raise UserError(
                f"model.class_weights={class_weights}: use auto, null, or a list of "
                f"{num_classes} numbers, one per class"
            )
        return torch.tensor(class_weights, dtype=torch.float32)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Logits of raw pixels, one view each."""
        return self.classifier(pixels)

    @torch.no_grad()
    def evaluation_probabilities(self, pixels: torch.Tensor) -> torch.Tensor:
        """The task's probabilities of raw pixels, averaged over the test-time views, as the
        model answers outside training (predict; export traces the same computation)."""
        return self.task.probabilities(self.classifier.evaluation_logits(pixels))

    def metrics(self, stage: str) -> StageMetrics:
        return getattr(self, f"{stage}_metrics")

    def shared_step(
        self, batch: Batch, stage: str, register_metrics: bool = True
    ) -> tuple[torch.Tensor, StepOutput]:
        images, targets = batch
        # Validation may skip the test-time views: it picks the best epoch, and with flips
        # and shifts it costs up to 6 forward passes an image (a fifth of a short epoch).
        views = stage != "val" or self.hparams.validate_with_test_time_views
        logits = self.classifier.evaluation_logits(images, views)
        # Mixed training batches (MixUp, CutMix) bring soft targets, which the loss takes as
        # they are.
        loss = self.criterion(logits, targets)
        logits = logits.detach()
        predictions, labels = self.task.predictions(logits), self.task.labels(targets)
        probabilities = self.task.probabilities(logits)
        metrics = self.metrics(stage)
        metrics.update(loss.detach(), probabilities, predictions, labels)
        if register_metrics:
            for name, metric in metrics.logged().items():
                shown = name == "loss" or name in self.task.progress_bar_scores
                self.log(f"{stage}/{name}", metric, on_step=False, on_epoch=True, prog_bar=shown)
        if stage == "train":  # the callbacks' outputs are validation's and the test's
            return loss, {}
        return loss, {
            "probabilities": probabilities,
            "predictions": predictions,
            "targets": targets,
        }

    def setup(self, stage: str) -> None:
        # Before fitting; a resumed run's checkpoint then overwrites what this computed.
        datamodule = self.trainer.datamodule if self._trainer else None
        if datamodule is None:
            return
        description = datamodule.description()
        check_task_fits(self.task.name, description.task, description.dataset)
        if stage == "fit":
            self.adapt_to(description)
        elif description.class_names != self.class_names:
            log.warning(
                "the model's classes %s are not the data's %s: label i of the data is scored "
                "as the model's class i",
                self.class_names,
                description.class_names,
            )

    def adapt_to(self, data: DataDescription) -> None:
        """What the model takes from the data it is fitted to: the class names, the resize
        side and the dataset (saved as hyperparameters), the normalisation (unless the
        starting weights brought theirs), inverse-frequency loss weights from the training
        split's class counts (`class_weights: auto`); and a network with a data-dependent start
        (airbench's patch whitening) gets a look at the first 5,000 training images, unless it
        starts from a checkpoint (`init_from`)."""
        self.hparams.update(
            class_names=list(data.class_names), resize_size=data.resize_size, dataset=data.dataset
        )
        if not self.statistics_from_start:
            self.classifier.normalisation.set(*data.channel_statistics())
        if self.hparams.class_weights == "auto":
            weights = self.task.auto_class_weights(data.class_counts, data.train_images)
            self.criterion = self.task.loss(weights, self.hparams.label_smoothing)
            listing = ", ".join(
                f"{name} {weight:.3g}"
                for name, weight in zip(self.class_names, weights, strict=True)
            )
            log.info("class weights in the loss: %s", listing)
        # A network that starts from a checkpoint keeps the start its layers were trained on.
        net = self.classifier.net
        if hasattr(net, "initialise_from_data") and not self.hparams.init_from:
            sample = data.training_sample(5000).to(self.classifier.normalisation.mean.device)
            net.initialise_from_data(self.classifier.normalise(sample))

    def on_train_start(self) -> None:
        # The sanity check's validation batches must not count towards the best values.
        for tracker in self.best.values():
            tracker.reset()

    def on_train_epoch_start(self) -> None:
        # A Metric logged on_epoch is computed and reset at the epoch's end from its own
        # updates, so it is logged at the epoch's first step only (the first this process
        # runs, should it resume mid-epoch): `self.log` on every micro-batch only cost Python
        # time, which shows on the shortest steps (MNIST's, ~70 ms).
        self.register_train_metrics = True

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        loss = self.shared_step(batch, "train", self.register_train_metrics)[0]
        self.register_train_metrics = False
        return loss

    def on_validation_epoch_start(self) -> None:
        self.val_metrics.reset_views()

    def validation_step(self, batch: Batch, batch_idx: int) -> StepOutput:
        return self.shared_step(batch, "val")[1]

    def on_validation_epoch_end(self) -> None:
        for name, tracker in self.best.items():
            tracker(self.val_metrics.score(name).compute())
            shown = name in self.task.progress_bar_scores
            self.log(f"val/{name}_best", tracker.compute(), sync_dist=True, prog_bar=shown)
        # Before the checkpoint of this epoch is saved, so it holds what was tuned here.
        if not self.trainer.sanity_checking:
            self.task.tune(self.val_metrics)

    def on_test_epoch_start(self) -> None:
        self.test_metrics.reset_views()

    def test_step(self, batch: Batch, batch_idx: int) -> StepOutput:
        return self.shared_step(batch, "test")[1]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rng_states"] = random_states.capture()
        # When the weights were saved, which a copied file's modification time loses: the
        # demo's model card gives it as the date trained.
        checkpoint[SAVED_AT] = datetime.now(timezone.utc).isoformat(timespec="seconds")

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # A run of imgclf 0.3 resumed: its weights under today's keys, before Lightning loads
        # them, and before EMA's callback loads the weights it trains beside the average.
        for state in ("state_dict", "current_model_state"):
            if state in checkpoint:
                rename_old_state_keys(checkpoint[state])
        check_holds_normalisation(checkpoint["state_dict"], "the checkpoint")
        if "rng_states" in checkpoint:
            random_states.restore(checkpoint["rng_states"])

    def configure_callbacks(self) -> list[Callback]:
        epochs = self.hparams.finetune["freeze_epochs"]
        fitting = self.trainer.state.fn == TrainerFn.FITTING
        return [FreezeBackbone(epochs)] if epochs > 0 and fitting else []

    def parameter_groups(self) -> Any:
        """What the optimizer trains (`optim.parameter_groups`)."""
        return parameter_groups(
            self.classifier.net, self.hparams.optimizer["lr"], self.hparams.finetune
        )

    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=self.parameter_groups())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(
            optimizer=optimizer, total_steps=int(self.trainer.estimated_stepping_batches)
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


def load_checkpoint(path: str | Path) -> ImageClassifier:
    """The model in eval mode on the CPU. The file is read with `weights_only` (only tensors
    and plain data), and the model is rebuilt from its hyperparameters without fetching its
    starting weights again: the checkpoint's own replace them."""
    return model_from_checkpoint(read_checkpoint(path, "ckpt_path"))


def model_from_checkpoint(checkpoint: dict[str, Any]) -> ImageClassifier:
    """The model of a checkpoint's contents (`read_checkpoint`), in eval mode."""
    hyper_parameters = {**checkpoint["hyper_parameters"], "pretrained": False, "init_from": None}
    model = ImageClassifier(**hyper_parameters)
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()
