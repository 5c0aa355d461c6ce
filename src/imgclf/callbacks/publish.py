"""Where the views go: TensorBoard (when a TensorBoardLogger is attached) and files in the run
folder, so that every figure can also be read without TensorBoard."""

import json
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.figure import Figure

FIGURES_FOLDER = "figures"


def figure_path(output_dir: str | Path, name: str) -> Path:
    return Path(output_dir) / FIGURES_FOLDER / f"{name}.png"


def tensorboard_writers(trainer: Trainer) -> list[Any]:
    """The SummaryWriters of the run's TensorBoard loggers (call on rank 0 only)."""
    loggers = trainer.loggers
    return [logger.experiment for logger in loggers if isinstance(logger, TensorBoardLogger)]


def publish_figure(
    trainer: Trainer, tag: str, figure: Figure, output_dir: str | Path, name: str | None = None
) -> None:
    """Log `figure` under `tag` at the current step; with `name`, also save `figures/<name>.png`.
    The figure is closed afterwards: pyplot keeps every open figure alive."""
    try:
        if name is not None:
            save_figure(figure, figure_path(output_dir, name))
        for writer in tensorboard_writers(trainer):
            writer.add_figure(tag, figure, global_step=trainer.global_step, close=False)
    finally:
        plt.close(figure)


def save_figure(figure: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110, bbox_inches="tight")


def publish_text(trainer: Trainer, tag: str, markdown: str) -> None:
    for writer in tensorboard_writers(trainer):
        writer.add_text(tag, markdown, global_step=trainer.global_step)


def publish_scalars(trainer: Trainer, scalars: dict[str, float]) -> None:
    """Straight to every logger, so they reach TensorBoard and CSV but not metrics.json."""
    for logger in trainer.loggers:
        logger.log_metrics(scalars, step=trainer.global_step)


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
