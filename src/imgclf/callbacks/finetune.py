"""Fine-tuning: train only a new head on a frozen backbone first, then the whole network."""

import logging
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BaseFinetuning
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.optim import Optimizer

from imgclf.models.pretrained import head_and_backbone

log = logging.getLogger(__name__)


class FreezeBackbone(BaseFinetuning):
    """For the first `epochs` epochs only the module's head learns (`model.finetune.
    freeze_epochs`); then the backbone thaws, at the rate its param group already has
    (`model.finetune.backbone_lr_ratio` times the head's, set in `optim.parameter_groups`, so the
    learning-rate schedule scales both alike).

    While frozen, the backbone is a fixed function: its batch-norm layers run in eval mode,
    normalising with the running statistics they were trained with and leaving them as they
    are. (BaseFinetuning's own `train_bn=False` stops the updates but normalises each batch
    by its own statistics, which evaluation then does not do.)

    Under DDP the backbone keeps `requires_grad` and its gradients are dropped after each
    backward pass instead: DDP synchronises only the parameters that required gradients when
    it wrapped the model, so a backbone thawed later would train apart on every rank."""

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs = epochs
        self.frozen_norms: list[_BatchNorm] | None = []
        self.dropped_gradients: list[nn.Parameter] = []

    def freeze_before_training(self, pl_module: LightningModule) -> None:
        _, backbone = head_and_backbone(pl_module.classifier.net)
        if pl_module.trainer.world_size > 1:
            self.dropped_gradients = [p for m in backbone for p in m.parameters(recurse=False)]
        else:
            self.freeze(backbone, train_bn=False)
        self.frozen_norms = [module for module in backbone if isinstance(module, _BatchNorm)]

    def finetune_function(
        self, pl_module: LightningModule, epoch: int, optimizer: Optimizer
    ) -> None:
        # `>=`: a run resumed after the thaw starts frozen (setup froze it) and thaws here.
        if epoch >= self.epochs and self.frozen_norms is not None:
            _, backbone = head_and_backbone(pl_module.classifier.net)
            self.make_trainable(backbone)
            self.dropped_gradients = []
            # Lightning restores each module's own mode after validation: switch them back.
            for module in self.frozen_norms:
                module.train()
            self.frozen_norms = None
            log.info("epoch %d: the backbone thaws and trains with the head", epoch)

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        # Needed once per batch at most: a module's mode is cheap to set, and hooks that put
        # the whole model in train mode (a Trainer's sanity check, others' callbacks) vary.
        for module in self.frozen_norms or ():
            module.eval()

    def on_after_backward(self, trainer: Trainer, pl_module: LightningModule) -> None:
        for parameter in self.dropped_gradients:
            parameter.grad = None
