"""How long a run takes to reach its first training step: the time a user waits for data to
be read, decoded or cached before anything trains."""

import logging
import os
import time
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

log = logging.getLogger(__name__)


def seconds_since_process_start() -> float | None:
    """From the kernel's record of when this process started (Linux), so the interpreter's
    start and the imports count too; None elsewhere."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        return float(Path("/proc/uptime").read_text().split()[0]) - started
    except (OSError, ValueError, IndexError):
        return None


class StartupTimer(Callback):
    """Logs, at the first training batch, the seconds since the process started and since
    this callback was built with the Trainer, just before fitting: the data's listing,
    decoding or caching, the statistics and the sanity check all fall in between."""

    def __init__(self) -> None:
        self.built = time.perf_counter()
        self.reported = False

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.reported or not trainer.is_global_zero:
            return
        self.reported = True
        since_start = seconds_since_process_start()
        log.info(
            "first training step: %.1f s after the Trainer was built, %s after the process started",
            time.perf_counter() - self.built,
            f"{since_start:.1f} s" if since_start is not None else "(unknown)",
        )
