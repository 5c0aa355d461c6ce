"""Count the operations that make the host wait for the device: reading a value back (`.item()`,
`bool(tensor)`, `float(tensor)`) or an op whose output size depends on the data (`unique`,
`nonzero`, boolean-mask indexing). On a GPU each one stalls until all queued work is done; on
CPU they cost nothing, so counting them at the dispatcher finds, on any machine, what would
stall a GPU."""

from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any

import lightning as L
import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten
HOST_SYNCING_OPS = {
    aten._local_scalar_dense,  # item(), bool(), float(), int() of a tensor
    aten.nonzero,  # also boolean-mask indexing
    aten._unique2,
    aten.unique_dim,
    aten.unique_consecutive,
    aten.masked_select,
    aten.equal,
}


class HostSyncCounter(TorchDispatchMode):
    """While active (`with HostSyncCounter() as counter:`), counts the host-syncing ops run on
    this thread by name. Reads of the tensors `host_resident()` lists are not counted: they
    stay on the CPU when training runs on a GPU."""

    def __init__(self, host_resident: Callable[[], set[int]] = set) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()
        self.host_resident = host_resident

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func.overloadpacket in HOST_SYNCING_OPS and not (
            func.overloadpacket is aten._local_scalar_dense
            and args[0].data_ptr() in self.host_resident()
        ):
            self.ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


def optimizer_step_counts(trainer: L.Trainer) -> set[int]:
    """The data pointers of the optimizers' per-parameter step counts: PyTorch's optimizers
    keep them on the CPU (unless capturable or fused) so that Adam's reading them every step
    waits for nothing."""
    return {
        state["step"].data_ptr()
        for optimizer in trainer.optimizers
        for state in optimizer.state.values()
        if isinstance(state.get("step"), torch.Tensor) and state["step"].ndim == 0
    }


class HostSyncsPerTrainingBatch(L.Callback):
    """The host-syncing ops of each training micro-batch, as (index in the epoch, ops), from
    the batch's start to the end of its on_train_batch_end hooks. Add it after the Trainer is
    built (`trainer.callbacks.append`), so that its hooks run after every other callback's."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, Counter[str]]] = []
        self.counter: HostSyncCounter | None = None

    def on_train_batch_start(self, trainer: L.Trainer, *args: Any) -> None:
        self.counter = HostSyncCounter(partial(optimizer_step_counts, trainer))
        self.counter.__enter__()

    def on_train_batch_end(self, *args: Any) -> None:
        if self.counter is None:
            return
        self.counter.__exit__(None, None, None)
        batch_idx = args[-1]
        self.batches.append((batch_idx, self.counter.ops))
        self.counter = None
