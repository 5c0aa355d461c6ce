"""The user's own images: folders and CSVs, decoding of every common mode, class subsets,
stratified splits, the three cache modes and what they do with bad files."""

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from PIL import Image

from imgclf.data import ImageFilesDataModule, image_listing
from imgclf.data.cache import DiskCache
from imgclf.data.decode import UnreadableImageError, decode_image_file
from imgclf.data.splits import LabelledFiles, LabelledImages, stratified_split
from imgclf.data.transforms import ImageAugment, evaluation_transform
from imgclf.errors import DataNotFoundError, UserError

from configs import compose_train_config
from dataset_files import damage, write_image_csv, write_image_folder


def folder_module(root: Path, **options) -> ImageFilesDataModule:  # noqa: ANN003
    settings = dict(
        num_classes=3, in_channels=3, image_size=16, val_ratio=0.2, test_ratio=0.1,
        num_workers=0, augment=ImageAugment(),
    )  # fmt: skip
    settings.update(options)
    return ImageFilesDataModule(dataset="image_folder", data_dir=root, **settings)


def test_folder_is_listed_by_class_without_decoding(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path, per_class=6)
    splits = image_listing.list_folder(root)
    assert splits.class_names == ["cat", "dog", "fox"]
    assert isinstance(splits.train, LabelledFiles) and len(splits.train) == 18
    assert splits.train.labels.bincount().tolist() == [6, 6, 6]
    assert splits.val is None and splits.test is None


def test_folder_with_its_own_split_keeps_it(tmp_path: Path) -> None:
    for split, count in (("train", 4), ("val", 2), ("test", 3)):
        write_image_folder(tmp_path / split, classes=("a", "b"), per_class=count)
    splits = image_listing.list_folder(tmp_path)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (8, 4, 6)


def test_missing_folder_and_single_class_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match="does not exist"):
        image_listing.list_folder(tmp_path / "nowhere")
    write_image_folder(tmp_path / "one", classes=("only",), per_class=2)
    with pytest.raises(UserError, match="needs at least 2"):
        image_listing.list_folder(tmp_path / "one")


def test_stratified_split_takes_the_same_fraction_of_every_class() -> None:
    labels = torch.tensor([0] * 100 + [1] * 20 + [2] * 10)
    indices = stratified_split(labels, {"val": 0.1, "test": 0.2}, seed=0)
    assert labels[indices["val"]].bincount().tolist() == [10, 2, 1]
    assert labels[indices["test"]].bincount().tolist() == [20, 4, 2]
    assert labels[indices["train"]].bincount().tolist() == [70, 14, 7]
    together = torch.cat(list(indices.values())).sort().values
    assert torch.equal(together, torch.arange(len(labels)))
    # Held-out images come in a mixed order, so that a partial pass sees every class.
    held_out = labels[indices["test"]]
    assert not torch.equal(held_out, held_out.sort().values)
    again = stratified_split(labels, {"val": 0.1, "test": 0.2}, seed=0)
    assert all(torch.equal(indices[split], again[split]) for split in indices)


def test_csv_paths_are_relative_and_its_split_column_is_kept(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "images", per_class=4)
    csv_path = write_image_csv(root, tmp_path / "labels.csv", val_every=4)
    splits = image_listing.list_csv(csv_path)
    assert splits.class_names == ["cat", "dog", "fox"]
    assert (len(splits.train), len(splits.val)) == (9, 3)
    assert all(Path(path).is_file() for path in splits.train.paths)


def test_csv_rows_without_a_file_are_skipped_in_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = write_image_folder(tmp_path / "images", per_class=4)
    csv_path = write_image_csv(root, tmp_path / "labels.csv")
    with csv_path.open("a") as file:
        file.write("images/cat/gone.jpg,cat\nimages/dog/missing.png,dog\n")
    with caplog.at_level(logging.WARNING):
        splits = image_listing.list_csv(csv_path)
    assert len(splits.train) == 12
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "skipped 2 row(s)" in warnings[0].message
    assert "images/cat/gone.jpg (line 14)" in warnings[0].message
    assert "images/dog/missing.png (line 15)" in warnings[0].message


def test_csv_without_a_label_column_names_the_columns_it_needs(tmp_path: Path) -> None:
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("file,class\na.jpg,cat\n")
    with pytest.raises(UserError, match=r"has no path or label column \(its header: file,class\)"):
        image_listing.list_csv(csv_path)


