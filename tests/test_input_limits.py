"""Limits come from the input, not from a crash, and pixels are right in every format:
splits that leave nothing to train on and a decompression bomb are each one message; 16-bit
images decode to their 8-bit originals whatever the file format."""

import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgclf.data import sources
from imgclf.data.decode import decode_image_file

from cli import run_script, run_train
from conftest import require_real_data


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


def test_a_16_bit_rgb_png_decodes_to_its_8_bit_original(originals: tuple, tmp_path: Path) -> None:
    _, photo = originals
    path = tmp_path / "photo.png"
    dim = photo // 2
    write_rgb16_png(path, dim.astype(np.uint16) * 257)
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
