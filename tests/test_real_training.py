"""A short real run from the command line: one epoch on part of the real MNIST."""

import json
from pathlib import Path

from cli import run_train
from conftest import require_real_data


def test_one_epoch_on_real_mnist_learns_and_leaves_a_complete_run_folder(tmp_path: Path) -> None:
    data_dir = require_real_data("MNIST/raw")
    run_dir = tmp_path / "run"
    result = run_train(
        "experiment=mnist_quick",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=40",  # 10,240 of the 54,000 training images
        f"hydra.run.dir={run_dir}",
        data_dir=data_dir,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test/acc"] > 0.9  # chance is 0.1
    assert metrics["val/acc_best"] > 0.9
    assert metrics["epochs"] == 1
    assert metrics["seconds"] > 0
    assert Path(metrics["best_checkpoint"]).is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert (run_dir / "train.log").is_file()
