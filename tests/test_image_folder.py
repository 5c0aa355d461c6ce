"""The user's own images: class subfolders, mixed sizes and modes, unreadable files."""

import logging
from pathlib import Path

import pytest
from PIL import Image

from imgclf.data import image_folder
from imgclf.data.datamodule import ImageDataModule
from imgclf.errors import DataNotFoundError, UserError

from dataset_files import write_image_folder


def test_images_of_any_size_and_mode_become_one_tensor(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path, per_class=6)
    splits = image_folder.read(root, image_size=24, in_channels=3)
    assert splits.class_names == ["cat", "dog", "fox"]
    assert splits.train.images.shape == (18, 3, 24, 24)
    assert splits.val is None and splits.test is None


def test_datamodule_carves_val_and_test_by_ratio(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path, per_class=10)
    datamodule = ImageDataModule(
        "image_folder", root, num_classes=3, in_channels=1, image_size=16,
        val_ratio=0.2, test_ratio=0.1,
    )  # fmt: skip
    datamodule.setup()
    sizes = {split: len(data) for split, data in datamodule.splits.items()}
    assert sizes == {"train": 21, "val": 6, "test": 3}


def test_folder_with_its_own_split_keeps_it(tmp_path: Path) -> None:
    for split, count in (("train", 4), ("val", 2), ("test", 3)):
        write_image_folder(tmp_path / split, classes=("a", "b"), per_class=count)
    splits = image_folder.read(tmp_path, image_size=8, in_channels=3)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (8, 4, 6)


def test_unreadable_image_is_skipped_with_a_warning_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = write_image_folder(tmp_path, per_class=4)
    broken = root / "dog" / "broken.png"
    broken.write_bytes(b"not a png")
    with caplog.at_level(logging.WARNING):
        splits = image_folder.read(root, image_size=8, in_channels=3)
    assert len(splits.train) == 12
    assert str(broken) in caplog.text


def test_missing_folder_and_single_class_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="does not exist"):
        image_folder.read(tmp_path / "nowhere", image_size=8, in_channels=3)
    write_image_folder(tmp_path / "one", classes=("only",), per_class=2)
    with pytest.raises(UserError, match="needs at least 2"):
        image_folder.read(tmp_path / "one", image_size=8, in_channels=3)


def test_mixed_sizes_are_reported_with_the_smallest_and_largest_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = write_image_folder(tmp_path, per_class=4)
    with caplog.at_level(logging.WARNING):
        image_folder.read(root, image_size=16, in_channels=3)
    areas = {path: Image.open(path).size for path in root.rglob("*.*")}
    smallest = min(areas, key=lambda path: areas[path][0] * areas[path][1])
    largest = max(areas, key=lambda path: areas[path][0] * areas[path][1])
    assert "all resized to 16x16" in caplog.text
    assert str(smallest) in caplog.text and str(largest) in caplog.text
