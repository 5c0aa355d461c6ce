"""Training on each batch's hard examples, picked by a small proxy network (after Keller
Jordan's airbench96_faster): the proxy scores every image of a micro-batch with a forward
pass, and the network trains only on the share with the highest proxy loss. The network's
forward and backward passes, nearly all of a step's work, then run on that share alone."""

from collections.abc import Callable

import torch
from torch import Tensor, nn

# Per-example losses of (logits, targets): the training criterion without its reduction.
PerExampleLoss = Callable[[Tensor, Tensor], Tensor]


class HardExampleSelection(nn.Module):
    """Keeps `keep` of each micro-batch: the images the `proxy` network finds hardest.

    The proxy learns alongside the network (its parameters join the network's optimizer
    groups) on its own hardest share, every `train_proxy_every`-th micro-batch only: between
    those it runs forward, without a graph. Picking by the proxy's loss, not the network's,
    spares the network's own scoring pass, which would cost a third of the work saved.
    """

    def __init__(self, proxy: nn.Module, keep: float = 0.5, train_proxy_every: int = 4) -> None:
        super().__init__()
        self.proxy = proxy
        self.keep = keep
        self.train_proxy_every = train_proxy_every

    def forward(
        self, images: Tensor, targets: Tensor, per_example_loss: PerExampleLoss, batch_idx: int
    ) -> tuple[Tensor, Tensor | None]:
        """(indices of the kept images, the proxy's training loss or None). `images` are the
        network's input (normalised); no value is read back to the host."""
        kept = max(1, round(self.keep * len(images)))
        trains = batch_idx % self.train_proxy_every == 0
        with torch.set_grad_enabled(trains and torch.is_grad_enabled()):
            logits = self.proxy(images)
            losses = per_example_loss(logits, targets)
        hardest = hardest_of_each_class(losses.detach(), targets, logits.shape[1], kept)
        if not trains:
            return hardest, None
        # Scaled as if the proxy trained on every micro-batch: its SGD-stepped groups (biases,
        # head) then move at the rates they were tuned for.
        return hardest, losses[hardest].mean() * self.train_proxy_every


def hardest_of_each_class(losses: Tensor, targets: Tensor, num_classes: int, count: int) -> Tensor:
    """Indices of `count` examples: the hardest (highest-loss) of each class, every class
    keeping about the same share of its examples. Keeping the hardest overall skews the
    classes: seeing the easy ones (cars, frogs) less, the network learns to predict them less
    (CIFAR-10: 77 % test accuracy, cars' recall 0.49). Fixed sizes, no host sync."""
    labels = targets.argmax(dim=1) if targets.ndim == 2 else targets
    import os  # the control run: each class keeps a random half (RANDOM_KEEP=1)

    if os.environ.get("RANDOM_KEEP"):
        losses = torch.rand_like(losses)
    hardest_first = losses.argsort(descending=True)
    # Grouped by class, hardest first within each class (a stable sort keeps that order).
    grouped = hardest_first[labels[hardest_first].argsort(stable=True)]
    grouped_labels = labels[grouped]
    class_sizes = torch.zeros(num_classes, device=losses.device).index_add_(
        0, labels, torch.ones_like(losses)
    )
    class_starts = class_sizes.cumsum(0) - class_sizes
    rank_in_class = torch.arange(len(losses), device=losses.device) - class_starts[grouped_labels]
    # Where each example falls in its class, from 0 (hardest) to 1 (easiest).
    share = (rank_in_class + 0.5) / class_sizes[grouped_labels]
    return grouped[share.topk(count, largest=False).indices]
