"""ImageClassifier: the LightningModule. It holds the loss, the metrics and the hooks; the
network, optimizer and scheduler come from the config."""

import copy
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from lightning.pytorch import Callback, LightningModule
from lightning.pytorch.trainer.states import TrainerFn
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
)

from imgclf import random_states
from imgclf.callbacks.finetune import FreezeBackbone
from imgclf.checkpoints import read_checkpoint
from imgclf.data.balance import inverse_frequency_weights
from imgclf.data.pixels import PixelNormalisation
from imgclf.data.transforms import evaluation_transform
from imgclf.errors import UserError
from imgclf.models.pretrained import (
    PretrainedInput,
    head_and_backbone,
    load_pretrained,
    load_weights,
)
from imgclf.targets import refuse_unknown_targets, rename_old_targets

log = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]
# What validation_step and test_step return: the callbacks that draw predictions read it.
StepOutput = dict[str, torch.Tensor]
# Validation metrics whose best value over the epochs is logged as `<name>_best`: each can be
# the checkpoint monitor (callbacks.model_checkpoint.monitor) and, as `<name>_best`, the
# sweep objective (optimized_metric). Balanced accuracy is the mean of per-class recall.
TRACKED_VALIDATION_METRICS = ("acc", "f1_macro", "acc_balanced")
# `finetune.freeze_epochs`: train only the head for that many epochs; the backbone learns at
# `backbone_lr_ratio` times the learning rate (1.0 and 0: plain training).
DEFAULT_FINETUNE = {"freeze_epochs": 0, "backbone_lr_ratio": 1.0}


def as_plain(config: Any) -> Any:
    return (
        OmegaConf.to_container(config, resolve=True) if isinstance(config, DictConfig) else config
    )


def build(config_or_object: Any) -> Any:
    """Instantiate a Hydra `_target_` mapping, if it names only what imgclf offers (it may come
    from a checkpoint, also through Lightning's `load_from_checkpoint`); pass a ready object
    (or None) through."""
    if isinstance(config_or_object, Mapping):
        refuse_unknown_targets(config_or_object, "the model's hyperparameters")
        config = copy.deepcopy(dict(config_or_object))
        rename_old_targets(config)
        return instantiate(config)
    return config_or_object


