"""ImageDataModule: reads or lists a dataset, selects classes, splits it, and serves uint8
batches (augmented, in memory, after their transfer to the device); the model normalises."""

import logging
import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, WeightedRandomSampler

from imgclf.data import sources
from imgclf.data.augment import BatchAugment
from imgclf.data.balance import SAMPLERS, balanced_sample_weights
from imgclf.data.cache import DiskCache, cache_splits, choose_cache_mode
from imgclf.data.decode import read_view
from imgclf.data.image_file_dataset import ImageFileDataset
from imgclf.data.loader import InMemoryBatches
from imgclf.data.mix import BatchMix
from imgclf.data.parallel import map_files
from imgclf.data.pixels import channel_statistics
from imgclf.data.splits import (
    DatasetSplits,
    Labelled,
    LabelledFiles,
    LabelledImages,
    class_counts,
    report_class_counts,
    select_classes,
    stratified_split,
)
from imgclf.data.transforms import ImageAugment, evaluation_transform, resize_size_for
from imgclf.errors import UserError

log = logging.getLogger(__name__)

# Normalisation statistics of image files come from this many training images, evenly spread.
STATISTICS_SAMPLE = 1000


def default_worker_count(world_size: int = 1) -> int:
    """One loader process per CPU core this process may use, shared between DDP ranks."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(8, (cores or 1) // world_size))


class ImageDataModule(LightningDataModule):
    """Two data paths behind one interface; batches are uint8 (N, C, H, W) either way.

    In memory (the built-in datasets; image files with `cache=ram`): each split is one uint8
    tensor, a batch is an index into it, and augmentation runs on the whole batch on the
    device (`BatchAugment`). Streamed (image files with `cache=disk` or `none`): files are
    decoded in DataLoader worker processes and augmented per image at their own resolution
    (`ImageAugment`, torchvision.transforms.v2). Normalisation runs per batch after the
    transfer to the device either way (`on_after_batch_transfer`), so uint8 batches cross to
    the device at a quarter of float32's bytes.
    """

    def __init__(
        self,
        dataset: str,
        data_dir: str | Path | None,
        num_classes: int,
        in_channels: int,
        image_size: int,
        batch_size: int = 256,
        val_ratio: float = 0.1,
        test_ratio: float = 0.1,
        split_seed: int = 0,
        download: bool = True,
        augment: BatchAugment | ImageAugment | None = None,
        classes: list[str] | None = None,
        csv_path: str | Path | None = None,
        cache: str = "auto",
        cache_max_gb: float = 4.0,
        cache_dir: str | Path | None = None,
        crop_fraction: float = 0.875,
        num_workers: int | None = None,
        sampler: str | None = None,
    ) -> None:
        super().__init__()
        self.dataset = dataset
        self.data_dir = Path(data_dir or ".").expanduser().resolve()
        self.csv_path = Path(csv_path).expanduser().resolve() if csv_path else None
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.image_size = image_size
        self.batch_size = batch_size
        self.val_ratio = val_ratio
        self.test_ratio = test_ratio
        self.split_seed = split_seed
        self.download = download
        self.augment = augment or BatchAugment()
        # What runs on in-memory batches: for image files held in RAM, ImageAugment's shift
        # and flip. Built once here, not on every batch.
        self.batch_augment = (
            self.augment.batched() if isinstance(self.augment, ImageAugment) else self.augment
        )
        self.batch_mix = BatchMix(num_classes, self.augment.mixup, self.augment.cutmix)
        # As strings: `data.classes=[3,5]` names MNIST's digit classes "3" and "5".
        self.classes = [str(name) for name in classes] if classes else None
        self.cache = cache
        self.cache_max_gb = cache_max_gb
        self.cache_dir = Path(cache_dir or "~/.cache/imgclf").expanduser()
        self.num_workers = num_workers
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        self.sampler = sampler
        self.user_images = dataset in sources.USER_DATASETS
        # Built-in images are already image_size: their evaluation view is the whole image.
        self.resize_size = (
            resize_size_for(image_size, crop_fraction) if self.user_images else image_size
        )
        # Built-in datasets are always in memory; image files' mode is decided when listed.
        self.cache_mode: str | None = None if self.user_images else "ram"
        self.disk_cache = DiskCache(self.cache_dir, self.resize_size, in_channels)
        self.listing: DatasetSplits | None = None
        self.splits: dict[str, Labelled] = {}
        self.class_names: list[str] = []
        # The clamped training batch is named once, not at every epoch's loader.
        self.warned_batch_size = False

    @property
    def source(self) -> Path:
        return self.csv_path or self.data_dir

    @property
    def in_memory(self) -> bool:
        return isinstance(self.splits.get("train"), LabelledImages)

    def prepare_data(self) -> None:
        """Download a missing built-in dataset; fill the disk cache of image files. Lightning
        runs this on one process per machine while the others wait, so DDP ranks decode
        nothing twice: their `setup` finds every entry in place. Lightning calls it again
        before testing: by then this process holds the data, and nothing is done."""
        if self.splits:
            return
        sources.ensure_available(self.dataset, self.data_dir, self.download)
        if not self.user_images or self.cache not in ("auto", "disk"):
            return
        files = self.listed().present()
        if self.decide_cache_mode(files) == "disk":
            paths = np.concatenate([data.paths for data in files.values()])
            for _ in self.disk_cache.entries(paths, self.worker_count(), "filling the disk cache"):
                pass
            self.disk_cache.warn_replaced()

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        loaded = self.listed()
        self.check_matches_config(loaded)
        self.class_names = loaded.class_names
        splits = self.split(loaded)
        # The splits are copies: the whole dataset need not stay in memory beside them.
        self.listing = None
        self.check_every_class_has_images(splits["train"])
        report_class_counts(self.train_class_counts(splits["train"]), self.class_names)
        if self.user_images:
            splits = self.cache_files(splits)
        elif self.cache not in ("auto", "ram"):
            log.info("data.cache=%s: the built-in datasets are always held in memory", self.cache)
        self.splits = splits
        log.info(
            "%s: %s images; class names %s",
            self.dataset,
            ", ".join(f"{split} {len(data):,}" for split, data in self.splits.items()),
            self.class_names,
        )

    def listed(self) -> DatasetSplits:
        """The dataset as read (built-in) or listed (image files), with `data.classes` kept;
        read once, so that `prepare_data` and `setup` warn of its problems once."""
        if self.listing is None:
            loaded = sources.load(self.dataset, self.data_dir, self.csv_path)
            if self.classes:
                loaded = select_classes(loaded, self.classes, str(self.source))
            self.listing = loaded
        return self.listing

    def check_matches_config(self, loaded: DatasetSplits) -> None:
        if isinstance(loaded.train, LabelledImages):
            found_shape = tuple(loaded.train.images.shape[1:])
            expected_shape = (self.in_channels, self.image_size, self.image_size)
            if found_shape != expected_shape:
                raise UserError(
                    f"the images in {self.data_dir} are {found_shape} (channels, height, width) "
                    f"but the data config says {expected_shape}: set data.in_channels and "
                    "data.image_size to match"
                )
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

    def train_class_counts(self, train: Labelled | None = None) -> torch.Tensor:
        """Training images per class, in class order: for loss weights and the sampler."""
        train = train if train is not None else self.splits["train"]
        return class_counts(train.labels, len(self.class_names))

    def worker_count(self) -> int:
        if self.num_workers is not None:
            return self.num_workers
        return default_worker_count(self.trainer.world_size if self.trainer else 1)

    def decide_cache_mode(self, splits: dict[str, Labelled]) -> str:
        """`data.cache` resolved (auto, an unwritable folder), once: logged with the reason."""
        if self.cache_mode is None:
            self.cache_mode = choose_cache_mode(
                self.cache,
                sum(len(data) for data in splits.values()),
                self.in_channels * self.image_size**2,
                self.cache_max_gb,
                self.cache_dir,
            )
        return self.cache_mode

    def evaluation_view(self, cached: bool = False) -> Callable[[str], torch.Tensor]:
        """Reads an image file (or, `cached`, its disk-cache entry) as evaluation sees it."""
        transform = evaluation_transform(self.image_size, self.resize_size)
        return partial(read_view, channels=self.in_channels, cached=cached, transform=transform)

    def cache_files(self, splits: dict[str, LabelledFiles]) -> dict[str, Labelled]:
        cached = cache_splits(
            splits,
            self.decide_cache_mode(splits),
            self.disk_cache,
            self.evaluation_view(),
            (self.in_channels, self.image_size, self.image_size),
            self.worker_count(),
        )
        self.check_every_class_has_images(cached["train"], kind="readable ")
        return cached

    def views(self, split: str, indices: torch.Tensor) -> torch.Tensor:
        """uint8 evaluation views of some images of a split, for statistics and figures."""
        data = self.splits[split]
        if isinstance(data, LabelledImages):
            return data.images[indices.to(data.images.device)].cpu()
        work = self.evaluation_view(cached=self.cache_mode == "disk")
        # Worker processes pay for their start-up only on larger samples.
        workers = self.worker_count() if len(indices) > 2000 else 0
        images = map_files(data.paths[indices.numpy()], work, workers, description=None)
        return torch.stack([image for _, image in images if image is not None])

    def channel_statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The training set's per-channel mean and std on the [0, 1] scale (of a sample of
        image files): the normalisation of a model trained from scratch on it."""
        train = self.splits["train"]
        if isinstance(train, LabelledImages):
            return channel_statistics(train.images)
        sample = torch.linspace(0, len(train) - 1, min(len(train), STATISTICS_SAMPLE)).long()
        return channel_statistics(self.views("train", sample.unique()))

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
                data.images.to(device), data.labels.to(device)
            )
        return data

    def loader(self, split: str) -> InMemoryBatches | DataLoader:
        if isinstance(self.splits[split], LabelledFiles):
            return self.file_loader(split)
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

    def file_loader(self, split: str) -> DataLoader:
        """Workers decode and transform; under DDP Lightning shards the sampler per rank (a
        weighted sampler too, through its DistributedSamplerWrapper)."""
        data = self.splits[split]
        training = split == "train"
        transform = (
            self.augment.per_image(self.image_size)
            if training and isinstance(self.augment, ImageAugment)
            else evaluation_transform(self.image_size, self.resize_size)
        )
        dataset = ImageFileDataset(
            data.paths, data.labels, transform, self.in_channels, self.cache_mode == "disk"
        )
        sampler = None
        world_size = self.trainer.world_size if self.trainer else 1
        if training and self.sampler == "balanced":
            weights = balanced_sample_weights(data.labels)
            sampler = WeightedRandomSampler(weights, len(data), replacement=True)
        elif not training and world_size > 1:
            # Lightning's DistributedSampler would pad the ranks' shares to equal length by
            # repeating images, which would then count twice: this one splits them exactly.
            sampler = UnrepeatedDistributedSampler(
                dataset, num_replicas=world_size, rank=self.trainer.global_rank, shuffle=False
            )
        workers = self.worker_count()
        on_gpu = self.trainer is not None and self.trainer.strategy.root_device.type == "cuda"
        return DataLoader(
            dataset,
            batch_size=self.split_batch_size(split),
            shuffle=training and sampler is None,
            sampler=sampler,
            drop_last=training,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=on_gpu,
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
