"""Bad input on the user's own images, tried from the command line: one message each, naming
the input and the fix, and exit 2; a cache folder that cannot be written only warns."""

import shutil
from pathlib import Path

import pytest

from cli import PHOTO_RUN, run_train
from dataset_files import write_image_csv, write_image_folder


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_image_folder(tmp_path_factory.mktemp("photos") / "images", per_class=6)


def train_on(*overrides: str, run_dir: Path):  # noqa: ANN201
    return run_train(
        "data.image_size=16", "model=simple_cnn", "trainer=cpu", "debug=fast_dev_run",
        "callbacks=minimal", f"hydra.run.dir={run_dir}", *overrides,
    )  # fmt: skip


def assert_one_message(result, *parts: str) -> None:  # noqa: ANN001
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("imgclf: error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    for part in parts:
        assert part in result.stderr, result.stderr[-3000:]


def test_csv_missing_a_column(tmp_path: Path) -> None:
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("path,species\nimages/cat/cat_0.png,cat\n")
    result = train_on("data=image_csv", f"data.csv_path={csv_path}", run_dir=tmp_path / "run")
    assert_one_message(result, f"{csv_path} has no label column", "path,label")


def test_csv_label_with_no_image(photos: Path, tmp_path: Path) -> None:
    csv_path = write_image_csv(photos, photos.parent / "labels.csv")
    with csv_path.open("a") as file:
        file.write("images/wolf/wolf_0.png,wolf\nimages/wolf/wolf_1.png,wolf\n")
    result = train_on("data=image_csv", f"data.csv_path={csv_path}", run_dir=tmp_path / "run")
    assert_one_message(result, "class(es) ['wolf'] have no training images", "data.classes")
    assert "skipped 2 row(s) with an image file that is missing" in result.stdout + result.stderr


def test_class_left_empty_by_data_classes(photos: Path, tmp_path: Path) -> None:
    result = train_on(
        "data=image_folder", f"data.data_dir={photos}", "data.classes=[cat,wolf]",
        run_dir=tmp_path / "run",
    )  # fmt: skip
    assert_one_message(result, "data.classes names ['wolf']", "['cat', 'dog', 'fox']")


def test_unreadable_files_are_skipped_and_the_run_goes_on(photos: Path, tmp_path: Path) -> None:
    root = write_image_folder(tmp_path / "images", per_class=6)
    (root / "dog" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    result = train_on(
        "data=image_folder", f"data.data_dir={root}", "data.cache=none", run_dir=tmp_path / "run"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "skipped 1 unreadable image file(s)" in result.stdout + result.stderr
    assert str(root / "dog" / "corrupt.jpg") in result.stdout + result.stderr


def test_unwritable_cache_folder_falls_back_with_a_warning(photos: Path, tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    result = train_on(
        "data=image_folder", f"data.data_dir={photos}", "data.cache=disk",
        f"paths.cache_dir={blocked}/cache", run_dir=tmp_path / "run",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert f"the cache folder {blocked}/cache cannot be written" in output
    assert "using cache=ram instead" in output
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_csv_rows_are_reported_by_what_is_wrong_once(real_photos: Path, tmp_path: Path) -> None:
    """Default callbacks: the CSV is read by the config, by prepare_data and by setup."""
    photos = shutil.copytree(real_photos, tmp_path / "dataset" / "pets")
    outside = tmp_path / "elsewhere.jpg"
    outside.write_bytes(next(photos.glob("cat/*.jpg")).read_bytes())
    rows = [f"{path.relative_to(photos.parent)},{path.parent.name}"
            for path in sorted(photos.glob("*/*.jpg"))]  # fmt: skip
    rows += [
        "pets/cat/unlabelled.jpg,",  # line 42: a label left empty
        "pets/dog/gone.jpg,dog",  # 43: no such file
        "../elsewhere.jpg,cat",  # 44: outside the CSV's folder
        f"{outside},dog",  # 45: an absolute path
    ]
    csv_path = photos.parent / "labels.csv"
    csv_path.write_text("path,label\n" + "\n".join(rows) + "\n")
    (photos / "cat" / "unlabelled.jpg").write_bytes(outside.read_bytes())
    result = run_train(*PHOTO_RUN, "data=image_csv", f"data.csv_path={csv_path}",
                       f"hydra.run.dir={tmp_path / 'run'}")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert output.count(f"{csv_path}: skipped") == 1
    assert (
        f"{csv_path}: skipped 1 row(s) with no label: pets/cat/unlabelled.jpg (line 42); "
        "skipped 1 row(s) with an image file that is missing: pets/dog/gone.jpg (line 43)"
    ) in output
    assert output.count("outside its folder") == 1
    assert f"2 row(s) name images outside its folder {csv_path.parent}" in output
    assert f"../elsewhere.jpg (line 44), {outside} (line 45)" in output
    assert "image_csv: train" in output  # the outside rows train with the others
