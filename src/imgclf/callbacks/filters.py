"""The first convolution layer's filters as an image: edge and colour detectors forming."""

from typing import Any

import matplotlib.pyplot as plt
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torchvision.utils import make_grid

from imgclf.callbacks.gradcam import convolutions
from imgclf.callbacks.publish import publish_figure
from imgclf.models.pretrained import first_convolution


def build_filters_figure(weights: torch.Tensor) -> Any:
    """Each filter scaled to [0, 1] on its own, so its pattern shows whatever its magnitude;
    RGB filters in colour, others by their mean over input channels."""
    weights = weights.detach().float().cpu()
    if weights.shape[1] != 3:
        weights = weights.mean(dim=1, keepdim=True)
    low = weights.flatten(1).amin(dim=1)[:, None, None, None]
    high = weights.flatten(1).amax(dim=1)[:, None, None, None]
    scaled = (weights - low) / (high - low).clamp_min(1e-12)
    grid = make_grid(scaled, nrow=16, padding=1, pad_value=1.0)
    figure, axis = plt.subplots(figsize=(8, 0.6 * grid.shape[1] / grid.shape[2] * 8 + 0.6))
    axis.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    axis.axis("off")
    count, channels, height, width = weights.shape
    axis.set_title(f"First convolution: {count} filters of {height}x{width}")
    figure.tight_layout()
    return figure


class FirstLayerFiltersCallback(Callback):
    """`model/first_layer_filters` after every training epoch: watch the filters form."""

    def __init__(self, output_dir: str) -> None:
        self.output_dir = output_dir

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        net = pl_module.classifier.net
        if trainer.is_global_zero and convolutions(net):
            first = net.get_submodule(first_convolution(net))
            figure = build_filters_figure(first.weight)
            publish_figure(
                trainer, "model/first_layer_filters", figure, self.output_dir, "first_layer_filters"
            )
