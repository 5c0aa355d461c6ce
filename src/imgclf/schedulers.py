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


def linear_decay(
    optimizer: Optimizer,
    total_steps: int,
    max_epochs: int | None = None,
    group_epochs: dict[str, int] | None = None,
) -> LRScheduler:
    """From the optimizer's rates straight down to zero at the last step, with no warm-up.
    A param group named in `group_epochs` reaches zero after that many of the run's
    `max_epochs` instead (airbench trains its whitening bias over the first 3 epochs only)."""
    group_epochs = group_epochs or {}
    if group_epochs and not max_epochs:
        raise ValueError("linear_decay: group_epochs needs max_epochs")

    def decay_over(steps: float):  # noqa: ANN202
        return lambda step: max(0.0, 1 - step / max(1.0, steps))

    factors = []
    for group in optimizer.param_groups:
        epochs = group_epochs.get(group.get("name"))
        fraction = min(1.0, epochs / max_epochs) if epochs is not None else 1.0
        factors.append(decay_over(fraction * total_steps))
    return LambdaLR(optimizer, factors)
