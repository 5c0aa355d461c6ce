"""Scale out: multirun grids with a leaderboard, failed jobs that do not stop a sweep, Optuna,
the submitit launcher, TensorBoard's HParams, DDP on two CPU processes."""

import csv
import json
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from tensorboard.plugins.hparams import plugin_data_pb2

from cli import run_script, run_train
from configs import require_real_data
from views import load_events

# One quick epoch on the CIFAR-10 fixture, checkpoints but no figures.
QUICK = ["data.batch_size=16", "trainer.max_epochs=1", "callbacks=minimal"]


def read_summary(sweep_dir: Path) -> list[dict]:
    with (sweep_dir / "summary.csv").open() as file:
        return list(csv.DictReader(file))


def test_grid_sweep_runs_each_job_in_its_folder_and_writes_a_summary(
    fixture_data_dir: Path, tmp_path: Path
) -> None:
    result = run_train(
        "-m", *QUICK, "optimizer.lr=0.001,0.003", "model=simple_cnn,deep_cnn",
        f"hydra.sweep.dir={tmp_path}", data_dir=fixture_data_dir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(path.name for path in tmp_path.iterdir() if path.is_dir())
    assert jobs == ["0", "1", "2", "3"]
    for job in jobs:
        assert (tmp_path / job / "metrics.json").is_file()
    rows = read_summary(tmp_path)
    assert len(rows) == 4 and {row["status"] for row in rows} == {"completed"}
    swept = {" ".join(row["overrides"].split()[len(QUICK) :]) for row in rows}
    assert swept == {
        f"optimizer.lr={lr} model={model}"
        for lr in ("0.001", "0.003")
        for model in ("simple_cnn", "deep_cnn")
    }
    best = [float(row["val/acc_best"]) for row in rows]
    assert best == sorted(best, reverse=True)
    assert "| job | status | overrides |" in (tmp_path / "summary.md").read_text()

    # The same table for any run folders.
    compared = run_script("scripts/compare_runs.py", *(str(tmp_path / job) for job in jobs))
    assert compared.returncode == 0, compared.stderr
    assert compared.stdout.count("| completed |") == 4


def sweep_learning_rates(rates: str, sweep_dir: Path, data_dir: Path) -> CompletedProcess:
    return run_train(
        "-m", *QUICK, f"optimizer.lr={rates}", f"hydra.sweep.dir={sweep_dir}", data_dir=data_dir
    )


def test_a_failing_job_is_listed_as_failed_and_the_others_complete(
    fixture_data_dir: Path, tmp_path: Path
) -> None:
    result = sweep_learning_rates("0.001,-1,0.002", tmp_path, fixture_data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {row["overrides"].split()[-1]: row for row in read_summary(tmp_path)}
    assert rows["optimizer.lr=-1"]["status"] == "failed"
    assert "optimizer.lr=-1 is not allowed" in rows["optimizer.lr=-1"]["error"]
    for lr in ("0.001", "0.002"):
        assert rows[f"optimizer.lr={lr}"]["status"] == "completed"
    assert list(read_summary(tmp_path))[-1]["status"] == "failed"  # failures sort last


def test_a_sweep_whose_every_job_failed_exits_non_zero(
    fixture_data_dir: Path, tmp_path: Path
) -> None:
    result = sweep_learning_rates("-1,-2", tmp_path, fixture_data_dir)
    assert result.returncode == 1
    assert "every job of the sweep failed" in result.stdout  # Hydra logs to stdout
    assert {row["status"] for row in read_summary(tmp_path)} == {"failed"}


def test_optuna_search_runs_its_trials_and_reports_the_best(
    fixture_data_dir: Path, tmp_path: Path
) -> None:
    result = run_train(
        "hparams_search=optuna", "hydra.sweeper.n_trials=3", "model=vgg_cnn", *QUICK,
        f"hydra.sweep.dir={tmp_path}", data_dir=fixture_data_dir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_summary(tmp_path)
    assert len(rows) == 3 and {row["status"] for row in rows} == {"completed"}
    for row in rows:
        assert "optimizer.lr=" in row["overrides"] and "data.batch_size=" in row["overrides"]
    assert "best_value" in (tmp_path / "optimization_results.yaml").read_text()


def test_submitit_local_launcher_runs_real_jobs(fixture_data_dir: Path, tmp_path: Path) -> None:
    result = run_train(
        "-m", "hydra/launcher=submitit_local", *QUICK, "optimizer.lr=0.001,0.002",
        f"hydra.sweep.dir={tmp_path}", data_dir=fixture_data_dir, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_summary(tmp_path)
    assert len(rows) == 2 and {row["status"] for row in rows} == {"completed"}
    assert (tmp_path / ".submitit").is_dir()


def test_hyperparameters_and_final_metrics_reach_the_hparams_tab(cifar_run: tuple) -> None:
    run_dir, metrics = cifar_run
    events = load_events(run_dir)
    content = events.PluginTagToContent("hparams")
    session = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]
    ).session_start_info
    assert session.hparams["optimizer.lr"].number_value == pytest.approx(0.24)
    assert session.hparams["data.dataset"].string_value == "cifar10"
    assert session.hparams["callbacks.confusion_matrix.every_n_epochs"].number_value == 1
    (final,) = events.Scalars("hp/test_acc")
    assert final.value == pytest.approx(metrics["test/acc"])


def test_ddp_on_two_cpu_processes_matches_a_single_process(tmp_path: Path) -> None:
    data_dir = require_real_data("MNIST/raw")
    # Two ranks of batch 128 see the same images per step as one process with batch 256.
    common = ["experiment=mnist_quick", "trainer.max_epochs=1", "callbacks=minimal",
              "trainer.limit_train_batches=60"]  # fmt: skip
    single = run_train(*common, f"hydra.run.dir={tmp_path / 'single'}", data_dir=data_dir)
    assert single.returncode == 0, single.stderr[-3000:]
    ddp = run_train(
        *common, "trainer=ddp_cpu", "data.batch_size=128", f"hydra.run.dir={tmp_path / 'ddp'}",
        data_dir=data_dir,
    )  # fmt: skip
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["ddp", "single"]
    single_metrics = json.loads((tmp_path / "single" / "metrics.json").read_text())
    ddp_metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert ddp_metrics["test/acc"] > 0.9
    assert ddp_metrics["test/acc"] == pytest.approx(single_metrics["test/acc"], abs=0.02)
