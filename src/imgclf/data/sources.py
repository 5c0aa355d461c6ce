"""Find a dataset on disk, download it when missing, or explain how to get it. Built-in
datasets are read into uint8 tensors; the user's own images are listed as files."""

import logging
from pathlib import Path
from typing import Protocol

from torchvision.datasets import MNIST, FashionMNIST

from imgclf.data import cifar10, image_listing
from imgclf.data.idx import IdxDataset
from imgclf.data.splits import DatasetSplits, named_by_split
from imgclf.errors import DataNotFoundError, UserError

log = logging.getLogger(__name__)


class BuiltinDataset(Protocol):
    expected_files: str
    download_hint: str

    def find(self, data_dir: Path) -> Path | None: ...
    def download(self, data_dir: Path) -> None: ...
    def read(self, folder: Path) -> DatasetSplits: ...


BUILTIN_DATASETS: dict[str, BuiltinDataset] = {
    "cifar10": cifar10.Cifar10(),
    "mnist": IdxDataset(MNIST),
    "fashion_mnist": IdxDataset(FashionMNIST),
}
IMAGE_FOLDER = "image_folder"
IMAGE_CSV = "image_csv"
USER_DATASETS = (IMAGE_FOLDER, IMAGE_CSV)


def builtin_dataset(name: str) -> BuiltinDataset:
    try:
        return BUILTIN_DATASETS[name]
    except KeyError:
        known = ", ".join([*BUILTIN_DATASETS, *USER_DATASETS])
        raise UserError(f"unknown dataset {name!r}; known datasets: {known}") from None


def ensure_available(name: str, data_dir: Path, download: bool) -> None:
    """Download a built-in dataset that is not in `data_dir` yet (call on one process only)."""
    if name in USER_DATASETS:
        return
    dataset = builtin_dataset(name)
    if dataset.find(data_dir) is not None:
        return
    if not download:
        raise missing(name, dataset, data_dir, "data.download=false")
    log.info("%s is not in %s: downloading it", name, data_dir)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        dataset.download(data_dir)
    except Exception as error:  # network, permissions, checksum: all end the same way for the user
        raise missing(name, dataset, data_dir, f"the download failed: {error}") from error
    if dataset.find(data_dir) is None:
        raise missing(name, dataset, data_dir, "the download did not produce the expected files")


def load(
    name: str,
    data_dir: Path,
    csv_path: Path | None = None,
    label_separator: str = ";",
    classes: list[str] | None = None,
) -> DatasetSplits:
    """The dataset, read or listed. A CSV's labels are split by `label_separator`; `classes`,
    when given, are a multi-label CSV's classes, in that order."""
    if name == IMAGE_FOLDER:
        return image_listing.list_folder(data_dir)
    if name == IMAGE_CSV:
        if csv_path is None:
            raise UserError("data=image_csv needs data.csv_path=<labels.csv>")
        return image_listing.list_csv(csv_path, label_separator, classes)
    dataset = builtin_dataset(name)
    folder = dataset.find(data_dir)
    if folder is None:
        raise missing(name, dataset, data_dir, "it was not downloaded (prepare_data did not run)")
    return named_by_split(dataset.read(folder))


def missing(name: str, dataset: BuiltinDataset, data_dir: Path, reason: str) -> DataNotFoundError:
    return DataNotFoundError(
        f"dataset {name!r} is not in {data_dir}\n"
        f"  expected: {dataset.expected_files}\n"
        f"  why not downloaded: {reason}\n"
        f"  to fix: run with data.download=true on a machine with internet access, or "
        f"{dataset.download_hint}, or point IMGCLF_DATA_DIR (or paths.data_dir=...) at a folder "
        "that holds it."
    )
