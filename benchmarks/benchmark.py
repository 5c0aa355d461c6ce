"""`python benchmarks/benchmark.py`: what the framework costs. Times a plain PyTorch training loop
and imgclf's Lightning Trainer path on the same network, data tensors, batch size, optimizer,
schedule and precision, in alternating rounds, and reports the data pipeline's share of a
step. The last line is `trainer/plain time ratio: X.XX`."""

import copy
import logging
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import nullcontext
from typing import Any

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

from imgclf.app import CONFIG_DIR, command_line_app
from imgclf.builders import build_model, build_trainer
from imgclf.checks import validate
from imgclf.data.datamodule import ImageDataModule
from imgclf.errors import UserError, user_errors_reported
from imgclf.memory import keep_freed_memory
from imgclf.module import ImageClassifier
from imgclf.precision import resolve_precision, trains_on_gpu

from benchmark_config import register_benchmark_config
from flops import matmul_peak, synchronize, training_flops_per_image
from host_syncs import HostSyncsPerTrainingBatch

log = logging.getLogger(__name__)


def autocast_for(precision: str, device: torch.device) -> Any:
    """The autocast Lightning's precision plugin uses for the same setting."""
    if precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    if precision == "16-mixed":
        return torch.autocast(device.type, dtype=torch.float16)
    return nullcontext()


class Stopwatch:
    """Wall time between two points, each waiting for the device to finish its queued work:
    timing waits there only."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.started = 0.0

    def start(self) -> None:
        synchronize(self.device)
        self.started = time.perf_counter()

    def seconds(self) -> float:
        synchronize(self.device)
        return time.perf_counter() - self.started


def timed_training_batches(
    datamodule: ImageDataModule, stopwatch: Stopwatch, warmup: int, steps: int
) -> Iterator[tuple[int, tuple[torch.Tensor, torch.Tensor]]]:
    """(step, batch) for `warmup` + `steps` training batches as the Trainer path gets them: on
    the device, augmented (in-memory datasets augment whole batches there) and mixed.
    `stopwatch` starts before the first timed batch is made."""
    batches = iter(datamodule.loader("train"))
    for step in range(warmup + steps):
        if step == warmup:
            stopwatch.start()
        images, labels = next(batches)
        images, labels = images.to(stopwatch.device, non_blocking=True), labels.to(stopwatch.device)
        if datamodule.in_memory:
            images = datamodule.batch_augment(images)
        yield step, datamodule.batch_mix(images, labels)


def data_round(datamodule: ImageDataModule, device: torch.device, warmup: int, steps: int) -> float:
    """Seconds to make `steps` training batches after `warmup` (loader workers starting),
    without training on them."""
    stopwatch = Stopwatch(device)
    for _ in timed_training_batches(datamodule, stopwatch, warmup, steps):
        pass
    return stopwatch.seconds()


def plain_round(
    model: ImageClassifier,
    datamodule: ImageDataModule,
    precision: str,
    device: torch.device,
    warmup: int,
    steps: int,
    accumulate: int = 1,
) -> float:
    """Seconds for `steps` timed batches of a hand-written loop: batch, to device, augment,
    forward (normalising), loss, backward, and every `accumulate` batches an optimizer step
    and a schedule step. It waits for the device only where the timing starts and ends."""
    model.to(device).train()
    optimizer = model.optimizer_factory(params=model.parameter_groups())
    scheduler = (
        model.scheduler_factory(optimizer=optimizer, total_steps=(warmup + steps) // accumulate)
        if model.scheduler_factory
        else None
    )
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "16-mixed")
    stopwatch = Stopwatch(device)
    for step, (images, labels) in timed_training_batches(datamodule, stopwatch, warmup, steps):
        with autocast_for(precision, device):
            loss = model.criterion(model(images).float(), labels) / accumulate
        scaler.scale(loss).backward()
        if (step + 1) % accumulate == 0:
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            if scheduler is not None:
                scheduler.step()
    return stopwatch.seconds()


class StepTimer(L.Callback):
    """Wall time from the first timed batch's start to the last batch's end."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.stopwatch: Stopwatch | None = None
        self.seconds = 0.0

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if batch_idx == self.warmup:
            self.stopwatch = Stopwatch(trainer.strategy.root_device)
            self.stopwatch.start()

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:  # fmt: skip
        if self.stopwatch and batch_idx == trainer.num_training_batches - 1:
            self.seconds = self.stopwatch.seconds()


def trainer_round(
    model: ImageClassifier,
    datamodule: ImageDataModule,
    cfg: DictConfig,
    batches: int,
    watcher: L.Callback,
) -> None:
    """`trainer.fit` as train.py builds the Trainer, cut to one epoch of `batches` batches
    without validation, `watcher` looking on."""
    cfg = copy.deepcopy(cfg)
    with open_dict(cfg):
        cfg.trainer.update(
            max_epochs=1,
            limit_train_batches=batches,
            limit_val_batches=0,
            num_sanity_val_steps=0,
        )
    trainer = build_trainer(cfg)
    trainer.callbacks.append(watcher)
    trainer.fit(model, datamodule=datamodule)


