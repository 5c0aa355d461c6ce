"""`python train.py ...`: compose the config, fit, test the best checkpoint, write metrics.json."""

import json
import logging
import sys
import time
from pathlib import Path

import hydra
import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from imgclf.config import validate
from imgclf.errors import UserError, user_errors_reported
from imgclf.hparams import log_hyperparameters
from imgclf.memory import keep_freed_memory
from imgclf.overrides import check_overrides
from imgclf.precision import resolve_precision
from imgclf.resume import RESUME_PREFIX, checkpoint_step, resume_arguments
from imgclf.sweeps import in_multirun, record_failure
from imgclf.tracking import log_config, log_run_files, run_of_folder
from imgclf.tune import SUGGESTION, find_learning_rate

log = logging.getLogger(__name__)

CONFIG_DIR = str(Path(__file__).resolve().parent / "conf")
# 128 + SIGTERM, the status a shell reports for a process SIGTERM ended.
TERMINATED_EXIT_CODE = 143


def instantiate_group(group: DictConfig | None, resume_from: str | None = None) -> list:
    """Callbacks and loggers: each entry with a `_target_`; `null` entries, and those whose
    settings build nothing (`callbacks.ema.decay: null`), are switched off. Resuming from a
    checkpoint, loggers continue the stopped run (`resumed_logger_options`)."""
    built = [
        instantiate(entry, **resumed_logger_options(entry, resume_from))
        for entry in (group or {}).values()
        if entry and "_target_" in entry
    ]
    return [item for item in built if item is not None]


def resumed_logger_options(entry: DictConfig, resume_from: str | None) -> dict:
    """TensorBoard hides the events the stopped run logged after its checkpoint, so the
    curves continue without two values at one step; MLflow logs on into the stopped run's
    own MLflow run (found by its run-folder tag), not a new one."""
    if not resume_from:
        return {}
    if entry._target_.endswith("TensorBoardLogger"):
        return {"purge_step": checkpoint_step(resume_from)}
    run_folder = OmegaConf.select(entry, "tags.run_folder")
    if entry._target_.endswith("MLFlowLogger") and run_folder:
        run_id = run_of_folder(entry.tracking_uri, entry.experiment_name, run_folder)
        return {"run_id": run_id} if run_id else {}
    return {}


def build_trainer(cfg: DictConfig, resume_from: str | None = None) -> L.Trainer:
    """The Trainer with the config's callbacks, loggers and precision; `resume_from`: the
    checkpoint a stopped run continues from."""
    return instantiate(
        cfg.trainer,
        callbacks=instantiate_group(cfg.get("callbacks")),
        logger=instantiate_group(cfg.get("logger"), resume_from) or False,
        precision=resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator),
    )


def build_model(cfg: DictConfig) -> L.LightningModule:
    return instantiate(
        cfg.model, optimizer=cfg.optimizer, scheduler=cfg.scheduler, _recursive_=False
    )


def write_metrics(trainer: L.Trainer, output_dir: str, metrics: dict) -> None:
    if trainer.is_global_zero:
        path = Path(output_dir) / "metrics.json"
        path.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        log.info("metrics written to %s: %s", path, metrics)


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit, then test the best checkpoint; returns the metrics written to metrics.json."""
    started = time.perf_counter()
    validate(cfg)
    keep_freed_memory()
    L.seed_everything(cfg.seed, workers=True)

    datamodule = instantiate(cfg.data)
    model = build_model(cfg)
    trainer = build_trainer(cfg, resume_from=cfg.get("ckpt_path"))
    log_config(trainer, cfg)

    tuned = {}
    if cfg.get("tune"):
        suggestion = find_learning_rate(trainer, model, datamodule, cfg)
        tuned = {SUGGESTION: suggestion}
        if not cfg.tune.apply:
            metrics = {**tuned, "seconds": round(time.perf_counter() - started, 1)}
            write_metrics(trainer, cfg.paths.output_dir, metrics)
            return metrics
        # The run then is the one `optimizer.lr=<suggestion>` would start: same seed, same
        # initial weights, and a checkpoint that records the rate it trained with.
        cfg.optimizer.lr = suggestion
        L.seed_everything(cfg.seed, workers=True)
        model = build_model(cfg)

    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
    except SIGTERMException:
        # Lightning stops on SIGTERM (what SLURM and most schedulers send) with exit status 0;
        # a scheduler would count the unfinished run as a success.
        log.error(
            "stopped by SIGTERM before training ended; continue with: python train.py resume=%s",
            cfg.paths.output_dir,
        )
        sys.exit(TERMINATED_EXIT_CODE)
    if trainer.global_step == 0:
        # Lightning finishes such a fit quietly; testing its untrained weights would not be.
        raise UserError(
            "no training step ran: check trainer.limit_train_batches, and give each of the "
            f"{trainer.world_size} process(es) at least one batch (data.batch_size, "
            "trainer.devices)"
        )
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()}

    if cfg.get("test"):
        checkpoint = trainer.checkpoint_callback
        best_path = checkpoint.best_model_path if checkpoint else ""
        if not best_path:
            log.warning("no best checkpoint was saved: testing the weights as they are now")
        trainer.test(model, datamodule=datamodule, ckpt_path=best_path or None, weights_only=True)
        metrics.update({name: float(value) for name, value in trainer.callback_metrics.items()})
        metrics["best_checkpoint"] = best_path

    metrics.update(tuned, epochs=trainer.current_epoch)
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    write_metrics(trainer, cfg.paths.output_dir, metrics)
    if trainer.is_global_zero:
        log_hyperparameters(trainer, cfg, metrics)
        log_run_files(trainer, cfg.paths.output_dir, metrics.get("best_checkpoint"))
    return metrics


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def run(cfg: DictConfig) -> float | None:
    """Returns the optimised metric, so that Hydra sweepers can use it. In a multirun a failed
    job records its error and returns NaN, so the other jobs still run."""
    started = time.perf_counter()
    try:
        with user_errors_reported():
            metrics = train(cfg)
    except (Exception, SystemExit) as error:
        # SIGTERM and Ctrl-C (Lightning exits 1 after a KeyboardInterrupt) stop the whole
        # sweep, as the scheduler or the user means them to: they are not a failed job.
        stopped = isinstance(error, SystemExit) and (
            error.code == TERMINATED_EXIT_CODE or isinstance(error.__context__, KeyboardInterrupt)
        )
        if not in_multirun() or stopped:
            raise
        # A user error arrives as the SystemExit that reported it; the error is its context.
        cause = error.__context__ if isinstance(error, SystemExit) else error
        return record_failure(cfg.paths.output_dir, cause or error, started)
    return metrics.get(cfg.get("optimized_metric"))


def main() -> float | None:
    with user_errors_reported():
        if not any(argument.startswith(RESUME_PREFIX) for argument in sys.argv[1:]):
            check_overrides(sys.argv[1:], CONFIG_DIR, "train")
        sys.argv[1:] = resume_arguments(sys.argv[1:])
    return run()


if __name__ == "__main__":
    main()
