"""A run's life as users meet it, with the default callbacks and logger: a stop at any phase
is reported as one, with the command that resumes it; the resumed run ends with everything an
uninterrupted one writes; any folder path resumes; two runs never share a folder; every run
folder is listed with its status."""

import csv
import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from imgclf.callbacks.curves import build_learning_curves_figure
from imgclf.overrides import override

from cli import REPO, command, environment, run_script, run_train, stopped_run
from configs import require_real_data

# Two short epochs of simple_cnn on the real MNIST, with every default callback and logger.
SHORT_RUN = [
    "experiment=mnist_quick",
    "trainer.max_epochs=2",
    "trainer.limit_train_batches=8",
    "trainer.limit_val_batches=3",
    "trainer.limit_test_batches=3",
    "trainer.log_every_n_steps=2",  # the learning-rate monitor logs
]


@pytest.fixture(scope="module")
def uninterrupted_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """A whole run's folder, and the wall time of its process."""
    run_dir = tmp_path_factory.mktemp("whole")
    started = time.monotonic()
    result = run_train(*SHORT_RUN, f"hydra.run.dir={run_dir}", data_dir=require_real_data("MNIST"))
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir, time.monotonic() - started


@pytest.fixture(scope="module")
def uninterrupted_dir(uninterrupted_run: tuple[Path, float]) -> Path:
    return uninterrupted_run[0]


@pytest.fixture(scope="module")
def uninterrupted(uninterrupted_dir: Path) -> dict:
    return json.loads((uninterrupted_dir / "metrics.json").read_text())


def test_a_run_counts_its_seconds_once(uninterrupted_run: tuple[Path, float]) -> None:
    """Testing the best checkpoint restores the record saved with it, seconds and all: they
    must not be added to the seconds this process has already counted."""
    run_dir, wall = uninterrupted_run
    assert 0 < json.loads((run_dir / "metrics.json").read_text())["seconds"] < wall


def resume(run_dir: Path) -> subprocess.CompletedProcess:
    return run_train(f"resume={run_dir}", data_dir=require_real_data("MNIST"))


def title(run_dir: Path) -> str:
    return (run_dir / "report.md").read_text().splitlines()[0]


