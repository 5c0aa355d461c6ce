"""Multiruns: a failing job is recorded and the sweep goes on; at the end, the sweep folder
gets summary.csv and summary.md, one row per job, best first, and a sweep whose every job
failed exits 1."""

import logging
import sys
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from imgclf.leaderboard import describe_run, rank, write_leaderboard

log = logging.getLogger(__name__)


def in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


class SweepSummaryCallback(Callback):
    """Hydra callback (`hydra.callbacks`): on multirun end, the sweep's leaderboard."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        jobs = sorted(
            (job for job in sweep_dir.iterdir() if job.is_dir()),
            key=lambda job: (len(job.name), job.name),  # 2 before 10
        )
        rows = [row for job in jobs if (row := describe_run(job))]
        if not rows:
            return
        metric = config.get("optimized_metric")
        csv_path, markdown_path = write_leaderboard(
            rank(rows, metric if metric in rows[0] else None), sweep_dir
        )
        failed = sum(row["status"] == "failed" for row in rows)
        log.info("sweep summary: %s (%d jobs, %d failed)", markdown_path, len(rows), failed)
        if failed == len(rows):
            # A scheduler or a script must not read a sweep that trained nothing as a success.
            log.error("every job of the sweep failed; their errors are in %s", markdown_path)
            sys.exit(1)
