"""A short real run from the command line: one epoch on part of the real MNIST."""

from pathlib import Path


def test_one_epoch_on_real_mnist_learns_and_leaves_a_complete_run_folder(
    mnist_run: tuple,
) -> None:
    run_dir, metrics = mnist_run
    # Chance is 0.1; these 40 steps reach 0.82-0.93 depending on the seed and the split.
    assert metrics["test/acc"] > 0.8
    assert metrics["val/acc_best"] > 0.8
    assert metrics["epochs"] == 1
    assert metrics["seconds"] > 0
    assert Path(metrics["best_checkpoint"]).is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert (run_dir / "train.log").is_file()
    assert (run_dir / "report.md").is_file()
