"""Run the real command line, as a user does."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_script(
    script: str, *overrides: str, data_dir: Path | None = None, timeout: int = 600
) -> subprocess.CompletedProcess:
    """`python <script> <overrides>` from the repository root, e.g. `scripts/eval.py`."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0"}
    if data_dir is not None:
        env["IMGCLF_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, str(REPO / script), *overrides],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_train(*overrides: str, **options) -> subprocess.CompletedProcess:  # noqa: ANN003
    return run_script("train.py", *overrides, **options)
