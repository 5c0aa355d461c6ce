"""MLflow (`logger=mlflow`, `logger=many`): the run's config as parameters at the start, and
its files as artifacts at the end. Metrics reach MLflow through Lightning's MLFlowLogger like
any logger's."""

from pathlib import Path
from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.loggers import MLFlowLogger
from omegaconf import DictConfig, OmegaConf

# What a run folder holds besides checkpoints and logs, as artifact paths in MLflow.
RUN_FILES = ["metrics.json", "report.md", "classification_report.md", "classification_report.json"]
RUN_FOLDERS = ["figures"]


def mlflow_loggers(trainer: Trainer) -> list[MLFlowLogger]:
    return [logger for logger in trainer.loggers if isinstance(logger, MLFlowLogger)]


def flat_config(cfg: DictConfig) -> dict[str, Any]:
    """Every config value under its command-line key, e.g. `model.net.widths`: what the run
    was, in the terms a user changes it in."""
    flat: dict[str, Any] = {}

    def visit(node: Any, key: str) -> None:
        if isinstance(node, dict) and node:
            for name, value in node.items():
                visit(value, f"{key}.{name}" if key else str(name))
        else:
            flat[key] = node

    visit(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False), "")
    return flat


def log_config(trainer: Trainer, cfg: DictConfig) -> None:
    """The flattened config as the MLflow run's parameters (on rank 0: the loggers are
    rank-zero only). A resumed run adds only what it lacks: MLflow refuses to change a
    parameter, and the values the run started with are the ones it trained with (`ckpt_path`
    aside)."""
    config = flat_config(cfg)
    for logger in mlflow_loggers(trainer):
        logged = logger.experiment.get_run(logger.run_id).data.params
        logger.log_hyperparams({key: value for key, value in config.items() if key not in logged})


def run_of_folder(tracking_uri: str, experiment_name: str, run_folder: str) -> str | None:
    """The id of the latest MLflow run tagged with `run_folder` (logger/mlflow.yaml tags
    each run with its folder), or None: for `resume=`, which continues that run."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        return None
    quote = '"' if "'" in run_folder else "'"
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.run_folder = {quote}{run_folder}{quote}",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def log_run_files(trainer: Trainer, output_dir: str | Path, best_checkpoint: str | None) -> None:
    """metrics.json, the reports, the figures and the best checkpoint as MLflow artifacts."""
    output_dir = Path(output_dir)
    for logger in mlflow_loggers(trainer):
        client, run_id = logger.experiment, logger.run_id
        for name in RUN_FILES:
            if (output_dir / name).is_file():
                client.log_artifact(run_id, str(output_dir / name))
        for name in RUN_FOLDERS:
            if (output_dir / name).is_dir():
                client.log_artifacts(run_id, str(output_dir / name), name)
        if best_checkpoint:
            client.log_artifact(run_id, best_checkpoint, "checkpoints")
