"""A leaderboard of any run folders: `python scripts/compare_runs.py outputs/runs/*`.

Prints the table a sweep writes as summary.md (one row per run: overrides, val/acc_best,
test/acc, seconds, status, error; best val/acc_best first) and, with --output DIR, writes it
there as summary.csv and summary.md. Every run is listed, whatever its status: completed,
failed, stopped, running, or killed (it ended without a word). Paths that are not run folders
are named.
"""

import argparse
import sys
from pathlib import Path

from imgclf.leaderboard import describe_run, markdown_table, rank, write_leaderboard


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run folders")
    parser.add_argument("--output", type=Path, help="also write summary.csv and .md here")
    args = parser.parse_args()
    rows, not_runs = [], []
    for run_dir in args.run_dirs:
        row = describe_run(run_dir)
        if row is None:
            not_runs.append(str(run_dir))
        else:
            rows.append(row)
    if not_runs:
        print(
            f"not run folders (no .hydra/config.yaml), left out: {', '.join(not_runs)}",
            file=sys.stderr,
        )
    if not rows:
        raise SystemExit("none of the paths is a run folder")
    print(markdown_table(rank(rows)))
    if args.output:
        args.output.mkdir(parents=True, exist_ok=True)
        write_leaderboard(rank(rows), args.output)


if __name__ == "__main__":
    main()
