"""Configs composed as the apps compose them, models built from them, the datasets the tests
use, and runs started from the command line."""

import json
import os
from pathlib import Path
from typing import Any

import lightning as L
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig

from imgclf.app import CONFIG_DIR as APP_CONFIG_DIR
from imgclf.builders import build_model

from cli import run_train

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = Path(APP_CONFIG_DIR)
DATASETS = ["cifar10", "mnist", "fashion_mnist", "image_folder", "image_csv"]
MODELS = ["simple_cnn", "deep_cnn", "vgg_cnn", "resnet18", "airbench"]
REAL_DATA_DIR = Path(os.environ.get("IMGCLF_DATA_DIR", REPO / "data"))


def compose_train_config(
    overrides: list[str], output_dir: Path, with_hydra: bool = False
) -> DictConfig:
    """The config `python train.py <overrides>` runs; `with_hydra`: with its `hydra` node."""
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR), job_name="test"):
        overrides = [f"paths.output_dir={output_dir}", *overrides]
        return compose("train", overrides=overrides, return_hydra_config=with_hydra)


def composed_model(overrides: list[str], output_dir: Path) -> L.LightningModule:
    """The model `python train.py <overrides>` trains, as it starts."""
    return build_model(compose_train_config(overrides, output_dir))


def fit_watched(
    overrides: list[str], output_dir: Path, watcher: L.Callback, **trainer_options: Any
) -> L.Trainer:
    """The config's model fitted on its data by a bare CPU Trainer, `watcher` looking on."""
    cfg = compose_train_config(overrides, output_dir)
    model = build_model(cfg)
    trainer = L.Trainer(
        callbacks=[watcher], logger=False, enable_checkpointing=False, accelerator="cpu",
        enable_progress_bar=False, **trainer_options,
    )  # fmt: skip
    trainer.fit(model, datamodule=instantiate(cfg.data))
    return trainer


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


def finished_run(run_dir: Path, data_dir: Path, *overrides: str) -> tuple[Path, dict]:
    """A training run from the command line, as a user runs it: its folder and metrics."""
    result = run_train(*overrides, f"hydra.run.dir={run_dir}", data_dir=data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, json.loads((run_dir / "metrics.json").read_text())
