"""The readers on fixtures in each format and on the real dataset files."""

from pathlib import Path

import torch
from torchvision.datasets import MNIST

from imgclf.data import cifar10, sources
from imgclf.data.idx import IdxDataset

from configs import require_real_data
from dataset_files import write_cifar_binary, write_cifar_python, write_idx_dataset


def test_cifar_binary_and_python_versions_read_the_same_images(tmp_path: Path) -> None:
    binary = cifar10.read(write_cifar_binary(tmp_path))
    python = cifar10.read(write_cifar_python(tmp_path))
    assert torch.equal(binary.train.images, python.train.images)
    assert torch.equal(binary.test.labels, python.test.labels)
    assert binary.class_names == python.class_names == cifar10.CLASS_NAMES
    assert binary.train.images.shape == (100, 3, 32, 32)


def test_idx_plain_and_gzipped_read_the_same_images(tmp_path: Path) -> None:
    plain = write_idx_dataset(tmp_path / "plain", "MNIST", gzipped=False)
    zipped = write_idx_dataset(tmp_path / "zipped", "MNIST", gzipped=True)
    mnist = IdxDataset(MNIST)
    a, b = mnist.read(plain), mnist.read(zipped)
    assert torch.equal(a.train.images, b.train.images)
    assert a.train.images.shape == (100, 1, 28, 28)
    assert a.class_names[:3] == ["0", "1", "2"]


def test_real_cifar10_has_5000_train_and_1000_test_images_per_class() -> None:
    data_dir = require_real_data("cifar-10-batches-bin/test_batch.bin")
    splits = sources.load("cifar10", data_dir)
    assert splits.train.images.shape == (50_000, 3, 32, 32)
    assert splits.test.images.shape == (10_000, 3, 32, 32)
    assert splits.train.images.dtype == torch.uint8
    assert torch.bincount(splits.train.labels).tolist() == [5_000] * 10
    assert torch.bincount(splits.test.labels).tolist() == [1_000] * 10
    assert splits.class_names == cifar10.CLASS_NAMES


def test_real_mnist_and_fashion_mnist_counts_and_shapes() -> None:
    data_dir = require_real_data("MNIST/raw", "FashionMNIST/raw")
    for name in ("mnist", "fashion_mnist"):
        splits = sources.load(name, data_dir)
        assert splits.train.images.shape == (60_000, 1, 28, 28)
        assert splits.test.images.shape == (10_000, 1, 28, 28)
        assert torch.bincount(splits.test.labels).sum() == 10_000
        assert len(torch.unique(splits.train.labels)) == 10
    assert splits.class_names[0] == "T-shirt/top"
