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

    Reading a flag from an accelerator makes the host wait for all the work queued on it, so
    the losses are watched on the device: the first non-finite one, with its step, is kept
    there and read every `check_every_n_batches` micro-batches, before each validation and
    before each checkpoint is saved. `None` reads it after every micro-batch on CPU, where a
    read costs nothing and stopping at once saves the most time, and every
    `trainer.log_every_n_steps` micro-batches elsewhere."""

    def __init__(self, check_every_n_batches: int | None = None) -> None:
        self.check_every_n_batches = check_every_n_batches
        self.first_bad: dict[str, torch.Tensor] = {}
        self.batches_unchecked = 0

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        self.watch(loss.detach(), trainer.global_step, trainer.current_epoch, batch_idx)
        self.batches_unchecked += 1
        if self.batches_unchecked >= self.check_interval(trainer, loss.device):
            self.check(trainer)

    def watch(self, loss: torch.Tensor, step: int, epoch: int, batch_idx: int) -> None:
        """Keep `loss` and where it arose if it is the first non-finite one, without reading
        anything back from the device (torch.where with Python numbers launches kernels
        only)."""
        if not self.first_bad:
            self.first_bad = {
                "loss": torch.zeros((), device=loss.device),
                "step": torch.full((), -1, device=loss.device),
                "epoch": torch.zeros((), device=loss.device, dtype=torch.long),
                "batch": torch.zeros((), device=loss.device, dtype=torch.long),
            }
        first = ~torch.isfinite(loss).all() & (self.first_bad["step"] < 0)
        kept = self.first_bad
        kept["loss"] = torch.where(first, loss.float(), kept["loss"])
        kept["step"] = torch.where(first, step, kept["step"])
        kept["epoch"] = torch.where(first, epoch, kept["epoch"])
        kept["batch"] = torch.where(first, batch_idx, kept["batch"])

    def check_interval(self, trainer: Trainer, device: torch.device) -> int:
        if self.check_every_n_batches is not None:
            return self.check_every_n_batches
        return 1 if device.type == "cpu" else max(1, trainer.log_every_n_steps)

    def check(self, trainer: Trainer) -> None:
        self.batches_unchecked = 0
        if not self.first_bad or int(self.first_bad["step"]) < 0:
            return
        bad = {name: value.item() for name, value in self.first_bad.items()}
        checkpoint = trainer.checkpoint_callback
        last = getattr(checkpoint, "last_model_path", "") if checkpoint else ""
        kept = f"the last good checkpoint is {last}" if last else "no checkpoint was saved yet"
        raise TrainingDivergedError(
            f"training diverged: the loss is {bad['loss']} at step {bad['step']} "
            f"(epoch {bad['epoch']}, batch {bad['batch']}); {kept}. Lower optimizer.lr, "
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
