"""A run folder's life: created under a name no other run has, held by its run while it runs,
and, read later, a status: completed, failed, stopped, running or killed."""

import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import IO

from hydra.core.override_parser.overrides_parser import OverridesParser
from lightning.pytorch import Trainer

from imgclf import slurm
from imgclf.errors import UserError, user_errors_reported

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"
# A failed or stopped run's message, with its status.
ERROR_FILE = "error.json"
# Locked while a run runs; the system drops the lock when its process ends, however it ends.
LOCK_FILE = ".running"
SAVED_CONFIG = Path(".hydra") / "config.yaml"


def new_run_folder(path: str) -> str:
    """`${imgclf_new_run_folder:<path>}`: `path`, created now, or `<path>-2`, `-3`, ... when
    another run took it first (runs started in the same second). `mkdir` fails where the
    folder exists, so two processes never get the same one. The resolver is cached, as Hydra's
    `now` is: every read of `hydra.run.dir` in the run gives the folder it created."""
    # Hydra resolves this before the app runs, and would wrap an error in its own report.
    with user_errors_reported():
        base = Path(path).expanduser()
        if slurm.in_slurm_job():  # one folder for all the job's tasks and starts
            return str(slurm.shared_run_folder(base, create_unique_folder))
        return str(create_unique_folder(base))


def create_unique_folder(base: Path) -> Path:
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, 1000):
            folder = base if attempt == 1 else base.with_name(f"{base.name}-{attempt}")
            try:
                folder.mkdir()
                return folder
            except FileExistsError:
                continue
    except OSError as error:
        raise UserError(
            f"cannot create the run folder {base} ({error.strerror or error}). Set "
            "paths.log_dir (or hydra.run.dir) to a folder you can write to."
        ) from error
    raise UserError(f"{base}: 999 run folders of this name exist; use another paths.log_dir")


# The folders a command line may name for Hydra to create before the app runs.
RUN_DIR_KEYS = ("hydra.run.dir", "hydra.sweep.dir")


def check_run_dir_overrides(arguments: list[str]) -> None:
    """A run or sweep folder named on the command line can be created: Hydra creates it
    before the app runs, and reports a failure as a traceback. Nothing is created here, so
    a command line refused for another reason leaves no folder behind."""
    parser = OverridesParser.create()
    for argument in arguments:
        key, _, value = argument.partition("=")
        if key not in RUN_DIR_KEYS or "${" in value:
            continue
        folder = Path(str(parser.parse_override(argument).value())).expanduser().absolute()
        problem = creation_problem(folder)
        if problem:
            raise UserError(
                f"{key}={value}: cannot create the folder {folder} ({problem}). "
                f"Name a folder you can write to, or leave {key} out (runs go to outputs/)."
            )


def creation_problem(folder: Path) -> str | None:
    """Why `folder` could not be created (with its parents), or None: judged on the
    nearest part of the path that exists."""
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return "Not a directory"
    if existing != folder and not os.access(existing, os.W_OK | os.X_OK):
        return "Permission denied"
    return None


def run_folder_of(ckpt_path: str | Path) -> Path:
    """The run folder a checkpoint belongs to, if it is still there: a run keeps its
    checkpoints in `<run folder>/checkpoints/`."""
    return Path(ckpt_path).expanduser().resolve().parent.parent


def is_run_folder(folder: Path) -> bool:
    return (folder / SAVED_CONFIG).is_file()


class RunLock:
    """Held by the run that writes into `folder`, from its start to its end: another process
    can tell it is running (a second `resume=` of it is refused), and once its process is
    gone, however it ended, the system has released it."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / LOCK_FILE
        self.file: IO[str] | None = None

    def acquire(self) -> None:
        file = self.path.open("a+")
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip() or "another process"
            file.close()
            raise UserError(
                f"{self.path.parent} is in use by a run that is still running ({holder}). "
                "Wait for it to end, or stop it first."
            ) from None
        file.truncate(0)
        file.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        file.flush()
        self.file = file

    def release(self) -> None:
        if self.file is not None:
            self.file.close()  # closing drops the lock
            self.file = None


def is_locked(folder: Path) -> bool:
    path = folder / LOCK_FILE
    if not path.is_file():
        return False
    with path.open() as file:
        try:
            fcntl.flock(file, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
    return False


def record_error(folder: str | Path, message: str, started: float, status: str) -> None:
    """Write `error.json`: the message, the status (failed or stopped), the seconds run."""
    seconds = round(time.perf_counter() - started, 1)
    record = {"status": status, "error": message, "seconds": seconds}
    (Path(folder) / ERROR_FILE).write_text(json.dumps(record) + "\n")


def run_status(folder: Path) -> tuple[str, dict] | None:
    """(status, what the run wrote: metrics or error) of a run folder, None for a folder that
    is not one. Killed: it ended without a word, by SIGKILL, a crash of the machine or the
    memory limit."""
    if not is_run_folder(folder):
        return None
    metrics_path, error_path = folder / METRICS_FILE, folder / ERROR_FILE
    if metrics_path.is_file():
        return "completed", json.loads(metrics_path.read_text())
    if is_locked(folder):
        return "running", {}
    if error_path.is_file():
        record = json.loads(error_path.read_text())
        return record.get("status", "failed"), record
    return "killed", {}


def write_metrics(trainer: Trainer, output_dir: str, metrics: dict) -> None:
    """metrics.json, by the first process alone."""
    if trainer.is_global_zero:
        path = Path(output_dir) / METRICS_FILE
        path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        log.info("metrics written to %s: %s", path, metrics)
