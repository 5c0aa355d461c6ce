"""No training step makes the host wait for the device. On a GPU, reading a value back (`.item()`,
`bool()`) or an op whose output size depends on the data (`unique`, `nonzero`) stalls until all
queued work is done; on CPU such ops cost nothing, so this CPU test counts them at the
dispatcher, where they show whether or not they are slow here."""

from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from torch.utils._python_dispatch import TorchDispatchMode

from imgclf.train import build_model, build_trainer

from conftest import compose_train_config

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
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        if func.overloadpacket in HOST_SYNCING_OPS:
            self.ops.append(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


class SyncsPerTrainingBatch(L.Callback):
    """The host-syncing ops of each training micro-batch by its index in the epoch, from its
    start to the end of every callback's on_train_batch_end (this callback is added last)."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, list[str]]] = []
        self.counter: HostSyncCounter | None = None

    def on_train_batch_start(self, *args: Any) -> None:
        self.counter = HostSyncCounter()
        self.counter.__enter__()

    def on_train_batch_end(self, *args: Any) -> None:
        assert self.counter is not None
        self.counter.__exit__(None, None, None)
        batch_idx = args[-1]
        self.batches.append((batch_idx, self.counter.ops))


@pytest.mark.parametrize(
    "recipe",
    [
        ["experiment=cifar10_speedrun"],  # Muon, 8 micro-batches a step, no validation
        ["data=fashion_mnist"],  # the default run: deep_cnn, EMA-free, validation each epoch
    ],
    ids=["speedrun", "default"],
)
def test_training_steps_read_nothing_back_from_the_device(
    recipe: list[str], fixture_data_dir: Path, tmp_path: Path
) -> None:
    """With the shipped callbacks (checkpoints, learning-rate monitor, progress bar,
    DivergenceGuard read every 4th micro-batch of an epoch, as on a GPU), the only host sync
    in two epochs of training is the guard's read."""
    cfg = compose_train_config(
        [*recipe, "data.download=false", f"paths.data_dir={fixture_data_dir}",
         "data.batch_size=16", "trainer.max_epochs=2", "trainer.limit_train_batches=8",
         "trainer.limit_val_batches=2", "trainer.log_every_n_steps=1",
         "trainer.accelerator=cpu", "trainer.precision=32-true", "logger=csv",
         "callbacks.divergence_guard.check_every_n_batches=4"],
        tmp_path,
    )  # fmt: skip
    trainer = build_trainer(cfg)
    syncs = SyncsPerTrainingBatch()
    trainer.callbacks.append(syncs)
    trainer.fit(build_model(cfg), datamodule=instantiate(cfg.data))

    assert len(syncs.batches) >= 8
    guard_reads = [
        (batch_idx, ["aten._local_scalar_dense"] if batch_idx % 4 == 3 else [])
        for batch_idx, _ in syncs.batches
    ]
    assert syncs.batches == guard_reads
