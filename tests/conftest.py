import json
import os
from pathlib import Path
from typing import Any

import lightning as L
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig

import imgclf.config  # noqa: F401  registers the config resolvers

from cli import run_script, run_train
from dataset_files import (
    write_cifar_binary,
    write_cifar_python,
    write_idx_dataset,
    write_image_csv,
    write_image_folder,
)

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO / "src" / "imgclf" / "conf"
DATASETS = ["cifar10", "mnist", "fashion_mnist", "image_folder", "image_csv"]
MODELS = ["simple_cnn", "deep_cnn", "vgg_cnn", "resnet18", "airbench"]
REAL_DATA_DIR = Path(os.environ.get("IMGCLF_DATA_DIR", REPO / "data"))


def compose_train_config(overrides: list[str], output_dir: Path) -> DictConfig:
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR), job_name="test"):
        return compose("train", overrides=[f"paths.output_dir={output_dir}", *overrides])


def fit_watched(
    overrides: list[str], output_dir: Path, watcher: L.Callback, **trainer_options: Any
) -> L.Trainer:
    """The config's model fitted on its data by a bare CPU Trainer, `watcher` looking on."""
    cfg = compose_train_config(overrides, output_dir)
    model = instantiate(
        cfg.model, optimizer=cfg.optimizer, scheduler=cfg.scheduler, _recursive_=False
    )
    trainer = L.Trainer(
        callbacks=[watcher], logger=False, enable_checkpointing=False, accelerator="cpu",
        enable_progress_bar=False, **trainer_options,
    )  # fmt: skip
    trainer.fit(model, datamodule=instantiate(cfg.data))
    return trainer


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


def data_overrides(dataset: str, fixture_data_dir: Path, image_folder: Path) -> list[str]:
    """The image folder fits in memory (cache=auto picks ram); the CSV's images stream from
    their files (cache=none), so every model meets both paths."""
    if dataset == "image_folder":
        return ["data=image_folder", f"data.data_dir={image_folder}", "data.image_size=32"]
    if dataset == "image_csv":
        csv_path = image_folder.parent / "labels.csv"
        return [
            "data=image_csv", f"data.csv_path={csv_path}", "data.image_size=32",
            "data.cache=none", "data.num_workers=0",
        ]  # fmt: skip
    return [f"data={dataset}", f"paths.data_dir={fixture_data_dir}", "data.download=false"]


def require_real_data(*relative_paths: str) -> Path:
    """The real datasets; CI points IMGCLF_DATA_DIR at them, so these tests run there."""
    missing = [p for p in relative_paths if not (REAL_DATA_DIR / p).exists()]
    if missing:
        pytest.skip(f"real data not in {REAL_DATA_DIR}: {missing} (set IMGCLF_DATA_DIR)")
    return REAL_DATA_DIR


@pytest.fixture(scope="session")
def real_photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 real CIFAR-10 cats and dogs, as JPEG photos of 160 to 480 pixels a side."""
    output = tmp_path_factory.mktemp("photos") / "pets"
    result = run_script(
        "scripts/make_photo_folder.py", str(output), "--count", "40", "--classes", "cat,dog",
        data_dir=require_real_data("cifar-10-batches-bin"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return output


def finished_run(run_dir: Path, data_dir: Path, *overrides: str) -> tuple[Path, dict]:
    """A training run from the command line, as a user runs it: its folder and metrics."""
    result = run_train(*overrides, f"hydra.run.dir={run_dir}", data_dir=data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, json.loads((run_dir / "metrics.json").read_text())


@pytest.fixture(scope="session")
def cifar_run(fixture_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """Two epochs of deep_cnn on the CIFAR-10 fixture (100 train, 20 test images)."""
    return finished_run(
        tmp_path_factory.mktemp("run"), fixture_data_dir,
        "data.download=false", "data.batch_size=16", "trainer.max_epochs=2",
        "trainer.accelerator=cpu", "callbacks.confusion_matrix.every_n_epochs=1",
    )  # fmt: skip


@pytest.fixture(scope="session")
def timm_run(fixture_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """Two epochs of two batches of timm's MobileNetV3 on the CIFAR-10 fixture, with every
    view: what imgclf draws and exports works for a timm network too."""
    return finished_run(
        tmp_path_factory.mktemp("timm_run"), fixture_data_dir,
        "model=timm", "model.name=mobilenetv3_large_100", "data.download=false",
        "data.batch_size=16", "trainer.max_epochs=2", "trainer.limit_train_batches=2",
        "trainer.accelerator=cpu",
    )  # fmt: skip


@pytest.fixture(scope="session")
def mnist_run(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """One epoch of simple_cnn on 10,240 of the real MNIST training images: a model that has
    learned something, in about half a minute."""
    return finished_run(
        tmp_path_factory.mktemp("mnist_run"), require_real_data("MNIST/raw"),
        "experiment=mnist_quick", "trainer.max_epochs=1", "trainer.limit_train_batches=40",
    )  # fmt: skip
