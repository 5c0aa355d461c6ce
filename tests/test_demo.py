"""The demo page in a real browser: `scripts/demo.py` serves a trained model in a subprocess,
and the system's Chromium, driven by Playwright, uploads files and clicks as a visitor does."""

import csv
import os
import re
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Browser, Page
from torchvision.io import write_png

from imgclf.data import sources

from cli import run_script
from configs import require_real_data
from demo_page import CHROMIUM, Server, chromium, opened, serving, summary_of, upload

# The largest upload the served page takes, in the tests.
UPLOAD_LIMIT = "1mb"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run installs Debian's package chromium")
        pytest.skip("no Chromium: apt-get install chromium")
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def cifar_demo(
    cifar_run: tuple, fixture_data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The page of the CIFAR-10 fixture run's last checkpoint, its examples from the run's
    test split."""
    checkpoint = cifar_run[0] / "checkpoints" / "last.ckpt"
    folder = tmp_path_factory.mktemp("demo")
    limit = f"demo.max_file_size={UPLOAD_LIMIT}"
    with serving(checkpoint, folder, limit, data_dir=fixture_data_dir) as server:
        yield server


@pytest.fixture
def page(browser: Browser, cifar_demo: Server) -> Iterator[Page]:
    page = opened(browser, cifar_demo)
    yield page
    page.close()


@pytest.fixture(scope="module")
def cifar_test_images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The first three real CIFAR-10 test images as PNG files, named by their true class."""
    data = sources.load("cifar10", require_real_data("cifar-10-batches-bin"))
    folder = tmp_path_factory.mktemp("cifar_test_images")
    paths = []
    for index in range(3):
        label = data.class_names[int(data.test.labels[index])]
        paths.append(folder / f"test_{index}_{label}.png")
        write_png(data.test.images[index], str(paths[-1]))
    return paths


def downloaded_table(page: Page, folder: Path) -> list[dict]:
    with page.expect_download() as download:
        page.locator("#csv").click()
    path = folder / "predictions.csv"
    download.value.save_as(path)
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def predicted_by_predict_py(checkpoint: Path, image: Path, output: Path) -> dict:
    result = run_script(
        "scripts/predict.py", f"ckpt_path={checkpoint}", f"inputs={image}",
        f"hydra.run.dir={output}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    with (output / "predictions.csv").open(newline="") as file:
        (row,) = csv.DictReader(file)
    return row


def image_width(page: Page, element_id: str) -> int:
    image = page.locator(f"#{element_id} img")
    image.wait_for(timeout=30_000)
    return image.evaluate("image => image.complete ? image.naturalWidth : 0")


def test_an_upload_gets_the_class_and_probability_predict_gives(
    page: Page, cifar_demo: Server, cifar_run: tuple, cifar_test_images: list[Path], tmp_path: Path
) -> None:
    image = cifar_test_images[0]
    upload(page, [image])
    summary = summary_of(page, image.name)
    expected = predicted_by_predict_py(
        cifar_run[0] / "checkpoints" / "last.ckpt", image, tmp_path / "predict"
    )
    assert summary == f"{image.name}: {expected['predicted']} ({float(expected['confidence']):.2%})"
    assert expected["predicted"] in page.locator("#probabilities").inner_text()
    # The Grad-CAM and the view: the 32-pixel image enlarged 7 times.
    assert image_width(page, "gradcam") == image_width(page, "seen") == 224
    (row,) = downloaded_table(page, tmp_path)
    assert (row["file"], row["predicted"], row["confidence"]) == (
        image.name, expected["predicted"], expected["confidence"],
    )  # fmt: skip
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    assert Image.open(tmp_path / "page.png").size[0] == 1400
    assert "Traceback" not in cifar_demo.log()


def test_grad_cam_of_another_class_redraws_the_heat_map(
    page: Page, cifar_test_images: list[Path]
) -> None:
    upload(page, cifar_test_images[1:2])
    summary_of(page, cifar_test_images[1].name)
    first = page.locator("#gradcam img").get_attribute("src")
    chosen = page.locator("#class input").input_value()
    other = "dog" if chosen != "dog" else "cat"
    page.locator("#class input").click()
    page.get_by_role("option", name=other, exact=True).click()
    page.wait_for_function(
        "([selector, before]) => document.querySelector(selector)?.src !== before",
        arg=["#gradcam img", first],
        timeout=30_000,
    )
    assert page.locator("#class input").input_value() == other


def test_many_images_are_tabled_and_files_that_are_not_images_are_named(
    page: Page, cifar_demo: Server, cifar_test_images: list[Path], tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("a text file, not an image")
    bomb = tmp_path / "bomb.png"  # 400 megapixels promised, in a few kilobytes
    Image.new("1", (20_000, 20_000)).save(bomb)
    upload(page, [notes, *cifar_test_images, bomb])
    status = page.locator("#status")
    status.get_by_text("bomb.png").wait_for(timeout=30_000)
    text = status.inner_text()
    assert "notes.txt: not a readable image" in text
    assert re.search(r"bomb\.png: not a readable image \(.*decompression bomb", text)
    assert str(tmp_path) not in text  # files are named as the visitor knows them
    rows = downloaded_table(page, tmp_path)
    assert [row["file"] for row in rows] == [image.name for image in cifar_test_images]
    for row in rows:
        assert 0 <= float(row["margin"]) <= float(row["confidence"])
    assert "Traceback" not in cifar_demo.log()


def test_clicking_an_example_classifies_it(page: Page) -> None:
    thumbnail = page.get_by_role("button", name=re.compile(r"^Thumbnail 1 of \d+$"))
    true_class = thumbnail.inner_text().strip()
    thumbnail.click()
    summary = summary_of(page, f"00_{true_class}.png")
    assert re.fullmatch(rf"00_{true_class}\.png: \w+ \(\d+\.\d\d%\)", summary)


def test_an_upload_over_the_limit_is_refused_on_the_page(page: Page, tmp_path: Path) -> None:
    huge = tmp_path / "huge.png"
    huge.write_bytes(os.urandom(2 * 1024 * 1024))
    upload(page, [huge])
    page.get_by_text(re.compile("exceed the maximum allowed size")).wait_for(timeout=30_000)
    assert page.locator("#summary").inner_text().strip() == ""


def test_the_page_writes_only_into_its_folder_and_deletes_it_when_stopped(
    browser: Browser,
    cifar_run: tuple,
    fixture_data_dir: Path,
    cifar_test_images: list[Path],
    tmp_path: Path,
) -> None:
    checkpoint = cifar_run[0] / "checkpoints" / "last.ckpt"
    with serving(checkpoint, tmp_path, data_dir=fixture_data_dir) as server:
        page = opened(browser, server)
        upload(page, cifar_test_images[:1])
        summary_of(page, cifar_test_images[0].name)
        page.close()
        (folder,) = (tmp_path / "tmp").glob("imgclf-demo-*")
        assert any(path.name == cifar_test_images[0].name for path in folder.rglob("*"))
        server.process.send_signal(signal.SIGTERM)  # as a service manager stops it
        assert server.process.wait(timeout=60) == 0
    assert not folder.exists()
    written = [path for path in (tmp_path / "tmp").rglob("*") if path.is_file()]
    assert written == [] and list((tmp_path / "cwd").iterdir()) == []


def test_a_port_in_use_is_one_message_naming_it(cifar_run: tuple, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_script(
            "scripts/demo.py", f"ckpt_path={cifar_run[0] / 'checkpoints' / 'last.ckpt'}",
            f"demo.port={port}", timeout=120,
        )  # fmt: skip
    assert result.returncode == 2
    assert f"port {port} on 127.0.0.1 is in use" in result.stderr
    assert "demo.port=" in result.stderr and "Traceback" not in result.stderr


def test_a_missing_checkpoint_is_one_message(tmp_path: Path) -> None:
    result = run_script(
        "scripts/demo.py", f"ckpt_path={tmp_path / 'nowhere.ckpt'}", timeout=120,
        variables={"TMPDIR": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 2
    assert "ckpt_path=" in result.stderr and "no such checkpoint" in result.stderr
    assert list(tmp_path.iterdir()) == []  # the page's folder is gone too


def test_a_multi_label_model_answers_with_its_label_set_and_thresholds(
    browser: Browser, multi_label_run: tuple, mosaics: Path, tmp_path: Path
) -> None:
    checkpoint = Path(multi_label_run[1]["best_checkpoint"])
    images = sorted((mosaics / "images" / "test").glob("*.jpg"))[:6]
    with serving(checkpoint, tmp_path / "demo", data_dir=mosaics) as server:
        page = opened(browser, server)
        upload(page, images)
        summary = summary_of(page, images[0].name)
        card = page.locator("#card").inner_text()
        rows = downloaded_table(page, tmp_path)
        page.close()
    expected = predicted_by_predict_py(checkpoint, images[0], tmp_path / "predict")
    shown = expected["probabilities"] or "no class reaches its threshold"
    assert summary == f"{images[0].name}: {shown}"
    assert [row["predicted"] for row in rows][0] == expected["predicted"]
    assert len(rows) == len(images)
    # The card lists each class's tuned threshold.
    assert "each reaching its threshold" in card
    assert len(re.findall(r"\b\w+ 0\.\d\d\b", card)) >= 10