@pytest.mark.parametrize(
    ("phase", "signal_name", "exit_code"),
    [
        ("sanity check", "SIGTERM", 143),
        ("fit", "SIGTERM", 143),
        ("validation", "SIGTERM", 143),
        ("test", "SIGTERM", 143),
        ("report", "SIGTERM", 143),
        ("test", "SIGINT", 130),
    ],
)
def test_a_stop_at_any_phase_is_reported_and_resumes_to_the_whole_record(
    phase: str, signal_name: str, exit_code: int, uninterrupted: dict,
    uninterrupted_dir: Path, tmp_path: Path,
) -> None:  # fmt: skip
    run_dir = tmp_path / "run"
    stopped = stopped_run(
        phase, signal_name, *SHORT_RUN, f"hydra.run.dir={run_dir}",
        data_dir=require_real_data("MNIST"),
    )  # fmt: skip
    assert stopped.returncode == exit_code, stopped.stderr[-3000:]
    resume_command = f"continue with: python train.py resume={run_dir}"
    assert resume_command in (run_dir / "train.log").read_text()
    record = json.loads((run_dir / "error.json").read_text())
    assert record["status"] == "stopped" and resume_command in record["error"]
    assert not (run_dir / "metrics.json").exists()

    resumed = resume(run_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    # Every train, val and test metric the uninterrupted run wrote, and the same test result.
    assert sorted(metrics) == sorted(uninterrupted)
    assert metrics["test/acc"] == pytest.approx(uninterrupted["test/acc"], abs=0.02)
    assert metrics["epochs"] == 2
    if phase in ("test", "report"):  # fitting had ended: the same fitted model, to the digit
        for name in ("val/acc_best", "train/loss", "test/acc", "test/loss"):
            assert metrics[name] == uninterrupted[name], name
        # The seconds of both processes: more than the fit the stopped one did.
        assert metrics["seconds"] > record["seconds"]
    assert title(run_dir) == title(uninterrupted_dir)
    results = (run_dir / "report.md").read_text().split("## Results")[1].split("##")[0]
    rows = [line.split("|")[1].strip() for line in results.splitlines() if line.startswith("| ")]
    assert rows[1:] and all(row.startswith(("train/", "val/", "test/")) for row in rows[1:])
    assert any(name.startswith("lr-") for name in metrics)  # logged, and left out of the table


# What a whole run writes to metrics.json, whatever its logger or preset (the speedruns
# train on every training image: no validation).
WHOLE_RECORD = ("train/loss", "test/acc", "test/loss", "epochs", "seconds")


def stop_and_resume(run_dir: Path, *overrides: str, data: str = "MNIST") -> dict:
    """A run stopped in its second epoch, then resumed: its metrics.json."""
    data_dir = require_real_data(data)
    stopped = stopped_run(
        "fit", "SIGTERM", *overrides, f"hydra.run.dir={run_dir}", data_dir=data_dir
    )
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    resumed = run_train(f"resume={run_dir}", data_dir=data_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert all(name in metrics for name in WHOLE_RECORD) and metrics["epochs"] == 2, metrics
    return metrics


def test_a_stopped_run_resumes_with_every_logger_at_once(tmp_path: Path) -> None:
    """TensorBoard, CSV and MLflow together (`logger=many`): each goes on where it stopped."""
    run_dir = tmp_path / "run"
    metrics = stop_and_resume(run_dir, *SHORT_RUN, "logger=many", f"paths.log_dir={tmp_path}")
    assert "val/acc_best" in metrics
    # One CSV log, continued: every logged step in it, once.
    (log,) = run_dir.glob("**/metrics.csv")
    with log.open() as file:
        steps = [int(row["step"]) for row in csv.DictReader(file) if row["lr-Adam"]]
    assert steps == list(range(1, 16, 2)), steps  # every 2nd of 2 epochs' 8 steps
    # One MLflow run, continued and finished, with each epoch's validation once and the
    # parameters it started with.
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("mnist").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["run_folder"] == str(run_dir)
    assert run.data.params["ckpt_path"] == "None"  # as it started
    epochs = [metric.step for metric in client.get_metric_history(run.info.run_id, "val/acc")]
    assert len(epochs) == 2 and len(set(epochs)) == 2, epochs
    assert run.data.metrics["test/acc"] == pytest.approx(metrics["test/acc"])


@pytest.mark.parametrize(
    ("preset", "data", "small_batches"),
    [
        ("cifar10_speedrun", "cifar-10-batches-bin", []),
        ("fashion_mnist_speedrun", "FashionMNIST", []),
        # The data's batches of 256 cost resnet18 minutes.
        ("cifar10_resnet18_sgd", "cifar-10-batches-bin", ["data.batch_size=32"]),
    ],
)
def test_a_stopped_run_resumes_with_every_preset(
    preset: str, data: str, small_batches: list[str], tmp_path: Path
) -> None:
    stop_and_resume(
        tmp_path / "run", f"experiment={preset}", "trainer.max_epochs=2",
        "trainer.limit_train_batches=3", "trainer.limit_val_batches=1",
        "trainer.limit_test_batches=1", *small_batches, data=data,
    )  # fmt: skip


def test_a_stopped_sweep_job_resumes(tmp_path: Path) -> None:
    """A stop ends the whole sweep; its first job, stopped in its second epoch, resumes."""
    sweep_dir = tmp_path / "sweep"
    stopped = stopped_run(
        "fit", "SIGTERM", "-m", *SHORT_RUN, "optimizer.lr=1e-3,3e-3",
        f"hydra.sweep.dir={sweep_dir}", data_dir=require_real_data("MNIST"),
    )  # fmt: skip
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    assert not (sweep_dir / "1").exists()
    resumed = run_train(f"resume={sweep_dir / '0'}", data_dir=require_real_data("MNIST"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    metrics = json.loads((sweep_dir / "0" / "metrics.json").read_text())
    assert all(name in metrics for name in WHOLE_RECORD) and metrics["epochs"] == 2
    assert "optimizer.lr=0.001" in (sweep_dir / "0" / ".hydra" / "overrides.yaml").read_text()


def test_resume_takes_any_folder_path_literally(uninterrupted: dict, tmp_path: Path) -> None:
    """Spaces, `=`, commas, brackets, quotes, non-ASCII: nothing in the path is override
    syntax. (Hydra itself reads a run folder named with `${` as an interpolation.)"""
    run_dir = tmp_path / "my runs=1,2 [best] 'a' \"b\" ünï 東京" / "run"
    stopped = stopped_run(
        "fit", "SIGTERM", *SHORT_RUN, override("hydra.run.dir", run_dir),
        data_dir=require_real_data("MNIST"),
    )  # fmt: skip
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    resumed = resume(run_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert sorted(json.loads((run_dir / "metrics.json").read_text())) == sorted(uninterrupted)
    assert not (tmp_path / "my runs=1").exists()


def test_two_runs_started_in_the_same_second_get_their_own_folders(tmp_path: Path) -> None:
    overrides = [*SHORT_RUN, "trainer.max_epochs=1", f"paths.log_dir={tmp_path}"]
    env = environment(require_real_data("MNIST"))
    processes = [
        subprocess.Popen(
            [*command("train.py", *overrides), f"seed={seed}"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for seed in (1, 2)
    ]
    for process in processes:
        assert process.wait(timeout=600) == 0, process.stderr.read()[-3000:]
    folders = sorted((tmp_path / "runs").iterdir())
    assert len(folders) == 2, folders
    seeds = {json.loads((f / "metrics.json").read_text())["best_checkpoint"]: f for f in folders}
    for folder in folders:  # each folder's config is the run whose metrics it holds
        config = (folder / ".hydra" / "overrides.yaml").read_text()
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["best_checkpoint"].startswith(str(folder) + "/")
        assert ("seed=1" in config) != ("seed=2" in config)
    assert len(seeds) == 2


def test_a_failed_run_leaves_its_error_and_a_running_one_cannot_be_resumed(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = run_train(
        *SHORT_RUN, "data.classes=[3,x]", f"hydra.run.dir={run_dir}",
        data_dir=require_real_data("MNIST"),
    )  # fmt: skip
    assert result.returncode == 2
    record = json.loads((run_dir / "error.json").read_text())
    assert record["status"] == "failed" and "data.classes names ['x']" in record["error"]

    running = subprocess.Popen(
        command("train.py", *SHORT_RUN, "trainer.max_epochs=50", f"hydra.run.dir={run_dir}2"),
        cwd=REPO, env=environment(require_real_data("MNIST")),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        last = run_dir.with_name("run2") / "checkpoints" / "last.ckpt"
        deadline = time.monotonic() + 300
        while not last.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        # Paused, the run still holds its folder's lock: running, and its core is free for
        # the commands below.
        running.send_signal(signal.SIGSTOP)
        second = run_train(f"resume={run_dir}2")
        assert second.returncode == 2
        assert "the run is still running" in second.stderr
        listed = run_script("scripts/compare_runs.py", str(run_dir), f"{run_dir}2")
        assert "| failed |" in listed.stdout and "| running |" in listed.stdout
    finally:
        running.kill()
        running.wait()


def test_compare_runs_lists_every_folder_with_its_status(
    uninterrupted_dir: Path, tmp_path: Path
) -> None:
    data_dir = require_real_data("MNIST")
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        command("train.py", *SHORT_RUN, "trainer.max_epochs=50", f"hydra.run.dir={killed}"),
        cwd=REPO, env=environment(data_dir), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while not (killed / "checkpoints" / "last.ckpt").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    process.kill()
    process.wait()
    stopped = tmp_path / "stopped"
    stopped_run("fit", "SIGTERM", *SHORT_RUN, f"hydra.run.dir={stopped}", data_dir=data_dir)
    finished = uninterrupted_dir
    not_a_run = tmp_path / "photos"
    not_a_run.mkdir()

    listed = run_script(
        "scripts/compare_runs.py", str(finished), str(stopped), str(killed), str(not_a_run)
    )
    assert listed.returncode == 0, listed.stderr
    rows = {line.split("|")[1].strip(): line for line in listed.stdout.splitlines()[2:]}
    assert set(rows) == {finished.name, "stopped", "killed"}
    assert "| completed |" in rows[finished.name]
    assert "| stopped |" in rows["stopped"] and "resume=" in rows["stopped"]
    assert "| killed |" in rows["killed"]
    assert f"not run folders (no .hydra/config.yaml), left out: {not_a_run}" in listed.stderr


def test_a_run_without_validation_draws_no_validation_curve(
    image_folder: Path, tmp_path: Path
) -> None:
    result = run_train(
        "data=image_folder", f"data.data_dir={image_folder}", "data.image_size=32",
        "data.val_ratio=0", "data.batch_size=8", "trainer.max_epochs=2",
        "callbacks.model_checkpoint.monitor=null", f"hydra.run.dir={tmp_path}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    history = json.loads((tmp_path / "figures" / "curves.json").read_text())
    figure = build_learning_curves_figure(history)
    for axis in figure.axes:
        assert axis.get_legend_handles_labels()[1] == ["train"]


@pytest.mark.parametrize("output", ["run folder", "named run folder", "mlflow store"])
def test_outputs_that_cannot_be_written_are_one_message_at_once(
    output: str, tmp_path: Path
) -> None:
    blocker = tmp_path / "a_file"  # a file where a folder should be: no user can write there
    blocker.write_text("")
    if output == "run folder":
        overrides, named = [f"paths.log_dir={blocker}/outputs"], f"run folder {blocker}/outputs"
    elif output == "named run folder":  # Hydra creates it before imgclf's checks run
        overrides = [f"hydra.run.dir={blocker}/run"]
        named = f"hydra.run.dir={blocker}/run: cannot create the folder {blocker}/run"
    else:
        overrides = [
            "logger=mlflow", f"logger.mlflow.tracking_uri=sqlite:///{blocker}/mlflow.db",
            f"hydra.run.dir={tmp_path / 'run'}",
        ]  # fmt: skip
        named = (
            f"logger.mlflow.tracking_uri=sqlite:///{blocker}/mlflow.db: cannot write into "
            f"{blocker} (it is a file, not a folder)"
        )
    started = time.monotonic()
    result = run_train(*SHORT_RUN, *overrides, data_dir=require_real_data("MNIST"))
    assert result.returncode == 2, result.stderr[-3000:]
    assert named in result.stderr and "Traceback" not in result.stderr
    assert time.monotonic() - started < 60
