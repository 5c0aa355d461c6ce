"""`python train.py ...`: compose the config, fit, test the best checkpoint, write metrics.json."""

import csv
import json
import logging
import math
import shlex
import sys
import time
from pathlib import Path

import hydra
import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from imgclf.callbacks.run_record import RunRecord
from imgclf.config import check_outputs_writable, validate
from imgclf.ddp import process_group_left_as_found, start_ddp_processes_from_saved_config
from imgclf.errors import UserError, error_message, user_errors_reported
from imgclf.hparams import log_hyperparameters
from imgclf.memory import keep_freed_memory
from imgclf.models.input_size import check_image_size
from imgclf.overrides import check_overrides, home_expanded
from imgclf.precision import resolve_precision
from imgclf.resume import RESUME_PREFIX, checkpoint_step, resume_arguments
from imgclf.run_folder import RunLock, check_run_dir_overrides, record_error
from imgclf.stops import RunStopped, stops_raised
from imgclf.sweeps import in_multirun
from imgclf.tracking import log_config, log_run_files, run_of_folder
from imgclf.tune import SUGGESTION, find_learning_rate

log = logging.getLogger(__name__)

CONFIG_DIR = str(Path(__file__).resolve().parent / "conf")


def instantiate_group(group: DictConfig | None, resume_from: str | None = None) -> list:
    """Callbacks and loggers: each entry with a `_target_`; `null` entries, and those whose
    settings build nothing (`callbacks.ema.decay: null`), are switched off. Resuming from a
    checkpoint, loggers continue the stopped run (`resumed_logger_options`)."""
    built = [
        instantiate(entry, **resumed_logger_options(entry, resume_from))
        for entry in (group or {}).values()
        if entry and "_target_" in entry
    ]
    if resume_from:
        for logger in built:
            if isinstance(logger, CSVLogger):
                continue_csv_log(logger, checkpoint_step(resume_from))
    return [item for item in built if item is not None]


def continue_csv_log(logger: CSVLogger, step: int) -> None:
    """Lightning's CSV writer deletes the metrics.csv it finds: the stopped run's rows up to
    its checkpoint's `step` are written again first, as TensorBoard keeps its events."""
    path = Path(logger.log_dir) / "metrics.csv"
    if not path.is_file():
        return
    with path.open(newline="") as file:
        rows = [row for row in csv.DictReader(file) if row.get("step") and int(row["step"]) <= step]
    writer = logger.experiment  # deletes the file
    for row in rows:
        values = {key: float(value) for key, value in row.items() if value and key != "step"}
        writer.log_metrics(values, int(row["step"]))
    writer.save()


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
    """The Trainer with the config's callbacks, loggers and precision, and a RunRecord;
    `resume_from`: the checkpoint a stopped run continues from."""
    return instantiate(
        cfg.trainer,
        callbacks=[*instantiate_group(cfg.get("callbacks")), RunRecord()],
        logger=instantiate_group(cfg.get("logger"), resume_from) or False,
        precision=resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator),
    )


