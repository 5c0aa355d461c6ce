"""How fast the demo page is for a visitor: `python benchmarks/demo_latency.py <checkpoint>`.

Start-up: `scripts/demo.py` is started `--starts` times (the first warms the files its imports
read), each timed from the process's start until the page answers. Answers: in headless
Chromium, `--images` real CIFAR-10 test images are uploaded one at a time, each timed from
the upload until its answer and its Grad-CAM are on the page. Needs the real CIFAR-10 in
$IMGCLF_DATA_DIR.
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from torchvision.io import write_png

from imgclf.data import sources

from demo_page import ANSWER_TIMEOUT_MS, chromium, opened, serving, summary_of, upload

# The Grad-CAM shown is a new image that has finished loading.
GRADCAM_LOADED = """before => {
    const image = document.querySelector('#gradcam img');
    return image && image.src !== before && image.complete && image.naturalWidth > 0;
}"""


def write_test_images(folder: Path, count: int, data_dir: Path) -> list[Path]:
    test = sources.load("cifar10", data_dir).test
    paths = [folder / f"test_{index:05d}.png" for index in range(count)]
    for index, path in enumerate(paths):
        write_png(test.images[index], str(path))
    return paths


def answer_seconds(checkpoint: Path, images: list[Path], folder: Path) -> list[float]:
    seconds = []
    with serving(checkpoint, folder / "timed") as server, chromium() as browser:
        page = opened(browser, server)
        for image in images:
            before = page.locator("#gradcam img").get_attribute("src") if seconds else None
            started = time.perf_counter()
            upload(page, [image])
            summary_of(page, image.name)
            page.wait_for_function(GRADCAM_LOADED, arg=before, timeout=ANSWER_TIMEOUT_MS)
            seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=lambda path: Path(path).resolve())
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--starts", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        data_dir = Path(os.environ.get("IMGCLF_DATA_DIR", "data"))
        images = write_test_images(folder, args.images, data_dir)
        starts = []
        for start in range(args.starts):
            with serving(args.checkpoint, folder / f"start_{start}") as server:
                starts.append(server.seconds_to_serve)
        answers = answer_seconds(args.checkpoint, images, folder)
    print(f"start-up, s: {', '.join(f'{value:.1f}' for value in starts)} (the first cold)")
    print(
        f"answer with Grad-CAM, s, over {len(answers)} uploads: median "
        f"{statistics.median(answers):.2f}, slowest {max(answers):.2f}, first {answers[0]:.2f}"
    )


if __name__ == "__main__":
    main()
