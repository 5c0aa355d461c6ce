"""DDP on two CPU processes (trainer=ddp_cpu): every validation and test image is counted
exactly once, a rank whose share is smaller than a batch still trains, and parameters frozen
or thawed mid-run train under DDP (their gradients are dropped, not their requires_grad), and
a resumed rank gets back its own random state."""

import json
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from imgclf import random_states
from imgclf.overrides import override

from cli import run_train, stopped_run
from weights import random_weights


@pytest.mark.parametrize("cache", ["ram", "none"])  # the two data paths
def test_ddp_counts_every_test_image_once_and_trains_small_shares(
    cache: str, odd_folder: Path, tmp_path: Path
) -> None:
    result = run_train(
        "trainer=ddp_cpu", "data=image_folder", f"data.data_dir={odd_folder}",
        "data.image_size=32", f"data.cache={cache}", "data.num_workers=0",
        "data.batch_size=16", "trainer.max_epochs=1", "callbacks=default",
        "callbacks.gradcam=null", f"hydra.run.dir={tmp_path}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "classification_report.json").read_text())
    assert report["support"] == 7
    assert {name: row["support"] for name, row in report["classes"].items()} == {
        "cat": 3, "dog": 2, "fox": 2,
    }  # fmt: skip
    # About 19 training images after validation's share: under one batch of 16 a rank, which
    # trained nothing before (a run that trains nothing now fails instead of exiting 0).
    assert json.loads((tmp_path / "metrics.json").read_text())["epochs"] == 1
    # Both processes clamp their batches; the console says so once, the second process's
    # log file too.
    clamped = "data.batch_size=16 is larger than each process's share"
    assert (result.stdout + result.stderr).count(clamped) == 1
    assert clamped in (tmp_path / "train_ddp_process_1.log").read_text()


def test_a_run_that_trains_no_step_fails_before_testing(
    fixture_data_dir: Path, tmp_path: Path
) -> None:
    result = run_train(
        "trainer.limit_train_batches=0", "callbacks=minimal", "data.download=false",
        "data.batch_size=16",
        f"hydra.run.dir={tmp_path}", data_dir=fixture_data_dir,
    )  # fmt: skip
    assert result.returncode == 2
    assert "no training step ran: check trainer.limit_train_batches" in result.stderr
    assert not (tmp_path / "metrics.json").exists()


def test_speedrun_freezes_its_whitening_bias_under_ddp_and_keeps_last_ckpt(
    fixture_data_dir: Path, tmp_path: Path
) -> None:
    """Freezing mid-run by `requires_grad` made DDP stop with an unused-parameter error."""
    result = run_train(
        "experiment=cifar10_speedrun", "trainer=ddp_cpu", "trainer.max_epochs=3",
        "callbacks.freeze_whitening_bias.after_epochs=1", "data.download=false",
        f"hydra.run.dir={tmp_path}", data_dir=fixture_data_dir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()  # resume= needs it
    # Saved again when fitting ended: the state after the third epoch.
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 3


def test_a_frozen_backbone_stays_exactly_as_loaded_under_ddp_then_trains(
    fixture_data_dir: Path, tmp_path: Path
) -> None:
    weights = random_weights("timm", "resnet18")
    torch.save(weights, tmp_path / "resnet18.pth")
    result = run_train(
        "trainer=ddp_cpu", "model=timm", f"model.pretrained={tmp_path / 'resnet18.pth'}",
        "model.finetune.freeze_epochs=1", "trainer.max_epochs=2", "data=mnist",
        "data.download=false", "data.batch_size=16", "callbacks=minimal",
        "+callbacks.model_checkpoint.save_top_k=-1", "callbacks.model_checkpoint.monitor=null",
        f"hydra.run.dir={tmp_path / 'run'}", data_dir=fixture_data_dir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoints = tmp_path / "run" / "checkpoints"
    frozen = torch.load(checkpoints / "epoch_000.ckpt", weights_only=True)["state_dict"]
    thawed = torch.load(checkpoints / "epoch_001.ckpt", weights_only=True)["state_dict"]
    # Grey MNIST: the stem was adapted; everything after it is the file's.
    for key in ("layer1.0.conv1.weight", "layer4.1.bn2.running_mean", "bn1.weight"):
        assert torch.equal(frozen[f"classifier.net.{key}"], weights[key]), key
        assert not torch.equal(thawed[f"classifier.net.{key}"], weights[key]), key


def save_and_resume_random_states(rank: int, world_size: int, port: int, path: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    torch.manual_seed(100 + rank)  # each rank's stream differs (its augmentation, its dropout)
    states = random_states.capture()  # on every rank; rank 0 writes the checkpoint
    if rank == 0:
        torch.save({"rng_states": states}, path)
    expected = torch.rand(5)  # what this rank would have drawn next
    dist.barrier()

    torch.manual_seed(0)  # the resumed process
    random_states.restore(torch.load(path, weights_only=True)["rng_states"])
    assert torch.equal(torch.rand(5), expected), f"rank {rank} did not get its own state back"
    dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_each_rank_resumes_with_its_own_random_state(tmp_path: Path) -> None:
    mp.spawn(
        save_and_resume_random_states,
        args=(2, free_port(), str(tmp_path / "last.ckpt")),
        nprocs=2,
    )


def test_a_sweep_of_ddp_runs_runs_each_job_once_in_its_own_folder(
    odd_folder: Path, tmp_path: Path
) -> None:
    """Lightning starts DDP's other process by running the command line again: under `-m`
    that was the whole sweep again, with its own jobs and summary. Each job starts its own
    processes: the second used to wait on the first's."""
    log_dir = tmp_path / "my outputs"  # a space: the folder reaches the process quoted
    result = run_train(
        "-m", "trainer=ddp_cpu", "data=image_folder", f"data.data_dir={odd_folder}",
        "data.image_size=32", "data.cache=ram", "data.batch_size=8", "trainer.max_epochs=1",
        "model=simple_cnn", "optimizer.lr=0.003,0.001", override("paths.log_dir", log_dir),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    sweeps = list((log_dir / "multiruns").iterdir())
    assert len(sweeps) == 1, sweeps
    assert not (log_dir / "runs").exists()
    sweep = sweeps[0]
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    summary = (sweep / "summary.csv").read_text().splitlines()
    assert len(summary) == 3, summary
    assert all(",completed," in row for row in summary[1:]), summary
    for job in ("0", "1"):  # each job trained once, by both processes
        assert json.loads((sweep / job / "metrics.json").read_text())["epochs"] == 1
        assert (sweep / job / "train_ddp_process_1.log").is_file()


def test_a_stopped_ddp_run_resumes(odd_folder: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    stopped = stopped_run(
        "validation", "SIGTERM", "trainer=ddp_cpu", "data=image_folder",
        f"data.data_dir={odd_folder}", "data.image_size=32", "data.cache=ram",
        "data.batch_size=8", "trainer.max_epochs=2", "model=simple_cnn",
        f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    resumed = run_train(f"resume={run_dir}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and "test/acc" in metrics and "train/loss" in metrics
