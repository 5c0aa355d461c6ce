"""Learning-rate schedules stepped every batch; each takes the run's total step count."""

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, OneCycleLR


def cosine(optimizer: Optimizer, total_steps: int, warmup_fraction: float = 0.0) -> LRScheduler:
    """Linear warm-up from zero, then a cosine decay to zero at the last step."""
    warmup_steps = round(warmup_fraction * total_steps)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return LambdaLR(optimizer, factor)


def one_cycle(optimizer: Optimizer, total_steps: int, pct_start: float = 0.25) -> LRScheduler:
    """Leslie Smith's one-cycle policy peaking at the optimizer's own learning rate."""
    # OneCycleLR divides by the length of each phase: give the warm-up at least two steps
    # (e.g. `trainer.limit_train_batches=4`), or stay constant where there are not enough.
    if total_steps < 4:
        return LambdaLR(optimizer, lambda step: 1.0)
    pct_start = max(pct_start, 2 / total_steps)
    peak_rates = [group["lr"] for group in optimizer.param_groups]
    return OneCycleLR(optimizer, max_lr=peak_rates, total_steps=total_steps, pct_start=pct_start)
