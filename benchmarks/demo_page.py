"""The demo page served and driven as a visitor uses it: `scripts/demo.py` in a subprocess, and
the system's Chromium (Debian's package `chromium`) driven by Playwright. The browser tests and
`demo_latency.py` share these."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# As root, without a sandbox; no requests to Google's services from an offline machine.
CHROMIUM_ARGUMENTS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip
# The page's answer for an image can take this long on a busy 2-core machine.
ANSWER_TIMEOUT_MS = 60_000


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    output: Path  # what it printed
    seconds_to_serve: float = 0.0  # from its start to the page's first answer

    def log(self) -> str:
        return self.output.read_text()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_served(server: Server, started: float, timeout: float = 180) -> None:
    deadline = started + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"the demo exited {server.process.returncode}:\n{server.log()}")
        try:
            with urllib.request.urlopen(server.url, timeout=5):
                server.seconds_to_serve = time.monotonic() - started
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"the demo did not serve within {timeout} s:\n{server.log()}")


@contextmanager
def serving(
    checkpoint: Path,
    folder: Path,
    *overrides: str,
    data_dir: Path | None = None,
    variables: dict[str, str] | None = None,
) -> Iterator[Server]:
    """`python scripts/demo.py ckpt_path=<checkpoint>` on a free port, run from `folder/cwd`
    with its temporary files in `folder/tmp`, until stopped with Ctrl-C (SIGINT)."""
    port = free_port()
    for name in ("cwd", "tmp"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TMPDIR": str(folder / "tmp"), **(variables or {})}
    if data_dir is not None:
        env["IMGCLF_DATA_DIR"] = str(data_dir)
    output = folder / "demo.out"
    started = time.monotonic()
    with output.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, str(REPO / "scripts" / "demo.py"), f"ckpt_path={checkpoint}",
             f"demo.port={port}", *overrides],
            cwd=folder / "cwd", env=env, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = Server(f"http://127.0.0.1:{port}/", process, output)
    try:
        wait_until_served(server, started)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Chromium: the system's, which `.ci/run` installs."""
    if CHROMIUM is None:
        raise FileNotFoundError("no Chromium: install Debian's package chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGUMENTS)
        try:
            yield browser
        finally:
            browser.close()


def opened(browser: Browser, server: Server) -> Page:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(server.url)
    page.wait_for_selector("#files")
    return page


def upload(page: Page, paths: Sequence[Path]) -> None:
    page.locator("#files input[type=file]").set_input_files([str(path) for path in paths])


def summary_of(page: Page, name: str) -> str:
    """The page's answer for the image `name`, once it is shown."""
    summary = page.locator("#summary")
    summary.get_by_text(name).wait_for(timeout=ANSWER_TIMEOUT_MS)
    return summary.inner_text().strip()
