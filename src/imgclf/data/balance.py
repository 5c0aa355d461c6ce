"""Two remedies for imbalanced classes: weights for the loss, and a sampler that draws every
class equally often."""

import torch

# `data.sampler`: None draws uniformly, "balanced" every class equally often.
SAMPLERS = (None, "balanced")


def inverse_frequency_weights(counts: torch.Tensor) -> torch.Tensor:
    """Loss weight per class, `total / (classes * count)`: 1 for every class when they are
    balanced, and each class then weighs the same in the loss in sum (sklearn's
    class_weight="balanced")."""
    counts = counts.to(torch.float32)
    if (counts == 0).any():
        raise ValueError(f"every class needs a training image to be weighted, got {counts}")
    return counts.sum() / (len(counts) * counts)


def balanced_sample_weights(labels: torch.Tensor) -> torch.Tensor:
    """Weight per image, 1 / (its class's count): sampling with these draws each class with
    equal probability."""
    counts = torch.bincount(labels.cpu())
    return 1.0 / counts[labels.cpu()].to(torch.float64)


def balanced_order(labels: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` indices drawn with replacement, each class equally likely."""
    return torch.multinomial(
        balanced_sample_weights(labels), count, replacement=True, generator=generator
    )
