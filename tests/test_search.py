"""Optuna search through imgclf's sweeper: a search space per model, studies kept in a
database that a stopped sweep continues and several workers share."""

import multiprocessing
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.trial import TrialState

from imgclf import search

from cli import REPO, command, environment, run_train
from configs import MODELS, compose_train_config, require_real_data

# Trials of one short epoch of simple_cnn on the real MNIST.
TRIAL = [
    "hparams_search=optuna",
    "experiment=mnist_quick",
    "trainer.max_epochs=1",
    "trainer.limit_train_batches=5",
    "trainer.limit_val_batches=2",
    "trainer.limit_test_batches=2",
    "callbacks=minimal",
]


@pytest.mark.parametrize("model", [*MODELS, "timm", "torchvision"])
def test_every_model_searches_keys_it_has(model: str, tmp_path: Path) -> None:
    cfg = compose_train_config([f"model={model}", "hparams_search=optuna"], tmp_path, True)
    space = cfg.hydra.sweeper.params
    assert "optimizer.lr" in space and len(space) > 3  # the common keys and the model's own
    for key in space:
        assert OmegaConf.select(cfg, key, default=KeyError) is not KeyError, key


def test_a_searched_key_the_model_lacks_is_one_message_before_any_trial(tmp_path: Path) -> None:
    data_dir = require_real_data("MNIST/raw")
    result = run_train(
        *TRIAL, "model.net.block_dropout=interval(0.0, 0.3)", f"hydra.sweep.dir={tmp_path}",
        data_dir=data_dir,
    )  # fmt: skip
    assert result.returncode == 2
    assert "imgclf: error: hydra.sweeper.params searches model.net.block_dropout" in result.stderr
    assert "model=simple_cnn" in result.stderr
    assert not [path for path in tmp_path.glob("*") if path.is_dir()]


def test_a_model_without_a_search_space_is_told_how_to_give_one(tmp_path: Path) -> None:
    own = tmp_path / "my_conf" / "model"
    own.mkdir(parents=True)
    (own / "tiny_cnn.yaml").write_text("defaults:\n  - simple_cnn\n  - _self_\n")
    result = run_train(
        "--config-dir", str(tmp_path / "my_conf"), *TRIAL, "model=tiny_cnn",
        f"hydra.sweep.dir={tmp_path / 'sweep'}", data_dir=require_real_data("MNIST/raw"),
    )  # fmt: skip
    assert result.returncode == 2
    assert "model=tiny_cnn has no search_space/optuna/tiny_cnn.yaml" in result.stderr


def test_trials_stopped_from_outside_or_asked_too_many_leave_their_slots_free() -> None:
    study = optuna.create_study()
    for trial in (
        optuna.trial.create_trial(state=TrialState.COMPLETE, value=0.5),
        optuna.trial.create_trial(state=TrialState.RUNNING),
        optuna.trial.create_trial(state=TrialState.FAIL, user_attrs={search.JOB_FAILED: True}),
        optuna.trial.create_trial(state=TrialState.FAIL),
    ):
        study.add_trial(trial)
    # Finished, running and failed by its job: three; stopped from outside (the last): none.
    assert search.counted(study.trials) == 3
    assert search.counted(study.trials, before=2) == 2
    assert search.claim_trial(study, 3, {}) is None
    claimed = search.claim_trial(study, 4, {})
    assert claimed is not None and claimed.number == 4
    assert search.claim_trial(study, 4, {}) is None


def open_shared_study(url: str) -> None:
    search.open_study(url, "shared", "maximize", optuna.samplers.RandomSampler(), 60, None)


