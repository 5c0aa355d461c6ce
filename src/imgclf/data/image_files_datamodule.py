"""ImageFilesDataModule: the user's own images, a folder of class folders or a CSV, decoded
once into memory or onto disk (`data.cache`), or on every read."""

import os
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, WeightedRandomSampler

from imgclf.data import sources
from imgclf.data.balance import balanced_sample_weights
from imgclf.data.cache import DiskCache, cache_splits, choose_cache_mode
from imgclf.data.datamodule import ImageDataModule
from imgclf.data.decode import read_view
from imgclf.data.image_file_dataset import ImageFileDataset
from imgclf.data.loader import InMemoryBatches
from imgclf.data.parallel import map_files
from imgclf.data.pixels import channel_statistics
from imgclf.data.splits import DatasetSplits, Labelled, LabelledFiles, LabelledImages
from imgclf.data.transforms import ImageAugment, evaluation_transform, resize_size_for

# Normalisation statistics of image files come from this many training images, evenly spread.
STATISTICS_SAMPLE = 1000


def default_worker_count(world_size: int = 1) -> int:
    """One loader process per CPU core this process may use, shared between DDP ranks."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(8, (cores or 1) // world_size))


class ImageFilesDataModule(ImageDataModule):
    """Image files of any size, listed from class folders (`data=image_folder`) or a CSV
    (`data=image_csv`). Held in memory (`cache=ram`: decoded once at the evaluation view's
    resolution) a split is served as the built-in datasets are, its batches shifted and
    flipped on the device; streamed (`cache=disk` or `none`) its files are decoded in
    DataLoader worker processes and augmented per image at their own resolution
    (`ImageAugment`, torchvision.transforms.v2)."""

    def __init__(
        self,
        image_size: int,
        batch_size: int = 64,
        augment: ImageAugment | None = None,
        csv_path: str | os.PathLike | None = None,
        label_separator: str = ";",
        cache: str = "auto",
        cache_max_gb: float = 4.0,
        cache_dir: str | os.PathLike | None = None,
        crop_fraction: float = 0.875,
        num_workers: int | None = None,
        **common: Any,
    ) -> None:
        """`common`: what every datamodule takes (`ImageDataModule`)."""
        super().__init__(
            image_size=image_size, resize_size=resize_size_for(image_size, crop_fraction),
            augment=augment or ImageAugment(), batch_size=batch_size, **common,
        )  # fmt: skip
        self.csv_path = Path(csv_path).expanduser().resolve() if csv_path else None
        # Between the classes of a CSV's `labels` column (multi-label).
        self.label_separator = label_separator
        self.cache = cache
        self.cache_max_gb = cache_max_gb
        self.cache_dir = Path(cache_dir or "~/.cache/imgclf").expanduser()
        self.num_workers = num_workers
        # The shift and flip of batches held in memory, built once here, not on every batch.
        self.memory_augment = self.augment.batched()
        # Decided when the files are listed: `data.cache` resolved.
        self.cache_mode: str | None = None
        self.disk_cache = DiskCache(self.cache_dir, self.resize_size, self.in_channels)

    @property
    def source(self) -> Path:
        return self.csv_path or self.data_dir

    @property
    def batch_augment(self) -> ImageAugment:
        return self.memory_augment

    def prepare_data(self) -> None:
        """Fill the disk cache. Lightning runs this on one process per machine while the
        others wait, so DDP ranks decode nothing twice: their `setup` finds every entry in
        place. Lightning calls it again before testing: by then this process holds the data,
        and nothing is done."""
        if self.splits or self.cache not in ("auto", "disk"):
            return
        files = self.listed().present()
        if self.decide_cache_mode(files) == "disk":
            paths = np.concatenate([data.paths for data in files.values()])
            for _ in self.disk_cache.entries(paths, self.worker_count(), "filling the disk cache"):
                pass
            self.disk_cache.warn_replaced()

    def read(self) -> DatasetSplits:
        return sources.load(
            self.dataset, self.data_dir, self.csv_path, self.label_separator, self.classes
        )

    def hold(self, splits: dict[str, LabelledFiles]) -> dict[str, Labelled]:
        """Decoded into memory or onto disk, or listed for decoding on every read; files that
        cannot be read are left out (and named)."""
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
        return partial(
            read_view,
            channels=self.in_channels,
            cached=cached,
            transform=transform,
            short_side=self.resize_size,
        )

    def views(self, split: str, indices: torch.Tensor) -> torch.Tensor:
        data = self.splits[split]
        if isinstance(data, LabelledImages):
            return super().views(split, indices)
        work = self.evaluation_view(cached=self.cache_mode == "disk")
        # Worker processes pay for their start-up only on larger samples.
        workers = self.worker_count() if len(indices) > 2000 else 0
        images = map_files(data.paths[indices.numpy()], work, workers, None, stack=True)
        return torch.stack([image for _, image in images if image is not None])

    def channel_statistics(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Of a sample of the training images, evenly spread, unless they are in memory."""
        train = self.splits["train"]
        if isinstance(train, LabelledImages):
            return super().channel_statistics()
        sample = torch.linspace(0, len(train) - 1, min(len(train), STATISTICS_SAMPLE)).long()
        return channel_statistics(self.views("train", sample.unique()))

    def loader(self, split: str) -> InMemoryBatches | DataLoader:
        """Streamed splits: workers decode and transform; under DDP Lightning shards the
        sampler per rank (a weighted sampler too, through its DistributedSamplerWrapper)."""
        data = self.splits[split]
        if isinstance(data, LabelledImages):
            return super().loader(split)
        training = split == "train"
        transform = (
            self.augment.per_image(self.image_size)
            if training
            else evaluation_transform(self.image_size, self.resize_size)
        )
        dataset = ImageFileDataset(
            data.paths,
            data.labels,
            transform,
            self.in_channels,
            cached=self.cache_mode == "disk",
            short_side=None if training else self.resize_size,
        )
        sampler = None
        world_size = self.trainer.world_size if self.trainer else 1
        if training and self.sampler == "balanced":  # single-label data only (checks.py)
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
