"""Datasets: readers for the on-disk formats and the LightningDataModules that serve them."""

from imgclf.data.augment import BatchAugment
from imgclf.data.builtin_datamodule import BuiltinDataModule
from imgclf.data.datamodule import ImageDataModule
from imgclf.data.image_files_datamodule import ImageFilesDataModule
from imgclf.data.transforms import ImageAugment

__all__ = [
    "BatchAugment",
    "BuiltinDataModule",
    "ImageAugment",
    "ImageDataModule",
    "ImageFilesDataModule",
]
