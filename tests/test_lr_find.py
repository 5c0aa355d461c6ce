"""`tune=lr_find`: Lightning's learning-rate finder on the composed run, from the command line."""

import json
from pathlib import Path

import pytest
import torch

from cli import run_train
from configs import require_real_data
from views import assert_real_picture, load_events

FIND = ["experiment=mnist_quick", "tune=lr_find", "tune.lr_find.num_training=30"]


def test_lr_find_draws_the_loss_against_the_rate_and_suggests_one(tmp_path: Path) -> None:
    data_dir = require_real_data("MNIST/raw")
    result = run_train(*FIND, f"hydra.run.dir={tmp_path}", data_dir=data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    suggestion = metrics["tune/lr_suggested"]
    assert f"loss falls fastest at {suggestion:.3g}" in (tmp_path / "train.log").read_text()
    # Not the first rates tried: the suggestion skips them, where the loss has not moved.
    assert 1e-5 < suggestion < 1.0
    assert_real_picture((tmp_path / "figures" / "lr_find.png").read_bytes())
    events = load_events(tmp_path)
    assert "tune/lr_find" in events.Tags()["images"]
    assert events.Scalars("tune/lr_suggested")[0].value == pytest.approx(suggestion)
    # It only finds the rate: no training run, no checkpoint.
    assert not (tmp_path / "checkpoints").exists()


def test_lr_find_with_apply_trains_with_the_suggested_rate(tmp_path: Path) -> None:
    data_dir = require_real_data("MNIST/raw")
    result = run_train(
        *FIND, "tune.apply=true", "trainer.max_epochs=1", "trainer.limit_train_batches=40",
        "callbacks=minimal", f"hydra.run.dir={tmp_path}", data_dir=data_dir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["optimizer"]["lr"] == metrics["tune/lr_suggested"]
    assert checkpoint["global_step"] == 40
    assert "test/acc" in metrics


def test_lr_find_refuses_muon_per_group_rates_before_reading_data(tmp_path: Path) -> None:
    result = run_train(
        "experiment=cifar10_speedrun", "tune=lr_find", f"hydra.run.dir={tmp_path}",
        data_dir=tmp_path / "no_data",
    )  # fmt: skip
    assert result.returncode == 2
    assert "tune=lr_find cannot tune optimizer=muon" in result.stderr
    assert "hparams_search=optuna" in result.stderr
    assert "Traceback" not in result.stderr
