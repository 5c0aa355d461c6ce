"""What the apps build from a composed config: the LightningModule, and the Trainer with the
config's callbacks and loggers (continuing a stopped run's logs when it resumes); and how a
trained model's data config is made to fit it."""

import csv
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, OmegaConf

from imgclf import slurm
from imgclf.callbacks.run_record import RunRecord
from imgclf.checkpoints import checkpoint_step
from imgclf.data.sources import USER_DATASETS
from imgclf.errors import UserError
from imgclf.module import ImageClassifier
from imgclf.precision import resolve_precision
from imgclf.stops import StopSignals
from imgclf.tracking import run_of_folder


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
    """The Trainer with the config's callbacks, loggers and precision, a RunRecord and StopSignals
    (and, in a SLURM job, its requeue); `resume_from`: the checkpoint a stopped run continues
    from."""
    in_slurm_job = slurm.in_slurm_job()
    return instantiate(
        cfg.trainer,
        callbacks=[
            *instantiate_group(cfg.get("callbacks")),
            RunRecord(),
            StopSignals(),
            *([slurm.RequeueOnWarning()] if in_slurm_job else []),
        ],
        logger=instantiate_group(cfg.get("logger"), resume_from) or False,
        plugins=[
            *(instantiate(plugin) for plugin in cfg.trainer.get("plugins") or []),
            *([SLURMEnvironment(auto_requeue=False)] if in_slurm_job else []),
        ],
        precision=resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator),
    )


def run_record(trainer: L.Trainer) -> RunRecord:
    return next(callback for callback in trainer.callbacks if isinstance(callback, RunRecord))


def build_model(cfg: DictConfig) -> L.LightningModule:
    return instantiate(
        cfg.model, optimizer=cfg.optimizer, scheduler=cfg.scheduler, _recursive_=False
    )


def check_fits_data(
    model: ImageClassifier, num_classes: int, in_channels: int, image_size: int
) -> None:
    """A model applies only to data of its own class count and image shape."""
    expected = (model.hparams.num_classes, model.hparams.in_channels, model.hparams.image_size)
    if (num_classes, in_channels, image_size) != expected:
        raise UserError(
            f"the checkpoint's model takes {model.describe_input()}, but the data config gives "
            f"{num_classes} classes of {in_channels}x{image_size}x{image_size} images. Evaluate "
            "on data=<dataset> with the same classes and image shape "
            f"(e.g. data={model.hparams.dataset})."
        )


def read_as_trained(cfg: DictConfig, model: ImageClassifier) -> None:
    """Image files are read at the size, crop and channels the model was trained on."""
    if cfg.data.dataset in USER_DATASETS:
        size, resize = model.hparams.image_size, model.hparams.resize_size
        cfg.data.image_size, cfg.data.in_channels = size, model.hparams.in_channels
        cfg.data.crop_fraction = size / resize
