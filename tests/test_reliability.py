"""Reliability as a user meets it: a killed run resumes to the same result, the same seed
gives the same metrics, bad values and bad data stop with one clear message, a diverging run
stops and keeps its last good checkpoint."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from torch import nn

from imgclf.callbacks import DivergenceGuard
from imgclf.checkpoints import AtomicCheckpointIO
from imgclf.errors import UserError

from cli import REPO, SHORT_MNIST_RUN, interrupted_run, run_train
from configs import fit_watched, require_real_data
from dataset_files import write_image_folder
from views import load_events


def test_run_killed_mid_epoch_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    data_dir = require_real_data("MNIST/raw")
    uninterrupted = run_train(
        *SHORT_MNIST_RUN, f"hydra.run.dir={tmp_path / 'whole'}", data_dir=data_dir
    )
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]

    run_dir = tmp_path / "killed"
    assert interrupted_run(run_dir, data_dir, signal.SIGKILL) == -signal.SIGKILL
    assert not (run_dir / "metrics.json").exists()

    resumed = run_train(f"resume={run_dir}", data_dir=data_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    whole = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 3
    assert metrics["test/acc"] == pytest.approx(whole["test/acc"], abs=0.005)
    # The original config and overrides are kept; the resumed job's own are beside them.
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert (run_dir / ".hydra" / "resumed" / "config.yaml").is_file()
    # TensorBoard shows each step once: the killed run's steps after its checkpoint are purged.
    events = load_events(run_dir)
    for tag in ("lr-Adam", "train/loss", "val/acc"):
        steps = [event.step for event in events.Scalars(tag)]
        assert len(steps) == len(set(steps)), f"{tag} has duplicated steps: {steps}"
    assert len(events.Scalars("val/acc")) == 3


def test_lightning_ckpt_path_resumes_too(tmp_path: Path, fixture_data_dir: Path) -> None:
    first = run_train(
        "data.batch_size=16", "trainer.max_epochs=1", "callbacks=minimal", "scheduler=none",
        f"hydra.run.dir={tmp_path / 'a'}", data_dir=fixture_data_dir,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    second = run_train(
        "data.batch_size=16", "trainer.max_epochs=2", "callbacks=minimal", "scheduler=none",
        f"ckpt_path={tmp_path / 'a' / 'checkpoints' / 'last.ckpt'}",
        f"hydra.run.dir={tmp_path / 'b'}", data_dir=fixture_data_dir,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr[-3000:]
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["epochs"] == 2
    assert "Restoring states from the checkpoint path" in second.stdout + second.stderr


def test_resume_of_a_folder_that_is_not_a_run_says_so(tmp_path: Path) -> None:
    result = run_train(f"resume={tmp_path}")
    assert result.returncode == 2
    assert f"resume={tmp_path}: not a run folder" in result.stderr
    assert "Traceback" not in result.stderr


# Writes epoch 1, then (slowly: 400 MB) epoch 2 over it with the plugin imgclf's Trainer uses.
SAVE_TWICE = """
import sys, torch
from imgclf.checkpoints import AtomicCheckpointIO
io, path = AtomicCheckpointIO(), sys.argv[1]
io.save_checkpoint({"epoch": 1, "weights": torch.ones(3)}, path)
print("first saved", flush=True)
io.save_checkpoint({"epoch": 2, "weights": torch.zeros(100_000_000)}, path)
"""


def test_a_process_killed_while_writing_a_checkpoint_keeps_the_previous_one(
    tmp_path: Path,
) -> None:
    """Caught mid-write, the new checkpoint is a hidden file beside the old one, which stays
    whole until the rename. (Lightning's own TorchCheckpointIO writes to the system's temp
    folder and moves the file over the target: where that folder is another file system, a
    tmpfs /tmp, the move is a copy that a kill truncates; it never shows a partial file
    beside the target, so this test fails with it.)"""
    path = tmp_path / "last.ckpt"
    process = subprocess.Popen(
        [sys.executable, "-c", SAVE_TWICE, str(path)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline() == "first saved\n"
    partial = tmp_path / ".last.ckpt.partial"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not partial.exists() or partial.stat().st_size == 0):
        if process.poll() is not None:
            break
        time.sleep(0.001)
    process.kill()
    process.wait()
    assert partial.exists(), "the second write was not caught in progress"
    assert torch.load(path, weights_only=True)["epoch"] == 1


def test_same_seed_and_deterministic_gives_identical_metrics(
    tmp_path: Path, fixture_data_dir: Path
) -> None:
    results = []
    for attempt in ("a", "b"):
        result = run_train(
            "data.batch_size=16", "trainer.max_epochs=2", "trainer.deterministic=true",
            "callbacks=minimal", "seed=7", f"hydra.run.dir={tmp_path / attempt}",
            data_dir=fixture_data_dir,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        metrics = json.loads((tmp_path / attempt / "metrics.json").read_text())
        results.append(
            {k: v for k, v in metrics.items() if k not in ("seconds", "best_checkpoint")}
        )
    assert results[0] == results[1]


BAD_VALUES = {
    "optimizer.lr=-0.01": "optimizer.lr=-0.01 is not allowed: use a learning rate > 0",
    "data.batch_size=0": "data.batch_size=0 is not allowed: use an integer >= 1",
    "data.val_ratio=1.2": "data.val_ratio=1.2 is not allowed: use a fraction in [0, 1)",
    "data.augment.cutout=-4": "data.augment.cutout=-4 is not allowed: use an integer >= 0",
    "model.net.head_dropout=1.5": "model.net.head_dropout=1.5 is not allowed: use a "
    "probability in [0, 1)",
    "trainer.precision=fp8": "trainer.precision=fp8 is not allowed: use one of [",
    "trainer.devices=64": "trainer.devices=64, but this machine has",
    "optimizer=muon": "optimizer=muon needs a network that names its parameter groups, and "
    "imgclf.models.VggCNN does not",
    "seed=-1": "seed=-1 is not allowed: use an integer from 0 to 2**32 - 1",
    "model.translate_test_time_margin=2": "model.translate_test_time_margin=2 is not allowed: "
    "use a probability margin in [0, 1]",
}


def test_a_bad_airbench_setting_is_named(tmp_path: Path) -> None:
    result = run_train("model.net.norm_eps=-1", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2
    assert "model.net.norm_eps=-1 is not allowed: use a number > 0, e.g. 0.1" in result.stderr
    assert "Traceback" not in result.stderr


def test_muon_with_a_network_built_by_a_function_is_one_message(tmp_path: Path) -> None:
    result = run_train("model=resnet18", "optimizer=muon", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 2
    assert "imgclf.models.cifar_resnet18 does not: use model=airbench" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_bad_value_is_named_before_any_data_is_read(tmp_path: Path) -> None:
    empty = tmp_path / "no_data_here"
    empty.mkdir()
    result = run_train(
        "model=vgg_cnn", *BAD_VALUES, "data.download=false", f"hydra.run.dir={tmp_path / 'run'}",
        data_dir=empty,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("imgclf: error: invalid configuration:") == 1
    for message in BAD_VALUES.values():
        assert message in result.stderr
    assert "is not in" not in result.stderr  # the data was never looked for
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("target", ["os.system", "torch.save"])
def test_a_config_naming_code_imgclf_does_not_offer_is_refused(target: str, tmp_path: Path) -> None:
    """torch.save was let through by the old allow-list of packages (`torch.`)."""
    marker = tmp_path / "written"
    arguments = f"command:'touch {marker}'" if target == "os.system" else f"obj:1,f:'{marker}'"
    result = run_train(
        "~model.net", f"+model.net={{_target_:{target},{arguments}}}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("imgclf: error:") == 1
    assert f"model.net._target_={target} is not one of the classes imgclf offers" in result.stderr
    assert not marker.exists()


def test_resuming_a_run_folder_from_elsewhere_checks_it_before_hydra_builds_anything(
    tmp_path: Path,
) -> None:
    """Hydra builds the callbacks a primary config's `hydra:` section names before the run
    starts: a resumed folder's config.yaml is checked first."""
    marker = tmp_path / "written"
    (tmp_path / ".hydra").mkdir()
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"")
    payload = {
        "hydra": {"callbacks": {"x": {"_target_": "torch.save", "obj": 1, "f": str(marker)}}}
    }
    (tmp_path / ".hydra" / "config.yaml").write_text(json.dumps(payload))  # JSON is YAML
    result = run_train(f"resume={tmp_path}")
    assert result.returncode == 2
    assert "hydra.callbacks.x._target_=torch.save is not one of the classes" in result.stderr
    assert "Traceback" not in result.stderr
    assert not marker.exists()


