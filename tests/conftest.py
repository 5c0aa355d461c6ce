"""The fixtures: miniature datasets written once a session, real photos, and finished runs
that several tests read."""

import signal
from pathlib import Path

import pytest

from imgclf.resolvers import register_resolvers

from cli import made_folder
from configs import require_real_data
from dataset_files import (
    write_cifar_binary,
    write_cifar_python,
    write_idx_dataset,
    write_image_csv,
    write_image_folder,
)
from made_once import made_once, run_made_once


def pytest_configure() -> None:
    # As every app does before Hydra composes a config.
    register_resolvers()
    # The tests press Ctrl-C (send SIGINT) as a user in a terminal does. A shell starts its
    # background jobs with SIGINT ignored, and every process they start inherits that, so a
    # suite started with `&` would see runs ignore it. A Python handler is not inherited.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """This session's folder that every pytest-xdist worker sees (each has its own below it):
    the photos and runs that take seconds to make are made there once, not once a worker."""
    own = tmp_path_factory.getbasetemp()
    return own if worker_id == "master" else own.parent


@pytest.fixture(scope="session")
def fixture_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder with every built-in dataset in miniature: CIFAR-10 binary, MNIST as
    extracted IDX files and Fashion-MNIST as .gz files."""
    data_dir = tmp_path_factory.mktemp("data")
    write_cifar_binary(data_dir)
    write_idx_dataset(data_dir, "MNIST", gzipped=False)
    write_idx_dataset(data_dir, "FashionMNIST", gzipped=True)
    return data_dir


@pytest.fixture(scope="session")
def cifar_python_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("cifar_python")
    write_cifar_python(data_dir)
    return data_dir


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Class folders, with a labels.csv of the same images beside them."""
    root = write_image_folder(tmp_path_factory.mktemp("images") / "images")
    write_image_csv(root, root.parent / "labels.csv")
    return root


@pytest.fixture(scope="session")
def odd_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """21 training and 7 test images (3 + 2 + 2): shares that do not divide by 2 DDP
    processes."""
    root = tmp_path_factory.mktemp("odd")
    write_image_folder(root / "train", per_class=7)
    for name, count in (("cat", 3), ("dog", 2), ("fox", 2)):
        write_image_folder(root / "test", classes=(name,), per_class=count)
    return root


@pytest.fixture(scope="session")
def real_photos(shared_dir: Path) -> Path:
    """40 real CIFAR-10 cats and dogs, as JPEG photos of 160 to 480 pixels a side."""
    return made_once(shared_dir, "pets", lambda path: made_folder(
        "scripts/make_photo_folder.py", path, "--count", "40", "--classes", "cat,dog",
        data_dir=require_real_data("cifar-10-batches-bin"),
    ))  # fmt: skip


@pytest.fixture(scope="session")
def unplanted_photos(shared_dir: Path) -> Path:
    """Real CIFAR-10 photos of three classes (airplane, frog, truck; 200 training, 30
    validation and 100 test images of each, 40 to 80 pixels a side) in train/, val/ and
    test/ class folders: the audit's, before problems are planted in a copy."""
    return made_once(shared_dir, "unplanted", lambda path: made_folder(
        "scripts/make_photo_folder.py", path,
        "--per-class", "200", "--val-per-class", "30", "--test-per-class", "100",
        "--classes", "airplane,frog,truck", "--min-side", "40", "--max-side", "80",
        data_dir=require_real_data("cifar-10-batches-bin"),
    ))  # fmt: skip


@pytest.fixture(scope="session")
def cifar_run(fixture_data_dir: Path, shared_dir: Path) -> tuple:
    """Two epochs of deep_cnn on the CIFAR-10 fixture (100 train, 20 test images)."""
    return run_made_once(
        shared_dir, "cifar_run", fixture_data_dir,
        "data.download=false", "data.batch_size=16", "trainer.max_epochs=2",
        "trainer.accelerator=cpu", "callbacks.confusion_matrix.every_n_epochs=1",
    )  # fmt: skip


@pytest.fixture(scope="session")
def timm_run(fixture_data_dir: Path, shared_dir: Path) -> tuple:
    """Two epochs of two batches of timm's MobileNetV3 on the CIFAR-10 fixture, with every
    view: what imgclf draws and exports works for a timm network too."""
    return run_made_once(
        shared_dir, "timm_run", fixture_data_dir,
        "model=timm", "model.name=mobilenetv3_large_100", "data.download=false",
        "data.batch_size=16", "trainer.max_epochs=2", "trainer.limit_train_batches=2",
        "trainer.accelerator=cpu",
    )  # fmt: skip


@pytest.fixture(scope="session")
def mnist_run(shared_dir: Path) -> tuple:
    """One epoch of simple_cnn on 10,240 of the real MNIST training images: a model that has
    learned something, in about half a minute."""
    return run_made_once(
        shared_dir, "mnist_run", require_real_data("MNIST/raw"),
        "experiment=mnist_quick", "trainer.max_epochs=1", "trainer.limit_train_batches=40",
    )  # fmt: skip


@pytest.fixture(scope="session")
def mosaics(shared_dir: Path) -> Path:
    """Multi-label images: 400 training and 120 test mosaics of 1 to 4 real CIFAR-10 images,
    labelled by `labels.csv` (path,labels,split,tiles)."""
    return made_once(shared_dir, "mosaics", lambda path: made_folder(
        "scripts/make_multilabel_folder.py", path, "--train", "400", "--test", "120",
        data_dir=require_real_data("cifar-10-batches-bin"),
    ))  # fmt: skip


@pytest.fixture(scope="session")
def multi_label_run(mosaics: Path, shared_dir: Path) -> tuple:
    """Two epochs of simple_cnn on the mosaics, thresholds tuned on validation, with the
    default callbacks and logger."""
    return run_made_once(
        shared_dir, "multi_label_run", mosaics,
        "data=image_csv", f"data.csv_path={mosaics / 'labels.csv'}", "model=simple_cnn",
        "model.threshold=tuned", "data.batch_size=32", "trainer.max_epochs=2",
    )  # fmt: skip
