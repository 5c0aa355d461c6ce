"""Classifier: the trained model as one plain `nn.Module`, raw pixels in and logits out. It
holds the normalisation, the network and the test-time views; training, eval, predict and
export all run this one module."""

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from imgclf.data.pixels import PixelNormalisation


@dataclass(frozen=True)
class EvaluationViews:
    """Which views of an image evaluation averages (`model.flip_test_time`,
    `model.translate_test_time`, `model.translate_test_time_margin`)."""

    flip: bool = False
    translate: bool = False
    # Only images whose top two classes' probabilities are closer than this get the shifted
    # views (multi-label: whose least sure class's yes and no are; `answer_gap`); None: every
    # image.
    translate_margin: float | None = None
    # What is averaged: "logits" (one class an image), or each class's sigmoid probability,
    # "probabilities" (multi-label: then the logits returned are those of the averages).
    average: str = "logits"


def answer_gap(outputs: torch.Tensor, average: str) -> torch.Tensor:
    """How sure each image's answer is: the gap between the top two classes' probabilities;
    or, for sigmoid probabilities (`average="probabilities"`), each class being a yes-or-no
    answer, the gap between yes and no, |2p - 1|, of the least sure class."""
    if average == "probabilities":
        return (2 * outputs - 1).abs().min(dim=1).values
    top_two = outputs.softmax(dim=1).topk(2, dim=1).values
    return top_two[:, 0] - top_two[:, 1]


def augmented_view_logits(
    net: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    views: EvaluationViews,
    skip_confident: bool = True,
) -> torch.Tensor:
    """float32 logits averaged over views of each image: with `views.flip`, the image and its
    mirror (valid only where training flips images too); with `views.translate`, also the
    image shifted one pixel up-left and down-right (reflected borders), weighted 1/4 each
    against 1/2 for the unshifted views, as in airbench.

    With a `translate_margin` only the images whose unshifted views leave the top two
    classes' probabilities less than that apart get the shifted views: they change few
    confident answers, and skipping them saves most of their cost. `skip_confident=False`
    computes every view and selects afterwards, the same logits in a graph of fixed shapes
    (export).
    """

    def mirror_averaged(inputs: torch.Tensor) -> torch.Tensor:
        logits = net(inputs).float()
        return (logits + net(inputs.flip(3)).float()) / 2 if views.flip else logits

    def with_shifted_views(unshifted: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        height, width = inputs.shape[-2:]
        padded = F.pad(inputs, (1, 1, 1, 1), mode="reflect")
        up_left, down_right = padded[..., :height, :width], padded[..., 2:, 2:]
        return 0.5 * unshifted + 0.25 * (mirror_averaged(up_left) + mirror_averaged(down_right))

    logits = mirror_averaged(images)
    if not views.translate:
        return logits
    if views.translate_margin is None:
        return with_shifted_views(logits, images)
    uncertain = answer_gap(logits, views.average) < views.translate_margin
    if not skip_confident:
        return torch.where(uncertain[:, None], with_shifted_views(logits, images), logits)
    chosen = uncertain.nonzero()[:, 0]
    return logits.index_copy(0, chosen, with_shifted_views(logits[chosen], images[chosen]))


# Probabilities this close to 0 or 1 keep a finite logit.
LOGIT_EPS = 1e-6


class Classifier(nn.Module):
    """Raw pixels (uint8, or float in [0, 1]) to logits: normalised with the statistics it
    holds, then the network. `forward` is one view, as training sees an image;
    `evaluation_logits` averages the test-time views, as the model is judged."""

    def __init__(
        self,
        net: nn.Module,
        in_channels: int,
        views: EvaluationViews | None = None,
        channels_last: bool = True,
    ) -> None:
        super().__init__()
        self.normalisation = PixelNormalisation(in_channels)
        self.net = net.to(memory_format=torch.channels_last) if channels_last else net
        self.views = views or EvaluationViews()
        self.channels_last = channels_last

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """Raw pixels to the network's input (`PixelNormalisation`)."""
        images = self.normalisation(pixels)
        if self.channels_last:
            return images.contiguous(memory_format=torch.channels_last)
        return images

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalise(pixels))

    def evaluation_logits(
        self, pixels: torch.Tensor, views: bool = True, skip_confident: bool = True
    ) -> torch.Tensor:
        """float32 logits: in training (or without `views`) of the image alone, otherwise
        averaged over the test-time views (`augmented_view_logits`)."""
        images = self.normalise(pixels)
        if self.training or not views:
            return self.net(images).float()
        if self.views.average == "probabilities":

            def sigmoid_probabilities(inputs: torch.Tensor) -> torch.Tensor:
                return self.net(inputs).float().sigmoid()

            probabilities = augmented_view_logits(
                sigmoid_probabilities, images, self.views, skip_confident
            )
            return torch.logit(probabilities, eps=LOGIT_EPS)
        return augmented_view_logits(self.net, images, self.views, skip_confident)

    def for_export(self) -> "Classifier":
        """This classifier made float32, plain NCHW and in eval mode, in place: exporters
        trace plain NCHW more portably than channels_last weights."""
        self.net.to(memory_format=torch.contiguous_format)
        self.channels_last = False
        return self.float().eval()
