"""uint8 pixels to the network's input: per-channel statistics and normalisation."""

import torch


def normalise_pixels(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] to float with zero mean and unit variance per channel (`mean` and `std`
    on the [0, 1] scale), channels_last."""
    scale = (1 / (255 * std)).to(images.device)[None, :, None, None]
    shift = (mean / std).to(images.device)[None, :, None, None]
    normalised = images.to(torch.float32) * scale - shift
    return normalised.contiguous(memory_format=torch.channels_last)


def channel_statistics(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std on the [0, 1] scale, one channel at a time to bound memory."""
    means, stds = [], []
    for channel in range(images.shape[1]):
        values = images[:, channel].to(torch.float64) / 255
        means.append(values.mean())
        stds.append(values.std().clamp_min(1e-6))
    return torch.stack(means).float(), torch.stack(stds).float()
