"""The scripts behind the data-path figures: the photo folder, the multi-label mosaics, the
loader benchmark against ImageFolder, and the peak memory of a command with its children."""

import csv
import re
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imgclf.data import sources

from cli import run_script
from configs import require_real_data


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


def test_mosaics_show_real_images_of_their_labels_each_from_its_own_split(
    tmp_path: Path,
) -> None:
    data_dir = require_real_data("cifar-10-batches-bin")
    output = tmp_path / "mosaics"
    result = run_script(
        "scripts/make_multilabel_folder.py", str(output), "--train", "24", "--test", "8",
        data_dir=data_dir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    with (output / "labels.csv").open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["split"] for row in rows] == ["train"] * 24 + ["test"] * 8
    cifar = sources.load("cifar10", data_dir)
    tiles, expected = [], []
    images_shown = Counter()
    for row in rows:
        with Image.open(output / row["path"]) as image:
            assert image.format == "JPEG" and image.size == (64, 64)
            pixels = torch.from_numpy(np.asarray(image.convert("RGB"))).permute(2, 0, 1)
        names = row["tiles"].split(";")
        labels = set(row["labels"].split(";"))
        assert len(names) == 4 and labels == {name for name in names if name}
        images_shown[row["split"], sum(1 for name in names if name)] += 1
        for position, name in enumerate(names):
            if name:
                top, left = 32 * (position // 2), 32 * (position % 2)
                tiles.append(pixels[:, top : top + 32, left : left + 32])
                expected.append((row["split"], name))
    # 1 to 4 images, as many mosaics of each count.
    assert {shown: count for (split, shown), count in images_shown.items() if split == "train"} == {
        1: 6, 2: 6, 3: 6, 4: 6,
    }  # fmt: skip
    # Each tile is (after JPEG) a CIFAR-10 image of its class from its mosaic's split: the
    # nearest of all 60,000 originals.
    flat = torch.stack(tiles).flatten(1).float()
    originals = {"train": cifar.train, "test": cifar.test}
    nearest = {
        split: torch.cdist(flat, data.images.flatten(1).float()).min(dim=1)
        for split, data in originals.items()
    }
    for index, (split, name) in enumerate(expected):
        other = "test" if split == "train" else "train"
        distance, found = nearest[split].values[index], nearest[split].indices[index]
        assert distance < nearest[other].values[index] / 3
        assert cifar.class_names[int(originals[split].labels[found])] == name


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
