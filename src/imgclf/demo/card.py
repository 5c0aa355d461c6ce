"""The page's model card: what the checkpoint says of its model (data, classes, input, network,
normalisation, when it was saved) and, when it sits in its run folder, the run's test scores
and confusion matrix."""

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from imgclf.callbacks.publish import figure_path
from imgclf.module import SAVED_AT, ImageClassifier
from imgclf.run_folder import METRICS_FILE, run_folder_of


@dataclass(frozen=True)
class ModelCard:
    title: str
    markdown: str
    confusion_matrix: Path | None


def network_name(model: ImageClassifier) -> str:
    """timm's or torchvision's name of the network, else imgclf's class."""
    return model.hparams.name or model.hparams.net["_target_"].rsplit(".", 1)[-1]


def saved_when(checkpoint: dict[str, Any], ckpt_path: Path) -> str:
    """When the weights were saved: as the checkpoint records it, or (written before it did)
    the file's modification time."""
    if SAVED_AT in checkpoint:
        saved = datetime.fromisoformat(checkpoint[SAVED_AT])
    else:
        saved = datetime.fromtimestamp(ckpt_path.stat().st_mtime, timezone.utc)
    return saved.strftime("%Y-%m-%d %H:%M UTC")


def numbers(values: Any) -> str:
    return ", ".join(f"{float(value):.3f}" for value in values)


def task_row(model: ImageClassifier) -> str:
    if model.task.name == "single_label":
        return "one class an image: the likeliest"
    thresholds = ", ".join(
        f"{name} {float(threshold):.2f}"
        for name, threshold in zip(model.class_names, model.task.thresholds, strict=True)
    )
    return f"any number of classes an image: each reaching its threshold ({thresholds})"


def views_row(model: ImageClassifier) -> str:
    views = model.classifier.views
    shown = ["the image"] + ["its mirror image"] * views.flip
    if views.translate:
        shifted = "the image shifted by a pixel"
        if views.translate_margin is not None:
            shifted += f" (when its answer's margin is below {views.translate_margin:g})"
        shown.append(shifted)
    return ", ".join(shown) + ("; averaged" if len(shown) > 1 else "")


def test_scores(run_folder: Path, ckpt_path: Path) -> list[tuple[str, str]]:
    """The run's test scores from its metrics.json, each as a row; which checkpoint they are
    of, when it is not this one."""
    path = run_folder / METRICS_FILE
    if not path.is_file():
        return []
    metrics = json.loads(path.read_text())
    rows = [
        (name, f"{value:.2%}")
        for name, value in sorted(metrics.items())
        if name.startswith("test/") and name != "test/loss"
    ]
    tested = metrics.get("best_checkpoint")
    if rows and tested and Path(tested).resolve() != ckpt_path.resolve():
        rows.append(("tested checkpoint", f"{Path(tested).name} (the run's best, not this one)"))
    return rows


def model_card(
    checkpoint: dict[str, Any], model: ImageClassifier, ckpt_path: str | Path
) -> ModelCard:
    ckpt_path = Path(ckpt_path).expanduser()
    hparams = model.hparams
    normalisation = model.classifier.normalisation
    size, resize = hparams.image_size, hparams.resize_size
    rows = [
        ("dataset", str(hparams.dataset)),
        ("classes", f"{len(model.class_names)}: {', '.join(model.class_names)}"),
        ("task", task_row(model)),
        ("network", network_name(model)),
        (
            "input",
            f"{hparams.in_channels}x{size}x{size} pixels: the short side resized to {resize}, "
            f"the central {size}x{size} square kept",
        ),
        (
            "normalisation",
            f"mean ({numbers(normalisation.mean)}), std ({numbers(normalisation.std)}) of "
            "pixels in [0, 1]",
        ),
        ("test-time views", views_row(model)),
        (
            "trained",
            f"saved {saved_when(checkpoint, ckpt_path)}, in epoch {checkpoint['epoch'] + 1} "
            f"({checkpoint['global_step']:,} steps)",
        ),
        ("checkpoint", str(ckpt_path)),
    ]
    run_folder = run_folder_of(ckpt_path)
    rows += test_scores(run_folder, ckpt_path)
    table = "\n".join(
        ["| about | this model |", "|---|---|", *(f"| {key} | {value} |" for key, value in rows)]
    )
    confusion = figure_path(run_folder, "confusion_matrix")
    return ModelCard(
        title=f"{network_name(model)} trained on {hparams.dataset}",
        markdown=table,
        confusion_matrix=confusion if confusion.is_file() else None,
    )
