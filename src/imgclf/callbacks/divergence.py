"""Stop a diverging run at once, keeping the last good checkpoint."""

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from imgclf.errors import UserError


class TrainingDivergedError(UserError):
    """The loss became NaN or infinite."""


class DivergenceGuard(Callback):
    """Ends training with a message naming the step when the training loss is not finite.
    Nothing is saved after that step, so the checkpoints on disk are the last good ones."""

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None or torch.isfinite(loss).all():
            return
        checkpoint = trainer.checkpoint_callback
        last = getattr(checkpoint, "last_model_path", "") if checkpoint else ""
        kept = f"the last good checkpoint is {last}" if last else "no checkpoint was saved yet"
        raise TrainingDivergedError(
            f"training diverged: the loss is {float(loss)} at step {trainer.global_step} "
            f"(epoch {trainer.current_epoch}, batch {batch_idx}); {kept}. Lower optimizer.lr, "
            "or use trainer.gradient_clip_val=1.0 or trainer.precision=32-true."
        )