def test_full_error_shows_the_traceback(tmp_path: Path) -> None:
    result = run_train(
        "optimizer.lr=0", f"hydra.run.dir={tmp_path}", variables={"HYDRA_FULL_ERROR": "1"}
    )
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "optimizer.lr=0 is not allowed" in result.stderr


def test_empty_image_folder_and_unreadable_class_are_named(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_train(
        "data=image_folder", f"data.data_dir={empty}", f"hydra.run.dir={tmp_path / 'a'}"
    )
    assert result.returncode == 2
    assert f"image folder {empty} has 0 class subfolder(s)" in result.stderr

    folder = write_image_folder(tmp_path / "pets", classes=("cat", "dog"), per_class=3)
    for image in (folder / "dog").iterdir():
        image.write_bytes(b"not an image at all")
    result = run_train(
        "data=image_folder", f"data.data_dir={folder}", f"hydra.run.dir={tmp_path / 'b'}"
    )
    assert result.returncode == 2
    assert f"class(es) ['dog'] have no readable training images in {folder}" in result.stderr
    assert str(folder / "dog" / "dog_0.png") in result.stdout + result.stderr  # the warning
    assert "Traceback" not in result.stderr


class DivergesInSecondEpoch(L.LightningModule):
    """A linear model whose loss turns NaN at the start of epoch 2 (index 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 2)

    def training_step(self, batch: tuple, batch_idx: int) -> torch.Tensor:
        loss = nn.functional.cross_entropy(self.layer(batch[0]), batch[1])
        return loss * torch.nan if self.current_epoch == 1 else loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.parametrize(
    "check_every_n_batches",
    # Every batch (CPU's default); every 3rd, so the read comes two batches late; and never
    # within the run's 4-batch epochs, so only the epoch's end and the checkpoint catch it.
    [None, 3, 100],
)
def test_nan_loss_stops_training_naming_the_step_and_keeps_the_last_checkpoint(
    tmp_path: Path, check_every_n_batches: int | None
) -> None:
    data = torch.utils.data.TensorDataset(torch.randn(32, 4), torch.randint(0, 2, (32,)))
    checkpoints = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True)
    guard = DivergenceGuard(check_every_n_batches)
    trainer = L.Trainer(
        max_epochs=3, callbacks=[guard, checkpoints], logger=False,
        enable_progress_bar=False, plugins=[AtomicCheckpointIO()],
    )  # fmt: skip
    first_bad = r"the loss is nan at step 5 \(epoch 1, batch 0\)"
    with pytest.raises(UserError, match=rf"training diverged: {first_bad}"):
        trainer.fit(DivergesInSecondEpoch(), torch.utils.data.DataLoader(data, batch_size=8))
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert saved["epoch"] == 0
    assert all(torch.isfinite(value).all() for value in saved["state_dict"].values())


class TrainingLabels(L.Callback):
    """The labels of every training batch, per epoch."""

    def __init__(self) -> None:
        self.epochs: list[list[list[int]]] = []

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epochs.append([])

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.epochs[-1].append(batch[1].tolist())


def test_debug_overfit_trains_on_the_same_batches_every_epoch(
    fixture_data_dir: Path, tmp_path: Path
) -> None:
    labels = TrainingLabels()
    fit_watched(
        ["debug=overfit", "data.batch_size=16", "data.download=false",
         f"paths.data_dir={fixture_data_dir}"],
        tmp_path, labels, max_epochs=2, overfit_batches=3,
    )  # fmt: skip
    first, second = labels.epochs
    assert len(first) == 3
    assert first == second


def test_resuming_a_finished_run_says_so_and_leaves_its_folder_alone(
    cifar_run: tuple, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(cifar_run[0], run_dir)
    before = {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()}
    result = run_train(f"resume={run_dir}")
    assert result.returncode == 2
    assert f"resume={run_dir}: the run has finished" in result.stderr
    assert f"model.init_from={run_dir / 'checkpoints' / 'last.ckpt'}" in result.stderr
    assert "Traceback" not in result.stderr
    after = {path: path.read_bytes() for path in run_dir.rglob("*") if path.is_file()}
    assert after == before


def test_resume_with_other_epochs_says_to_start_from_the_weights(
    cifar_run: tuple, tmp_path: Path
) -> None:
    """Extending a finished run crashed in the one-cycle schedule, whose steps were laid out
    for the planned epochs."""
    run_dir = tmp_path / "run"
    shutil.copytree(cifar_run[0], run_dir)
    result = run_train(f"resume={run_dir}", "trainer.max_epochs=4")
    assert result.returncode == 2
    assert "continues the run as planned, 2 epochs" in result.stderr
    assert f"model.init_from={run_dir / 'checkpoints' / 'last.ckpt'} trainer.max_epochs=4" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
