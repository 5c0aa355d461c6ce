"""Runs on a real SLURM cluster (scripts/slurm_cluster.sh start, which CI runs): sweeps
submitted through hydra-submitit-launcher, DDP across the tasks of one `srun`, jobs that SLURM
warns of their end saving their place, requeued and finished, and an Optuna study shared by
the tasks of a job array. Everything goes through the real sbatch, srun, scancel and scontrol."""

import csv
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from cli import REPO, command, environment
from cluster import require_slurm_cluster
from configs import require_real_data


@pytest.fixture(scope="module", autouse=True)
def slurm_cluster() -> None:
    require_slurm_cluster()


# MNIST at about five seconds an epoch: time to warn a job after its first checkpoint.
MNIST_EPOCHS = [
    "experiment=mnist_quick",
    "trainer.max_epochs=3",
    "trainer.limit_train_batches=40",
    "trainer.limit_val_batches=5",
    "trainer.limit_test_batches=5",
    "callbacks=minimal",
]
# The test cluster's partition has CPUs only, and little memory to spare.
ON_THE_TEST_CLUSTER = [
    "hydra/launcher=slurm",
    "hydra.launcher.partition=debug",
    "hydra.launcher.gpus_per_node=0",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=15",
]


def wait_for(condition: Callable[[], object], what: str, timeout: float = 300) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.2)
    raise AssertionError(f"waited {timeout} s for {what}")


def job_fields(job_id: str) -> dict[str, str]:
    shown = subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, check=True
    ).stdout
    return dict(field.split("=", 1) for field in shown.split() if "=" in field)


def finished_job(job_id: str, timeout: float = 600) -> dict[str, str]:
    """The job's fields once it has ended, requeues and all."""
    ended = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")
    return wait_for(
        lambda: (fields := job_fields(job_id))["JobState"] in ended and fields,
        f"SLURM job {job_id} to end",
        timeout,
    )


