"""Splits of multi-label data that keep every label's share in each split: iterative
stratification (Sechidis, Tsoumakas and Vlahavas, "On the stratification of multi-label data",
ECML PKDD 2011), the algorithm scikit-multilearn and iterative-stratification implement."""

import numpy as np
import torch


def iterative_stratification(
    labels: torch.Tensor, ratios: dict[str, float], seed: int
) -> dict[str, torch.Tensor]:
    """Indices of each split named in `ratios` and of "train" (the rest), for multi-hot
    `labels` (N, C). The rarest label still to place goes first: each image holding it joins
    the split that most lacks that label, ties broken by the split that most lacks images,
    then at random. Images with no label fill the splits that still lack images last."""
    rng = np.random.default_rng(seed)
    present = labels.cpu().numpy() >= 0.5
    splits = [*ratios, "train"]
    shares = np.array([*ratios.values(), 1 - sum(ratios.values())])
    # What each split still lacks: images, and images of each label.
    wanted_images = shares * len(present)
    wanted_labels = shares[:, None] * present.sum(axis=0)[None, :]
    assignment = np.full(len(present), -1)
    remaining = present.copy()
    while remaining.any():
        label_counts = remaining.sum(axis=0).astype(float)
        label_counts[label_counts == 0] = np.inf
        rarest = int(label_counts.argmin())
        holders = np.flatnonzero(remaining[:, rarest])
        for image in rng.permutation(holders):
            candidates = np.flatnonzero(wanted_labels[:, rarest] == wanted_labels[:, rarest].max())
            if len(candidates) > 1:
                most_lacking = wanted_images[candidates].max()
                candidates = candidates[wanted_images[candidates] == most_lacking]
            chosen = int(rng.choice(candidates))
            assignment[image] = chosen
            wanted_labels[chosen] -= present[image]
            wanted_images[chosen] -= 1
            remaining[image] = False
    for image in rng.permutation(np.flatnonzero(assignment < 0)):
        candidates = np.flatnonzero(wanted_images == wanted_images.max())
        chosen = int(rng.choice(candidates))
        assignment[image] = chosen
        wanted_images[chosen] -= 1
    return {
        split: torch.from_numpy(rng.permutation(np.flatnonzero(assignment == index)))
        for index, split in enumerate(splits)
    }
