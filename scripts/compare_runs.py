"""A leaderboard of any run folders: `python scripts/compare_runs.py outputs/runs/*`.

Prints the table a sweep writes as summary.md (one row per run: overrides, val/acc_best,
test/acc, seconds, status, error; best val/acc_best first) and, with --output DIR, writes it
there as summary.csv and summary.md.
"""

import argparse
from pathlib import Path

from imgclf.leaderboard import describe_run, markdown_table, rank, write_leaderboard


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dirs", nargs="+", type=Path, help="run folders")
    parser.add_argument("--output", type=Path, help="also write summary.csv and .md here")
    args = parser.parse_args()
    rows = rank([row for run_dir in args.run_dirs if (row := describe_run(run_dir))])
    if not rows:
        raise SystemExit("no finished or failed run (metrics.json or error.json) among the paths")
    print(markdown_table(rows))
    if args.output:
        args.output.mkdir(parents=True, exist_ok=True)
        write_leaderboard(rows, args.output)


if __name__ == "__main__":
    main()
