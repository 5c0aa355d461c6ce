"""Missing and corrupt data stop the run with one message naming the files and the fix."""

from pathlib import Path

import numpy as np
import pytest

from imgclf.data import sources
from imgclf.errors import CorruptDataError, DataNotFoundError

from cli import run_train
from dataset_files import write_cifar_binary, write_idx_dataset


def test_missing_dataset_without_download_names_folder_and_expected_files(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError) as error:
        sources.ensure_available("cifar10", tmp_path, download=False)
    message = str(error.value)
    assert str(tmp_path) in message
    assert "cifar-10-batches-bin" in message and "data_batch_1..5" in message
    assert "data.download=false" in message


def test_failed_download_on_the_command_line_is_one_message_without_traceback(
    tmp_path: Path,
) -> None:
    # No network reaches the download servers here: the download must fail and say how to fix it.
    # (Where one does, the dataset would download, so use a folder that cannot be written.)
    unwritable = tmp_path / "not_a_folder"
    unwritable.write_text("a file where the data folder should be")
    result = run_train(
        "data=mnist", "debug=fast_dev_run", f"hydra.run.dir={tmp_path / 'run'}", data_dir=unwritable
    )
    assert result.returncode == 2, result.stderr
    assert "imgclf: error: dataset 'mnist' is not in" in result.stderr
    assert "MNIST/raw/{train-images-idx3-ubyte" in result.stderr
    assert "the download failed" in result.stderr
    assert "Traceback" not in result.stderr


def test_truncated_cifar_batch_is_named(tmp_path: Path) -> None:
    folder = write_cifar_binary(tmp_path)
    batch = folder / "data_batch_3.bin"
    batch.write_bytes(batch.read_bytes()[:-100])
    result = run_train(
        "data=cifar10", "debug=fast_dev_run", f"hydra.run.dir={tmp_path / 'run'}", data_dir=tmp_path
    )
    assert result.returncode == 2
    assert f"imgclf: error: {batch} is corrupt" in result.stderr
    assert "not a whole number of 3,073-byte records" in result.stderr
    assert "Traceback" not in result.stderr


def test_altered_full_size_cifar_batch_fails_its_checksum(tmp_path: Path) -> None:
    folder = write_cifar_binary(tmp_path)
    records = np.zeros((10_000, 3073), dtype=np.uint8)  # a full batch, but not the official bytes
    (folder / "test_batch.bin").write_bytes(records.tobytes())
    with pytest.raises(CorruptDataError, match=r"test_batch.bin is corrupt: its MD5 is"):
        sources.load("cifar10", tmp_path)


def test_truncated_gzip_idx_file_is_named(tmp_path: Path) -> None:
    raw = write_idx_dataset(tmp_path, "FashionMNIST", gzipped=True)
    images = raw / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:-20])
    with pytest.raises(
        CorruptDataError, match="t10k-images-idx3-ubyte.gz is corrupt: it cannot be decompressed"
    ):
        sources.load("fashion_mnist", tmp_path)


def test_idx_file_shorter_than_its_header_promises_is_named(tmp_path: Path) -> None:
    raw = write_idx_dataset(tmp_path, "MNIST", gzipped=False)
    labels = raw / "train-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:-5])
    with pytest.raises(
        CorruptDataError, match="train-labels-idx1-ubyte is corrupt: its header promises"
    ):
        sources.load("mnist", tmp_path)


def test_reading_a_dataset_that_is_not_there_names_what_it_expected(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=r"expected: MNIST/raw/\{train-images-idx3-ubyte"):
        sources.load("mnist", tmp_path)
