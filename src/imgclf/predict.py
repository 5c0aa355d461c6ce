"""`python scripts/predict.py ckpt_path=<checkpoint> inputs=<file, folder or glob>`: classify
the user's own images with a trained model."""

import glob
import logging
import os
import sys
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from imgclf.app import CONFIG_DIR, command_line_app
from imgclf.callbacks.grids import build_image_grid_figure
from imgclf.callbacks.publish import save_figure
from imgclf.data.image_listing import IMAGE_SUFFIXES
from imgclf.errors import USER_ERROR_EXIT_CODE, UserError, user_errors_reported
from imgclf.inference import predict_probabilities, read_images, write_csv
from imgclf.module import ImageClassifier, load_checkpoint

log = logging.getLogger(__name__)


def find_images(inputs: str) -> list[Path]:
    """A file as given (whatever its suffix), every image in a folder, or a glob's matches."""
    path = Path(inputs).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        files = [p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        if not files:
            raise UserError(f"folder {path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return sorted(files)
    matches = sorted(Path(match) for match in glob.glob(str(path), recursive=True))
    files = [match for match in matches if match.is_file()]
    if not files:
        raise UserError(
            f"inputs={inputs}: no such file or folder, and no file matches it as a glob. "
            "Pass an image, a folder of images or a pattern such as 'photos/*.jpg'."
        )
    return files


def write_predictions(
    path: Path, files: list[Path], probabilities: torch.Tensor, model: ImageClassifier, top_k: int
) -> list[dict]:
    rows, names = [], model.class_names
    confidences, classes = probabilities.topk(min(top_k, probabilities.shape[1]), dim=1)
    for file, image_probabilities, top_confidences, top_classes in zip(
        files, probabilities, confidences, classes, strict=True
    ):
        ranked = [
            f"{names[int(label)]} {float(confidence):.1%}"
            for confidence, label in zip(top_confidences, top_classes, strict=True)
        ]
        rows.append(
            {
                "file": str(file),
                **model.task.answer(image_probabilities, names),
                f"top_{top_k}": "; ".join(ranked),
            }
        )
    write_csv(path, rows)
    return rows


def print_table(rows: list[dict]) -> None:
    """The predictions, files named from their common folder (predictions.csv has full paths)."""
    files = [Path(row["file"]) for row in rows]
    root = Path(os.path.commonpath(files)) if len(files) > 1 else files[0].parent
    table = Table(title=f"Predictions for {root}")
    for column in rows[0]:
        table.add_column(column, overflow="fold")
    for file, row in zip(files, rows, strict=True):
        values = {**row, "file": str(file.relative_to(root))}
        table.add_row(
            *(f"{value:.1%}" if isinstance(value, float) else value for value in values.values())
        )
    Console(width=160).print(table)


def save_grid(path: Path, pixels: torch.Tensor, rows: list[dict]) -> None:
    titles = [
        f"{Path(row['file']).name}\n{row['predicted'] or 'none'}"
        + (f" ({row['confidence']:.0%})" if "confidence" in row else "")
        for row in rows
    ]
    figure = build_image_grid_figure(pixels, titles, "Predictions")
    save_figure(figure, path)


def predict(cfg: DictConfig) -> int:
    """Returns the number of skipped files."""
    files = find_images(str(cfg.inputs))
    model = load_checkpoint(cfg.ckpt_path)
    readable, pixels, problems = read_images(files, model)
    for problem in problems.values():
        log.warning("skipped %s", problem)
    skipped = list(problems)
    if not readable:
        raise UserError(f"none of the {len(files)} input file(s) is a readable image")
    probabilities = predict_probabilities(model, pixels, cfg.batch_size)
    output_dir = Path(cfg.paths.output_dir)
    rows = write_predictions(
        output_dir / "predictions.csv", readable, probabilities, model, cfg.top_k
    )
    print_table(rows)
    log.info("%d image(s) classified; predictions.csv in %s", len(rows), output_dir)
    if cfg.save_grid:
        limit = cfg.grid_max_images
        save_grid(output_dir / "predictions.png", pixels[:limit], rows[:limit])
    if skipped:
        log.error(
            "%d file(s) skipped as unreadable: %s", len(skipped), ", ".join(map(str, skipped))
        )
    return len(skipped)


@command_line_app("predict")
@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="predict")
def main(cfg: DictConfig) -> None:
    with user_errors_reported():
        skipped = predict(cfg)
    if skipped:
        sys.exit(USER_ERROR_EXIT_CODE)


if __name__ == "__main__":
    main()
