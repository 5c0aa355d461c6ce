"""`logger=mlflow` and `logger=many`: a run read back from a real MLflow SQLite store, through
MLflow's client and through a real `mlflow ui` server."""

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from cli import command, environment, free_loopback_port, run_train
from configs import require_real_data


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """Two short epochs of simple_cnn on the real MNIST, logged to TensorBoard, CSV and MLflow,
    started from a folder of its own as a user would: (that folder, the run folder, metrics)."""
    data_dir = require_real_data("MNIST/raw")
    workdir = tmp_path_factory.mktemp("tracked")
    result = subprocess.run(
        command(
            "train.py", "experiment=mnist_quick", "logger=many", "callbacks.ema.decay=0.9",
            "data.augment.mixup=0.2", "trainer.max_epochs=2", "trainer.limit_train_batches=10",
            "trainer.limit_val_batches=5", "trainer.limit_test_batches=5",
            "trainer.log_every_n_steps=5",
        ),
        cwd=workdir, env=environment(data_dir), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (workdir / "outputs" / "runs").iterdir()
    return workdir, run_dir, json.loads((run_dir / "metrics.json").read_text())


def the_run(workdir: Path):  # noqa: ANN201
    client = MlflowClient(f"sqlite:///{workdir}/outputs/mlflow.db")
    experiment = client.get_experiment_by_name("mnist")
    (run,) = client.search_runs([experiment.experiment_id])
    return client, run


def test_run_records_the_config_metrics_and_files(tracked_run: tuple) -> None:
    workdir, run_dir, metrics = tracked_run
    client, run = the_run(workdir)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "simple_cnn_mnist"
    params = run.data.params
    assert params["model.net._target_"] == "imgclf.models.SimpleCNN"
    assert params["callbacks.ema.decay"] == "0.9"
    assert params["data.augment.mixup"] == "0.2"
    assert params["trainer.max_epochs"] == "2"
    assert run.data.tags["run_folder"] == str(run_dir.resolve())
    assert run.data.metrics["test/acc"] == pytest.approx(metrics["test/acc"])
    # Per epoch and per step.
    assert len(client.get_metric_history(run.info.run_id, "val/acc")) == 2
    assert len(client.get_metric_history(run.info.run_id, "lr-Adam")) == 4

    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.json", "report.md", "figures", "checkpoints"} <= artifacts
    figures = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
    assert "figures/confusion_matrix.png" in figures
    best = Path(metrics["best_checkpoint"]).name
    local = Path(client.download_artifacts(run.info.run_id, f"checkpoints/{best}", str(workdir)))
    checkpoint = torch.load(local, weights_only=True)
    # The weight EMA's checkpoint: the average, with the trained weights beside it.
    assert "current_model_state" in checkpoint
    assert local.read_bytes() == Path(metrics["best_checkpoint"]).read_bytes()


def test_mlflow_ui_serves_the_run(tracked_run: tuple) -> None:
    workdir, _, metrics = tracked_run
    _, run = the_run(workdir)
    port = free_loopback_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "ui", "--backend-store-uri",
         "sqlite:///outputs/mlflow.db", "--host", "127.0.0.1", "--port", str(port)],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        served = None
        deadline = time.monotonic() + 120
        while served is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(
                    f"{url}/get-artifact?path=metrics.json&run_uuid={run.info.run_id}", timeout=10
                ) as response:
                    served = json.loads(response.read())
            except OSError:
                time.sleep(0.5)  # not listening yet
        assert served == metrics
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_each_job_of_a_sweep_is_a_run_named_after_its_overrides(
    fixture_data_dir: Path, tmp_path: Path
) -> None:
    result = run_train(
        "-m", "data.batch_size=16", "trainer.max_epochs=1", "callbacks=minimal",
        "logger=mlflow", f"paths.log_dir={tmp_path}", "optimizer.lr=0.1,0.2",
        f"hydra.sweep.dir={tmp_path / 'sweep'}", data_dir=fixture_data_dir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("cifar10").experiment_id])
    common = (
        f"data.batch_size=16 trainer.max_epochs=1 callbacks=minimal logger=mlflow "
        f"paths.log_dir={tmp_path}"
    )
    assert sorted(run.info.run_name for run in runs) == [
        f"deep_cnn_cifar10 #0 {common} optimizer.lr=0.1",
        f"deep_cnn_cifar10 #1 {common} optimizer.lr=0.2",
    ]
