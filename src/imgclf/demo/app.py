"""`python scripts/demo.py ckpt_path=<checkpoint>`: a web page to try a trained model, served
on http://127.0.0.1:7860 until Ctrl-C.

The checkpoint is read through the same gate as predict's before anything is served, and the
port is checked before Gradio starts, so either problem is one message. The page writes into
one temporary folder (uploads, examples, tables), deleted when the app stops."""

import logging
import os
import shutil
import signal
import socket
import tempfile
import threading
from pathlib import Path

import hydra
from omegaconf import DictConfig

from imgclf.app import CONFIG_DIR, command_line_app
from imgclf.checkpoints import read_checkpoint
from imgclf.demo.card import model_card
from imgclf.demo.examples import pick_examples
from imgclf.errors import UserError, user_errors_reported
from imgclf.module import model_from_checkpoint

log = logging.getLogger(__name__)


def check_port_free(host: str, port: int) -> None:
    """Bind the address as the server will (uvicorn sets SO_REUSEADDR), so a port in use is
    found before Gradio starts and answers with its own advice."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            raise UserError(
                f"port {port} on {host} is in use ({error.strerror or error}): another program "
                f"serves there. Choose a free one with demo.port=<port>, e.g. demo.port={port + 1}."
            ) from error


def serve(cfg: DictConfig, folder: Path) -> None:
    checkpoint = read_checkpoint(cfg.ckpt_path, "ckpt_path")
    model = model_from_checkpoint(checkpoint)
    check_port_free(cfg.demo.host, cfg.demo.port)
    # Gradio's uploads and the files it serves go into the page's folder; it reads where at
    # import. No usage statistics are sent.
    os.environ["GRADIO_TEMP_DIR"] = str(folder / "gradio")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's checks of its own server
    from imgclf.demo.page import build_page  # gradio, after its settings above

    examples = pick_examples(cfg, model, folder / "examples", cfg.demo.examples)
    card = model_card(checkpoint, model, cfg.ckpt_path)
    page = build_page(model, card, examples, folder, cfg.top_k)
    log.info("%s: %s, %d example(s)", card.title, model.describe_input(), len(examples))
    # Before the page serves: a stop that comes as soon as it answers is not lost.
    stopped = stop_requested()
    page.launch(
        server_name=cfg.demo.host,
        server_port=cfg.demo.port,
        share=cfg.demo.share,
        max_file_size=cfg.demo.max_file_size,
        allowed_paths=[str(folder)],
        show_error=True,
        quiet=True,
        prevent_thread_lock=True,
    )
    log.info(
        "serving on %s%s until Ctrl-C",
        page.local_url, f" and {page.share_url}" if page.share_url else "",
    )  # fmt: skip
    try:
        stopped.wait()
        log.info("stopped")
    finally:
        page.close()


def stop_requested() -> threading.Event:
    """Set by Ctrl-C or SIGTERM (a service manager's stop): either ends the serving in its
    `finally`, which closes the page; the caller's deletes the page's folder."""
    stopped = threading.Event()
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, lambda number, frame: stopped.set())
    return stopped


@command_line_app("demo")
@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="demo")
def main(cfg: DictConfig) -> None:
    folder = Path(tempfile.mkdtemp(prefix="imgclf-demo-"))
    try:
        with user_errors_reported():
            serve(cfg, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
