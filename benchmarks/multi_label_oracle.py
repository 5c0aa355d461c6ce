"""`python benchmarks/multi_label_oracle.py CKPT MOSAICS`: the oracle baseline of the
multi-label mosaics (scripts/make_multilabel_folder.py). A single-label CIFAR-10 model
classifies each of a test mosaic's tiles on its own, told which tiles are empty (the layout
the CSV's `tiles` column records); the mosaic's answer is the set of the tiles' classes, and
each class's score is its highest probability over the tiles. Prints and writes (with
--output) the scores a multi-label run logs: test/map, test/f1_micro, test/f1_macro,
test/subset_acc, test/hamming_loss.
"""

import argparse
import csv
import json
from pathlib import Path

import torch
from torchvision.io import ImageReadMode, decode_image, read_file

from imgclf.errors import UserError, user_errors_reported
from imgclf.module import load_checkpoint
from imgclf.tasks import MultiLabel

GRID, TILE = 2, 32  # the mosaics' layout (make_multilabel_folder.py)
BATCH = 500


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="a single-label CIFAR-10 checkpoint")
    parser.add_argument("mosaics", type=Path, help="the folder with labels.csv")
    parser.add_argument("--output", type=Path, help="write the scores here (JSON)")
    return parser.parse_args()


def test_mosaics(folder: Path) -> list[dict[str, str]]:
    with (folder / "labels.csv").open(newline="") as file:
        rows = [row for row in csv.DictReader(file) if row["split"] == "test"]
    if not rows or "tiles" not in rows[0]:
        raise UserError(f"{folder / 'labels.csv'} lists no test mosaics with their tiles")
    return rows


def tiles_of(path: Path) -> torch.Tensor:
    """The mosaic's tiles, uint8 (GRID * GRID, 3, TILE, TILE), top-left to bottom-right."""
    image = decode_image(read_file(str(path)), mode=ImageReadMode.RGB)
    return image.unfold(1, TILE, TILE).unfold(2, TILE, TILE).permute(1, 2, 0, 3, 4).flatten(0, 1)


def oracle_probabilities(
    checkpoint: Path, folder: Path, rows: list[dict[str, str]]
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Per mosaic, each class's highest probability over its shown tiles (N, classes), its
    predicted label set (multi-hot), and the class names."""
    model = load_checkpoint(checkpoint)
    names = model.class_names
    shown = [
        (mosaic, position)
        for mosaic, row in enumerate(rows)
        for position, tile in enumerate(row["tiles"].split(";"))
        if tile
    ]
    tiles = torch.stack([tiles_of(folder / row["path"]) for row in rows])
    pixels = torch.stack([tiles[mosaic, position] for mosaic, position in shown])
    batches = [pixels[start : start + BATCH] for start in range(0, len(pixels), BATCH)]
    tile_probabilities = torch.cat([model.evaluation_probabilities(batch) for batch in batches])
    owners = torch.tensor([mosaic for mosaic, _ in shown])
    probabilities = torch.zeros(len(rows), len(names))
    probabilities.index_reduce_(0, owners, tile_probabilities, "amax")
    predictions = torch.zeros(len(rows), len(names), dtype=torch.long)
    predictions[owners, tile_probabilities.argmax(dim=1)] = 1
    return probabilities, predictions, names


def main() -> None:
    arguments = parse_arguments()
    with user_errors_reported():
        rows = test_mosaics(arguments.mosaics)
        probabilities, predictions, names = oracle_probabilities(
            arguments.checkpoint, arguments.mosaics, rows
        )
    labels = torch.zeros_like(predictions)
    for index, row in enumerate(rows):
        labels[index, [names.index(name) for name in row["labels"].split(";") if name]] = 1
    task = MultiLabel(len(names))
    metrics = task.metrics("test", len(names))
    metrics.update(torch.tensor(0.0), probabilities, predictions, labels)
    scores = {
        f"test/{name}": round(float(metric.compute()), 4)
        for name, metric in metrics.logged().items()
        if name != "loss"
    }
    scores |= {"mosaics": len(rows), "checkpoint": str(arguments.checkpoint)}
    print(json.dumps(scores, indent=2))
    if arguments.output:
        arguments.output.write_text(json.dumps(scores, indent=2) + "\n")


if __name__ == "__main__":
    main()
