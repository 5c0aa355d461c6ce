"""BuiltinDataModule: CIFAR-10, MNIST and Fashion-MNIST, read into memory whole."""

from typing import Any

from imgclf.data import sources
from imgclf.data.augment import BatchAugment
from imgclf.data.datamodule import ImageDataModule
from imgclf.data.splits import DatasetSplits
from imgclf.errors import UserError


class BuiltinDataModule(ImageDataModule):
    """A built-in dataset, downloaded when missing: each split is one uint8 tensor on the
    training device, and each training batch is augmented there as a whole (`BatchAugment`).
    Its images are already `image_size` square: evaluation sees them whole."""

    def __init__(
        self,
        image_size: int,
        download: bool = True,
        augment: BatchAugment | None = None,
        **common: Any,
    ) -> None:
        """`common`: what every datamodule takes (`ImageDataModule`)."""
        super().__init__(
            image_size=image_size, resize_size=image_size, augment=augment or BatchAugment(),
            **common,
        )  # fmt: skip
        self.download = download

    @property
    def batch_augment(self) -> BatchAugment:
        return self.augment

    def prepare_data(self) -> None:
        """Download the dataset if it is missing. Lightning runs this on one process per
        machine while the others wait, and again before testing: by then this process holds
        the data, and nothing is done."""
        if not self.splits:
            sources.ensure_available(self.dataset, self.data_dir, self.download)

    def read(self) -> DatasetSplits:
        return sources.load(self.dataset, self.data_dir)

    def check_matches_config(self, loaded: DatasetSplits) -> None:
        found_shape = tuple(loaded.train.images.shape[1:])
        expected_shape = (self.in_channels, self.image_size, self.image_size)
        if found_shape != expected_shape:
            raise UserError(
                f"the images in {self.data_dir} are {found_shape} (channels, height, width) "
                f"but the data config says {expected_shape}: set data.in_channels and "
                "data.image_size to match"
            )
        super().check_matches_config(loaded)
