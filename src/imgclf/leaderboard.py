"""One row per run folder, best first: what a sweep writes as summary.csv/.md when it ends,
and what `scripts/compare_runs.py` prints for any set of run folders."""

import csv
import math
from pathlib import Path

from omegaconf import OmegaConf

from imgclf.run_folder import run_status

COLUMNS = ["job", "status", "overrides", "val/acc_best", "test/acc", "seconds", "error"]


def describe_run(run_dir: Path) -> dict | None:
    """The run's row: completed, failed, stopped, running or killed; None for a folder that
    is not a run."""
    status = run_status(run_dir)
    if status is None:
        return None
    state, outcome = status
    overrides_path = run_dir / ".hydra" / "overrides.yaml"
    overrides = list(OmegaConf.load(overrides_path)) if overrides_path.is_file() else []
    return {
        "job": run_dir.name,
        "status": state,
        "overrides": " ".join(overrides) or "(defaults)",
        "val/acc_best": outcome.get("val/acc_best", math.nan),
        "test/acc": outcome.get("test/acc", math.nan),
        "seconds": outcome.get("seconds", math.nan),
        "error": outcome.get("error", ""),
    }


def rank(rows: list[dict], metric: str = "val/acc_best") -> list[dict]:
    """Best `metric` first (accuracies: higher is better); runs without it last."""
    return sorted(rows, key=lambda row: (math.isnan(row[metric]), -row[metric]))


def markdown_table(rows: list[dict]) -> str:
    def cell(row: dict, column: str) -> str:
        value = row[column]
        if isinstance(value, float) and math.isnan(value):
            return ""
        if isinstance(value, float):
            return f"{value:.1f}" if column == "seconds" else f"{value:.2%}"
        if column == "overrides":
            return f"`{value}`"
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell(row, column) for column in COLUMNS) + " |" for row in rows]
    return "\n".join(lines)


def write_leaderboard(rows: list[dict], folder: Path, name: str = "summary") -> tuple[Path, Path]:
    csv_path, markdown_path = folder / f"{name}.csv", folder / f"{name}.md"
    with csv_path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    markdown_path.write_text(markdown_table(rows) + "\n")
    return csv_path, markdown_path
