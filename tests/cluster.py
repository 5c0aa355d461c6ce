"""The SLURM cluster the cluster tests submit to: scripts/slurm_cluster.sh start makes this
machine one, and CI starts it before the tests."""

import os
import shutil
import subprocess

import pytest

START_CLUSTER = "start one with: sudo bash scripts/slurm_cluster.sh start"


def require_slurm_cluster() -> None:
    """Skip where no cluster answers; under CI, which starts one, fail."""
    problem = None
    if shutil.which("sbatch") is None:
        problem = "SLURM is not installed"
    else:
        state = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True)
        if state.returncode != 0 or not state.stdout.strip():
            problem = f"no SLURM cluster answers ({state.stderr.strip()})"
    if problem and os.environ.get("CI"):
        pytest.fail(f"{problem}: {START_CLUSTER}")
    if problem:
        pytest.skip(f"{problem}: {START_CLUSTER}")
