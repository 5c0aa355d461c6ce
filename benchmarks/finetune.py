"""`python benchmarks/finetune.py OUT --timm-train PATH [--fastai-python PATH]`: fine-tuning a
pretrained network on a folder of photos, imgclf beside timm's train.py and fastai.

Makes, once, OUT/photos_<per class>_<val per class> with scripts/make_photo_folder.py (by
default 4,000 training, 500 validation and 500 test JPEGs of CIFAR-10's ten classes, 160-480
px a side) and OUT/weights/<network>.safetensors, the weights timm starts each network with:
offline there are no ImageNet weights, and the speed does not depend on the values. Then,
for each network in turn:
- imgclf: `python train.py experiment=finetune` on the folder, from that file;
- timm: its train.py (PATH; from github.com/huggingface/pytorch-image-models), likewise;
- fastai: benchmarks/fastai_finetune.py with fastai's Python (a virtual environment where
  `pip install fastai timm` ran), likewise.
All three train at the network's input size, 224 px, on the GPU if there is one, with the
same batch size, precision (what imgclf's `precision=auto` chooses), channels-last layout,
data-loading workers and epochs. The starting weights are random, so a frozen body (imgclf's
and fastai's first epoch) or a slower one would only slow learning: all three train the whole
network from the first step, at one learning rate (timm's train.py always does).

For each run: training images/s over the last epoch (all three train the whole network
then), seconds from the command's start to its first step (the end of its first backward
pass, noted by benchmarks/step_clock), the wall time of the whole command, the validation
accuracy after the last epoch and the peak memory of the process and its workers (PSS).
Writes OUT/results.json and prints them as a Markdown table."""

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from imgclf.memory import PeakMemory
from imgclf.precision import resolve_precision

REPO = Path(__file__).resolve().parents[1]
STEP_CLOCK = REPO / "benchmarks" / "step_clock"
NETWORKS = ("resnet18", "convnext_nano", "mobilenetv3_large_100")
TOOLS = ("imgclf", "timm", "fastai")
CLASSES = 10
IMAGE_SIZE = 224
# experiment=finetune with random starting weights: nothing to protect, no epoch to lose.
IMGCLF_WHOLE_NETWORK = ("model.finetune.freeze_epochs=0", "model.finetune.backbone_lr_ratio=1.0")


@dataclass(frozen=True)
class Settings:
    device: str  # cpu or cuda
    precision: str  # what imgclf's precision=auto chose there: bf16-mixed, 16-mixed or 32-true
    epochs: int
    batch_size: int
    workers: int
    per_class: int  # training photos of each class; validation and test: val_per_class each
    val_per_class: int
    imgclf_overrides: tuple[str, ...]

    @property
    def autocast_dtype(self) -> str | None:
        return {"bf16-mixed": "bfloat16", "16-mixed": "float16"}.get(self.precision)

    @property
    def steps_per_epoch(self) -> int:
        # Every loader here drops the last, incomplete training batch.
        return self.per_class * CLASSES // self.batch_size


@dataclass(frozen=True)
class Result:
    network: str
    tool: str
    images_per_second: float
    first_step_seconds: float
    wall_seconds: float
    val_acc: float
    peak_mib: float
    command: str


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="the photos, weights, runs and results")
    parser.add_argument("--timm-train", type=Path, help="timm's train.py")
    parser.add_argument("--fastai-python", type=Path, help="a Python that imports fastai")
    parser.add_argument("--networks", nargs="+", default=list(NETWORKS))
    parser.add_argument("--tools", nargs="+", default=list(TOOLS), choices=TOOLS)
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("IMGCLF_DATA_DIR", "data")),
        help="where CIFAR-10 is, for the photos",
    )  # fmt: skip
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument(
        "--per-class", type=int, default=400,
        help="training photos of each of the 10 classes (default: 4,000 in all)",
    )  # fmt: skip
    parser.add_argument(
        "--val-per-class", type=int, default=50,
        help="validation photos of each class, and as many test photos",
    )  # fmt: skip
    parser.add_argument(
        "--imgclf", nargs="*", default=[], metavar="OVERRIDE",
        help="overrides for imgclf's runs, e.g. data.cache=disk",
    )  # fmt: skip
    arguments = parser.parse_args()
    # Before the photos and the first run: a missing peer would end the race an hour in.
    if "timm" in arguments.tools and not (arguments.timm_train and arguments.timm_train.is_file()):
        parser.error(
            f"--timm-train: no file {arguments.timm_train}: give the train.py of a clone of "
            "github.com/huggingface/pytorch-image-models (or leave timm out of --tools)"
        )
    if "fastai" in arguments.tools and not imports_fastai(arguments.fastai_python):
        parser.error(
            f"--fastai-python: {arguments.fastai_python} does not import fastai: give the "
            "python of a virtual environment where `pip install fastai timm` ran (or leave "
            "fastai out of --tools)"
        )
    return arguments