def print_host_syncs(
    model: ImageClassifier, datamodule: ImageDataModule, cfg: DictConfig, batches: int
) -> None:
    """The ops that made the host wait for the device in `batches` micro-batches of the
    Trainer path (imgclf.host_syncs); DivergenceGuard's read of the loss is one per micro-batch
    on CPU, where it is free."""
    syncs = HostSyncsPerTrainingBatch()
    trainer_round(model, datamodule, cfg, batches, syncs)
    ops = sum((counts for _, counts in syncs.batches), Counter())
    listed = ", ".join(f"{name} x{count}" for name, count in sorted(ops.items())) or "none"
    print(f"host syncs in {batches} training micro-batches of the Trainer path: {listed}")


def print_compute_share(
    model: ImageClassifier,
    datamodule: ImageDataModule,
    precision: str,
    device: torch.device,
    images_per_second: float,
) -> None:
    """The work of a training image and the share of the device's matmul peak the Trainer
    reaches: near the peak, only a recipe doing less work is faster."""
    images, labels = next(iter(datamodule.loader("train")))
    images, labels = images.to(device), labels.to(device)
    if datamodule.in_memory:
        images = datamodule.batch_augment(images)
    flops = training_flops_per_image(copy.deepcopy(model).to(device).train(), images, labels)
    dtype = {"bf16": torch.bfloat16, "16": torch.float16}.get(
        precision.split("-")[0], torch.float32
    )
    peak = matmul_peak(device, dtype)
    print(f"training work per image: {flops / 1e9:.3f} GFLOP (forward and backward)")
    print(f"{dtype} matmul peak of this device: {peak / 1e9:,.0f} GFLOP/s")
    achieved = images_per_second * flops
    print(f"imgclf Trainer: {achieved / 1e9:,.0f} GFLOP/s, {achieved / peak:.0%} of that peak")


def benchmark(cfg: DictConfig) -> float:
    validate(cfg)
    keep_freed_memory()
    L.seed_everything(cfg.seed)
    settings = cfg.benchmark
    datamodule: ImageDataModule = instantiate(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")
    precision = str(resolve_precision(cfg.trainer.precision, cfg.trainer.accelerator))
    use_gpu = trains_on_gpu(cfg.trainer.accelerator)
    device = torch.device("cuda" if use_gpu else "cpu")
    template = build_model(cfg)
    template.adapt_to(datamodule.description())
    accumulate = cfg.trainer.get("accumulate_grad_batches") or 1
    images_per_step = datamodule.batch_size
    batches = len(datamodule.loader("train"))
    if settings.warmup_steps + settings.steps > batches:
        raise UserError(
            f"benchmark.warmup_steps + benchmark.steps = {settings.warmup_steps + settings.steps} "
            f"is more than the {batches} batches of a training epoch: lower them, or the batch size"
        )
    plain, framework, data = [], [], []
    for round_number in range(settings.rounds):
        plain.append(
            plain_round(
                copy.deepcopy(template), datamodule, precision, device,
                settings.warmup_steps, settings.steps, accumulate,
            )
        )  # fmt: skip
        data.append(data_round(datamodule, device, settings.warmup_steps, settings.steps))
        timer = StepTimer(settings.warmup_steps)
        trainer_round(
            copy.deepcopy(template), datamodule, cfg, settings.warmup_steps + settings.steps, timer
        )
        framework.append(timer.seconds)
        log.info(
            "round %d: plain %.0f images/s, Trainer %.0f images/s",
            round_number + 1,
            settings.steps * images_per_step / plain[-1],
            settings.steps * images_per_step / framework[-1],
        )
    plain_median, framework_median = statistics.median(plain), statistics.median(framework)
    # Each round times both paths back to back, so the machine's drift between rounds (which
    # moves a 70 ms step by 10 %) cancels in each round's ratio: the median of those.
    ratios = [
        framework_seconds / plain_seconds
        for plain_seconds, framework_seconds in zip(plain, framework, strict=True)
    ]
    ratio = statistics.median(ratios)
    images = settings.steps * images_per_step
    print(
        f"device: {device} ({torch.cuda.get_device_name() if use_gpu else 'CPU'}), "
        f"precision {precision}, batch {images_per_step}, {settings.steps} timed steps x "
        f"{settings.rounds} rounds (median)"
    )
    print(f"plain PyTorch loop: {images / plain_median:,.0f} images/s")
    print(f"imgclf Trainer:     {images / framework_median:,.0f} images/s")
    print(f"data pipeline share of a plain step: {statistics.median(data) / plain_median:.1%}")
    print_compute_share(template, datamodule, precision, device, images / framework_median)
    print_host_syncs(copy.deepcopy(template), datamodule, cfg, settings.warmup_steps)
    print(f"the rounds' trainer/plain time ratios: {min(ratios):.2f} to {max(ratios):.2f}")
    print(f"trainer/plain time ratio: {ratio:.2f}")
    return ratio


register_benchmark_config(
    "benchmark",
    {
        "steps": 30,  # timed batches per round and path
        "warmup_steps": 5,  # untimed steps first: allocator, oneDNN/cuDNN kernel choice
        "rounds": 3,  # plain, Trainer, plain, Trainer, ...
    },
    run_name="${hydra:runtime.choices.model}_${hydra:runtime.choices.data}",
)


@command_line_app("benchmark")
@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="benchmark")
def main(cfg: DictConfig) -> None:
    with user_errors_reported():
        benchmark(cfg)


if __name__ == "__main__":
    main()
