"""`python train.py ...`: compose the config, fit, test the best checkpoint, write metrics.json."""

import json
import logging
import time
from pathlib import Path

import hydra
import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

import imgclf.config  # noqa: F401  registers the resolvers the configs use
from imgclf.errors import user_errors_reported
from imgclf.precision import resolve_precision

log = logging.getLogger(__name__)

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def instantiate_group(group: DictConfig | None) -> list:
    """Callbacks and loggers: each entry with a `_target_`; `null` entries are switched off."""
    return [instantiate(entry) for entry in (group or {}).values() if entry and "_target_" in entry]


def build_trainer(cfg: DictConfig) -> L.Trainer:
    return instantiate(
        cfg.trainer,
        callbacks=instantiate_group(cfg.get("callbacks")),
        logger=instantiate_group(cfg.get("logger")) or False,
        precision=resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator),
    )


def write_metrics(trainer: L.Trainer, output_dir: str, metrics: dict) -> None:
    if trainer.is_global_zero:
        path = Path(output_dir) / "metrics.json"
        path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        log.info("metrics written to %s: %s", path, metrics)


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit, then test the best checkpoint; returns the metrics written to metrics.json."""
    started = time.perf_counter()
    L.seed_everything(cfg.seed, workers=True)

    datamodule = instantiate(cfg.data)
    model = instantiate(
        cfg.model, optimizer=cfg.optimizer, scheduler=cfg.scheduler, _recursive_=False
    )
    trainer = build_trainer(cfg)

    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}

    if cfg.get("test"):
        checkpoint = trainer.checkpoint_callback
        best_path = checkpoint.best_model_path if checkpoint else ""
        if not best_path:
            log.warning("no best checkpoint was saved: testing the weights as they are now")
        trainer.test(model, datamodule=datamodule, ckpt_path=best_path or None, weights_only=True)
        metrics.update({name: float(value) for name, value in trainer.callback_metrics.items()})
        metrics["best_checkpoint"] = best_path

    metrics["epochs"] = trainer.current_epoch
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    write_metrics(trainer, cfg.paths.output_dir, metrics)
    return metrics


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    """Returns the optimised metric, so that Hydra sweepers can use it."""
    with user_errors_reported():
        metrics = train(cfg)
    return metrics.get(cfg.get("optimized_metric"))


if __name__ == "__main__":
    main()
