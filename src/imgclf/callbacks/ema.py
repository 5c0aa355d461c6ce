"""Weight EMA: an exponential moving average of the weights, kept by Lightning's
EMAWeightAveraging (torch.optim.swa_utils.AveragedModel underneath)."""

from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.trainer.states import TrainerFn


class WeightEMA(EMAWeightAveraging):
    """Averages the weights and batch-norm statistics after every optimizer step. Validation
    runs on the average, training ends with it in the model, and every checkpoint holds it
    as its `state_dict` (so test, eval, predict and export use it), with the weights being
    trained beside it (`current_model_state`) for a resumed run.

    One change to Lightning's callback: Lightning restores callbacks when it tests a
    checkpoint too, and its callback then loads the trained weights over the average; here a
    checkpoint's average stays in the model outside fitting."""

    def on_load_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if trainer.state.fn == TrainerFn.FITTING:
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


def weight_ema(decay: float | None) -> WeightEMA | None:
    """`callbacks.ema.decay=0.999`: each step the average keeps `decay` of itself and takes
    1 - decay of the new weights, so it spans about 1 / (1 - decay) steps. null: no EMA."""
    return WeightEMA(decay=decay) if decay else None
