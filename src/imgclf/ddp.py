"""DDP's other processes on this machine, started as a rebuilt run. Lightning starts them by
running the command line again with `hydra.run.dir="<folder>"` appended: under `-m` that runs
the whole sweep again in every process, and a folder path with spaces, quotes or `=` is read
as override syntax. imgclf starts them from the job's saved config instead, in the job's
folder, as `resume=` rebuilds a run."""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_original_cwd, to_absolute_path
from lightning.fabric.strategies.launchers import subprocess_script
from lightning.pytorch.strategies.launchers import subprocess_script as trainer_subprocess_script

from imgclf.resume import saved_config_arguments

lightning_command = subprocess_script._hydra_subprocess_cmd


def child_command(local_rank: int) -> tuple[list[str], str]:
    """The command (and folder) that starts DDP process `local_rank` of this job."""
    import __main__  # at call time, as Lightning does: runners may replace it

    hydra = HydraConfig.get()
    if hydra.output_subdir is None:  # no saved config to start from
        return lightning_command(local_rank)
    if __main__.__spec__ is None:  # `python train.py`, as Lightning tells them apart
        command = [sys.executable, to_absolute_path(sys.argv[0])]
    else:
        command = [sys.executable, "-m", __main__.__spec__.name]
    run_dir = Path(hydra.runtime.output_dir)
    command += saved_config_arguments(run_dir / hydra.output_subdir, run_dir, hydra.runtime.choices)
    # The job's own config and logs stay the first process's. The others log into files of
    # their own, and on the console only their errors: every process reads the same data and
    # would repeat each of its warnings.
    command += [
        f"hydra.job.name=train_ddp_process_{local_rank}",
        "hydra.output_subdir=null",
        "++hydra.job_logging.handlers.console.level=ERROR",
    ]
    return command, get_original_cwd()


def start_ddp_processes_from_saved_config() -> None:
    # The Trainer's launcher imported Fabric's function under its own name: both are set.
    subprocess_script._hydra_subprocess_cmd = child_command
    trainer_subprocess_script._hydra_subprocess_cmd = child_command


@contextmanager
def process_group_left_as_found() -> Iterator[None]:
    """A job of a sweep ends with no process group and the environment it started with.
    Lightning's launcher sets LOCAL_RANK, MASTER_PORT and the world size in this process's
    environment and keeps the process group: the next DDP job then took itself for a process
    started by someone else, started no others, and waited on the last job's, which had ended."""
    environment = dict(os.environ)
    try:
        yield
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        os.environ.clear()
        os.environ.update(environment)
