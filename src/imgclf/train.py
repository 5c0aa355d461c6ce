"""`python train.py ...`: compose the config, fit, test the best checkpoint, write metrics.json."""

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
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from imgclf import slurm
from imgclf.app import CONFIG_DIR, command_line_app
from imgclf.builders import build_model, build_trainer, run_record
from imgclf.checkpoints import LAST_CHECKPOINT
from imgclf.checks import check_outputs_writable, validate
from imgclf.ddp import process_group_left_as_found, start_ddp_processes_from_saved_config
from imgclf.errors import UserError, error_message, user_errors_reported
from imgclf.hparams import log_hyperparameters
from imgclf.memory import keep_freed_memory
from imgclf.models.input_size import check_image_size
from imgclf.resolvers import register_resolvers
from imgclf.resume import resumed_run_arguments
from imgclf.run_folder import METRICS_FILE, RunLock, record_error, write_metrics
from imgclf.stops import RunStopped, stops_raised
from imgclf.sweeps import in_multirun
from imgclf.targets import rename_old_datamodule, rename_old_targets
from imgclf.tracking import log_config, log_run_files
from imgclf.tune import SUGGESTION, find_learning_rate

log = logging.getLogger(__name__)

# A sweep's cluster job unpickles `run` from this module and resolves its config before
# `run` starts: importing the module must register the resolvers there too.
register_resolvers()


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit, then test the best checkpoint; returns the metrics written to metrics.json."""
    # A run folder of an earlier version, resumed.
    rename_old_targets(cfg)
    rename_old_datamodule(cfg)
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


def finished_metrics(output_dir: str) -> dict | None:
    """The metrics of a run that finished in this folder before SLURM started its job again
    (a job requeued after its run ended, or a batch script with several runs): not run twice."""
    path = Path(output_dir) / METRICS_FILE
    if slurm.restart_count() == 0 or not path.is_file():
        return None
    log.info("the run in %s finished before SLURM started this job again", output_dir)
    return json.loads(path.read_text())


def continued_in_slurm(cfg: DictConfig) -> DictConfig:
    """A requeued SLURM job continues its run from the last checkpoint it saved."""
    last = Path(cfg.paths.output_dir) / LAST_CHECKPOINT
    if slurm.restart_count() > 0 and not cfg.get("ckpt_path") and last.is_file():
        log.info("SLURM started this job again: continuing from %s", last)
        cfg.ckpt_path = str(last)
    return cfg


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
        with (
            process_group_left_as_found(),
            stops_raised(),
            slurm.warnings_noted(),
            user_errors_reported(),
        ):
            metrics = finished_metrics(output_dir) or train(continued_in_slurm(cfg))
    except RunStopped as stop:
        message = (
            f"{stop} before the run ended; continue with: python train.py "
            f"resume={shlex.quote(str(output_dir))}"
        )
        if rank_zero and isinstance(stop, slurm.RunRequeued):
            message = slurm.requeue(stop, resume_hint=message)
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


main = command_line_app("train", saved_run_arguments=resumed_run_arguments)(run)

if __name__ == "__main__":
    main()