def sbatch(*arguments: str) -> str:
    """Submit a job as a user does, from the repository's root with imgclf's Python first on
    the PATH (an active virtual environment); its id."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    submitted = subprocess.run(
        ["sbatch", "--parsable", *arguments], cwd=REPO,
        env=environment(require_real_data("MNIST/raw"), PATH=path),
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return submitted.stdout.strip().split(";")[0]


def run_folders(log_dir: Path) -> list[Path]:
    return sorted(path for path in (log_dir / "runs").iterdir() if not path.name.startswith("."))


def last_checkpoint_written(log_dir: Path) -> Path | None:
    return next(iter((log_dir / "runs").glob("*/checkpoints/last.ckpt")), None)


def test_sweep_jobs_run_as_slurm_jobs_and_a_warned_one_continues_once(tmp_path: Path) -> None:
    """submitit warns a job with SIGUSR2 before its time limit: the job saves its place,
    requeues itself and continues, and the sweep waits for it instead of counting it twice."""
    sweep_dir = tmp_path / "sweep"
    sweep = subprocess.Popen(
        command(
            "train.py", "-m", *ON_THE_TEST_CLUSTER, *MNIST_EPOCHS, "optimizer.lr=0.001,-1",
            f"hydra.sweep.dir={sweep_dir}",
        ),
        cwd=REPO, env=environment(require_real_data("MNIST/raw")),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    wait_for(lambda: (sweep_dir / "0" / "checkpoints" / "last.ckpt").exists(), "an epoch of job 0")
    # The sweep's jobs are one array; job 0 is its task 0.
    array_job = next((sweep_dir / ".submitit").glob("*_0")).name
    subprocess.run(["scancel", "--signal=USR2", array_job], check=True)
    output = sweep.communicate(timeout=600)[0]
    assert sweep.returncode == 0, output[-3000:]

    with (sweep_dir / "summary.csv").open() as file:
        rows = {row["overrides"].split()[-1]: row for row in csv.DictReader(file)}
    assert len(rows) == 2
    assert rows["optimizer.lr=-1"]["status"] == "failed"
    assert "optimizer.lr=-1 is not allowed" in rows["optimizer.lr=-1"]["error"]
    assert rows["optimizer.lr=0.001"]["status"] == "completed"
    # Job 0 stopped mid-run, was requeued, and its second start continued in its folder.
    assert job_fields(array_job)["Restarts"] == "1"
    assert "SLURM requeued job" in (sweep_dir / "0" / "error.json").read_text()
    assert "continuing from" in (sweep_dir / "0" / "train.log").read_text()
    assert json.loads((sweep_dir / "0" / "metrics.json").read_text())["epochs"] == 3


def test_ddp_across_two_slurm_tasks_is_one_run_counting_every_image_once(
    odd_folder: Path, tmp_path: Path
) -> None:
    """`srun` starts both processes and SLURM ranks them; Lightning starts none."""
    result = subprocess.run(
        [
            "srun", "--nodes=1", "--ntasks-per-node=2", "--cpus-per-task=1",
            *command(
                "train.py", "trainer=ddp_cpu", "data=image_folder",
                f"data.data_dir={odd_folder}", "data.image_size=32", "data.batch_size=4",
                "trainer.max_epochs=2", "callbacks=default", "callbacks.gradcam=null",
                f"paths.log_dir={tmp_path}",
            ),
        ],
        cwd=REPO, env=environment(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    for rank in (0, 1):
        assert f"GLOBAL_RANK: {rank}, MEMBER: {rank + 1}/2" in output
    [run_dir] = run_folders(tmp_path)
    assert not list(run_dir.glob("train_ddp_process_*.log"))  # none started by Lightning
    report = json.loads((run_dir / "classification_report.json").read_text())
    assert {name: row["support"] for name, row in report["classes"].items()} == {
        "cat": 3, "dog": 2, "fox": 2,
    }  # fmt: skip
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 2


def test_a_warned_ddp_job_saves_its_place_requeues_and_finishes(tmp_path: Path) -> None:
    """scripts/train.sbatch, as the docs submit it on GPUs but with 2 CPU processes; SLURM's
    warning before the time limit (its --signal=USR1@120) is sent at once. Both tasks stop at
    the same step, and the requeued job ends its epochs in its folder."""
    log_dir = tmp_path / "logs"
    job_id = sbatch(
        "--nodes=1", "--ntasks-per-node=2", "--gpus-per-node=0", "--cpus-per-task=1",
        f"--output={tmp_path / 'job.out'}", "scripts/train.sbatch", *MNIST_EPOCHS,
        f"paths.log_dir={log_dir}",
    )  # fmt: skip
    wait_for(lambda: last_checkpoint_written(log_dir), "the job's first epoch")
    subprocess.run(["scancel", "--signal=USR1", job_id], check=True)
    fields = finished_job(job_id)
    output = (tmp_path / "job.out").read_text()
    assert fields["JobState"] == "COMPLETED", output[-3000:]
    assert fields["Restarts"] == "1"
    for rank in (0, 1):
        assert f"GLOBAL_RANK: {rank}, MEMBER: {rank + 1}/2" in output
    [run_dir] = run_folders(log_dir)
    assert "SLURM requeued job" in (run_dir / "error.json").read_text()
    assert "continuing from" in output
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 3


def test_the_tasks_of_a_job_array_share_one_optuna_study(tmp_path: Path) -> None:
    database, sweep_dir = tmp_path / "study.db", tmp_path / "sweep"
    trials = [
        "python", "train.py", "hparams_search=optuna", *MNIST_EPOCHS, "trainer.max_epochs=1",
        "trainer.limit_train_batches=5", f"hydra.sweeper.storage=sqlite:///{database}",
        "hydra.sweeper.study_name=shared", "hydra.sweeper.n_trials=4",
        f"hydra.sweep.dir={sweep_dir}",
    ]  # fmt: skip
    job_id = sbatch(
        "--array=0-1",
        "--cpus-per-task=1",
        f"--output={tmp_path / 'task-%a.out'}",
        f"--wrap={shlex.join(trials)}",
    )
    for task in (0, 1):
        fields = finished_job(f"{job_id}_{task}")
        assert fields["JobState"] == "COMPLETED", (tmp_path / f"task-{task}.out").read_text()
    launched = [
        (tmp_path / f"task-{task}.out").read_text().count("Launching 1 jobs locally")
        for task in (0, 1)
    ]
    assert sum(launched) == 4, launched
    study = optuna.load_study(study_name="shared", storage=f"sqlite:///{database}")
    assert [trial.state for trial in study.trials] == [TrialState.COMPLETE] * 4
    jobs = sorted(int(path.name) for path in sweep_dir.iterdir() if path.is_dir())
    assert jobs == [0, 1, 2, 3]
