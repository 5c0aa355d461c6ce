"""The random generators' states in a checkpoint, one per process. Augmentation and dropout
draw from torch's global generators; with each process's own state back, a resumed run
continues as the uninterrupted one would, under DDP too (rank 0 writes the file, so the states
of the other ranks are gathered into it)."""

import logging
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


def world() -> tuple[int, int]:
    """This process's rank and the number of processes."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def capture() -> list[dict[str, Any]]:
    """Every process's generator states, indexed by rank; a collective under DDP (Lightning
    builds a checkpoint's contents on every rank before rank 0 writes it)."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    _, world_size = world()
    if world_size == 1:
        return [state]
    states: list[Any] = [None] * world_size
    dist.all_gather_object(states, state)
    return states


def restore(states: list[dict[str, Any]] | dict[str, Any]) -> None:
    """Set this process's generators to the state its rank saved."""
    if isinstance(states, dict):  # 0.3.0.dev checkpoints: one state, rank 0's
        states = [states]
    rank, world_size = world()
    if len(states) != world_size:
        log.warning(
            "the checkpoint holds the random states of %d process(es), this run has %d: "
            "augmentation and dropout will not repeat the interrupted run's draws",
            len(states), world_size,
        )  # fmt: skip
    state = states[rank % len(states)]
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.device_count() == len(state["cuda"]):
        torch.cuda.set_rng_state_all(state["cuda"])
