"""Stop training some parameters after a number of epochs."""

from collections.abc import Sequence

from lightning.pytorch import Callback, LightningModule, Trainer

from imgclf.errors import UserError


class FreezeParameters(Callback):
    """From epoch `after_epochs` on, the parameters named in `names` (as in the classifier's
    `named_parameters()`, e.g. `net.whiten.bias`) get no gradient. Autograd then also
    skips every backward computation only they needed. Checked at each epoch's start, so a
    resumed run freezes them again.

    Under DDP they keep `requires_grad` (DDP expects a gradient for every parameter that had
    one when it wrapped the model) and their gradients are dropped after each backward pass:
    the optimizer then leaves them as they are."""

    def __init__(self, names: Sequence[str], after_epochs: int) -> None:
        self.names = list(names)
        self.after_epochs = after_epochs
        self.dropped_gradients: list = []

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # A misspelt name fails at the start, not epochs into the run.
        parameters = dict(pl_module.classifier.named_parameters())
        unknown = [name for name in self.names if name not in parameters]
        if unknown:
            raise UserError(
                f"FreezeParameters: the model has no parameters {unknown}; "
                f"it has e.g. {list(parameters)[:5]}"
            )

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.current_epoch < self.after_epochs:
            return
        parameters = [dict(pl_module.classifier.named_parameters())[name] for name in self.names]
        if trainer.world_size > 1:
            self.dropped_gradients = parameters
            return
        for parameter in parameters:
            parameter.requires_grad_(False)
            parameter.grad = None

    def on_after_backward(self, trainer: Trainer, pl_module: LightningModule) -> None:
        for parameter in self.dropped_gradients:
            parameter.grad = None
