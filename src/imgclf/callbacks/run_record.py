"""What metrics.json says of the whole run, kept in every checkpoint: the seconds the run has
taken so far and the metrics it logged. A run resumed in its last steps, or in its test, logs
no training or validation metric itself; it still writes them all, and the seconds of every
process that worked on it."""

import time
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn


class RunRecord(Callback):
    """Always on: the Trainer gets it from `build_trainer`, not from the callbacks config."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.seconds_before = 0.0  # of the processes before this one, from the checkpoint
        self.logged: dict[str, float] = {}
        self.trainer: Trainer | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self.trainer = trainer

    def seconds(self) -> float:
        return self.seconds_before + time.perf_counter() - self.started

    def metrics(self) -> dict[str, float]:
        """Every metric logged in the run, the latest value of each: those of the processes
        before this one, then this one's."""
        current = self.trainer.callback_metrics if self.trainer else {}
        return {**self.logged, **{name: float(value) for name, value in current.items()}}

    def state_dict(self) -> dict[str, Any]:
        return {"seconds": self.seconds(), "metrics": self.metrics()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Only a resumed fit continues the run of an earlier process. The test of the best
        # checkpoint restores it too, and its seconds, counted by this process already,
        # would count twice.
        if self.trainer is not None and self.trainer.state.fn != TrainerFn.FITTING:
            return
        self.seconds_before = float(state_dict["seconds"])
        self.logged = dict(state_dict["metrics"])
