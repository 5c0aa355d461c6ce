"""Run the real command line, as a user does."""

import os
import subprocess
import sys
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
