"""What the model looks at: Grad-CAM heat-maps (Captum) over its most confident mistakes."""

import numpy as np
import torch
from captum.attr import LayerAttribution, LayerGradCam
from lightning.pytorch import LightningModule, Trainer
from torch import nn

from imgclf.callbacks.examples import WRONG, ExamplePickingCallback
from imgclf.callbacks.grids import build_image_grid_figure
from imgclf.callbacks.publish import publish_figure
from imgclf.classifier import Classifier
from imgclf.data.pixels import unit_range


def convolutions(network: nn.Module) -> list[nn.Conv2d]:
    return [module for module in network.modules() if isinstance(module, nn.Conv2d)]


def gradcam_layer(network: nn.Module) -> nn.Module:
    """The last convolutional stage: timm's last feature stage where the network lists them
    (its last convolution may come after the pooling, as in MobileNetV3), else the last
    convolution."""
    feature_info = getattr(network, "feature_info", None)
    if feature_info:
        return network.get_submodule(feature_info[-1]["module"])
    return convolutions(network)[-1]


def gradcam_heatmaps(
    classifier: Classifier, pixels: torch.Tensor, classes: torch.Tensor
) -> np.ndarray:
    """Grad-CAM of `classes` for `pixels` through `classifier`, at its network's last
    convolutional stage, upsampled to the image and scaled to [0, 1] per image: where the
    evidence for that class was found."""
    layer = gradcam_layer(classifier.net)
    # Test hooks run under inference mode, whose tensors cannot enter autograd: leave it, and
    # compute in float32 outside autocast for clean gradients.
    with (
        torch.inference_mode(False),
        torch.enable_grad(),
        torch.autocast(pixels.device.type, enabled=False),
    ):
        inputs = unit_range(pixels).clone().requires_grad_(True)
        cams = LayerGradCam(classifier, layer).attribute(
            inputs, target=classes.clone().tolist(), relu_attributions=True
        )
        cams = LayerAttribution.interpolate(cams, tuple(pixels.shape[-2:]), "bilinear")
    cams = cams.detach().float()[:, 0]
    peak = cams.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    return (cams / peak).cpu().numpy()


# Of a multi-label answer, the likeliest predicted labels shown.
LABELS_EXPLAINED = 3


def first_of_image(images: torch.Tensor) -> list[bool]:
    """Whether each entry of a sorted index list is its image's first."""
    return [index == 0 or int(images[index - 1]) != int(image) for index, image in
            enumerate(images)]  # fmt: skip


class GradCamCallback(ExamplePickingCallback):
    """`test/gradcam_misclassified`: for the most confident mistakes, where the evidence for
    each predicted class was found (`Task.explained`: the one class, or up to
    `LABELS_EXPLAINED` predicted labels, each in a tile of its own)."""

    def __init__(self, output_dir: str, count: int = 16) -> None:
        super().__init__(count, kinds=(WRONG,))
        self.output_dir = output_dir

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        mistakes = self.gather(trainer, pl_module)[WRONG]
        if not trainer.is_global_zero:
            return
        title = "Grad-CAM of each predicted class on misclassified test images"
        if mistakes is None or len(mistakes) == 0:
            figure = build_image_grid_figure(torch.zeros(0), [], title)
        else:
            task, names = pl_module.task, pl_module.class_names
            images, classes = task.explained(
                mistakes.predictions, mistakes.probabilities, LABELS_EXPLAINED
            )
            heatmaps = gradcam_heatmaps(pl_module.classifier, mistakes.images[images], classes)
            # Each tile names the class it explains; an image's first, also the true one(s).
            titles = [
                (f"true: {task.label_names(mistakes.targets[image], names)}\n" if first else "")
                + f"pred: {names[label]} ({float(mistakes.probabilities[image, label]):.0%})"
                for image, label, first in zip(
                    images.tolist(), classes.tolist(), first_of_image(images), strict=True
                )
            ]
            figure = build_image_grid_figure(
                mistakes.images[images], titles, title, overlays=heatmaps
            )
        publish_figure(trainer, "test/gradcam_misclassified", figure, self.output_dir, "gradcam")
