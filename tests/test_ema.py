"""Weight EMA: the checkpoints, validation and the test use the running average of the
weights, and a resumed run continues both it and the weights being trained."""

from pathlib import Path

import lightning as L
import pytest
import torch
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from imgclf.builders import build_model
from imgclf.callbacks import WeightEMA

from configs import compose_train_config

DECAY = 0.8


class WeightRecorder(L.Callback):
    """The weights after each optimizer step, and those the test ran with."""

    def __init__(self) -> None:
        self.after_steps: list[dict[str, torch.Tensor]] = []
        self.tested: dict[str, torch.Tensor] = {}
        self.at_start: dict[str, torch.Tensor] = {}

    def on_train_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        self.at_start = weights(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.after_steps.append(weights(pl_module))

    def on_test_start(self, trainer, pl_module) -> None:  # noqa: ANN001
        self.tested = weights(pl_module)


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def fit(
    cfg: DictConfig,
    run_dir: Path,
    recorder: WeightRecorder,
    epochs: int,
    ckpt_path: Path | None = None,
) -> tuple[L.Trainer, L.LightningModule, L.LightningDataModule, WeightEMA]:
    ema = WeightEMA(decay=DECAY)
    trainer = L.Trainer(
        callbacks=[recorder, ema, ModelCheckpoint(run_dir, save_last=True, monitor=None)],
        max_epochs=epochs, limit_train_batches=4, limit_val_batches=2, limit_test_batches=2,
        logger=False, accelerator="cpu", enable_progress_bar=False,
    )  # fmt: skip
    model, datamodule = build_model(cfg), instantiate(cfg.data)
    trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    return trainer, model, datamodule, ema


@pytest.fixture
def cfg(tmp_path: Path, fixture_data_dir: Path) -> DictConfig:
    return compose_train_config(
        ["data=cifar10", f"paths.data_dir={fixture_data_dir}", "data.download=false",
         "data.batch_size=16", "optimizer=sgd", "scheduler=none"],
        tmp_path,
    )  # fmt: skip


def test_checkpoint_and_test_hold_the_running_average_of_the_weights(
    cfg: DictConfig, tmp_path: Path
) -> None:
    recorder = WeightRecorder()
    trainer, model, datamodule, _ = fit(cfg, tmp_path, recorder, epochs=1)
    assert len(recorder.after_steps) == 4
    average = dict(recorder.after_steps[0])
    for step in recorder.after_steps[1:]:
        average = {name: DECAY * average[name] + (1 - DECAY) * step[name] for name in average}
    checkpoint = torch.load(tmp_path / "last.ckpt", weights_only=True)
    for name, value in average.items():
        assert torch.allclose(checkpoint["state_dict"][name], value, atol=1e-6), name
        assert torch.equal(checkpoint["current_model_state"][name], recorder.after_steps[-1][name])
    assert any(
        not torch.allclose(average[name], recorder.after_steps[-1][name]) for name in average
    ), "the average should differ from the last weights"

    trainer.test(model, datamodule=datamodule, ckpt_path=str(tmp_path / "last.ckpt"))
    for name, value in average.items():
        assert torch.allclose(recorder.tested[name], value, atol=1e-6), name


def test_resume_restores_the_average_and_the_trained_weights_exactly(
    cfg: DictConfig, tmp_path: Path
) -> None:
    fit(cfg, tmp_path / "first", WeightRecorder(), epochs=1)
    checkpoint = torch.load(tmp_path / "first" / "last.ckpt", weights_only=True)
    recorder = WeightRecorder()
    *_, ema = fit(
        cfg, tmp_path / "second", recorder, epochs=2, ckpt_path=tmp_path / "first" / "last.ckpt"
    )
    for name, value in recorder.at_start.items():
        assert torch.equal(value, checkpoint["current_model_state"][name]), name
    # Training went on from the restored average: one more epoch of updates on top of it.
    assert ema._latest_update_step == 8
