"""Datasets: readers for the on-disk formats and the LightningDataModule that serves them."""

from imgclf.data.augment import BatchAugment
from imgclf.data.datamodule import ImageDataModule

__all__ = ["BatchAugment", "ImageDataModule"]
