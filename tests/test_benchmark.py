"""The overhead benchmark runs both paths on the configured data and reports their ratio, and
the work of a training image against the device's peak."""

import re
from pathlib import Path

import torch

from imgclf.builders import build_model

from cli import run_script
from configs import compose_train_config
from flops import training_flops_per_image


def test_benchmark_times_both_paths_and_ends_with_the_ratio(
    fixture_data_dir: Path, tmp_path: Path
) -> None:
    result = run_script(
        "benchmarks/benchmark.py", "model=simple_cnn", "data.batch_size=8", "data.download=false",
        "benchmark.warmup_steps=1", "benchmark.steps=8", "benchmark.rounds=5",
        f"hydra.run.dir={tmp_path}", data_dir=fixture_data_dir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert re.fullmatch(r"trainer/plain time ratio: \d+\.\d\d", lines[-1])
    ratio = float(lines[-1].rsplit(" ", 1)[1])
    # Same work on both paths. Eight runs of this command, two at a time on 2 cores (Intel
    # Xeon): 0.96 to 1.07, single rounds 0.91 to 1.12; a Trainer path twice as slow is 2.
    # Five short rounds, so that a burst of the other test worker's load landing on one path
    # of one round is outvoted by the median.
    assert 0.67 < ratio < 1.5, lines[-2]
    assert any(re.match(r"plain PyTorch loop: [\d,]+ images/s", line) for line in lines)
    assert any(re.match(r"data pipeline share of a plain step: [\d.]+%", line) for line in lines)
    assert any(
        re.match(r"imgclf Trainer: [\d,]+ GFLOP/s, \d+% of that peak", line) for line in lines
    )
    # One sync a micro-batch: DivergenceGuard reading the loss, which on CPU costs nothing.
    assert any(
        line.endswith(
            "host syncs in 1 training micro-batches of the Trainer path: "
            "aten._local_scalar_dense x1"
        )  # after the progress bar's carriage returns
        for line in lines
    )


def test_benchmark_longer_than_an_epoch_says_what_to_lower(
    fixture_data_dir: Path, tmp_path: Path
) -> None:
    result = run_script(
        "benchmarks/benchmark.py", "data.batch_size=16", "data.download=false",
        "benchmark.steps=100", f"hydra.run.dir={tmp_path}", data_dir=fixture_data_dir,
    )  # fmt: skip
    assert result.returncode == 2
    assert "benchmark.warmup_steps + benchmark.steps = 105 is more than the 5 batches" in (
        result.stderr
    )


def test_the_work_of_a_training_image_is_counted_layer_by_layer(tmp_path: Path) -> None:
    """simple_cnn on MNIST, counted by hand: multiply-adds of each layer at its map size."""
    cfg = compose_train_config(["model=simple_cnn", "data=mnist"], tmp_path)
    model = build_model(cfg)
    first_conv = 1 * 32 * 9 * 28 * 28
    forward_macs = (
        first_conv
        + 32 * 32 * 9 * 28 * 28  # the second conv, then pooling to 14 px
        + 32 * 64 * 9 * 14 * 14
        + 64 * 64 * 9 * 14 * 14  # then pooling to 7 px
        + 64 * 7 * 7 * 512
        + 512 * 10
    )
    # Backward: a gradient for each layer's weights and for its input, except the first
    # layer's input (the images need none).
    expected = 2 * (3 * forward_macs - first_conv)
    images = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    assert training_flops_per_image(model, images, torch.tensor([0, 1, 2, 3])) == expected
