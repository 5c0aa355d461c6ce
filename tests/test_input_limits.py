"""Limits come from the input, not from a crash, and pixels are right in every format:
splits that leave nothing to train on, an image size below the network's smallest and a
decompression bomb are each one message; a batch larger than its split is clamped with a
warning; damaged disk-cache entries are decoded again; 16-bit images decode to their 8-bit
originals whatever the file format. With the default callbacks and logger."""

import json
import re
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgclf.data import sources
from imgclf.data.decode import decode_image_file

from cli import PHOTO_RUN, run_script, run_train
from configs import require_real_data
from dataset_files import damage


@pytest.fixture(scope="module")
def originals() -> tuple[np.ndarray, np.ndarray]:
    """A real MNIST digit (grey) and a real CIFAR-10 image (RGB), 8 bits a channel."""
    data_dir = require_real_data("MNIST", "cifar-10-batches-bin")
    digit = sources.load("mnist", data_dir).train.images[0, 0].numpy()
    photo = sources.load("cifar10", data_dir).train.images[0].permute(1, 2, 0).numpy()
    return digit, photo


def write_rgb16_png(path: Path, pixels: np.ndarray) -> None:
    """A 16-bit RGB PNG (colour type 2, bit depth 16), which PIL cannot write."""
    height, width, _ = pixels.shape
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )  # fmt: skip