def test_classes_keep_only_those_relabelled_in_the_order_given(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path, per_class=10)
    datamodule = folder_module(root, num_classes=2, classes=["fox", "cat"], cache="ram")
    datamodule.setup()
    assert datamodule.class_names == ["fox", "cat"]
    for data in datamodule.splits.values():
        assert set(data.labels.tolist()) == {0, 1}
    assert sum(len(data) for data in datamodule.splits.values()) == 20


def test_unknown_class_lists_the_known_ones(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path, per_class=3)
    datamodule = folder_module(root, num_classes=2, classes=["cat", "unicorn"])
    with pytest.raises(UserError, match=r"\['unicorn'\].*its classes are \['cat', 'dog', 'fox'\]"):
        datamodule.setup()


def test_builtin_dataset_class_subset_sets_the_class_count(
    fixture_data_dir: Path, tmp_path: Path
) -> None:
    cfg = compose_train_config(
        [f"paths.data_dir={fixture_data_dir}", "data.download=false", "data.classes=[cat,dog]"],
        tmp_path,
    )
    assert cfg.data.num_classes == 2 and cfg.model.net.num_classes == 2
    datamodule = instantiate(cfg.data)
    datamodule.setup()
    assert datamodule.class_names == ["cat", "dog"]
    # The fixture's labels cycle through the 10 classes: cat is 3, dog is 5.
    assert datamodule.splits["test"].labels.tolist() == [0, 1] * 2


def test_datamodule_carves_val_and_test_per_class(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path, per_class=10)
    datamodule = folder_module(root, cache="none")
    datamodule.setup()
    for split, per_class in (("train", 7), ("val", 2), ("test", 1)):
        assert datamodule.splits[split].labels.bincount().tolist() == [per_class] * 3


def test_ram_cache_holds_uncropped_centre_views_without_stretching(tmp_path: Path) -> None:
    # A wide image: left third red, middle green, right third blue. The centre crop of the
    # evaluation view keeps the green middle; stretching would have kept all three colours.
    root = tmp_path / "wide"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        pixels = np.zeros((30, 90, 3), dtype=np.uint8)
        pixels[:, :30, 0] = pixels[:, 30:60, 1] = pixels[:, 60:, 2] = 255
        Image.fromarray(pixels).save(root / name / "wide.png")
        Image.fromarray(pixels).save(root / name / "wide2.png")
    datamodule = folder_module(
        root, num_classes=2, image_size=16, crop_fraction=1.0, val_ratio=0, test_ratio=0.5,
        cache="ram",
    )  # fmt: skip
    datamodule.setup()
    images = datamodule.splits["train"].images
    assert isinstance(datamodule.splits["train"], LabelledImages)
    assert images.shape[1:] == (3, 16, 16)
    assert images[:, 1].float().mean() > 250  # green everywhere
    assert images[:, 0].float().mean() < 5 and images[:, 2].float().mean() < 5


