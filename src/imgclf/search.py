"""Hyperparameter search on Optuna's ask-and-tell API, for imgclf's Hydra sweeper
(hydra_plugins/imgclf_optuna_sweeper.py).

`n_trials` is the study's total, not a count per process: every sweep that opens the same
stored study (`storage=sqlite:///...` or any RDB URL) works towards it, so a stopped sweep
continues where it was and several workers share one search without running a trial twice.
A worker claims a trial by asking Optuna for one and keeping it only if fewer than `n_trials`
trials that count come before it (the storage numbers trials in the order it creates them);
one asked too many is marked failed, unrun. Trials that count: finished, running, or failed
by their job's own error. Those stopped from outside (SIGTERM, Ctrl-C, a worker silent past its
heartbeat's grace period) do not count, so their slots are run again."""

import logging
import math
import random
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import optuna
import sqlalchemy
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
)
from hydra.core.utils import JobReturn, JobStatus
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, Trial, TrialState

from imgclf.errors import UserError

log = logging.getLogger(__name__)

# The user attribute that marks a trial whose job failed by its own error: it counts towards
# n_trials (running it again would fail again), unlike a trial stopped from outside.
JOB_FAILED = "imgclf_job_failed"
OPEN_STATES = (TrialState.RUNNING, TrialState.WAITING)


def distribution(override: Override) -> BaseDistribution | None:
    """The Optuna distribution of a sweep override (`choice(...)`, `a,b`, `range(...)`,
    `interval(...)`, tagged `log` or `int`), or None for a plain value."""
    if not override.is_sweep_override():
        return None
    sweep = override.value()
    if isinstance(sweep, ChoiceSweep):
        return CategoricalDistribution(sweep.list)
    if isinstance(sweep, RangeSweep):
        values = list(sweep.range())
        if all(isinstance(value, int) for value in values):
            return IntDistribution(values[0], values[-1], step=int(sweep.step))
        return FloatDistribution(values[0], values[-1], step=float(sweep.step))
    if isinstance(sweep, IntervalSweep):
        log_scale = "log" in sweep.tags
        if "int" in sweep.tags or (isinstance(sweep.start, int) and isinstance(sweep.end, int)):
            return IntDistribution(int(sweep.start), int(sweep.end), log=log_scale)
        return FloatDistribution(sweep.start, sweep.end, log=log_scale)
    raise UserError(f"{override.input_line}: imgclf's Optuna sweeper cannot search this sweep")


def search_space(overrides: Sequence[Override]) -> tuple[dict[str, BaseDistribution], list[str]]:
    """Split overrides (config params, then the command line) into the searched keys and the
    fixed overrides every trial gets; a later override of a key replaces an earlier one."""
    space: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    for override in overrides:
        key = override.get_key_element()
        space.pop(key, None)
        fixed.pop(key, None)
        if (found := distribution(override)) is not None:
            space[key] = found
        else:
            fixed[key] = override.input_line
    return space, list(fixed.values())


