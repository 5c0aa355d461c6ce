"""What a classifier says of a split's images: each image's logits and its embedding, the
pooled features its head classifies."""

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from imgclf.classifier import Classifier
from imgclf.data.datamodule import ImageDataModule
from imgclf.errors import UserError

# Images a batch: in memory a slice, from files a decode by the loader's workers.
BATCH_SIZE = 1024


@dataclass(frozen=True)
class ModelOutputs:
    logits: torch.Tensor  # float32 (N, classes)
    embeddings: torch.Tensor  # float32 (N, features), unit length


class HeadInputs:
    """The input of the network's last linear layer, kept as the network runs: the pooled
    features that its head classifies, for any network (imgclf's, timm's, torchvision's)."""

    def __init__(self, net: nn.Module) -> None:
        linear = [module for module in net.modules() if isinstance(module, nn.Linear)]
        if not linear:
            raise UserError(
                f"the audit takes a network whose head is a linear layer; "
                f"{type(net).__name__} has none"
            )
        self.handle = linear[-1].register_forward_hook(self.keep)
        self.features: torch.Tensor | None = None

    def keep(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self.features = inputs[0].detach().float().flatten(1)

    def close(self) -> None:
        self.handle.remove()


def split_batches(datamodule: ImageDataModule, split: str) -> Iterator[torch.Tensor]:
    """The split's images, uint8, as evaluation sees them, in order."""
    count = len(datamodule.splits[split])
    for start in range(0, count, BATCH_SIZE):
        yield datamodule.views(split, torch.arange(start, min(start + BATCH_SIZE, count)))


def content_hashes(datamodule: ImageDataModule, split: str) -> np.ndarray:
    """A hash of each image's pixels as the model sees them: equal for exact copies."""
    hashes = [
        hashlib.blake2b(image.numpy().tobytes(), digest_size=16).hexdigest()
        for batch in split_batches(datamodule, split)
        for image in batch
    ]
    return np.array(hashes, dtype=np.str_)


@torch.no_grad()
def classifier_outputs(
    classifier: Classifier,
    datamodule: ImageDataModule,
    split: str,
    device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    mirrored: bool = False,
) -> ModelOutputs:
    """One pass of the classifier over the split, with no test-time views. `mirrored`: the
    model trained on mirrored images too, so an image and its mirror are the same to it; the
    embedding then averages both, and a mirrored copy is found as a duplicate."""
    classifier = classifier.to(device).eval()
    head_inputs = HeadInputs(classifier.net)
    logits, embeddings = [], []
    try:
        for pixels in split_batches(datamodule, split):
            pixels = pixels.to(device)
            with autocast():
                logits.append(classifier.evaluation_logits(pixels, views=False).float().cpu())
                features = head_inputs.features
                if mirrored:
                    classifier.evaluation_logits(pixels.flip(3), views=False)
                    features = features + head_inputs.features
            embeddings.append(nn.functional.normalize(features, dim=1).cpu())
    finally:
        head_inputs.close()
    return ModelOutputs(torch.cat(logits), torch.cat(embeddings))