def augmented_view_logits(
    net: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    flip: bool,
    translate: bool,
    translate_margin: float | None = None,
    skip_confident: bool = True,
) -> torch.Tensor:
    """float32 logits averaged over views of each image: with `flip`, the image and its
    mirror (valid only where training flips images too); with `translate`, also the image
    shifted one pixel up-left and down-right (reflected borders), weighted 1/4 each against
    1/2 for the unshifted views, as in airbench.

    With `translate_margin` only the images whose unshifted views leave the top two classes'
    probabilities less than that apart get the shifted views: they change few confident
    answers, and skipping them saves most of their cost. `skip_confident=False` computes
    every view and selects afterwards, the same logits in a graph of fixed shapes (export).
    """

    def mirror_averaged(views: torch.Tensor) -> torch.Tensor:
        logits = net(views).float()
        return (logits + net(views.flip(3)).float()) / 2 if flip else logits

    def with_shifted_views(unshifted: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
        height, width = views.shape[-2:]
        padded = F.pad(views, (1, 1, 1, 1), mode="reflect")
        up_left, down_right = padded[..., :height, :width], padded[..., 2:, 2:]
        return 0.5 * unshifted + 0.25 * (mirror_averaged(up_left) + mirror_averaged(down_right))

    logits = mirror_averaged(images)
    if not translate:
        return logits
    if translate_margin is None:
        return with_shifted_views(logits, images)
    top_two = logits.softmax(dim=1).topk(2, dim=1).values
    uncertain = top_two[:, 0] - top_two[:, 1] < translate_margin
    if not skip_confident:
        return torch.where(uncertain[:, None], with_shifted_views(logits, images), logits)
    chosen = uncertain.nonzero()[:, 0]
    return logits.index_copy(0, chosen, with_shifted_views(logits[chosen], images[chosen]))


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
        translate_test_time: bool = False,
        translate_test_time_margin: float | None = None,
        validate_with_test_time_views: bool = True,
        class_weights: str | list[float] | None = None,
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
                # What the model takes and gives: a checkpoint describes itself. Class names,
                # the resize side and the dataset are filled in from the data at `setup`.
                "in_channels": in_channels,
                "image_size": image_size,
                "resize_size": resize_size or image_size,
                "class_names": [str(name) for name in class_names] if class_names else None,
                "dataset": dataset,
                # The network's name (timm, torchvision), for the record and the net config.
                "name": name,
                # Where training starts from: used when the model is built for training,
                # never when a checkpoint is loaded (its own weights replace them).
                "pretrained": pretrained,
                "init_from": init_from,
                "finetune": finetune,
            }
        )
        if class_names and len(class_names) != num_classes:
            raise UserError(f"{len(class_names)} class names for {num_classes} classes")
        self.net = build(net)
        # The normalisation, applied in `forward` to raw pixels: the data's statistics (set at
        # `setup`) unless the starting weights bring the statistics they were trained with.
        self.normalisation = PixelNormalisation(in_channels)
        self.statistics_from_start = False
        # Whether the next training step logs the training metrics (`on_train_epoch_start`).
        self.register_train_metrics = True
        if pretrained:
            self.use_statistics(load_pretrained(self.net, pretrained))
        if init_from:
            self.start_from_checkpoint(init_from)
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.optimizer_factory = build(optimizer)
        self.scheduler_factory = build(scheduler)
        # The loss's class weights are a buffer, so checkpoints carry what `auto` computed.
        self.criterion = nn.CrossEntropyLoss(
            weight=self.initial_class_weights(class_weights, num_classes),
            label_smoothing=label_smoothing,
        )
        self.flip_test_time = flip_test_time
        self.translate_test_time = translate_test_time
        self.translate_test_time_margin = translate_test_time_margin
        self.validate_with_test_time_views = validate_with_test_time_views
        stages = ("train", "val", "test")
        # Keyed "<stage>_<metric>": a key "train" would shadow nn.Module.train.
        self.metrics = nn.ModuleDict()
        # Without torchmetrics' checks of each batch (labels in range, no NaN loss): they read
        # values back from the device, which on a GPU waits for all queued work, every step.
        # The labels are checked when the data loads, and a NaN loss is DivergenceGuard's.
        for stage in stages:
            self.metrics[f"{stage}_acc"] = MulticlassAccuracy(
                num_classes, average="micro", validate_args=False
            )
            self.metrics[f"{stage}_loss"] = MeanMetric(nan_strategy="disable")
        # Counts of (true, predicted) pairs, for the confusion-matrix and report callbacks;
        # torchmetrics sums them across DDP ranks when they are computed.
        for stage in ("val", "test"):
            self.metrics[f"{stage}_confusion"] = MulticlassConfusionMatrix(num_classes)
        self.metrics["val_f1_macro"] = MulticlassF1Score(num_classes, average="macro")
        self.metrics["val_acc_balanced"] = MulticlassAccuracy(num_classes, average="macro")
        self.best = nn.ModuleDict({name: MaxMetric() for name in TRACKED_VALIDATION_METRICS})

    def use_statistics(self, pretrained: PretrainedInput) -> None:
        self.normalisation.set(pretrained.mean, pretrained.std)
        self.statistics_from_start = True

    def start_from_checkpoint(self, path: str) -> None:
        """The network of an imgclf checkpoint trained on any data: a new head where the
        classes differ, the stem adapted where the channels do. Its normalisation comes too,
        unless the channels differ (the data's statistics are used then)."""
        checkpoint = read_checkpoint(path, "model.init_from")
        trained_net = (checkpoint["hyper_parameters"].get("net") or {}).get("_target_")
        this_net = self.hparams.net.get("_target_")
        if trained_net and this_net and trained_net != this_net:
            raise UserError(
                f"model.init_from={path}: the checkpoint's network is {trained_net}, this "
                f"run's is {this_net}; choose the model it was trained with (model=...; "
                f"its run folder's .hydra/config.yaml names it)"
            )
        state = checkpoint["state_dict"]
        weights = {
            key[len("net.") :]: value for key, value in state.items() if key.startswith("net.")
        }
        load_weights(self.net, weights, f"model.init_from={path}")
        mean, std = state["normalisation.mean"], state["normalisation.std"]
        if mean.shape == self.normalisation.mean.shape:
            self.normalisation.set(mean, std)
            self.statistics_from_start = True
        trained_on = checkpoint["hyper_parameters"].get("class_names")
        log.info("started from %s (trained on %s)", path, trained_on)

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
        """None for an unweighted loss; ones for `auto`, until `setup` counts the classes."""
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

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """Raw pixels to the network's input (`PixelNormalisation`)."""
        images = self.normalisation(pixels)
        if self.hparams.channels_last:
            return images.contiguous(memory_format=torch.channels_last)
        return images

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Logits of raw pixels."""
        return self.net(self.normalise(pixels))

    def evaluation_logits(self, pixels: torch.Tensor, views: bool = True) -> torch.Tensor:
        """The float32 logits of raw pixels the model is judged by: outside training (and with
        `views`), averaged over the test-time augmented views its settings ask for
        (`augmented_view_logits`)."""
        images = self.normalise(pixels)
        if self.training or not views:
            return self.net(images).float()
        return augmented_view_logits(
            self.net,
            images,
            self.flip_test_time,
            self.translate_test_time,
            self.translate_test_time_margin,
        )

    def model_step(
        self, batch: Batch, views: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss, logits, targets) of a batch."""
        images, targets = batch
        logits = self.evaluation_logits(images, views)
        return self.criterion(logits, targets), logits, targets

    def shared_step(
        self, batch: Batch, stage: str, register_metrics: bool = True
    ) -> tuple[torch.Tensor, StepOutput]:
        # Validation may skip the test-time views: it picks the best epoch, and with flips
        # and shifts it costs up to 6 forward passes an image (a fifth of a short epoch).
        views = stage != "val" or self.validate_with_test_time_views
        loss, logits, targets = self.model_step(batch, views)
        preds = logits.argmax(dim=1)
        # Mixed training batches (MixUp, CutMix) bring soft targets, which the loss takes as
        # they are; accuracy counts the class with the larger share.
        labels = targets.argmax(dim=1) if targets.ndim == 2 else targets
        # update(), not a call: a call also computes each batch's value, which only
        # per-step logging would use; these are logged per epoch.
        self.metrics[f"{stage}_loss"].update(loss.detach(), weight=len(targets))
        self.metrics[f"{stage}_acc"].update(preds, labels)
        for name in ("loss", "acc"):
            metric = self.metrics[f"{stage}_{name}"]
            if register_metrics:
                self.log(f"{stage}/{name}", metric, on_step=False, on_epoch=True, prog_bar=True)
        if stage != "train":
            self.metrics[f"{stage}_confusion"].update(preds, targets)
        if stage == "val":
            for name in ("f1_macro", "acc_balanced"):
                self.metrics[f"val_{name}"].update(preds, targets)
                self.log(f"val/{name}", self.metrics[f"val_{name}"], on_step=False, on_epoch=True)
        if stage == "train":  # the callbacks' probabilities are validation's and the test's
            return loss, {}
        return loss, {"probabilities": logits.detach().softmax(dim=1), "targets": targets}

    def setup(self, stage: str) -> None:
        # Before fitting; a resumed run's checkpoint then overwrites what this computed.
        datamodule = self.trainer.datamodule if self._trainer else None
        if datamodule is None:
            return
        if stage == "fit":
            self.initialise_from_data(datamodule)
        elif list(datamodule.class_names) != self.class_names:
            log.warning(
                "the model's classes %s are not the data's %s: label i of the data is scored "
                "as the model's class i",
                self.class_names,
                list(datamodule.class_names),
            )

    def initialise_from_data(self, datamodule: Any) -> None:
        """What the model takes from the data it is fitted to: the class names, the resize
        side and the dataset (saved as hyperparameters), the normalisation (unless the
        starting weights brought theirs), inverse-frequency loss weights from the training
        split's class counts (`class_weights: auto`); and a network with a data-dependent start
        (airbench's patch whitening) gets a look at the first 5,000 training images, unless it
        starts from a checkpoint (`init_from`)."""
        self.hparams.update(
            class_names=list(datamodule.class_names),
            resize_size=datamodule.resize_size,
            dataset=datamodule.dataset,
        )
        if not self.statistics_from_start:
            self.normalisation.set(*datamodule.channel_statistics())
        if self.hparams.class_weights == "auto":
            weights = inverse_frequency_weights(datamodule.train_class_counts())
            self.criterion.weight.copy_(weights)
            listing = ", ".join(
                f"{name} {weight:.3g}"
                for name, weight in zip(self.class_names, weights, strict=True)
            )
            log.info("class weights in the loss: %s", listing)
        # A network that starts from a checkpoint keeps the start its layers were trained on.
        if hasattr(self.net, "initialise_from_data") and not self.hparams.init_from:
            sample = datamodule.training_sample(5000).to(self.normalisation.mean.device)
            self.net.initialise_from_data(self.normalise(sample))

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
        self.metrics["val_confusion"].reset()

    def validation_step(self, batch: Batch, batch_idx: int) -> StepOutput:
        return self.shared_step(batch, "val")[1]

    def on_validation_epoch_end(self) -> None:
        for name, tracker in self.best.items():
            tracker(self.metrics[f"val_{name}"].compute())
            self.log(f"val/{name}_best", tracker.compute(), sync_dist=True, prog_bar=name == "acc")

    def on_test_epoch_start(self) -> None:
        self.metrics["test_confusion"].reset()

    def test_step(self, batch: Batch, batch_idx: int) -> StepOutput:
        return self.shared_step(batch, "test")[1]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["rng_states"] = random_states.capture()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if "normalisation.mean" not in checkpoint["state_dict"]:
            raise UserError(
                "the checkpoint was written by imgclf 0.2 or earlier, whose models did not "
                "hold their own normalisation; start the run again with this version"
            )
        if "rng_states" in checkpoint:
            random_states.restore(checkpoint["rng_states"])

    @property
    def fine_tuning(self) -> bool:
        finetune = self.hparams.finetune
        return finetune["freeze_epochs"] > 0 or finetune["backbone_lr_ratio"] != 1.0

    def parameter_groups(self) -> Any:
        """Fine-tuning: the head, and the backbone at `finetune.backbone_lr_ratio` times the
        learning rate. Otherwise the network's named param groups where it defines them (for
        optimizers that treat filters, biases and heads differently; others just see several
        groups), else all."""
        if self.fine_tuning:
            heads, backbone = head_and_backbone(self.net)
            ratio = self.hparams.finetune["backbone_lr_ratio"]
            return [
                {"name": "head", "params": [p for head in heads for p in head.parameters()]},
                {
                    "name": "backbone",
                    "params": [p for module in backbone for p in module.parameters(recurse=False)],
                    "lr": self.hparams.optimizer["lr"] * ratio,
                },
            ]
        if not hasattr(self.net, "parameter_groups"):
            return self.parameters()
        groups = self.net.parameter_groups().items()
        return [{"name": name, "params": params} for name, params in groups if params]

    def configure_callbacks(self) -> list[Callback]:
        epochs = self.hparams.finetune["freeze_epochs"]
        fitting = self.trainer.state.fn == TrainerFn.FITTING
        return [FreezeBackbone(epochs)] if epochs > 0 and fitting else []

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
    checkpoint = read_checkpoint(path, "ckpt_path")
    hyper_parameters = {**checkpoint["hyper_parameters"], "pretrained": False, "init_from": None}
    model = ImageClassifier(**hyper_parameters)
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()
