"""What the audit's folds and epochs trade: time against what it finds. Audits a folder with
problems planted by scripts/plant_problems.py (its labels.csv and planted.csv) once for each
number of folds and epochs, and prints a Markdown table of the time and the share of each
planted kind found, with the label issues that were not planted.

    python scripts/make_photo_folder.py planted --per-class 200 --val-per-class 30 \
        --test-per-class 100 --classes airplane,frog,truck --min-side 40 --max-side 80
    python scripts/plant_problems.py planted
    python benchmarks/audit_tradeoff.py planted [--folds 2 3 5] [--epochs 4 12 24]
"""

import argparse
import csv
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# What each planted kind counts as found as (the test suite's rule).
FOUND_AS = {
    "flipped_label": {"label_issue"},
    "copies": {"leakage"},
    "foreign": {"outlier", "label_issue"},
}


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def audited(folder: Path, output: Path, folds: int, epochs: int) -> float:
    """The audit's wall time in seconds, the whole command."""
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable, str(REPO / "scripts" / "audit.py"), "data=image_csv",
            f"data.csv_path={folder / 'labels.csv'}", "data.image_size=32",
            f"audit.folds={folds}", f"audit.epochs={epochs}", f"hydra.run.dir={output}",
        ],
        cwd=REPO, check=True, capture_output=True,
    )  # fmt: skip
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a folder made by scripts/plant_problems.py")
    parser.add_argument("--folds", type=int, nargs="+", default=[2, 3, 5])
    parser.add_argument("--epochs", type=int, nargs="+", default=[4, 12, 24])
    parser.add_argument("--output", type=Path, default=REPO / "outputs" / "audit_tradeoff")
    args = parser.parse_args()
    folder = args.folder.resolve()
    planted = rows(folder / "planted.csv")
    kinds = {
        kind: {
            row["path"]
            for row in planted
            if row["kind"] == kind or (kind == "copies" and row["kind"].endswith("_copy"))
        }
        for kind in FOUND_AS
    }
    planted_paths = {row["path"] for row in planted}
    print(
        "| folds | epochs | time | flipped labels | copies | foreign images | other label issues |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for folds in args.folds:
        for epochs in args.epochs:
            output = args.output / f"folds{folds}_epochs{epochs}"
            seconds = audited(folder, output, folds, epochs)
            found: dict[str, set[str]] = {}
            for row in rows(output / "issues.csv"):
                found.setdefault(row["image"], set()).add(row["type"])
            shares = [
                f"{sum(bool(found.get(path, set()) & types) for path in kinds[kind])}"
                f"/{len(kinds[kind])}"
                for kind, types in FOUND_AS.items()
            ]
            others = sum(
                "label_issue" in types and path not in planted_paths
                for path, types in found.items()
            )
            print(f"| {folds} | {epochs} | {seconds:.0f} s | {' | '.join(shares)} | {others} |")


if __name__ == "__main__":
    main()
