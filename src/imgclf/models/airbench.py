"""The speedrun network, after Keller Jordan's airbench94 (arXiv 2404.00498): a frozen
patch-whitening layer, three conv groups and a linear head, built to reach 94 % on CIFAR-10
in as little compute as possible."""

from collections.abc import Sequence

import torch
from torch import Tensor, nn


class BiasOnlyBatchNorm(nn.BatchNorm2d):
    """Batch norm with a learned shift only: a scale before a conv that renormalises its
    weights (see `imgclf.optim.Muon`) is redundant."""

    def __init__(self, channels: int, momentum: float, eps: float) -> None:
        super().__init__(channels, eps=eps, momentum=momentum)
        self.weight.requires_grad_(False)


class IdentityInitialisedConv(nn.Conv2d):
    """3x3 conv whose first `in_channels` filters start as the identity (Dirac), so the
    untrained network passes its input through and early steps train faster."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, 3, padding="same", bias=False)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        nn.init.dirac_(self.weight.data[: self.in_channels])


class ConvGroup(nn.Sequential):
    """Conv, 2x2 max-pool, BN, GELU, conv, BN, GELU: pooling early halves the second conv's cost."""

    def __init__(
        self, in_channels: int, out_channels: int, norm_momentum: float, norm_eps: float
    ) -> None:
        super().__init__(
            IdentityInitialisedConv(in_channels, out_channels),
            nn.MaxPool2d(2),
            BiasOnlyBatchNorm(out_channels, norm_momentum, norm_eps),
            nn.GELU(),
            IdentityInitialisedConv(out_channels, out_channels),
            BiasOnlyBatchNorm(out_channels, norm_momentum, norm_eps),
            nn.GELU(),
        )


class AirbenchNet(nn.Module):
    """Whitening 2x2 conv (+ and - of each whitened direction), three conv groups, a global
    max-pool and a bias-free linear head.

    The whitening weights are fixed from the training images' 2x2 patch covariance
    (`initialise_from_data`, called once before fitting); only its bias trains, and
    `imgclf.callbacks.FreezeParameters` can stop that after a few epochs, which also spares
    the backward pass through the first conv.

    `norm_momentum` is batch norm's running-statistics momentum per forward pass. Airbench
    uses 0.4 with batches of 2,000: test-time statistics from the last ~8,000 images, recent
    enough to follow weights that change fast in a short run. With gradient accumulation over
    k micro-batches, use 1 - 0.6 ** (1 / k) to average over as many images: with 0.4 per
    micro-batch of 250 the statistics are noisier, which cost 0.07-0.14 points of CIFAR-10
    test accuracy (two runs, against statistics recomputed on 10,000 training images).

    `norm_eps` is added to batch norm's variance: airbench's 1e-12 lets a channel that is
    nearly constant over the batch (images with exactly flat backgrounds, as MNIST's) scale
    its gradients by thousands; 0.1 bounds that, which bf16 training of such images needs.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        image_size: int,
        widths: Sequence[int] = (64, 256, 256),
        whitening_kernel: int = 2,
        norm_momentum: float = 0.4,
        norm_eps: float = 1e-12,
    ) -> None:
        super().__init__()
        del image_size  # the global pool makes the network independent of it
        whitened = 2 * in_channels * whitening_kernel**2
        self.whiten = nn.Conv2d(in_channels, whitened, whitening_kernel, bias=True)
        self.whiten.weight.requires_grad_(False)
        groups, width = [], whitened
        for out_width in widths:
            groups.append(ConvGroup(width, out_width, norm_momentum, norm_eps))
            width = out_width
        self.body = nn.Sequential(nn.GELU(), *groups, nn.AdaptiveMaxPool2d(1), nn.Flatten())
        self.head = nn.Linear(width, num_classes, bias=False)
        # Unit-variance head weights with the logits divided by the width: the scale the
        # head's learning rate was tuned for.
        with torch.no_grad():
            self.head.weight /= self.head.weight.std()
        self.logit_scale = 1 / width

    def forward(self, images: Tensor) -> Tensor:
        return self.head(self.body(self.whiten(images))) * self.logit_scale

    @torch.no_grad()
    def initialise_from_data(self, images: Tensor, eps: float = 5e-4) -> None:
        """Set the whitening filters to the eigenvectors of the patch covariance of
        `images` (normalised training images), each scaled to unit variance, and their
        negatives: the first layer then decorrelates pixels before anything is learned."""
        channels, (height, width) = images.shape[1], self.whiten.weight.shape[2:]
        patches = images.float().unfold(2, height, 1).unfold(3, width, 1)
        patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, channels * height * width)
        covariance = patches.T @ patches / len(patches)
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        filters = eigenvectors.T.reshape(-1, channels, height, width)
        filters = filters / torch.sqrt(eigenvalues + eps).view(-1, 1, 1, 1)
        self.whiten.weight.copy_(torch.cat((filters, -filters)))

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters by role, so that an optimizer can treat each differently:
        conv filters, batch-norm biases, the whitening bias and the head."""
        trainable = {name: p for name, p in self.named_parameters() if p.requires_grad}
        groups: dict[str, list[nn.Parameter]] = {
            "filters": [],
            "norm_biases": [],
            "whitening_bias": [],
            "head": [],
        }
        for name, parameter in trainable.items():
            if name == "whiten.bias":
                groups["whitening_bias"].append(parameter)
            elif name.startswith("head."):
                groups["head"].append(parameter)
            elif parameter.ndim == 4:
                groups["filters"].append(parameter)
            else:
                groups["norm_biases"].append(parameter)
        return groups
