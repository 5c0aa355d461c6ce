"""The scripts behind the data-path figures: the photo folder, the loader benchmark against
ImageFolder, and the peak memory of a command with its children."""

import re
import sys
from pathlib import Path

import pytest
from PIL import Image

from cli import run_script


@pytest.fixture(scope="module")
def photo_folder(fixture_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("photos") / "photos"
    result = run_script(
        "scripts/make_photo_folder.py", str(output), "--count", "60", data_dir=fixture_data_dir
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return output


def test_photo_folder_holds_jpegs_of_random_sizes_in_class_folders(photo_folder: Path) -> None:
    photos = sorted(photo_folder.glob("*/*.jpg"))
    assert len(photos) == 60
    sizes = set()
    for photo in photos:
        with Image.open(photo) as image:
            assert image.format == "JPEG"
            assert 160 <= image.width <= 480 and 160 <= image.height <= 480
            sizes.add(image.size)
    assert len(sizes) > 50  # sizes and aspect ratios vary
    assert len({photo.parent.name for photo in photos}) == 10


def test_loader_benchmark_compares_with_image_folder(photo_folder: Path, tmp_path: Path) -> None:
    result = run_script(
        "benchmarks/benchmark_data.py", "data=image_folder", f"data.data_dir={photo_folder}",
        "data.image_size=32", "data.batch_size=8", "data.cache=none", "data.num_workers=1",
        "benchmark_data.batches=2", "benchmark_data.warmup_batches=1",
        "benchmark_data.rounds=1", f"hydra.run.dir={tmp_path}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert re.fullmatch(r"imgclf/ImageFolder speed ratio: \d+\.\d\d", lines[-1])
    memory = [re.search(r"peak memory of all processes ([\d,]+) MiB", line) for line in lines]
    assert [int(m.group(1).replace(",", "")) > 100 for m in memory if m] == [True, True]


def test_peak_memory_counts_what_a_child_process_holds(tmp_path: Path) -> None:
    # The child of the command holds 400 MiB for a second; the command itself almost nothing.
    child = "import time; block = b'x' * (400 * 2**20); time.sleep(1.5)"
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}])"
    result = run_script("scripts/peak_memory.py", "--", sys.executable, "-c", parent)
    assert result.returncode == 0, result.stderr[-3000:]
    peak = int(re.search(r"children: ([\d,]+) MiB", result.stdout).group(1).replace(",", ""))
    assert 400 <= peak < 600
