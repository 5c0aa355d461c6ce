"""Where the views go: TensorBoard (when a TensorBoardLogger is attached) and files in the run
folder, so that every figure can also be read without TensorBoard."""

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.figure import Figure
from PIL import Image

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
    """Log `figure` under `tag` at the current step; with `name`, also save `figures/<name>.png`."""
    path = figure_path(output_dir, name) if name is not None else None
    write_figure(figure, path, tensorboard_writers(trainer), tag, trainer.global_step)


def save_figure(figure: Figure, path: Path) -> None:
    write_figure(figure, path)


def write_figure(
    figure: Figure,
    path: Path | None,
    writers: Sequence[Any] = (),
    tag: str = "",
    step: int = 0,
) -> None:
    """`figure` as a PNG file at `path` and as an image under `tag` to TensorBoard's `writers`.
    It is drawn once, and TensorBoard shows the file's image: a figure drawn again for each
    (`add_figure`) took a run's end 0.7 s a grid. The figure is closed afterwards: pyplot keeps
    every open figure alive."""
    try:
        if path is None and not writers:
            return
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(buffer.getvalue())
        if writers:
            image = np.asarray(Image.open(buffer).convert("RGB"))
            for writer in writers:
                writer.add_image(tag, image, global_step=step, dataformats="HWC")
    finally:
        plt.close(figure)


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
