"""The overhead benchmark runs both paths on the configured data and reports their ratio."""

import re
from pathlib import Path

from cli import run_script


def test_benchmark_times_both_paths_and_ends_with_the_ratio(
    fixture_data_dir: Path, tmp_path: Path
) -> None:
    result = run_script(
        "scripts/benchmark.py", "model=simple_cnn", "data.batch_size=16", "data.download=false",
        "benchmark.warmup_steps=1", "benchmark.steps=3", "benchmark.rounds=2",
        f"hydra.run.dir={tmp_path}", data_dir=fixture_data_dir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert re.fullmatch(r"trainer/plain time ratio: \d+\.\d\d", lines[-1])
    ratio = float(lines[-1].rsplit(" ", 1)[1])
    assert 0.3 < ratio < 3  # same work on both paths: far from either extreme
    assert any(re.match(r"plain PyTorch loop: [\d,]+ images/s", line) for line in lines)
    assert any(re.match(r"data pipeline share of a plain step: [\d.]+%", line) for line in lines)


def test_benchmark_longer_than_an_epoch_says_what_to_lower(
    fixture_data_dir: Path, tmp_path: Path
) -> None:
    result = run_script(
        "scripts/benchmark.py", "data.batch_size=16", "data.download=false",
        "benchmark.steps=100", f"hydra.run.dir={tmp_path}", data_dir=fixture_data_dir,
    )  # fmt: skip
    assert result.returncode == 2
    assert "benchmark.warmup_steps + benchmark.steps = 105 is more than the 5 batches" in (
        result.stderr
    )
