"""Run the real command line, as a user does."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def command(script: str, *overrides: str) -> list[str]:
    """`python <script> <overrides>`, e.g. for `scripts/eval.py`."""
    return [sys.executable, str(REPO / script), *overrides]


def environment(data_dir: Path | None = None, **variables: str) -> dict[str, str]:
    """This process's environment, with user errors reported briefly unless overridden."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0", **variables}
    if data_dir is not None:
        env["IMGCLF_DATA_DIR"] = str(data_dir)
    return env


def run_script(
    script: str,
    *overrides: str,
    data_dir: Path | None = None,
    timeout: int = 600,
    variables: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """Run `script` from the repository root and wait for it."""
    return subprocess.run(
        command(script, *overrides),
        cwd=REPO,
        env=environment(data_dir, **(variables or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_train(*overrides: str, **options) -> subprocess.CompletedProcess:  # noqa: ANN003
    return run_script("train.py", *overrides, **options)


def exported(
    checkpoint: str | Path, output: Path, run_dir: Path, model_format: str = "onnx"
) -> Path:
    """`scripts/export.py` run on `checkpoint`, writing `output` (its run folder `run_dir`)."""
    result = run_script(
        "scripts/export.py", f"ckpt_path={checkpoint}", f"format={model_format}",
        f"output={output}", f"hydra.run.dir={run_dir}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return output


def made_folder(script: str, output: Path, *arguments: str, data_dir: Path) -> Path:
    """`output`, written by one of the scripts that make image folders from real data."""
    result = run_script(script, str(output), *arguments, data_dir=data_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return output


# Three short epochs of simple_cnn on the real MNIST, with per-step logging to TensorBoard.
SHORT_MNIST_RUN = [
    "experiment=mnist_quick",
    "trainer.max_epochs=3",
    "trainer.limit_train_batches=25",
    "trainer.log_every_n_steps=5",
    "callbacks=minimal",
]


# One epoch on a folder of photos (conftest's real_photos), default callbacks and logger.
PHOTO_RUN = ["data=image_folder", "data.image_size=32", "trainer.max_epochs=1"]


def interrupted_run(run_dir: Path, data_dir: Path, signal_number: int, *overrides: str) -> int:
    """SHORT_MNIST_RUN (and `overrides`), sent `signal_number` a second into its second
    epoch: its exit status."""
    process = subprocess.Popen(
        command("train.py", *SHORT_MNIST_RUN, f"hydra.run.dir={run_dir}", *overrides),
        cwd=REPO,
        env=environment(data_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # into the second epoch, past a few logged steps
    assert process.poll() is None, "the run ended before it could be stopped"
    process.send_signal(signal_number)
    return process.wait()


# Runs train.py's main in this subprocess, after wrapping the one method that marks `phase`
# so that the process sends itself `signal_name` there, once: a real signal, delivered at
# a known point of the run instead of after a guessed delay.
STOP_AT_PHASE = """
import os, signal, sys
import lightning.pytorch as pl
from imgclf.callbacks import RunReportCallback
from imgclf.module import ImageClassifier
from imgclf.train import main

phase, signal_name = sys.argv.pop(1), sys.argv.pop(1)
sent = []

def stopping(cls, name, when):
    method = getattr(cls, name)
    def wrapper(self, *args, **kwargs):
        trainer = getattr(self, "trainer", None) or args[0]
        if not sent and when(trainer):
            sent.append(True)
            os.kill(os.getpid(), getattr(signal, signal_name))
        return method(self, *args, **kwargs)
    setattr(cls, name, wrapper)

module = ImageClassifier
if phase == "sanity check":
    stopping(module, "validation_step", lambda t: t.sanity_checking)
elif phase == "fit":  # the second epoch's third batch
    batch = lambda t: t.fit_loop.epoch_loop.batch_idx  # noqa: E731
    stopping(module, "training_step", lambda t: t.current_epoch == 1 and batch(t) == 2)
elif phase == "validation":  # the second epoch's
    stopping(module, "validation_step", lambda t: t.current_epoch == 1 and not t.sanity_checking)
elif phase == "test":
    stopping(module, "test_step", lambda t: True)
elif phase == "report":
    stopping(RunReportCallback, "on_test_end", lambda t: True)
else:
    raise SystemExit(f"unknown phase {phase}")
sys.argv[0] = "train.py"
main()
"""


def stopped_run(
    phase: str, signal_name: str, *overrides: str, data_dir: Path | None = None
) -> subprocess.CompletedProcess:
    """`python train.py <overrides>`, sent `signal_name` (SIGTERM, SIGINT) at `phase`:
    sanity check, fit, validation, test or report."""
    return subprocess.run(
        [sys.executable, "-c", STOP_AT_PHASE, phase, signal_name, *overrides],
        cwd=REPO,
        env=environment(data_dir),
        capture_output=True,
        text=True,
        timeout=600,
    )


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
