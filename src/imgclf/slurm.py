"""A run as a SLURM job. Every task of the job (one per DDP process, started by `srun`) writes
into one run folder, and so does every start of the job: a job that SLURM requeues continues
in the folder it started in, from its last checkpoint. SLURM warns a job before its time limit
(`sbatch --signal=USR1@<seconds>`; submitit sends SIGUSR2); on that warning every task saves
the run's place mid-epoch, the job requeues itself, and the run stops, to continue when SLURM
starts the job again. A job stopped by SIGTERM (scancel, preemption) that SLURM requeues
continues the same way, from the last checkpoint of an epoch.

This is imgclf's own requeue, used in place of Lightning's SLURM auto-requeue (switched off):
Lightning resumes from its checkpoint only when the new start runs in the same folder, and it
saves from within the signal handler, waiting there for the other DDP tasks, which may be in
the middle of a collective of their own."""

import hashlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from lightning.pytorch import Callback, Trainer

from imgclf.checkpoints import LAST_CHECKPOINT
from imgclf.errors import UserError
from imgclf.stops import RunStopped

log = logging.getLogger(__name__)

# The signals that announce a job's end: Lightning's convention (sbatch --signal=USR1@120) and
# submitit's (hydra.launcher.signal_delay_s before the time limit).
WARNING_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)
# Where the first task records the run folder it created, for the other tasks and later starts.
REGISTRY = ".slurm"
# DDP tasks check whether any of them was warned once every this many batches.
CHECK_EVERY = 10
# How long another task waits for the first task's run folder: Hydra and imports come first.
REGISTRY_TIMEOUT_S = 300


def in_slurm_job() -> bool:
    """Started by SLURM as a job's task (sbatch, srun), as Lightning tells: an interactive
    allocation's shell (job name bash or interactive) is the user's own machine."""
    return "SLURM_NTASKS" in os.environ and os.environ.get("SLURM_JOB_NAME") not in (
        "bash",
        "interactive",
    )


def restart_count() -> int:
    """0 on a job's first start; SLURM counts each requeue."""
    return int(os.environ.get("SLURM_RESTART_COUNT", "0"))


def job_id() -> str:
    """This job as squeue and scontrol name it: `<array job>_<task>` for a task of an array."""
    if "SLURM_ARRAY_JOB_ID" in os.environ:
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ["SLURM_JOB_ID"]


def shared_run_folder(base: Path, create: Callable[[Path], Path]) -> Path:
    """The run folder of this job step: created (by `create`) by the first task on the job's
    first start, recorded under `<base's parent>/.slurm/`, and read from there by the other
    tasks and by the job's later starts. A step is one `srun`, or the batch script itself, and
    one command line: a script that runs two trainings gives each its folder."""
    command = hashlib.sha1("\0".join(sys.argv).encode()).hexdigest()[:10]
    step = os.environ.get("SLURM_STEP_ID", "batch")
    registry = base.parent / REGISTRY / f"{job_id()}.{step}.{command}"
    # The record names the start that wrote it: another task reads only its own start's.
    start = str(restart_count())
    if os.environ.get("SLURM_PROCID", "0") != "0":
        return wait_for_record(registry, start)
    recorded = read_record(registry)
    if restart_count() > 0 and recorded and recorded[1].is_dir():
        folder = recorded[1]
        log.info("SLURM started this job again: the run continues in %s", folder)
    else:
        folder = create(base)
    write_record(registry, start, folder)
    return folder


def read_record(registry: Path) -> tuple[str, Path] | None:
    try:
        start, folder = registry.read_text().split("\n", 1)
    except (FileNotFoundError, ValueError):
        return None
    return start, Path(folder.strip())


def write_record(registry: Path, start: str, folder: Path) -> None:
    registry.parent.mkdir(parents=True, exist_ok=True)
    partial = registry.with_name(f"{registry.name}.{os.getpid()}.tmp")
    partial.write_text(f"{start}\n{folder}\n")
    partial.replace(registry)  # the other tasks read all of it or nothing


def wait_for_record(registry: Path, start: str) -> Path:
    deadline = time.monotonic() + REGISTRY_TIMEOUT_S
    while time.monotonic() < deadline:
        recorded = read_record(registry)
        if recorded and recorded[0] == start:
            return recorded[1]
        time.sleep(0.2)
    raise UserError(
        f"SLURM task {os.environ.get('SLURM_PROCID')} waited {REGISTRY_TIMEOUT_S} s for task 0 "
        f"to create the run folder ({registry} names it). Check task 0's output for its error; "
        "every task must run the same command line."
    )


class RunRequeued(RunStopped):
    """The run saved its place on SLURM's warning signal: its job is to be requeued."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(signal_number)
        self.job_id = job_id()


def requeue(stop: RunRequeued, resume_hint: str) -> str:
    """Requeue the job (by its first task); what the run folder records of it."""
    # SLURM ends the job it requeues with SIGTERM: this process exits by itself, its record
    # written, in a moment.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        subprocess.run(
            ["scontrol", "requeue", stop.job_id],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError) as error:
        detail = str(getattr(error, "stderr", None) or error).strip()
        return f"{stop}; SLURM did not requeue job {stop.job_id} ({detail}). {resume_hint}"
    return (
        f"{stop}, its place saved in checkpoints/last.ckpt: SLURM requeued job {stop.job_id}, "
        "which continues from there when it starts again"
    )


# The warning signal this process received, if one came: set by the handler, read at each step.
received_warning: int | None = None


def note_warning(signal_number: int, frame: FrameType | None) -> None:
    global received_warning
    received_warning = signal_number
    log.warning(
        "%s: SLURM warns of the job's end; the run saves its place and requeues its job",
        signal.Signals(signal_number).name,
    )


@contextmanager
def warnings_noted() -> Iterator[None]:
    """Within it, inside a SLURM job, the warning signals are noted for RequeueOnWarning (in
    place of submitit's handler, which requeues the job at once, unsaved). Outside a job they
    keep their default action."""
    if not in_slurm_job():
        yield
        return
    previous = {number: signal.signal(number, note_warning) for number in WARNING_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


class RequeueOnWarning(Callback):
    """After a training step, if SLURM's warning came (to any task), every task saves
    `checkpoints/last.ckpt` mid-epoch and the run stops as requeued. While it tests, the run
    stops at a test step, to test again from the checkpoint saved after fitting."""

    def warned(self, trainer: Trainer, batch_idx: int) -> bool:
        if trainer.world_size == 1:
            return received_warning is not None
        # The tasks agree, to stop at the same step, in a collective that also waits for the
        # device: once every CHECK_EVERY batches, not at every step.
        if (batch_idx + 1) % CHECK_EVERY:
            return False
        return trainer.strategy.reduce_boolean_decision(received_warning is not None, all=False)

    def on_train_batch_end(
        self, trainer: Trainer, module: object, outputs: object, batch: object, batch_idx: int
    ) -> None:
        if self.warned(trainer, batch_idx):
            trainer.save_checkpoint(Path(trainer.default_root_dir) / LAST_CHECKPOINT)
            raise RunRequeued(received_warning or signal.SIGUSR1)

    def on_test_batch_end(
        self,
        trainer: Trainer,
        module: object,
        outputs: object,
        batch: object,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self.warned(trainer, batch_idx):
            raise RunRequeued(received_warning or signal.SIGUSR1)
