"""What a test session makes once for all its pytest-xdist workers: photo folders and finished
runs that take seconds to make, in the folder of the `shared_dir` fixture."""

import json
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from configs import finished_run


def made_once(shared_dir: Path, name: str, make: Callable[[Path], object]) -> Path:
    """`shared_dir/name`, made by `make(path)` in the first worker that asks for it; the
    others wait for it. Tests read it and copy what they change."""
    path = shared_dir / name
    with FileLock(shared_dir / f"{name}.lock"):
        if not (shared_dir / f"{name}.made").exists():
            make(path)
            (shared_dir / f"{name}.made").touch()
    return path


def run_made_once(shared_dir: Path, name: str, data_dir: Path, *overrides: str) -> tuple:
    """A finished training run's folder and metrics (see `configs.finished_run`), made once."""
    run_dir = made_once(shared_dir, name, lambda path: finished_run(path, data_dir, *overrides))
    return run_dir, json.loads((run_dir / "metrics.json").read_text())
