"""A trained model applied to image files, as predict and the demo page both apply it: each
file read as the model saw images in evaluation, then its probabilities over the test-time
views."""

import csv
from collections.abc import Sequence
from pathlib import Path

import torch

from imgclf.data.decode import UnreadableImageError, read_view
from imgclf.module import ImageClassifier


def model_view(path: str | Path, model: ImageClassifier) -> torch.Tensor:
    """uint8 (C, H, W): the file decoded in the model's channels, its short side resized and
    its centre cropped as in evaluation. Raises UnreadableImageError (its message starts with
    the path) for a file that is not an image, or whose header promises a decompression bomb."""
    try:
        return read_view(
            str(path),
            model.hparams.in_channels,
            cached=False,
            transform=model.evaluation_transform(),
            short_side=model.hparams.resize_size,
        )
    except OSError as error:  # gone, or unreadable by this user
        raise UnreadableImageError(f"{path}: {error.strerror or error}") from error


def read_images(
    files: Sequence[str | Path], model: ImageClassifier
) -> tuple[list, torch.Tensor, dict[str, str]]:
    """(readable files, their pixels as uint8 (N, C, H, W) as the model sees them in
    evaluation, and by path why each other file could not be read)."""
    readable, pixels, problems = [], [], {}
    for path in files:
        try:
            pixels.append(model_view(path, model))
            readable.append(path)
        except UnreadableImageError as error:  # its message starts with the path
            problems[str(path)] = str(error)
    return readable, torch.stack(pixels) if pixels else torch.zeros(0), problems


@torch.inference_mode()
def predict_probabilities(
    model: ImageClassifier, pixels: torch.Tensor, batch_size: int = 64
) -> torch.Tensor:
    """The task's probabilities (N, classes) of uint8 pixels, averaged over the model's
    test-time views, `batch_size` images at a time."""
    batches = [
        model.evaluation_probabilities(pixels[start : start + batch_size])
        for start in range(0, len(pixels), batch_size)
    ]
    return torch.cat(batches)


def write_csv(path: Path, rows: list[dict]) -> None:
    """One row an image, the columns those of the first row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
