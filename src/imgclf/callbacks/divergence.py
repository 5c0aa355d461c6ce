"""Stop a diverging run, keeping the last good checkpoint."""

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from imgclf.errors import UserError


class TrainingDivergedError(UserError):
    """The loss became NaN or infinite."""


class DivergenceGuard(Callback):
    """Ends training with a message naming the first step whose training loss is not finite.
    No checkpoint is saved after that step, so the checkpoints on disk are the last good ones.

    Reading a loss from an accelerator makes the host wait for all the work queued on it, so
    the losses are kept, unread, and checked together (one read) every
    `check_every_n_batches` micro-batches, before each validation and before each checkpoint
    is saved. `None` checks after every micro-batch on CPU, where a read costs nothing and
    stopping at once saves the most time, and every `trainer.log_every_n_steps` micro-batches
    elsewhere."""

    def __init__(self, check_every_n_batches: int | None = None) -> None:
        self.check_every_n_batches = check_every_n_batches
        # (loss, step, epoch, batch) of the micro-batches since the last check.
        self.unchecked: list[tuple[torch.Tensor, int, int, int]] = []

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        self.unchecked.append(
            (loss.detach(), trainer.global_step, trainer.current_epoch, batch_idx)
        )
        if len(self.unchecked) >= self.check_interval(trainer, loss.device):
            self.check(trainer)

    def check_interval(self, trainer: Trainer, device: torch.device) -> int:
        if self.check_every_n_batches is not None:
            return self.check_every_n_batches
        return 1 if device.type == "cpu" else max(1, trainer.log_every_n_steps)

    def check(self, trainer: Trainer) -> None:
        unchecked, self.unchecked = self.unchecked, []
        if not unchecked:
            return
        finite = torch.stack([torch.isfinite(loss).all() for loss, *_ in unchecked])
        if finite.all():
            return
        loss, step, epoch, batch_idx = unchecked[finite.tolist().index(False)]
        checkpoint = trainer.checkpoint_callback
        last = getattr(checkpoint, "last_model_path", "") if checkpoint else ""
        kept = f"the last good checkpoint is {last}" if last else "no checkpoint was saved yet"
        raise TrainingDivergedError(
            f"training diverged: the loss is {float(loss)} at step {step} "
            f"(epoch {epoch}, batch {batch_idx}); {kept}. Lower optimizer.lr, "
            "or use trainer.gradient_clip_val=1.0 or trainer.precision=32-true."
        )

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.check(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.check(trainer)

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self.check(trainer)