def imports_fastai(python: Path | None) -> bool:
    if python is None:
        return False
    try:
        check = subprocess.run([str(python), "-c", "import fastai"], capture_output=True)
    except OSError:  # no such file, or not a program
        return False
    return check.returncode == 0


def photo_folder(output: Path, data_dir: Path, settings: Settings) -> Path:
    """The photos, made once for each size of folder."""
    folder = output / f"photos_{settings.per_class}_{settings.val_per_class}"
    if not (folder / "test").is_dir():
        subprocess.run(
            [sys.executable, "scripts/make_photo_folder.py", str(folder),
             "--per-class", str(settings.per_class),
             "--val-per-class", str(settings.val_per_class),
             "--test-per-class", str(settings.val_per_class), "--data-dir", str(data_dir)],
            cwd=REPO, check=True,
        )  # fmt: skip
    return folder


def weights_file(output: Path, network: str) -> Path:
    import safetensors.torch
    import timm

    path = output / "weights" / f"{network}.safetensors"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        safetensors.torch.save_file(timm.create_model(network).state_dict(), str(path))
    return path


def imgclf_command(
    network: str, photos: Path, weights: Path, run_dir: Path, settings: Settings
) -> list[str]:
    return [
        sys.executable, "train.py", "experiment=finetune", f"data.data_dir={photos}",
        f"model.name={network}", f"model.pretrained={weights}",
        f"trainer.max_epochs={settings.epochs}", f"data.batch_size={settings.batch_size}",
        f"data.num_workers={settings.workers}", "test=false", f"hydra.run.dir={run_dir}",
        *IMGCLF_WHOLE_NETWORK, *settings.imgclf_overrides,
    ]  # fmt: skip


def timm_command(
    train_script: Path, network: str, photos: Path, weights: Path, run_dir: Path,
    settings: Settings,
) -> list[str]:  # fmt: skip
    """timm's train.py with imgclf's fine-tuning recipe where it has the same knob: AdamW at
    1e-3 with weight decay 0.05, a cosine schedule, label smoothing 0.1."""
    dtype = settings.autocast_dtype
    precision = ["--amp", "--amp-dtype", dtype] if dtype else []
    # Its prefetcher moves batches to a CUDA device.
    prefetcher = ["--no-prefetcher"] if settings.device == "cpu" else []
    return [
        sys.executable, str(train_script), "--data-dir", str(photos), "--train-split", "train",
        "--val-split", "val", "--model", network, "--pretrained", "--pretrained-path",
        str(weights), "--num-classes", str(CLASSES), "--img-size", str(IMAGE_SIZE),
        "--device", settings.device, *prefetcher, "--channels-last", *precision,
        "-b", str(settings.batch_size), "-j", str(settings.workers),
        "--epochs", str(settings.epochs), "--opt", "adamw", "--lr", "1e-3",
        "--weight-decay", "0.05", "--sched", "cosine", "--warmup-epochs", "0",
        "--smoothing", "0.1", "--checkpoint-hist", "1", "--output", str(run_dir.parent),
        "--experiment", run_dir.name,
    ]  # fmt: skip


def fastai_command(
    python: Path, network: str, photos: Path, weights: Path, settings: Settings
) -> list[str]:
    dtype = settings.autocast_dtype
    precision = ["--autocast", dtype] if dtype else []
    return [
        str(python), "benchmarks/fastai_finetune.py", str(photos), "--model", network,
        "--weights", str(weights), "--image-size", str(IMAGE_SIZE),
        "--epochs", str(settings.epochs), "--batch-size", str(settings.batch_size),
        "--workers", str(settings.workers), "--device", settings.device, "--channels-last",
        *precision,
    ]  # fmt: skip


