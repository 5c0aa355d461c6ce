"""`python train.py tune=lr_find`: Lightning's learning-rate finder on the composed run."""

import logging

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.tuner import Tuner
from omegaconf import DictConfig, OmegaConf

from imgclf.callbacks.publish import publish_figure, publish_scalars
from imgclf.errors import UserError

log = logging.getLogger(__name__)

SUGGESTION = "tune/lr_suggested"


def lr_find_problem(cfg: DictConfig) -> str | None:
    """The finder moves every parameter group's rate together, so it cannot tune a run whose
    groups train at different rates."""
    if OmegaConf.select(cfg, "tune.lr_find") is None:
        return None
    if OmegaConf.select(cfg, "optimizer._target_") == "imgclf.optim.Muon":
        return (
            "tune=lr_find cannot tune optimizer=muon: it sets a rate per parameter group "
            "(optimizer.lr for the conv filters, optimizer.sgd_groups.<group>.lr for the rest), "
            "and the finder moves all groups together. Search them with hparams_search=optuna, "
            "or use optimizer=sgd, adam or adamw."
        )
    ratio = OmegaConf.select(cfg, "model.finetune.backbone_lr_ratio", default=1.0)
    if ratio != 1.0:
        return (
            f"tune=lr_find cannot keep model.finetune.backbone_lr_ratio={ratio}: the finder "
            "moves the head's and the backbone's rates together. Find the rate with "
            "model.finetune.backbone_lr_ratio=1.0, then set optimizer.lr and the ratio."
        )
    return None


def find_learning_rate(
    trainer: Trainer, model: LightningModule, datamodule: object, cfg: DictConfig
) -> float:
    """The suggested rate, drawn and logged; the model is back at its initial weights."""
    settings = OmegaConf.to_container(cfg.tune.lr_find, resolve=True)
    finder = Tuner(trainer).lr_find(model, datamodule=datamodule, update_attr=False, **settings)
    suggestion = finder.suggestion() if finder is not None else None
    if suggestion is None:
        raise UserError(
            "tune=lr_find: too few steps to suggest a rate (it needs more than 10; fast_dev_run "
            "and debug runs skip the finder). Raise tune.lr_find.num_training, "
            "trainer.limit_train_batches or trainer.max_epochs."
        )
    if trainer.is_global_zero:
        figure = finder.plot(suggest=True)
        figure.axes[0].set_title(f"Learning-rate finder: suggested {suggestion:.3g}")
        publish_figure(trainer, "tune/lr_find", figure, cfg.paths.output_dir, "lr_find")
        publish_scalars(trainer, {SUGGESTION: suggestion})
    log.info(
        "learning-rate finder: loss falls fastest at %.3g (from %d steps); see figures/lr_find.png",
        suggestion,
        len(finder.results["lr"]),
    )
    return suggestion
