"""ImageDataModule: what both data paths share. It selects classes, splits the dataset,
counts and describes it, and serves uint8 batches (augmented, in memory, after their transfer
to the device); the model normalises. `BuiltinDataModule` reads the built-in datasets,
`ImageFilesDataModule` the user's image files."""

import copy
import logging
import os
from pathlib import Path

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from imgclf.data.amend import amended
from imgclf.data.augment import BatchAugment
from imgclf.data.description import DataDescription
from imgclf.data.loader import InMemoryBatches
from imgclf.data.mix import BatchMix
from imgclf.data.pixels import channel_statistics
from imgclf.data.splits import (
    DatasetSplits,
    Labelled,
    LabelledImages,
    class_counts,
    is_multi_label,
    report_class_counts,
    report_co_occurrence,
    select_classes,
    stratified_split,
)
from imgclf.data.transforms import ImageAugment
from imgclf.errors import UserError

log = logging.getLogger(__name__)


class ImageDataModule(LightningDataModule):
    """The data of a run, whichever path reads it; batches are uint8 (N, C, H, W) either way.

    A split held in memory is one uint8 tensor, a batch is an index into it, and augmentation
    runs on the whole batch on the device (`batch_augment`). Subclasses read the dataset
    (`read`), may hold its splits otherwise (`hold`) and serve those (`loader`, `views`).
    Normalisation runs per batch after the transfer to the device (`on_after_batch_transfer`),
    so uint8 batches cross to the device at a quarter of float32's bytes.
    """

    def __init__(
        self,
        dataset: str,
        data_dir: str | os.PathLike | None,
        num_classes: int,
        in_channels: int,
        image_size: int,
        resize_size: int,
        augment: BatchAugment | ImageAugment,
        batch_size: int = 256,
        val_ratio: float = 0.1,
        test_ratio: float = 0.1,
        split_seed: int = 0,
        classes: list[str] | None = None,
        sampler: str | None = None,
        exclude: str | list[str] | None = None,
        relabel: str | None = None,
    ) -> None:
        super().__init__()
        self.dataset = dataset
        self.data_dir = Path(data_dir or ".").expanduser().resolve()
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.image_size = image_size
        # Evaluation resizes an image's short side to this, then crops the central square.
        self.resize_size = resize_size
        self.batch_size = batch_size
        self.val_ratio = val_ratio
        self.test_ratio = test_ratio
        self.split_seed = split_seed
        self.augment = augment
        self.batch_mix = BatchMix(num_classes, augment.mixup, augment.cutmix)
        # As strings: `data.classes=[3,5]` names MNIST's digit classes "3" and "5".
        self.classes = [str(name) for name in classes] if classes else None
        # `data.sampler`, checked with the other user-set values (`checks.py`).
        self.sampler = sampler
        # Images to leave out, and to give another class (`amend.py`).
        self.exclude = exclude
        self.relabel = relabel
        self.listing: DatasetSplits | None = None
        self.splits: dict[str, Labelled] = {}
        self.class_names: list[str] = []
        # The clamped training batch is named once, not at every epoch's loader.
        self.warned_batch_size = False

    @property
    def source(self) -> Path:
        """Where the dataset is read from, as messages name it."""
        return self.data_dir

    @property
    def batch_augment(self) -> BatchAugment:
        """What augments an in-memory training batch on the device."""
        raise NotImplementedError

    @property
    def multi_label(self) -> bool:
        """Whether the images hold any number of classes each (multi-hot labels), after
        `setup`."""
        return is_multi_label(self.splits["train"].labels) if self.splits else False

    @property
    def in_memory(self) -> bool:
        return isinstance(self.splits.get("train"), LabelledImages)

    def read(self) -> DatasetSplits:
        """The dataset as read (built-in) or listed (image files)."""
        raise NotImplementedError

    def hold(self, splits: dict[str, Labelled]) -> dict[str, Labelled]:
        """The splits as the loaders will serve them."""
        return splits

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        loaded = self.listed()
        self.check_matches_config(loaded)
        self.class_names = loaded.class_names
        splits = amended(self.split(loaded), self.class_names, self.exclude, self.relabel)
        # The splits are copies: the whole dataset need not stay in memory beside them.
        self.listing = None
        self.check_every_class_has_images(splits["train"])
        multi_label = is_multi_label(splits["train"].labels)
        report_class_counts(self.train_class_counts(splits["train"]), self.class_names, multi_label)
        if multi_label:
            report_co_occurrence(splits["train"].labels, self.class_names)
        self.splits = self.hold(splits)
        log.info(
            "%s: %s images; class names %s",
            self.dataset,
            ", ".join(f"{split} {len(data):,}" for split, data in self.splits.items()),
            self.class_names,
        )

    def with_splits(self, splits: dict[str, Labelled]) -> "ImageDataModule":
        """This data module serving other splits of the same images (after `setup`): the
        audit's fold models train on part of the training split."""
        other = copy.copy(self)
        other.splits = dict(splits)
        return other

    def listed(self) -> DatasetSplits:
        """The dataset with `data.classes` kept; read once, so that `prepare_data` and
        `setup` warn of its problems once."""
        if self.listing is None:
            loaded = self.read()
            if self.classes:
                loaded = select_classes(loaded, self.classes, str(self.source))
            self.listing = loaded
        return self.listing

    def check_matches_config(self, loaded: DatasetSplits) -> None:
        if len(loaded.class_names) != self.num_classes:
            raise UserError(
                f"{self.source} has {len(loaded.class_names)} classes but "
                f"data.num_classes={self.num_classes}"
            )

    def check_every_class_has_images(self, train: Labelled, kind: str = "") -> None:
        counts = class_counts(train.labels, len(self.class_names))
        empty = [name for name, count in zip(self.class_names, counts, strict=True) if count == 0]
        if empty:
            raise UserError(
                f"class(es) {empty} have no {kind}training images in {self.source}. Add images "
                "of them, or leave them out with data.classes=[...] naming the classes to keep."
            )

    def split(self, loaded: DatasetSplits) -> dict[str, Labelled]:
        """The dataset's own val and test splits stay; a missing one comes out of the training
        set, the same fraction of every class, by a seeded permutation so every run gets the
        same split. `val_ratio: 0` keeps all training images and skips validation."""
        ratios = {}
        if loaded.val is None and self.val_ratio != 0:
            ratios["val"] = self.val_ratio
        if loaded.test is None:
            ratios["test"] = self.test_ratio
        indices = stratified_split(loaded.train.labels.cpu(), ratios, self.split_seed)
        for split, ratio in ratios.items():
            if len(indices[split]) == 0:
                raise UserError(
                    f"data.{split}_ratio={ratio} leaves no {split} images out of "
                    f"{len(loaded.train):,}; choose a larger ratio in (0, 1)"
                    + (", or 0 for no validation" if split == "val" else "")
                )
        carved = {split: loaded.train.subset(indices[split]) for split in ratios}
        splits = {"train": loaded.train.subset(indices["train"])}
        for split in ("val", "test"):
            data = getattr(loaded, split) if split not in ratios else carved[split]
            if data is not None and len(data):
                splits[split] = data
        return splits

    def description(self) -> DataDescription:
        """What the model fitted to this data takes from it (after `setup`)."""
        return DataDescription(
            dataset=self.dataset,
            class_names=list(self.class_names),
            in_channels=self.in_channels,
            image_size=self.image_size,
            resize_size=self.resize_size,
            task="multi_label" if self.multi_label else "single_label",
            class_counts=self.train_class_counts(),
            train_images=len(self.splits["train"]),
            channel_statistics=self.channel_statistics,
            training_sample=self.training_sample,
        )

    def train_class_counts(self, train: Labelled | None = None) -> torch.Tensor:
        """Training images per class, in class order: for loss weights and the sampler."""
        train = train if train is not None else self.splits["train"]
        return class_counts(train.labels, len(self.class_names))

    def views(self, split: str, indices: torch.Tensor) -> torch.Tensor:
        """uint8 evaluation views of some images of a split, for statistics and figures."""
        data = self.splits[split]
        return data.images[indices.to(data.images.device)].cpu()

    def channel_statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The training set's per-channel mean and std on the [0, 1] scale: the normalisation
        of a model trained from scratch on it."""
        return channel_statistics(self.splits["train"].images)

    def training_sample(self, count: int) -> torch.Tensor:
        """The first `count` training images (uint8): for data-dependent initialisation."""
        count = min(count, len(self.splits["train"]))
        return self.views("train", torch.arange(count))

    def on_device(self, split: str) -> LabelledImages:
        """The split on the training device, moved there once: batches are then gathered
        where they are used and never cross the bus again (a no-op on CPU)."""
        device = self.trainer.strategy.root_device if self.trainer else torch.device("cpu")
        data = self.splits[split]
        if data.labels.device != device:
            data = self.splits[split] = LabelledImages(
                data.images.to(device), data.labels.to(device), data.ids
            )
        return data

    def loader(self, split: str) -> InMemoryBatches | DataLoader:
        training = split == "train"
        trainer = self.trainer
        data = self.on_device(split)
        # `trainer.overfit_batches` means the same few batches every epoch: Lightning stops
        # shuffling its own DataLoaders for it, and this loader likewise.
        overfitting = trainer is not None and trainer.overfit_batches > 0
        return InMemoryBatches(
            data,
            batch_size=self.split_batch_size(split),
            shuffle=training and not overfitting,
            drop_last=training,
            seed=torch.initial_seed(),
            rank=trainer.global_rank if trainer else 0,
            world_size=trainer.world_size if trainer else 1,
            current_epoch=lambda: trainer.current_epoch if trainer else 0,
            mirror_alternately=training and self.batch_augment.flips_alternately,
            balanced=training and self.sampler == "balanced",
            equal_shares=training,
        )

    def split_batch_size(self, split: str) -> int:
        """`batch_size`, or for training at most each process's share of the split: a batch
        larger than the share would hold the whole split, leaving the setting without effect
        (and a huge one would only show as the device running out of memory)."""
        if split != "train":
            return self.batch_size
        world_size = self.trainer.world_size if self.trainer else 1
        share = max(1, len(self.splits["train"]) // world_size)
        if self.batch_size <= share:
            return self.batch_size
        if not self.warned_batch_size:
            images = f"{len(self.splits['train']):,} images"
            log.warning(
                "data.batch_size=%d is larger than %s: batches of %d instead. Set "
                "data.batch_size=%d or less to silence this.",
                self.batch_size,
                f"each process's share of the training split ({share:,} of {images})"
                if world_size > 1
                else f"the training split ({images})",
                share,
                share,
            )
            self.warned_batch_size = True
        return share

    def train_dataloader(self) -> InMemoryBatches | DataLoader:
        return self.loader("train")

    def val_dataloader(self) -> InMemoryBatches | DataLoader | list:
        # No validation split (val_ratio: 0): Lightning skips validation for an empty list.
        return self.loader("val") if "val" in self.splits else []

    def test_dataloader(self) -> InMemoryBatches | DataLoader:
        return self.loader("test")

    def on_after_batch_transfer(self, batch, dataloader_idx: int):  # noqa: ANN001, ANN201
        """In-memory training batches are augmented here, on the device, as a whole, and any
        training batch is mixed (MixUp, CutMix). Batches stay raw pixels: the model normalises
        them itself."""
        images, labels = batch
        if self.trainer is not None and self.trainer.training:
            if self.in_memory:
                images = self.batch_augment(images)
            images, labels = self.batch_mix(images, labels)
        return images, labels