def override_value(value: Any) -> str:
    """A sampled value as Hydra's command line spells it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def trial_overrides(trial: Trial) -> list[str]:
    return [f"{key}={override_value(value)}" for key, value in trial.params.items()]


def open_study(
    storage: str | None,
    study_name: str,
    direction: str,
    sampler: optuna.samplers.BaseSampler,
    heartbeat_interval: int,
    grace_period: int | None,
) -> optuna.Study:
    """Create the study, or load it when `storage` already holds one of that name."""
    if storage is not None:
        storage = rdb_storage(storage, heartbeat_interval, grace_period)
        # Workers on one shared study must not draw the same random start-up trials.
        sampler.reseed_rng()
    try:
        return optuna.create_study(
            storage=storage,
            study_name=study_name,
            direction=direction,
            sampler=sampler,
            load_if_exists=True,
        )
    except ValueError as error:
        raise UserError(f"hydra.sweeper.study_name={study_name}: {error}") from error


@contextmanager
def quiet_heartbeats() -> Iterator[None]:
    """Heartbeats are "experimental" in Optuna since 2.9, and it warns that they suit
    study.optimize; imgclf beats for its own ask-and-tell trials (`heartbeat`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used")
        yield


def rdb_storage(
    url: str, heartbeat_interval: int, grace_period: int | None, attempts: int = 5
) -> optuna.storages.RDBStorage:
    for attempt in range(attempts):
        try:
            with quiet_heartbeats():
                return optuna.storages.RDBStorage(
                    url, heartbeat_interval=heartbeat_interval, grace_period=grace_period
                )
        except Exception as error:  # SQLAlchemy's URL and connection errors
            # Workers started together race to create a new database's tables and record its
            # schema version (the loser's insert fails); a moment later they are there.
            raced = isinstance(error, sqlalchemy.exc.DBAPIError)
            if not raced or attempt + 1 == attempts:
                raise UserError(
                    f"hydra.sweeper.storage={url} cannot be opened ({error}). Give a database "
                    "URL: sqlite:///optuna.db for a file here, postgresql://user@host/db or "
                    "mysql://... for workers on several machines."
                ) from error
            time.sleep(random.uniform(0.1, 1.0))


def counts(trial: FrozenTrial) -> bool:
    """Whether `trial` takes one of the study's n_trials."""
    if trial.state == TrialState.FAIL:
        return bool(trial.user_attrs.get(JOB_FAILED))
    return True


def counted(trials: Sequence[FrozenTrial], before: float = math.inf) -> int:
    """How many of the study's n_trials the trials numbered below `before` take."""
    return sum(counts(trial) for trial in trials if trial.number < before)


def claim_trial(
    study: optuna.Study, n_trials: int, space: dict[str, BaseDistribution]
) -> Trial | None:
    """A new trial for this worker, or None when the study has its n_trials."""
    with quiet_heartbeats():
        optuna.storages.fail_stale_trials(study)  # silent workers, after their grace period
        if counted(study.get_trials(deepcopy=False)) >= n_trials:
            return None
        trial = study.ask(space)
    if counted(study.get_trials(deepcopy=False), before=trial.number) >= n_trials:
        study.tell(trial, state=TrialState.FAIL)  # another worker asked in between: unrun
        return None
    return trial


def tell_result(study: optuna.Study, trial: Trial, result: JobReturn) -> None:
    """Record a finished job: its value, or a failure that counts towards n_trials."""
    value = result.return_value if result.status == JobStatus.COMPLETED else None
    if isinstance(value, int | float) and math.isfinite(value):
        study.tell(trial, float(value))
        return
    trial.set_user_attr(JOB_FAILED, True)
    study.tell(trial, state=TrialState.FAIL)
    log.warning("trial %d failed; its error is in its job folder", trial.number)


def release(study: optuna.Study, trials: Sequence[Trial]) -> None:
    """Trials stopped from outside: failed and not counted, so a later sweep runs them again."""
    numbers = {trial.number for trial in trials}
    for trial in study.get_trials(deepcopy=False, states=OPEN_STATES):
        if trial.number in numbers:
            study.tell(trial.number, state=TrialState.FAIL)


@contextmanager
def heartbeat(study: optuna.Study, trials: Sequence[Trial]) -> Iterator[None]:
    """While `trials` run, tell a shared storage every heartbeat_interval that this worker is
    alive; a worker that stops beating has its trials failed by the others (and its own next
    sweep) after the grace period."""
    # Optuna's study.optimize beats the same way (optuna/storages/_heartbeat.py); ask-and-tell
    # has no public hook for it.
    storage = study._storage
    interval = storage.get_heartbeat_interval() if hasattr(storage, "record_heartbeat") else None
    if not interval:
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            for trial in trials:
                storage.record_heartbeat(trial._trial_id)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name="optuna-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
