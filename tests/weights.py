"""Pretrained weights as a library publishes them, made here: no download."""

import timm
import torch
from torchvision import models


def random_weights(library: str, name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict of the network as published (1,000 classes, RGB) with seeded values:
    every tensor differs from what a fresh network starts with. Small, and variances
    positive, so that the network computes finite numbers with them (batch norm in eval
    mode divides by the running variance's root)."""
    if library == "timm":
        network = timm.create_model(name, pretrained=False)
    else:
        network = models.get_model(name, weights=None)
    generator = torch.Generator().manual_seed(seed)
    weights = {}
    for key, value in network.state_dict().items():
        if not value.is_floating_point():
            weights[key] = value
        elif key.endswith("running_var"):
            weights[key] = 1 + torch.rand(value.shape, generator=generator)
        else:
            weights[key] = 0.05 * torch.randn(value.shape, generator=generator)
    return weights
