"""Datasets: readers for the on-disk formats and the LightningDataModule that serves them."""

from imgclf.data.augment import BatchAugment
from imgclf.data.datamodule import ImageDataModule
from imgclf.data.transforms import ImageAugment

__all__ = ["BatchAugment", "ImageAugment", "ImageDataModule"]