def write_rgb16_tiff(path: Path, pixels: np.ndarray) -> None:
    """A 16-bit RGB TIFF (uncompressed, one strip, little-endian), which PIL cannot write."""
    height, width, _ = pixels.shape
    data = pixels.astype("<u2").tobytes()
    tags = 9
    bits_offset = 8 + 2 + tags * 12 + 4
    data_offset = bits_offset + 6

    def tag(code: int, kind: int, count: int, value: int) -> bytes:
        # kind 3: SHORT, stored left-aligned in the 4-byte value field; 4: LONG.
        if kind == 3 and count == 1:
            return struct.pack("<HHIHH", code, kind, count, value, 0)
        return struct.pack("<HHII", code, kind, count, value)

    directory = b"".join([
        tag(256, 4, 1, width), tag(257, 4, 1, height), tag(258, 3, 3, bits_offset),
        tag(259, 3, 1, 1), tag(262, 3, 1, 2), tag(273, 4, 1, data_offset),
        tag(277, 3, 1, 3), tag(278, 4, 1, height), tag(279, 4, 1, len(data)),
    ])  # fmt: skip
    path.write_bytes(
        b"II" + struct.pack("<HI", 42, 8) + struct.pack("<H", tags) + directory
        + struct.pack("<I", 0) + struct.pack("<HHH", 16, 16, 16) + data
    )  # fmt: skip


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_a_16_bit_grey_image_decodes_to_its_8_bit_original(
    suffix: str, originals: tuple, tmp_path: Path
) -> None:
    digit, _ = originals
    path = tmp_path / f"digit{suffix}"
    # Stored as 16 bits: every value v as v * 257, so 255 is 65535. MNIST's digits span
    # 0-255; a dimmer copy (at most 100) shows any stretching to the image's own range.
    for pixels in (digit, digit * 100 // 255):
        Image.fromarray(pixels.astype(np.uint16) * 257).save(path)
        assert np.array_equal(decode_image_file(path, channels=1)[0].numpy(), pixels)


@pytest.mark.parametrize("writer, suffix", [(write_rgb16_png, ".png"), (write_rgb16_tiff, ".tif")])
def test_a_16_bit_rgb_image_decodes_to_its_8_bit_original(
    writer: Callable, suffix: str, originals: tuple, tmp_path: Path
) -> None:
    _, photo = originals
    path = tmp_path / f"photo{suffix}"
    # Half as bright as the original: stretching to the image's own range would show.
    dim = photo // 2
    writer(path, dim.astype(np.uint16) * 257)
    assert np.array_equal(decode_image_file(path, channels=3).permute(1, 2, 0).numpy(), dim)


def test_splits_that_leave_nothing_to_train_on_are_refused(
    image_folder: Path, tmp_path: Path
) -> None:
    result = run_train(
        "data=image_folder", f"data.data_dir={image_folder}", "data.val_ratio=0.5",
        "data.test_ratio=0.5", f"hydra.run.dir={tmp_path}",
    )  # fmt: skip
    assert result.returncode == 2
    assert "data.val_ratio=0.5 and data.test_ratio=0.5 take 100% of the" in result.stderr


def test_a_decompression_bomb_is_refused_before_it_is_decoded(
    mnist_run: tuple, tmp_path: Path
) -> None:
    """20,000 x 20,000 pixels in a few kilobytes: torchvision would allocate 1.2 GB for it."""
    bomb = tmp_path / "bomb.png"
    Image.new("1", (20_000, 20_000)).save(bomb)
    run_dir, metrics = mnist_run
    started = time.monotonic()
    result = run_script(
        "scripts/predict.py", f"ckpt_path={metrics['best_checkpoint']}", f"inputs={bomb}",
        f"hydra.run.dir={tmp_path / 'predict'}",
    )  # fmt: skip
    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert f"{bomb}: not a readable image" in output and "decompression bomb" in output
    assert time.monotonic() - started < 60


def test_a_batch_larger_than_the_training_split_is_clamped_with_a_warning(
    real_photos: Path, tmp_path: Path
) -> None:
    result = run_train(
        *PHOTO_RUN, f"data.data_dir={real_photos}", "data.batch_size=1000",
        f"hydra.run.dir={tmp_path}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    train_images = int(re.search(r"image_folder: train (\d+)", output).group(1))
    assert (
        f"data.batch_size=1000 is larger than the training split ({train_images} images): "
        f"batches of {train_images} instead" in output
    )
    assert output.count("data.batch_size=1000 is larger") == 1
    assert json.loads((tmp_path / "metrics.json").read_text())["epochs"] == 1


@pytest.mark.parametrize(
    ("model", "size", "smallest", "network"),
    [
        (["model=deep_cnn"], 8, 9, "model=deep_cnn (AirbenchNet)"),
        (
            ["model=timm", "model.name=vit_tiny_patch16_224"], 32, 224,
            "model=timm (timm vit_tiny_patch16_224)",
        ),
    ],
)  # fmt: skip
def test_an_image_size_below_the_networks_smallest_is_one_message(
    real_photos: Path, tmp_path: Path, model: list[str], size: int, smallest: int, network: str
) -> None:
    result = run_train(
        *PHOTO_RUN, *model, f"data.data_dir={real_photos}", f"data.image_size={size}",
        f"hydra.run.dir={tmp_path}",
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert (
        f"imgclf: error: {network} cannot take {size}x{size} images (data.image_size={size}); "
        f"the smallest it takes is {smallest}: set data.image_size={smallest} or more"
    ) in result.stderr


def test_the_smallest_image_size_named_trains(real_photos: Path, tmp_path: Path) -> None:
    result = run_train(
        *PHOTO_RUN, "model=deep_cnn", f"data.data_dir={real_photos}", "data.image_size=9",
        "data.batch_size=8", f"hydra.run.dir={tmp_path}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]


def test_damaged_disk_cache_entries_are_replaced_and_the_run_goes_on(
    real_photos: Path, tmp_path: Path
) -> None:
    cache_dir = tmp_path / "cache"
    cache = [f"data.data_dir={real_photos}", "data.cache=disk", f"paths.cache_dir={cache_dir}"]
    first = run_train(*PHOTO_RUN, *cache, f"hydra.run.dir={tmp_path / 'first'}")
    assert first.returncode == 0, first.stderr[-3000:]
    entries = sorted((tmp_path / "cache").rglob("*.npy"))
    assert len(entries) == 40
    sound = {path: np.load(path) for path in entries}
    problems = damage(entries[:4])
    second = run_train(*PHOTO_RUN, *cache, f"hydra.run.dir={tmp_path / 'second'}")
    assert second.returncode == 0, second.stderr[-3000:]
    output = second.stdout + second.stderr
    assert output.count("disk-cache entries were damaged") == 1
    assert "decoded 4 image(s) again" in output
    assert all(problem in output for problem in problems.values())
    for path in entries:
        assert np.array_equal(np.load(path), sound[path])
    first_metrics = json.loads((tmp_path / "first" / "metrics.json").read_text())
    second_metrics = json.loads((tmp_path / "second" / "metrics.json").read_text())
    assert second_metrics["test/loss"] == first_metrics["test/loss"]  # same pixels, same seed
