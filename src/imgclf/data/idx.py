"""MNIST and Fashion-MNIST: IDX files in torchvision's layout (`<Name>/raw/`), plain or gzipped."""

import gzip
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision.datasets import MNIST, VisionDataset

from imgclf.data.integrity import corrupt, verify_md5
from imgclf.data.splits import DatasetSplits, LabelledImages

log = logging.getLogger(__name__)

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
SPLIT_FILES = {"train": "train", "test": "t10k"}
OFFICIAL_COUNTS = {"train": 60_000, "test": 10_000}


@dataclass(frozen=True)
class IdxDataset:
    """One of torchvision's IDX datasets, by its class: the folder name, MD5s and classes."""

    torchvision_class: type[VisionDataset]

    @property
    def title(self) -> str:
        return "MNIST" if self.torchvision_class is MNIST else self.torchvision_class.__name__

    @property
    def raw_folder_name(self) -> str:
        return f"{self.torchvision_class.__name__}/raw"

    @property
    def class_names(self) -> list[str]:
        # torchvision's MNIST names are "0 - zero"; the digit alone reads better on plots.
        names = self.torchvision_class.classes
        return (
            [name.split(" - ")[0] for name in names] if self.torchvision_class is MNIST else names
        )

    @property
    def file_names(self) -> list[str]:
        return [
            f"{prefix}-{kind}-ubyte"
            for prefix in SPLIT_FILES.values()
            for kind in ("images-idx3", "labels-idx1")
        ]

    @property
    def expected_files(self) -> str:
        return f"{self.raw_folder_name}/{{{','.join(self.file_names)}}}[.gz]"

    @property
    def download_hint(self) -> str:
        mirror = self.torchvision_class.mirrors[0]
        return f"download the four .gz files from {mirror} into {self.raw_folder_name}/"

    def find(self, data_dir: Path) -> Path | None:
        raw = data_dir / self.raw_folder_name
        if all(resolve_idx_file(raw, name) for name in self.file_names):
            return raw
        return None

    def download(self, data_dir: Path) -> None:
        """torchvision tries each mirror and verifies every file's MD5."""
        self.torchvision_class(root=str(data_dir), train=True, download=True)

    def read(self, raw: Path) -> DatasetSplits:
        official_md5 = dict(self.torchvision_class.resources)
        splits = {}
        for split, prefix in SPLIT_FILES.items():
            images_path = resolve_idx_file(raw, f"{prefix}-images-idx3-ubyte")
            labels_path = resolve_idx_file(raw, f"{prefix}-labels-idx1-ubyte")
            images = read_idx(images_path, IMAGES_MAGIC, official_md5, OFFICIAL_COUNTS[split])
            labels = read_idx(labels_path, LABELS_MAGIC, official_md5, OFFICIAL_COUNTS[split])
            if len(images) != len(labels):
                raise corrupt(
                    labels_path, f"it has {len(labels):,} labels for {len(images):,} images"
                )
            if labels.max() >= len(self.class_names):
                raise corrupt(labels_path, f"it has labels outside 0..{len(self.class_names) - 1}")
            splits[split] = LabelledImages(
                torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))
            )
        return DatasetSplits(
            train=splits["train"], test=splits["test"], class_names=self.class_names
        )


def resolve_idx_file(raw: Path, name: str) -> Path | None:
    """The extracted file if present, else the gzipped one as distributed."""
    for candidate in (raw / name, raw / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_idx(
    path: Path, magic: int, official_md5: dict[str, str], official_count: int
) -> np.ndarray:
    data = read_bytes(path)
    if len(data) < 8 or int.from_bytes(data[:4], "big") != magic:
        raise corrupt(path, "it does not start with the IDX header of this kind of file")
    dimensions = magic & 0xFF
    header_bytes = 4 + 4 * dimensions
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dimensions))
    expected_bytes = header_bytes + int(np.prod(shape))
    if len(data) != expected_bytes:
        raise corrupt(
            path,
            f"its header promises {shape} values ({expected_bytes:,} bytes), it has {len(data):,}",
        )
    if shape[0] == official_count and path.name in official_md5:
        verify_md5(path, official_md5[path.name])
    elif shape[0] != official_count:
        log.warning(
            "%s holds %d items, the official file %d: training on part of the dataset",
            path,
            shape[0],
            official_count,
        )
    # A copy: torch wants writable memory, and the bytes object is read-only.
    return np.frombuffer(data, dtype=np.uint8, offset=header_bytes).reshape(shape).copy()


def read_bytes(path: Path) -> bytes:
    if path.suffix != ".gz":
        return path.read_bytes()
    try:
        with gzip.open(path, "rb") as file:
            return file.read()
    except (OSError, EOFError, zlib.error) as error:
        raise corrupt(path, f"it cannot be decompressed ({error})") from error
