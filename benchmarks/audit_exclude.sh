#!/usr/bin/env bash
# What leaving out the images an audit flags does to the default CIFAR-10 recipe: trained with
# and without the flagged training images, 3 seeds each, and each model's best checkpoint
# tested on the full official test set and on the test set without the images the audit found
# leaked from training.
#   python scripts/audit.py                       # the audit of CIFAR-10 this reads
#   bash benchmarks/audit_exclude.sh outputs/audit/<its folder> [output folder]
set -euo pipefail
cd "$(dirname "$0")/.."
audit=$1
out=${2:-outputs/audit_exclude}
python=${PYTHON:-.venv/bin/python}
mkdir -p "$out"

# The training split's findings, and the test images that leak from training.
"$python" - "$audit/issues.csv" "$out" <<'EOF'
import csv
import sys
from pathlib import Path

issues, out = Path(sys.argv[1]), Path(sys.argv[2])
rows = list(csv.DictReader(issues.open(newline="")))
for name, keep in [
    ("train_flagged.csv", lambda row: row["split"] == "train"),
    ("test_leaked.csv", lambda row: row["split"] == "test" and row["type"] == "leakage"),
]:
    images = sorted({row["image"] for row in rows if keep(row)})
    with (out / name).open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["image"])
        writer.writerows([image] for image in images)
    print(f"{name}: {len(images):,} images")
EOF

for seed in 1 2 3; do
  "$python" train.py seed="$seed" hydra.run.dir="$out/full_$seed"
  "$python" train.py seed="$seed" data.exclude="$out/train_flagged.csv" \
    hydra.run.dir="$out/excluded_$seed"
done
for run in "$out"/full_* "$out"/excluded_*; do
  best=$("$python" -c "import json,sys; print(json.load(open(sys.argv[1]))['best_checkpoint'])" \
    "$run/metrics.json")
  "$python" scripts/eval.py ckpt_path="$best" data=cifar10 \
    data.exclude="$out/test_leaked.csv" hydra.run.dir="$run/eval_without_leaked"
done

"$python" - "$out" <<'EOF'
import json
import statistics
import sys
from pathlib import Path

out = Path(sys.argv[1])
print("| training images | seed | test accuracy | without leaked test images |")
print("|---|---:|---:|---:|")
for kind in ("full", "excluded"):
    full, unleaked = [], []
    for seed in (1, 2, 3):
        run = out / f"{kind}_{seed}"
        full.append(json.loads((run / "metrics.json").read_text())["test/acc"])
        metrics = json.loads((run / "eval_without_leaked" / "metrics.json").read_text())
        unleaked.append(metrics["test/acc"])
        print(f"| {kind} | {seed} | {full[-1]:.4f} | {unleaked[-1]:.4f} |")
    print(f"| {kind} | mean | {statistics.mean(full):.4f} | {statistics.mean(unleaked):.4f} |")
EOF
