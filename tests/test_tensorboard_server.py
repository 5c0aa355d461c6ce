"""A real TensorBoard server serves a run's scalars, images and text over its HTTP API."""

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest

from cli import free_loopback_port
from views import IMAGE_TAGS, assert_real_picture


@pytest.fixture
def tensorboard_url(cifar_run: tuple) -> Iterator[str]:
    run_dir, _ = cifar_run
    port = free_loopback_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(run_dir), "--host",
         "127.0.0.1", "--port", str(port), "--load_fast", "false"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def wait_for_tags(url: str, plugin: str, wanted: set[str], timeout: float = 90) -> dict:
    """The server loads event files in the background: poll until the tags are in."""
    deadline = time.monotonic() + timeout
    tags: dict = {}
    while time.monotonic() < deadline:
        try:
            tags = json.loads(get(f"{url}/data/plugin/{plugin}/tags"))
            if any(wanted <= set(run_tags) for run_tags in tags.values()):
                return tags
        except OSError:
            pass  # not listening yet
        time.sleep(0.5)
    raise AssertionError(f"{plugin} tags {wanted} not served within {timeout} s; got {tags}")


def test_server_serves_scalars_images_and_text(tensorboard_url: str) -> None:
    scalars = wait_for_tags(
        tensorboard_url, "scalars", {"train/loss", "val/acc", "test/acc", "test/f1/cat"}
    )
    images = wait_for_tags(tensorboard_url, "images", set(IMAGE_TAGS))
    wait_for_tags(tensorboard_url, "text", {"test/classification_report/text_summary"})
    run = next(iter(images))
    assert run in scalars
    query = urllib.parse.urlencode({"run": run, "tag": "test/confusion_matrix"})
    entries = json.loads(get(f"{tensorboard_url}/data/plugin/images/images?{query}"))
    picture = get(f"{tensorboard_url}/data/plugin/images/individualImage?{entries[-1]['query']}")
    assert_real_picture(picture)
