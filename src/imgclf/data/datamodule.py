"""ImageDataModule: reads a dataset once, splits it, and serves normalised, augmented batches."""

import logging
from pathlib import Path

import torch
from lightning.pytorch import LightningDataModule

from imgclf.data import sources
from imgclf.data.augment import BatchAugment
from imgclf.data.loader import InMemoryBatches
from imgclf.data.splits import DatasetSplits, LabelledImages
from imgclf.errors import UserError

log = logging.getLogger(__name__)


class ImageDataModule(LightningDataModule):
    """Every split lives in memory as one uint8 tensor; a batch is an index into it.

    Augmentation and normalisation run per batch after the transfer to the training device
    (`on_after_batch_transfer`), so they cost one vectorised op each, on the GPU when there
    is one, and uint8 batches cross to the device at a quarter of float32's bytes.
    """

    def __init__(
        self,
        dataset: str,
        data_dir: str | Path,
        num_classes: int,
        in_channels: int,
        image_size: int,
        batch_size: int = 256,
        val_ratio: float = 0.1,
        test_ratio: float = 0.1,
        split_seed: int = 0,
        download: bool = True,
        augment: BatchAugment | None = None,
    ) -> None:
        super().__init__()
        self.dataset = dataset
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.image_size = image_size
        self.batch_size = batch_size
        self.val_ratio = val_ratio
        self.test_ratio = test_ratio
        self.split_seed = split_seed
        self.download = download
        self.augment = augment or BatchAugment()
        self.splits: dict[str, LabelledImages] = {}
        self.class_names: list[str] = []
        self.mean = torch.zeros(in_channels)
        self.std = torch.ones(in_channels)

    def prepare_data(self) -> None:
        sources.ensure_available(self.dataset, self.data_dir, self.download)

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        loaded = sources.load(self.dataset, self.data_dir, self.image_size, self.in_channels)
        self.check_matches_config(loaded)
        self.class_names = loaded.class_names
        self.splits = self.split(loaded)
        self.mean, self.std = channel_statistics(self.splits["train"].images)
        log.info(
            "%s: %s images; class names %s",
            self.dataset,
            ", ".join(f"{split} {len(data):,}" for split, data in self.splits.items()),
            self.class_names,
        )

    def state_dict(self) -> dict:
        """Saved in every checkpoint: what turns raw pixels into the model's input and its
        outputs into class names, so a checkpoint predicts and exports on its own."""
        return {
            "dataset": self.dataset,
            "class_names": list(self.class_names),
            "in_channels": self.in_channels,
            "image_size": self.image_size,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
        }

    def load_state_dict(self, state_dict: dict) -> None:
        """Evaluate with the statistics the model was trained with, even on other data."""
        self.mean = torch.tensor(state_dict["mean"])
        self.std = torch.tensor(state_dict["std"])

    def check_matches_config(self, loaded: DatasetSplits) -> None:
        found_shape = tuple(loaded.train.images.shape[1:])
        expected_shape = (self.in_channels, self.image_size, self.image_size)
        if found_shape != expected_shape:
            raise UserError(
                f"the images in {self.data_dir} are {found_shape} (channels, height, width) but "
                f"the data config says {expected_shape}: set data.in_channels and data.image_size "
                "to match"
            )
        if len(loaded.class_names) != self.num_classes:
            raise UserError(
                f"{self.data_dir} has {len(loaded.class_names)} classes but "
                f"data.num_classes={self.num_classes}"
            )

    def split(self, loaded: DatasetSplits) -> dict[str, LabelledImages]:
        """The official test set stays the test set; a missing val or test split comes out of
        the training set, by a seeded permutation so every run gets the same split.
        `val_ratio: 0` keeps all training images for training and skips validation."""
        generator = torch.Generator().manual_seed(self.split_seed)
        remaining = torch.randperm(len(loaded.train), generator=generator)

        def carve(split: str, ratio: float) -> LabelledImages:
            nonlocal remaining
            count = round(ratio * len(loaded.train))
            if not 0 < count < len(remaining):
                raise UserError(
                    f"data.{split}_ratio={ratio} leaves no {split} or no train images out of "
                    f"{len(loaded.train):,}; choose a ratio in (0, 1)"
                    + (", or 0 for no validation" if split == "val" else "")
                )
            taken, remaining = remaining[:count], remaining[count:]
            return loaded.train.subset(taken)

        splits = {}
        if loaded.val is not None:
            splits["val"] = loaded.val
        elif self.val_ratio != 0:
            splits["val"] = carve("val", self.val_ratio)
        splits["test"] = loaded.test if loaded.test is not None else carve("test", self.test_ratio)
        return {"train": loaded.train.subset(remaining.sort().values), **splits}

    def training_sample(self, count: int) -> torch.Tensor:
        """The first `count` training images, normalised: for data-dependent initialisation."""
        return self.normalise(self.splits["train"].images[:count])

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

    def loader(self, split: str) -> InMemoryBatches:
        training = split == "train"
        trainer = self.trainer
        data = self.on_device(split)
        return InMemoryBatches(
            data,
            batch_size=self.batch_size,
            shuffle=training,
            drop_last=training and len(data) > self.batch_size,
            seed=torch.initial_seed(),
            rank=trainer.global_rank if trainer else 0,
            world_size=trainer.world_size if trainer else 1,
            current_epoch=lambda: trainer.current_epoch if trainer else 0,
            mirror_alternately=training and self.augment.flips_alternately,
        )

    def train_dataloader(self) -> InMemoryBatches:
        return self.loader("train")

    def val_dataloader(self) -> InMemoryBatches | list:
        # No validation split (val_ratio: 0): Lightning skips validation for an empty list.
        return self.loader("val") if "val" in self.splits else []

    def test_dataloader(self) -> InMemoryBatches:
        return self.loader("test")

    def on_after_batch_transfer(self, batch, dataloader_idx: int):  # noqa: ANN001, ANN201
        images, labels = batch
        if self.trainer is not None and self.trainer.training:
            images = self.augment(images)
        return self.normalise(images), labels

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        return normalise_pixels(images, self.mean, self.std)

    def denormalise(self, images: torch.Tensor) -> torch.Tensor:
        """The inverse of `normalise`, for display: float32 in [0, 1]."""
        std = self.std.to(images.device)[None, :, None, None]
        mean = self.mean.to(images.device)[None, :, None, None]
        return (images.float() * std + mean).clamp(0, 1)


def normalise_pixels(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] to float with zero mean and unit variance per channel (`mean` and `std`
    on the [0, 1] scale), channels_last."""
    scale = (1 / (255 * std)).to(images.device)[None, :, None, None]
    shift = (mean / std).to(images.device)[None, :, None, None]
    normalised = images.to(torch.float32) * scale - shift
    return normalised.contiguous(memory_format=torch.channels_last)


def channel_statistics(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std on the [0, 1] scale, one channel at a time to bound memory."""
    means, stds = [], []
    for channel in range(images.shape[1]):
        values = images[:, channel].to(torch.float64) / 255
        means.append(values.mean())
        stds.append(values.std().clamp_min(1e-6))
    return torch.stack(means).float(), torch.stack(stds).float()