def write_odd_images(folder: Path) -> dict[str, Path]:
    """One image in each mode a phone, a scanner or an editor may write."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    paths = {}
    for name, image, suffix in (
        ("cmyk", Image.fromarray(rgb).convert("CMYK"), ".jpg"),
        ("palette", Image.fromarray(rgb).convert("P"), ".png"),
        ("alpha", Image.fromarray(rgb).convert("RGBA"), ".png"),
        ("grey_alpha", Image.fromarray(rgb).convert("LA"), ".png"),
        ("grey16", Image.fromarray((rng.integers(0, 65535, (40, 60))).astype(np.uint16)), ".png"),
        ("bitmap", Image.fromarray(rgb), ".bmp"),
        ("tiff", Image.fromarray(rgb), ".tif"),
        ("gif", Image.fromarray(rgb), ".gif"),
        ("webp", Image.fromarray(rgb), ".webp"),
    ):
        paths[name] = folder / f"{name}{suffix}"
        image.save(paths[name])
    return paths


@pytest.mark.parametrize("channels", [1, 3])
def test_every_mode_decodes_to_uint8_of_the_asked_channels(tmp_path: Path, channels: int) -> None:
    for name, path in write_odd_images(tmp_path).items():
        image = decode_image_file(path, channels)
        assert image.dtype == torch.uint8, name
        assert image.shape == (channels, 40, 60), name
        assert image.float().std() > 20, f"{name} decoded to a flat image"


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    pixels = np.zeros((40, 60, 3), dtype=np.uint8)
    pixels[:, :10] = 255  # a white band on the left as stored
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # stored rotated: display it turned 90 degrees clockwise
    image.save(tmp_path / "turned.jpg", exif=exif, quality=95)
    upright = decode_image_file(tmp_path / "turned.jpg", 3)
    assert upright.shape == (3, 60, 40)
    assert upright[:, :10].float().mean() > 200  # the band is now on top
    assert upright[:, 20:].float().mean() < 30


def test_large_jpeg_is_decoded_at_reduced_size_upright_and_close_to_the_full_view(
    real_photos: Path, tmp_path: Path
) -> None:
    photo = Image.open(next(real_photos.rglob("*.jpg"))).convert("RGB")
    large = photo.resize((1024, 768), Image.Resampling.BICUBIC)
    large.save(tmp_path / "large.jpg", quality=95)
    large.save(tmp_path / "large.png")
    exif = large.getexif()
    exif[0x0112] = 6  # display it turned 90 degrees clockwise
    large.save(tmp_path / "turned.jpg", exif=exif, quality=95)
    # A camera's multi-picture JPEG: the photo and a smaller preview.
    large.save(tmp_path / "camera.mpo", "MPO", save_all=True, append_images=[photo])
    # 1/4 of its size: 1/8 would leave a short side under 128.
    reduced = decode_image_file(tmp_path / "large.jpg", 3, short_side=128)
    assert reduced.shape == (3, 192, 256)
    assert decode_image_file(tmp_path / "large.jpg", 1, short_side=128).shape == (1, 192, 256)
    assert decode_image_file(tmp_path / "turned.jpg", 3, short_side=128).shape == (3, 256, 192)
    assert decode_image_file(tmp_path / "camera.mpo", 3, short_side=128).shape == (3, 192, 256)
    assert decode_image_file(tmp_path / "large.png", 3, short_side=128).shape == (3, 768, 1024)
    view = evaluation_transform(112, 128)
    full = decode_image_file(tmp_path / "large.jpg", 3)
    assert (view(reduced).float() - view(full).float()).abs().mean() < 2


def test_ram_cache_filled_by_worker_processes_holds_what_this_process_decodes(
    tmp_path: Path,
) -> None:
    root = write_image_folder(tmp_path / "images", per_class=30)
    for index in range(3):  # unreadable files inside the workers' chunks of images
        (root / "dog" / f"broken_{index}.png").write_bytes(b"not a png")
    held = {}
    for workers in (0, 2):
        datamodule = folder_module(root, cache="ram", num_workers=workers)
        datamodule.setup()
        held[workers] = datamodule.splits
    assert sum(len(data) for data in held[2].values()) == 90
    for split, data in held[0].items():
        assert torch.equal(held[2][split].images, data.images), split
        assert torch.equal(held[2][split].labels, data.labels), split


def test_undecodable_file_raises_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(UnreadableImageError, match=str(path)):
        decode_image_file(path, 3)


@pytest.mark.parametrize("cache", ["ram", "disk", "none"])
def test_unreadable_files_are_skipped_in_one_warning_in_every_cache_mode(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, cache: str
) -> None:
    root = write_image_folder(tmp_path / "images", per_class=10)
    broken = [root / "dog" / "broken.png", root / "cat" / "empty.jpg"]
    broken[0].write_bytes(b"not a png")
    broken[1].write_bytes(b"")
    datamodule = folder_module(root, cache=cache, cache_dir=tmp_path / "cache")
    with caplog.at_level(logging.WARNING):
        datamodule.setup()
    assert sum(len(data) for data in datamodule.splits.values()) == 30
    warnings = [r.message for r in caplog.records if "unreadable" in r.message]
    assert len(warnings) == 1 and all(str(path) in warnings[0] for path in broken)


def test_disk_cache_is_reused_and_a_changed_file_is_decoded_again(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "images", per_class=4)
    cache = DiskCache(tmp_path / "cache", short_side=24, channels=3)
    photo = str(root / "cat" / "cat_0.png")
    entry, replaced = cache.store(photo)
    stored = np.load(entry)
    assert stored.shape[0] == 3 and min(stored.shape[1:]) <= 24 and replaced is None
    entry.write_bytes(entry.read_bytes())  # what a reuse must not rewrite: its bytes stay
    written = entry.stat().st_mtime_ns
    assert cache.store(photo) == (entry, None) and entry.stat().st_mtime_ns == written
    Image.new("RGB", (50, 30), "red").save(photo)
    os.utime(photo, ns=(written + 10**9, written + 10**9))
    fresh, _ = cache.store(photo)
    assert fresh != entry
    assert np.load(fresh)[0].min() > 240  # the new, red picture


def test_prepare_data_fills_the_disk_cache_and_setup_only_finds_it(tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "images", per_class=4)
    datamodule = folder_module(root, cache="disk", cache_dir=tmp_path / "cache")
    datamodule.prepare_data()  # Lightning: once per machine, before every rank's setup
    entries = {path: path.stat().st_mtime_ns for path in (tmp_path / "cache").rglob("*.npy")}
    assert len(entries) == 12
    datamodule.setup()
    after = {path: path.stat().st_mtime_ns for path in (tmp_path / "cache").rglob("*.npy")}
    assert after == entries
    used = {str(path) for data in datamodule.splits.values() for path in data.paths}
    assert used == {str(path) for path in entries}


def test_damaged_disk_cache_entries_are_decoded_again_and_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = write_image_folder(tmp_path / "images", per_class=4)
    first = folder_module(root, cache="disk", cache_dir=tmp_path / "cache")
    first.setup()
    entries = sorted((tmp_path / "cache").rglob("*.npy"))
    sound = {path: np.load(path) for path in entries}
    problems = damage(entries[:4])
    again = folder_module(root, cache="disk", cache_dir=tmp_path / "cache")
    with caplog.at_level(logging.WARNING):
        again.setup()
    warnings = [r.message for r in caplog.records if "disk-cache entries were damaged" in r.message]
    assert len(warnings) == 1 and "decoded 4 image(s) again" in warnings[0]
    for path, problem in problems.items():
        assert f"{path} (" in warnings[0] and problem in warnings[0]
    assert sorted((tmp_path / "cache").rglob("*.npy")) == entries  # no partial files left
    for path in entries:
        assert np.array_equal(np.load(path), sound[path])
    images, _ = next(iter(again.train_dataloader()))  # the replaced entries load
    assert images.dtype == torch.uint8


def test_auto_cache_picks_ram_when_it_fits_and_disk_when_not(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = write_image_folder(tmp_path / "images", per_class=4)
    with caplog.at_level(logging.INFO):
        fits = folder_module(root, cache="auto", cache_dir=tmp_path / "cache")
        fits.setup()
        too_big = folder_module(root, cache="auto", cache_max_gb=1e-6, cache_dir=tmp_path / "c")
        too_big.setup()
    assert (fits.cache_mode, too_big.cache_mode) == ("ram", "disk")
    assert fits.in_memory and not too_big.in_memory
    assert "within data.cache_max_gb=4: cache=ram" in caplog.text
    assert "over data.cache_max_gb=1e-06: cache=disk" in caplog.text


def test_unwritable_cache_folder_falls_back_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = write_image_folder(tmp_path / "images", per_class=4)
    blocked = tmp_path / "a_file"
    blocked.write_text("the cache folder's parent is a file")
    datamodule = folder_module(root, cache="disk", cache_max_gb=0, cache_dir=blocked / "cache")
    with caplog.at_level(logging.WARNING):
        datamodule.setup()
    assert datamodule.cache_mode == "none"
    assert f"the cache folder {blocked / 'cache'} cannot be written" in caplog.text
    images, labels = next(iter(datamodule.loader("train")))
    assert images.dtype == torch.uint8 and images.shape[1:] == (3, 16, 16)


@pytest.mark.parametrize("cache", ["disk", "none"])
def test_streamed_batches_are_uint8_crops_of_the_image_size(tmp_path: Path, cache: str) -> None:
    root = write_image_folder(tmp_path / "images", per_class=10)
    augment = ImageAugment(policy="trivialaugment", erasing=0.5)
    datamodule = folder_module(
        root, cache=cache, cache_dir=tmp_path / "cache", augment=augment, batch_size=8
    )
    datamodule.setup()
    assert not datamodule.in_memory
    for split in ("train", "val", "test"):
        images, labels = next(iter(datamodule.loader(split)))
        assert images.dtype == torch.uint8 and images.shape[1:] == (3, 16, 16)
        assert labels.dtype == torch.int64