def run_record(trainer: L.Trainer) -> RunRecord:
    return next(callback for callback in trainer.callbacks if isinstance(callback, RunRecord))


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
    validate(cfg)
    check_outputs_writable(cfg)
    keep_freed_memory()
    L.seed_everything(cfg.seed, workers=True)

    datamodule = instantiate(cfg.data)
    check_image_size(
        OmegaConf.to_container(cfg.model.net, resolve=True),
        cfg.model.in_channels,
        cfg.model.image_size,
        HydraConfig.get().runtime.choices.get("model") if HydraConfig.initialized() else None,
    )
    model = build_model(cfg)
    trainer = build_trainer(cfg, resume_from=cfg.get("ckpt_path"))
    record = run_record(trainer)
    log_config(trainer, cfg)

    tuned = {}
    if cfg.get("tune"):
        suggestion = find_learning_rate(trainer, model, datamodule, cfg)
        tuned = {SUGGESTION: suggestion}
        if not cfg.tune.apply:
            metrics = {**tuned, "seconds": round(record.seconds(), 1)}
            write_metrics(trainer, cfg.paths.output_dir, metrics)
            return metrics
        # The run then is the one `optimizer.lr=<suggestion>` would start: same seed, same
        # initial weights, and a checkpoint that records the rate it trained with.
        cfg.optimizer.lr = suggestion
        L.seed_everything(cfg.seed, workers=True)
        model = build_model(cfg)

    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
    if trainer.global_step == 0:
        # Lightning finishes such a fit quietly; testing its untrained weights would not be.
        raise UserError(
            "no training step ran: check trainer.limit_train_batches, and give each of the "
            f"{trainer.world_size} process(es) at least one batch (data.batch_size, "
            "trainer.devices)"
        )
    save_fitted_state(trainer)
    metrics = record.metrics()

    if cfg.get("test"):
        checkpoint = trainer.checkpoint_callback
        best_path = checkpoint.best_model_path if checkpoint else ""
        if not best_path:
            log.warning("no best checkpoint was saved: testing the weights as they are now")
        trainer.test(model, datamodule=datamodule, ckpt_path=best_path or None, weights_only=True)
        metrics.update({name: float(value) for name, value in trainer.callback_metrics.items()})
        metrics["best_checkpoint"] = best_path

    metrics.update(tuned, epochs=trainer.current_epoch)
    metrics["seconds"] = round(record.seconds(), 1)
    write_metrics(trainer, cfg.paths.output_dir, metrics)
    if trainer.is_global_zero:
        log_hyperparameters(trainer, cfg, metrics)
        log_run_files(trainer, cfg.paths.output_dir, metrics.get("best_checkpoint"))
    return metrics


def save_fitted_state(trainer: L.Trainer) -> None:
    """last.ckpt once more, now that fitting has ended: the last epoch's metrics were logged
    after its save, and a run stopped in its test resumes from here with all of them."""
    checkpoint = trainer.checkpoint_callback
    if checkpoint is not None and checkpoint.last_model_path:
        trainer.save_checkpoint(checkpoint.last_model_path, weights_only=False)


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def run(cfg: DictConfig) -> float | None:
    """Returns the optimised metric, so that Hydra sweepers can use it. A run that fails
    leaves its error in its folder (error.json); in a multirun the job returns NaN, so the
    other jobs still run. A stop (SIGTERM, Ctrl-C) ends a single run and a whole sweep alike,
    as the scheduler or the user means it to, with the command that resumes it."""
    started = time.perf_counter()
    output_dir = cfg.paths.output_dir
    start_ddp_processes_from_saved_config()
    # DDP's other ranks run in the same folder, under the lock of the process that started
    # them; they leave its files to that process.
    rank_zero = rank_zero_only.rank == 0
    lock = RunLock(output_dir) if rank_zero else None
    with user_errors_reported():
        if lock:
            lock.acquire()
    try:
        with process_group_left_as_found(), stops_raised(), user_errors_reported():
            metrics = train(cfg)
    except RunStopped as stop:
        message = (
            f"{stop} before the run ended; continue with: python train.py "
            f"resume={shlex.quote(str(output_dir))}"
        )
        if rank_zero:
            record_error(output_dir, message, started, status="stopped")
        log.error(message)
        sys.exit(stop.exit_code)
    except (Exception, SystemExit) as error:
        # A user error arrives as the SystemExit that reported it; the error is its context.
        cause = (error.__context__ if isinstance(error, SystemExit) else error) or error
        message = error_message(cause)
        if rank_zero:
            record_error(output_dir, message, started, status="failed")
        if not in_multirun():
            raise
        log.error("job failed, the sweep goes on: %s", message, exc_info=cause)
        return math.nan
    finally:
        if lock:
            lock.release()
    return metrics.get(cfg.get("optimized_metric"))


def main() -> float | None:
    sys.argv[1:] = home_expanded(sys.argv[1:])
    with user_errors_reported():
        check_run_dir_overrides(sys.argv[1:])
        if not any(argument.startswith(RESUME_PREFIX) for argument in sys.argv[1:]):
            check_overrides(sys.argv[1:], CONFIG_DIR, "train")
        sys.argv[1:] = resume_arguments(sys.argv[1:])
    return run()


if __name__ == "__main__":
    main()