def test_workers_opening_a_new_database_at_once_all_get_the_study(tmp_path: Path) -> None:
    """They race to create its tables and record its schema version; losers retry."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(6) as pool:
        for attempt in range(4):
            url = f"sqlite:///{tmp_path / f'study{attempt}.db'}"
            pool.map(open_shared_study, [url] * 6)  # raises what any worker raised


def study_options(database: Path, n_trials: int) -> list[str]:
    return [
        f"hydra.sweeper.storage=sqlite:///{database}",
        "hydra.sweeper.study_name=shared",
        f"hydra.sweeper.n_trials={n_trials}",
    ]


def worker(sweep_dir: Path, database: Path, n_trials: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        command(
            "train.py", *TRIAL, *study_options(database, n_trials), f"hydra.sweep.dir={sweep_dir}",
            *extra,
        ),
        cwd=REPO, env=environment(require_real_data("MNIST/raw")),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def trials(database: Path) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="shared", storage=f"sqlite:///{database}").trials


def completed(database: Path) -> list[optuna.trial.FrozenTrial]:
    return [trial for trial in trials(database) if trial.state == TrialState.COMPLETE]


def job_overrides(job_dir: Path) -> list[str]:
    return list(OmegaConf.load(job_dir / ".hydra" / "overrides.yaml"))


def test_two_workers_share_one_study_and_a_later_sweep_continues_it(tmp_path: Path) -> None:
    database, sweep_dir = tmp_path / "study.db", tmp_path / "sweep"
    workers = [worker(sweep_dir, database, 5) for _ in range(2)]
    outputs = [process.communicate(timeout=600)[0] for process in workers]
    for process, output in zip(workers, outputs, strict=True):
        assert process.returncode == 0, output[-3000:]
    launched = [output.count("Launching 1 jobs locally") for output in outputs]
    assert sum(launched) == 5 and min(launched) >= 1, launched  # both took part

    done = completed(database)
    assert sorted(trial.number for trial in done) == sorted({trial.number for trial in done})
    assert len(done) == 5
    # Each trial ran once, in the folder of its number, with the parameters the study holds.
    jobs = sorted(int(path.name) for path in sweep_dir.iterdir() if path.is_dir())
    assert jobs == sorted(trial.number for trial in done)
    for trial in done:
        overrides = job_overrides(sweep_dir / str(trial.number))
        assert f"optimizer.lr={trial.params['optimizer.lr']}" in overrides
    assert len({trial.params["optimizer.lr"] for trial in done}) == 5  # no draw repeated

    # Asked for 6 in all, a later sweep runs the one that is missing; at 6, none.
    more = worker(sweep_dir, database, 6)
    assert more.wait(timeout=600) == 0
    assert len(completed(database)) == 6
    again = worker(sweep_dir, database, 6)
    assert again.wait(timeout=600) == 0
    assert len(completed(database)) == 6


# A stopped sweep's exit status: 128 + the signal, as a shell reports it, or killed.
STOPPED_STATUS = {signal.SIGTERM: 143, signal.SIGINT: 130, signal.SIGKILL: -signal.SIGKILL}


@pytest.mark.parametrize("signal_number", list(STOPPED_STATUS))
def test_a_trial_stopped_from_outside_is_run_again_by_the_next_sweep(
    signal_number: int, tmp_path: Path
) -> None:
    """SIGTERM is a scheduler's stop, SIGINT a user's Ctrl-C; SIGKILL leaves the trial running
    in the database until its heartbeat's grace period passes."""
    database, sweep_dir = tmp_path / "study.db", tmp_path / "sweep"
    heartbeat = ["hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=2"]
    long_trial = ["trainer.max_epochs=3", "trainer.limit_train_batches=25"]
    process = worker(sweep_dir, database, 2, *heartbeat, *long_trial)
    last = sweep_dir / "0" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the sweep ended before it could be stopped"
    process.send_signal(signal_number)
    output = process.communicate(timeout=120)[0]
    assert process.returncode == STOPPED_STATUS[signal_number], output[-3000:]
    killed = signal_number == signal.SIGKILL
    assert [trial.state for trial in trials(database)] == [
        TrialState.RUNNING if killed else TrialState.FAIL
    ]
    assert not (sweep_dir / "1").exists()  # the sweep stopped, not only its trial

    time.sleep(3)  # past the grace period of the killed worker's last heartbeat
    resumed = worker(sweep_dir, database, 2, *heartbeat)
    output = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, output[-3000:]
    states = [trial.state for trial in trials(database)]
    assert states == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
