"""Look at the data before training on it: sample images with their classes, and how the
classes are spread over train, val and test."""

import matplotlib.pyplot as plt
import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from matplotlib.figure import Figure

from imgclf.callbacks.grids import build_image_grid_figure
from imgclf.callbacks.publish import publish_figure
from imgclf.data.datamodule import ImageDataModule
from imgclf.data.splits import Labelled, class_counts, is_multi_label


def stratified_sample(labels: torch.Tensor, count: int, seed: int = 0) -> torch.Tensor:
    """Indices of `count` random images taken in turn from each class, so every class shows
    (multi-hot labels: from the images holding each class, each image once)."""
    generator = torch.Generator().manual_seed(seed)
    shuffled = torch.randperm(len(labels), generator=generator)
    holds = (
        (labels >= 0.5).T if is_multi_label(labels) else labels[None] == labels.unique()[:, None]
    )
    per_class = [shuffled[holds[label][shuffled]] for label in range(len(holds))]
    picked: list[int] = []
    for rank in range(count):
        for indices in per_class:
            if len(picked) < count and rank < len(indices) and int(indices[rank]) not in picked:
                picked.append(int(indices[rank]))
    return torch.tensor(picked, dtype=torch.long)


def label_names(label: torch.Tensor, class_names: list[str]) -> str:
    """An image's class, or its classes (multi-hot), as a caption."""
    if label.ndim == 0:
        return class_names[int(label)]
    return ", ".join(class_names[i] for i in (label >= 0.5).nonzero().flatten().tolist()) or "none"


def build_sample_grid_figure(datamodule: ImageDataModule, count: int = 32) -> Figure:
    labels = datamodule.splits["train"].labels.cpu()  # the split may live on the GPU
    indices = stratified_sample(labels, count)
    titles = [label_names(label, datamodule.class_names) for label in labels[indices]]
    images = datamodule.views("train", indices)
    return build_image_grid_figure(images, titles, "Sample training images")


def build_class_distribution_figure(splits: dict[str, Labelled], class_names: list[str]) -> Figure:
    """Grouped bars: images per class in each split, to spot imbalance at a glance."""
    figure, axis = plt.subplots(figsize=(max(6.0, 0.7 * len(class_names) + 2), 4))
    positions = np.arange(len(class_names))
    width = 0.8 / len(splits)
    for offset, (split, data) in enumerate(splits.items()):
        counts = class_counts(data.labels, len(class_names)).numpy()
        axis.bar(positions + offset * width, counts, width, label=f"{split} ({len(data):,})")
    axis.set_xticks(positions + width * (len(splits) - 1) / 2)
    axis.set_xticklabels(class_names, rotation=45, ha="right")
    axis.set_ylabel("images")
    axis.set_title("Images per class")
    axis.set_ylim(top=axis.get_ylim()[1] * 1.2)  # headroom for the legend above the bars
    axis.legend(loc="upper center", ncol=len(splits))
    figure.tight_layout()
    return figure


def build_exploration_figures(datamodule: ImageDataModule, samples: int = 32) -> dict[str, Figure]:
    """The figures by name: `samples` and `class_distribution`."""
    return {
        "samples": build_sample_grid_figure(datamodule, samples),
        "class_distribution": build_class_distribution_figure(
            datamodule.splits, datamodule.class_names
        ),
    }


class DataExplorationCallback(Callback):
    """At fit start: `data/samples` and `data/class_distribution`."""

    def __init__(self, output_dir: str, samples: int = 32) -> None:
        self.output_dir = output_dir
        self.samples = samples

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        datamodule = trainer.datamodule
        if not trainer.is_global_zero or not getattr(datamodule, "splits", None):
            return
        figures = build_exploration_figures(datamodule, self.samples)
        for name, figure in figures.items():
            publish_figure(trainer, f"data/{name}", figure, self.output_dir, name)
