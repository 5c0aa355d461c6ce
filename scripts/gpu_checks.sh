#!/usr/bin/env bash
# The GPU measurements in one run, for a session lent a GPU machine (about 8 minutes on an
# H200 without the fine-tuning race, most of it the anchor's compilation):
#
#   bash scripts/gpu_checks.sh OUT [AIRBENCH] [TIMM_TRAIN]
#
# OUT gets one log per check. AIRBENCH, optional, is a copy of airbench94_muon.py
# (KellerJordan/cifar10-airbench; not ours, never committed), run beside ours as the anchor
# with its 200 runs cut to 3. TIMM_TRAIN, optional, is timm's train.py
# (huggingface/pytorch-image-models; never committed either): the fine-tuning benchmark runs
# it beside imgclf (fastai is not on the device machine).
#
# Timing only: CIFAR-10 (163 MB) cannot travel to the device machine (64 MiB a call), so both
# sides train on random images in CIFAR-10's formats, 9,999 per batch file (a full file must
# match the official checksum): the same shapes and work, accuracies meaningless.
#
# On the device machine its Python has torch, Lightning and torchmetrics but not Hydra or
# Optuna: carry their wheels (.whl, see the device tool's README: hydra-core, omegaconf,
# antlr4-python3-runtime, captum, optuna, alembic, mako, colorlog, sqlalchemy, greenlet) and
# install them first, e.g.
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl &&
#   PYTHONPATH=/tmp/site bash scripts/gpu_checks.sh "$OUT" .gpu/airbench94_muon.py
# Smoke-tested on CPU that way: Python 3.12 with the device's torch 2.11 and torchvision 0.26,
# those wheels, and the override variables below (3.3 minutes).
set -euo pipefail
out=$(mkdir -p "$1" && cd "$1" && pwd)
airbench=${2:-}
timm_train=${3:+$(cd "$(dirname "$3")" && pwd)/$(basename "$3")}
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src:$PWD/tests${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
work=$(mktemp -d)
data="$work/data"

nvidia-smi -L >"$out/device.txt" 2>&1 || true
"$python" -c "import torch, lightning; print('torch', torch.__version__, 'lightning', \
lightning.__version__, 'GPU', torch.cuda.is_available() and torch.cuda.get_device_name())" \
  >>"$out/device.txt"

"$python" - "$data" <<'EOF'
import sys
from pathlib import Path
from dataset_files import write_cifar_binary
write_cifar_binary(Path(sys.argv[1]), per_batch=9999)
EOF
fake_data=(paths.data_dir="$data" data.download=false)
# airbench's own batch: 2,000 images a step in one micro-batch, batch-norm momentum 0.4.
gpu_batches=(data.batch_size=2000 trainer.accumulate_grad_batches=1 model.net.norm_momentum=0.4)

# Appended to every imgclf command, and to the benchmarks': a smoke test on CPU sets e.g.
# GPU_CHECKS_OVERRIDES="trainer.accelerator=cpu trainer.max_epochs=1 trainer.limit_train_batches=8"
# GPU_CHECKS_BENCHMARK_OVERRIDES="benchmark.steps=2 benchmark.warmup_steps=2 benchmark.rounds=1".
read -r -a extra <<<"${GPU_CHECKS_OVERRIDES:-}"
read -r -a benchmark_extra <<<"${GPU_CHECKS_BENCHMARK_OVERRIDES:-}"

timed() {  # timed LOG COMMAND...: the command's output and its wall time in LOG
  local log=$1 started
  shift
  started=$(date +%s%N)
  "$@" >"$log" 2>&1 || echo "exit status $?" >>"$log"
  echo "wall time: $(( ($(date +%s%N) - started) / 1000000 )) ms" >>"$log"
}

# The Trainer path against a plain loop: both wait for the GPU only where timing starts and
# ends; the last lines give the ratio and the host syncs in the training steps.
timed "$out/benchmark_speedrun.txt" "$python" benchmarks/benchmark.py experiment=cifar10_speedrun \
  trainer=gpu "${fake_data[@]}" benchmark.steps=48 benchmark.warmup_steps=16 \
  hydra.run.dir="$work/benchmark" "${extra[@]}" "${benchmark_extra[@]}"
timed "$out/benchmark_speedrun_gpu_batches.txt" "$python" benchmarks/benchmark.py \
  experiment=cifar10_speedrun trainer=gpu "${fake_data[@]}" "${gpu_batches[@]}" \
  benchmark.steps=16 benchmark.warmup_steps=6 hydra.run.dir="$work/benchmark_gpu_batches" \
  "${extra[@]}" "${benchmark_extra[@]}"

# The whole speedrun command: start-up, whitening, 8 epochs, test-time views.
timed "$out/speedrun.txt" "$python" train.py experiment=cifar10_speedrun trainer=gpu \
  "${fake_data[@]}" hydra.run.dir="$work/speedrun" "${extra[@]}"
timed "$out/speedrun_gpu_batches.txt" "$python" train.py experiment=cifar10_speedrun trainer=gpu \
  "${fake_data[@]}" "${gpu_batches[@]}" hydra.run.dir="$work/speedrun_gpu_batches" "${extra[@]}"

# Fine-tuning resnet18, convnext_nano and mobilenetv3_large_100 at 224 px on 5,000 JPEGs made
# from the random images: imgclf, and timm's train.py beside it when given.
finetune_tools=(imgclf)
if [ -n "$timm_train" ]; then finetune_tools+=(timm); fi
timed "$out/finetune.txt" "$python" benchmarks/finetune.py "$work/finetune" --data-dir "$data" \
  --tools "${finetune_tools[@]}" ${timm_train:+--timm-train "$timm_train"} \
  ${GPU_CHECKS_FINETUNE_ARGUMENTS:-}

if [ -n "$airbench" ]; then
  mkdir -p "$work/airbench/cifar10"
  sed 's/for run in range(200)/for run in range(3)/' "$airbench" >"$work/airbench/airbench.py"
  "$python" - "$work/airbench/cifar10" <<'EOF'
import sys
import torch
classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
for name, count in (("train", 50000), ("test", 10000)):
    torch.save({"images": torch.randint(0, 256, (count, 32, 32, 3), dtype=torch.uint8),
                "labels": torch.randint(0, 10, (count,)), "classes": classes},
               f"{sys.argv[1]}/{name}.pt")
EOF
  (cd "$work/airbench" && timed "$out/airbench.txt" "$python" airbench.py)
fi
rm -rf "$work"
echo "logs in $out: $(ls "$out" | tr '\n' ' ')"
