"""The fine-tuning race's imgclf column on a small photo folder: benchmarks/finetune.py makes
the folder and the weights file, times imgclf's steps with the step clock and writes what it
measured. (timm's train.py is fetched, never shipped, and fastai is no dependency: their
columns run where the benchmark is run, see docs/benchmarks.md.)"""

import json
from pathlib import Path

from cli import run_script
from configs import require_real_data

NETWORK = "mobilenetv3_small_050"  # timm's smallest at 224 px: seconds an epoch here


def test_the_race_times_imgclf_training_the_whole_network_from_the_first_step(
    tmp_path: Path,
) -> None:
    result = run_script(
        "benchmarks/finetune.py", str(tmp_path), "--tools", "imgclf", "--networks", NETWORK,
        "--per-class", "8", "--val-per-class", "2", "--epochs", "2", "--batch-size", "16",
        "--workers", "1", "--data-dir", str(require_real_data("cifar-10-batches-bin")),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    photos = tmp_path / "photos_8_2"
    for split, count in (("train", 80), ("val", 20), ("test", 20)):
        assert len(list((photos / split).glob("*/*.jpg"))) == count, split
    (measured,) = json.loads((tmp_path / "results.json").read_text())["results"]
    assert (measured["network"], measured["tool"]) == (NETWORK, "imgclf")
    # The clock saw the first step before the command ended and a positive rate (it counted
    # 2 epochs of 5 steps, or the benchmark would have stopped).
    assert 0 < measured["first_step_seconds"] < measured["wall_seconds"]
    assert measured["images_per_second"] > 0
    # Random starting weights: no frozen body in the race (fastai's and timm's train it too).
    log = (tmp_path / "logs" / f"imgclf_{NETWORK}.log").read_text()
    assert "Non-trainable params: 0" in log, log[-3000:]
    assert f"| {NETWORK} | imgclf | {measured['images_per_second']:.1f} |" in result.stdout
