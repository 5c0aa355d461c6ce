"""How much of the machine a training run uses: the work of one training image (forward and
backward, counted by PyTorch's FlopCounterMode) against the device's measured peak, a large
matrix multiply in the run's precision. Near the peak, only doing less work trains faster."""

import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from imgclf.module import ImageClassifier


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a clock reading means it is done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_flops_per_image(
    model: ImageClassifier, images: torch.Tensor, labels: torch.Tensor
) -> float:
    """Floating-point operations (a multiply-add is two) of one training step, per image."""
    with FlopCounterMode(display=False) as counter:
        model.criterion(model(images).float(), labels).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / len(images)


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int = 4096) -> float:
    """FLOP/s of the best of several `size` x `size` matrix multiplies: what the device's
    math library reaches with every thread busy on ideal work."""
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    best = float("inf")
    for _ in range(6):
        synchronize(device)
        started = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best
