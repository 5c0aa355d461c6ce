#!/usr/bin/env bash
# `bash benchmarks/multi_label.sh [OUT] [SEEDS]`: the measured table of docs/multi-label.md.
# On 20,000 training and 5,000 test mosaics of real CIFAR-10 images, for each seed:
#   1. deep_cnn trained multi-label, thresholds tuned on validation;
#   2. a timm resnet18 started from a local weights file (its weights after single-label
#      training on CIFAR-10's training images, made once here), fine-tuned likewise;
#   3. the oracle: CIFAR-10's default single-label model (`python train.py`) applied to each
#      shown tile on its own (benchmarks/multi_label_oracle.py).
# Then prints each run's test scores and their means. Reads CIFAR-10 from $IMGCLF_DATA_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-outputs/multi_label_benchmark}
SEEDS=${2:-1 2 3}
MOSAICS=$OUT/mosaics
PYTHON=${PYTHON:-python}

best_checkpoint() { "$PYTHON" -c "import json, sys; print(json.load(open(sys.argv[1]))['best_checkpoint'])" "$1/metrics.json"; }

# Every run reads the mosaics whole: 64x64 px, uncropped, held in memory.
MOSAIC_DATA=(data=image_csv "data.csv_path=$MOSAICS/labels.csv" data.image_size=64
  data.crop_fraction=1.0 data.cache=ram model.threshold=tuned)

[ -f "$MOSAICS/labels.csv" ] || "$PYTHON" scripts/make_multilabel_folder.py "$MOSAICS" --train 20000 --test 5000

WEIGHTS=$OUT/resnet18_cifar10.safetensors
[ -f "$OUT/resnet18_cifar10/metrics.json" ] || "$PYTHON" train.py model=timm \
  model.name=resnet18 data=cifar10 trainer.max_epochs=6 seed=0 test=false callbacks=minimal \
  "hydra.run.dir=$OUT/resnet18_cifar10"
if [ ! -f "$WEIGHTS" ]; then
  # The best epoch's checkpoint (the only epoch_*.ckpt kept).
  "$PYTHON" - "$OUT"/resnet18_cifar10/checkpoints/epoch_*.ckpt "$WEIGHTS" <<'EOF'
import sys

import safetensors.torch
import torch

state = torch.load(sys.argv[1], weights_only=True)["state_dict"]
prefix = "classifier.net."
# channels_last weights are strided: safetensors stores contiguous tensors.
net = {
    key[len(prefix) :]: value.contiguous()
    for key, value in state.items()
    if key.startswith(prefix)
}
safetensors.torch.save_file(net, sys.argv[2])
EOF
fi

for seed in $SEEDS; do
  [ -f "$OUT/deep_cnn_$seed/metrics.json" ] || "$PYTHON" train.py "${MOSAIC_DATA[@]}" \
    model=deep_cnn data.batch_size=250 +trainer.accumulate_grad_batches=4 trainer.max_epochs=12 \
    "seed=$seed" "hydra.run.dir=$OUT/deep_cnn_$seed"
  [ -f "$OUT/resnet18_$seed/metrics.json" ] || "$PYTHON" train.py "${MOSAIC_DATA[@]}" \
    model=timm model.name=resnet18 "model.pretrained=$WEIGHTS" trainer.max_epochs=6 \
    "seed=$seed" "hydra.run.dir=$OUT/resnet18_$seed"
  [ -f "$OUT/cifar10_$seed/metrics.json" ] || "$PYTHON" train.py "seed=$seed" \
    "hydra.run.dir=$OUT/cifar10_$seed"
  [ -f "$OUT/oracle_$seed.json" ] || "$PYTHON" benchmarks/multi_label_oracle.py \
    "$(best_checkpoint "$OUT/cifar10_$seed")" "$MOSAICS" --output "$OUT/oracle_$seed.json"
done

"$PYTHON" - "$OUT" $SEEDS <<'EOF'
import json
import sys
from pathlib import Path
from statistics import mean

out, seeds = Path(sys.argv[1]), sys.argv[2:]
scores = ["test/map", "test/f1_micro", "test/f1_macro", "test/subset_acc", "test/hamming_loss"]
print("| model | " + " | ".join(scores) + " | seconds |")
for model in ("deep_cnn", "resnet18", "oracle"):
    runs = []
    for seed in seeds:
        path = out / (f"{model}_{seed}.json" if model == "oracle" else f"{model}_{seed}/metrics.json")
        if path.is_file():
            runs.append(json.loads(path.read_text()))
    if not runs:
        continue
    for seed, run in zip(seeds, runs):
        cells = " | ".join(f"{run[name]:.4f}" for name in scores)
        print(f"| {model} seed {seed} | {cells} | {run.get('seconds', '')} |")
    means = " | ".join(f"**{mean(run[name] for run in runs):.4f}**" for name in scores)
    print(f"| {model} mean of {len(runs)} | {means} | |")
EOF
