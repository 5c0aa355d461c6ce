"""One row per run folder, best first: what a sweep writes as summary.csv/.md when it ends,
and what `scripts/compare_runs.py` prints for any set of run folders."""

import csv
import math
from pathlib import Path

from omegaconf import OmegaConf

from imgclf.run_folder import run_status

# The scores a run is judged by: a single-label run's accuracy, a multi-label run's mAP. A
# table lists those its runs have (accuracy when none has either).
SCORE_COLUMNS = {"acc": ["val/acc_best", "test/acc"], "map": ["val/map_best", "test/map"]}
COLUMNS = ["job", "status", "overrides", *SCORE_COLUMNS["acc"], "seconds", "error"]


def columns(rows: list[dict]) -> list[str]:
    """COLUMNS, with the score columns that the rows have values of."""
    scored = [
        score
        for score, names in SCORE_COLUMNS.items()
        if any(not math.isnan(row.get(name, math.nan)) for row in rows for name in names)
    ] or ["acc"]
    scores = [name for score in scored for name in SCORE_COLUMNS[score]]
    return ["job", "status", "overrides", *scores, "seconds", "error"]


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
        **{name: outcome.get(name, math.nan) for names in SCORE_COLUMNS.values() for name in names},
        "seconds": outcome.get("seconds", math.nan),
        "error": outcome.get("error", ""),
    }


def rank(rows: list[dict], metric: str | None = None) -> list[dict]:
    """Best `metric` first (accuracy, mAP: higher is better); runs without it last. By
    default, the best validation score the runs have (`val/acc_best`, `val/map_best`)."""
    metric = metric or columns(rows)[3]
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

    shown = columns(rows)
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    lines += ["| " + " | ".join(cell(row, column) for column in shown) + " |" for row in rows]
    return "\n".join(lines)


def write_leaderboard(rows: list[dict], folder: Path, name: str = "summary") -> tuple[Path, Path]:
    csv_path, markdown_path = folder / f"{name}.csv", folder / f"{name}.md"
    with csv_path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=columns(rows), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    markdown_path.write_text(markdown_table(rows) + "\n")
    return csv_path, markdown_path
