"""Print a Markdown table of finished runs: `python scripts/compare_runs.py outputs/runs/*`.

Each run folder's composed config (.hydra/config.yaml and overrides.yaml) and metrics.json
give one row, best test accuracy first.
"""

import argparse
import json
from pathlib import Path

from omegaconf import OmegaConf


def describe(run_dir: Path) -> dict | None:
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        return None
    metrics = json.loads(metrics_path.read_text())
    config = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    overrides = OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")
    return {
        "run": run_dir.name,
        "dataset": config.data.dataset,
        "model": config.model.net._target_.rsplit(".", 1)[-1],
        "overrides": " ".join(overrides) or "(defaults)",
        "test/acc": metrics.get("test/acc", float("nan")),
        "val/acc_best": metrics.get("val/acc_best", float("nan")),
        "epochs": metrics.get("epochs"),
        "minutes": metrics.get("seconds", 0) / 60,
    }


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| dataset | model | test acc | best val acc | epochs | wall time | overrides |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['dataset']} | {row['model']} | {row['test/acc']:.2%} "
            f"| {row['val/acc_best']:.2%} "
            f"| {row['epochs']} | {row['minutes']:.1f} min | `{row['overrides']}` |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run folders (with metrics.json)")
    args = parser.parse_args()
    rows = [row for run_dir in args.run_dirs if (row := describe(run_dir))]
    if not rows:
        raise SystemExit("no run folder with a metrics.json among the given paths")
    print(markdown_table(sorted(rows, key=lambda row: -row["test/acc"])))


if __name__ == "__main__":
    main()