def run_measured(command: list[str], log_path: Path) -> tuple[float, list[float], float]:
    """Runs `command` with the step clock: its wall seconds, the times its backward passes
    ended, and the peak memory of it and its workers in MiB."""
    clock_path = log_path.with_suffix(".steps.json")
    python_path = os.pathsep.join(filter(None, [str(STEP_CLOCK), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": python_path, "STEP_CLOCK_FILE": str(clock_path)}
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        with PeakMemory(pid=process.pid, interval_seconds=0.5) as memory:
            status = process.wait()
    wall = time.time() - started
    if status != 0:
        raise SystemExit(f"{' '.join(command)}\nfailed with exit status {status}: see {log_path}")
    step_times = [moment - started for moment in json.loads(clock_path.read_text())]
    return wall, step_times, memory.peak_bytes / 2**20


def last_epoch_images_per_second(step_times: list[float], settings: Settings, log: Path) -> float:
    steps = settings.steps_per_epoch
    expected = steps * settings.epochs
    if len(step_times) != expected:
        raise SystemExit(f"{log}: {len(step_times)} training steps, expected {expected}")
    last_epoch = step_times[-steps:]
    return (steps - 1) * settings.batch_size / (last_epoch[-1] - last_epoch[0])


def validation_accuracy(tool: str, run_dir: Path, log: Path) -> float:
    if tool == "imgclf":
        return json.loads((run_dir / "metrics.json").read_text())["val/acc"]
    if tool == "timm":
        with (run_dir / "summary.csv").open() as file:
            return float(list(csv.DictReader(file))[-1]["eval_top1"]) / 100
    return json.loads(log.read_text().strip().splitlines()[-1])["val_acc"]


def measure(tool: str, network: str, arguments: argparse.Namespace, settings: Settings) -> Result:
    photos = photo_folder(arguments.output, arguments.data_dir, settings)
    weights = weights_file(arguments.output, network)
    run_dir = arguments.output / "runs" / tool / network
    if tool == "imgclf":
        command = imgclf_command(network, photos, weights, run_dir, settings)
    elif tool == "timm":
        command = timm_command(arguments.timm_train, network, photos, weights, run_dir, settings)
    else:
        command = fastai_command(arguments.fastai_python, network, photos, weights, settings)
    log = arguments.output / "logs" / f"{tool}_{network}.log"
    print(f"{tool} {network}: {' '.join(command)}", flush=True)
    wall, step_times, peak_mib = run_measured(command, log)
    result = Result(
        network=network,
        tool=tool,
        images_per_second=last_epoch_images_per_second(step_times, settings, log),
        first_step_seconds=step_times[0],
        wall_seconds=wall,
        val_acc=validation_accuracy(tool, run_dir, log),
        peak_mib=peak_mib,
        command=" ".join(command),
    )
    print(f"  {result}", flush=True)
    return result


def table(results: list[Result]) -> str:
    lines = [
        "| network | tool | training images/s | first step | wall | val acc | peak memory |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        lines.append(
            f"| {result.network} | {result.tool} | {result.images_per_second:.1f} | "
            f"{result.first_step_seconds:.1f} s | {result.wall_seconds:.0f} s | "
            f"{result.val_acc:.2%} | {result.peak_mib:,.0f} MiB |"
        )
    return "\n".join(lines)


def main() -> None:
    arguments = parse_arguments()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    settings = Settings(
        device=device,
        precision=str(resolve_precision("auto", "gpu" if device == "cuda" else "cpu")),
        epochs=arguments.epochs,
        batch_size=arguments.batch_size,
        workers=arguments.workers,
        per_class=arguments.per_class,
        val_per_class=arguments.val_per_class,
        imgclf_overrides=tuple(arguments.imgclf),
    )
    print(f"settings: {settings}", flush=True)
    results = [
        measure(tool, network, arguments, settings)
        for network in arguments.networks
        for tool in arguments.tools
    ]
    record = {"settings": asdict(settings), "results": [asdict(result) for result in results]}
    (arguments.output / "results.json").write_text(json.dumps(record, indent=2) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
