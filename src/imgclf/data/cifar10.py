"""CIFAR-10 from the official binary (`cifar-10-batches-bin`) or python (`cifar-10-batches-py`)
version."""

import logging
from pathlib import Path

import numpy as np
import torch
from torchvision.datasets import CIFAR10

from imgclf.data.integrity import corrupt, load_numpy_pickle, verify_md5
from imgclf.data.splits import DatasetSplits, LabelledImages

log = logging.getLogger(__name__)

BINARY_FOLDER = "cifar-10-batches-bin"
PYTHON_FOLDER = CIFAR10.base_folder
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_BATCH = "test_batch"
IMAGES_PER_BATCH = 10_000
RECORD_BYTES = 1 + 3 * 32 * 32  # one label byte, then the red, green and blue planes
CLASS_NAMES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip
# Published checksums of the binary version (cifar-10-binary.tar.gz); torchvision knows
# only the python version's.
BINARY_MD5 = {
    "data_batch_1.bin": "5dd7e06a14cb22eb9f671a540d1b7c25",
    "data_batch_2.bin": "5ea93a67294ea407fff1d09f752e9692",
    "data_batch_3.bin": "942cd6a4bcdd0dd3c604fbe906cb4421",
    "data_batch_4.bin": "ae636b3ba5c66a11e91e8cb52e771fcb",
    "data_batch_5.bin": "53f37980c15c3d472c316c40844f3f0d",
    "test_batch.bin": "803d5f7f4d78ea53de84dbe85f74fb6d",
}
PYTHON_MD5 = dict(CIFAR10.train_list + CIFAR10.test_list)

EXPECTED_FILES = (
    f"{BINARY_FOLDER}/{{data_batch_1..5,test_batch}}.bin (binary version) or "
    f"{PYTHON_FOLDER}/{{data_batch_1..5,test_batch,batches.meta}} (python version)"
)
DOWNLOAD_HINT = (
    "download https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz (or the python version, "
    f"{CIFAR10.url}) and extract it there"
)


def find(data_dir: Path) -> Path | None:
    """The folder of a complete copy in either format, the binary one first."""
    binary = data_dir / BINARY_FOLDER
    if all((binary / f"{name}.bin").is_file() for name in [*TRAIN_BATCHES, TEST_BATCH]):
        return binary
    python = data_dir / PYTHON_FOLDER
    if all((python / name).is_file() for name in [*TRAIN_BATCHES, TEST_BATCH, "batches.meta"]):
        return python
    return None


def download(data_dir: Path) -> None:
    """torchvision fetches the python version and verifies the archive's MD5."""
    CIFAR10(root=str(data_dir), train=True, download=True)


def read(folder: Path) -> DatasetSplits:
    read_batch = read_binary_batch if folder.name == BINARY_FOLDER else read_python_batch
    train = [read_batch(folder, name) for name in TRAIN_BATCHES]
    return DatasetSplits(
        train=LabelledImages(
            torch.cat([batch.images for batch in train]),
            torch.cat([batch.labels for batch in train]),
        ),
        test=read_batch(folder, TEST_BATCH),
        class_names=read_class_names(folder),
    )


def read_binary_batch(folder: Path, name: str) -> LabelledImages:
    path = folder / f"{name}.bin"
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD_BYTES:
        raise corrupt(
            path, f"its {raw.size:,} bytes are not a whole number of {RECORD_BYTES:,}-byte records"
        )
    records = raw.reshape(-1, RECORD_BYTES)
    check_batch(path, len(records), BINARY_MD5[path.name])
    labels = torch.from_numpy(records[:, 0].astype(np.int64))
    images = torch.from_numpy(records[:, 1:].reshape(-1, 3, 32, 32).copy())
    return checked_labels(path, LabelledImages(images, labels))


def read_python_batch(folder: Path, name: str) -> LabelledImages:
    path = folder / name
    batch = load_numpy_pickle(path)
    try:
        data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch["labels"], dtype=np.int64)
    except (KeyError, ValueError) as error:
        raise corrupt(path, f"it is not a CIFAR-10 batch ({error!r})") from error
    if len(data) != len(labels):
        raise corrupt(path, f"it holds {len(data):,} images but {len(labels):,} labels")
    check_batch(path, len(labels), PYTHON_MD5[name])
    return checked_labels(
        path, LabelledImages(torch.from_numpy(data.copy()), torch.from_numpy(labels))
    )


def check_batch(path: Path, count: int, official_md5: str) -> None:
    """A full batch must be byte-identical to the official one; a short one is reported."""
    if count == IMAGES_PER_BATCH:
        verify_md5(path, official_md5)
    else:
        log.warning(
            "%s holds %d images, the official file %d: training on part of CIFAR-10",
            path,
            count,
            IMAGES_PER_BATCH,
        )


def checked_labels(path: Path, batch: LabelledImages) -> LabelledImages:
    if batch.labels.min() < 0 or batch.labels.max() >= len(CLASS_NAMES):
        raise corrupt(path, f"it has labels outside 0..{len(CLASS_NAMES) - 1}")
    return batch


def read_class_names(folder: Path) -> list[str]:
    if folder.name == BINARY_FOLDER:
        meta = folder / "batches.meta.txt"
        names = meta.read_text().split() if meta.is_file() else CLASS_NAMES
    else:
        names = load_numpy_pickle(folder / "batches.meta").get("label_names", CLASS_NAMES)
    if len(names) != len(CLASS_NAMES):
        raise corrupt(folder / "batches.meta*", f"it names {len(names)} classes, not 10")
    return list(names)


class Cifar10:
    """CIFAR-10 as a built-in dataset of `imgclf.data.sources`."""

    expected_files = EXPECTED_FILES
    download_hint = DOWNLOAD_HINT
    find = staticmethod(find)
    download = staticmethod(download)
    read = staticmethod(read)
