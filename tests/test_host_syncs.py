"""No training step makes the host wait for the device (see imgclf.host_syncs): counted at the
dispatcher, so that a CPU run finds what would stall a GPU."""

from collections import Counter
from pathlib import Path

import pytest
from hydra.utils import instantiate

from imgclf.builders import build_model, build_trainer

from configs import compose_train_config
from host_syncs import HostSyncsPerTrainingBatch


@pytest.mark.parametrize(
    "recipe",
    [
        ["experiment=cifar10_speedrun"],  # Muon, 8 micro-batches a step, no validation
        ["data=fashion_mnist"],  # the default run: deep_cnn, validation each epoch
        # Adam, which reads its per-parameter step counts every step: they stay on the CPU.
        ["data=fashion_mnist", "model=simple_cnn", "optimizer=adam"],
    ],
    ids=["speedrun", "default", "adam"],
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
    syncs = HostSyncsPerTrainingBatch()
    trainer.callbacks.append(syncs)
    trainer.fit(build_model(cfg), datamodule=instantiate(cfg.data))

    assert len(syncs.batches) >= 8
    guard_reads = [
        (batch_idx, Counter({"aten._local_scalar_dense": 1} if batch_idx % 4 == 3 else {}))
        for batch_idx, _ in syncs.batches
    ]
    assert syncs.batches == guard_reads
