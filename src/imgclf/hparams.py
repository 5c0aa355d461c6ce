"""The run's hyperparameters with its final metrics, for TensorBoard's HPARAMS tab, where the
runs of a sweep line up for comparison."""

from typing import Any

from hydra.core.hydra_config import HydraConfig
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

# Shown for every run; whatever the command line overrides is added.
KEY_SETTINGS = [
    "data.dataset", "data.batch_size", "model.net._target_", "model.label_smoothing",
    "optimizer._target_", "optimizer.lr", "optimizer.weight_decay", "scheduler._target_",
    "trainer.max_epochs", "trainer.precision", "seed",
]  # fmt: skip
# A single-label run's accuracy, a multi-label run's mAP.
FINAL_METRICS = {
    "val/acc_best": "hp/val_acc_best", "test/acc": "hp/test_acc",
    "val/map_best": "hp/val_map_best", "test/map": "hp/test_map",
}  # fmt: skip


def scalar(value: Any) -> Any:
    """TensorBoard takes numbers, strings and booleans; class paths shortened to the name."""
    if isinstance(value, bool | int | float):
        return value
    text = str(value)
    return text.rsplit(".", 1)[-1] if text.count(".") >= 2 and " " not in text else text


def hyperparameters(cfg: DictConfig) -> dict[str, Any]:
    keys = list(KEY_SETTINGS)
    if HydraConfig.initialized():
        for override in HydraConfig.get().overrides.task:
            key = override.split("=", 1)[0].lstrip("+~")
            if key not in keys and not key.startswith(("hydra.", "paths.")):
                keys.append(key)
    params = {}
    for key in keys:
        value = OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
        if value is not None and not OmegaConf.is_config(value):
            params[key] = scalar(value)
    return params


def log_hyperparameters(trainer: Trainer, cfg: DictConfig, metrics: dict[str, Any]) -> None:
    final = {tag: metrics[name] for name, tag in FINAL_METRICS.items() if name in metrics}
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(hyperparameters(cfg), metrics=final)
            logger.finalize("success")
