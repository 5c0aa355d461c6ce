"""`python benchmarks/benchmark_data.py`: how fast the data path feeds training, without a
model. Times imgclf's training loader (decode, augment, collate; for data held in memory,
the batch augmentation too) against torchvision's ImageFolder + DataLoader with the same
transforms, batch size and workers, in alternating rounds, and reports the peak memory of
the process and its workers. The last line is `imgclf/ImageFolder speed ratio: X.XX`."""

import logging
import statistics
import time
from collections.abc import Iterable

import hydra
import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder
from torchvision.transforms import v2

from imgclf.app import CONFIG_DIR, command_line_app
from imgclf.checks import validate
from imgclf.data import ImageDataModule, ImageFilesDataModule
from imgclf.errors import UserError, user_errors_reported
from imgclf.memory import PeakMemory

from benchmark_config import register_benchmark_config

log = logging.getLogger(__name__)


def images_per_second(
    batches: Iterable, warmup: int, timed: int, augment: torch.nn.Module | None = None
) -> float:
    """Training images per second over `timed` batches after `warmup` untimed ones."""
    iterator = iter(batches)
    for _ in range(warmup):
        next(iterator)
    started, images = time.perf_counter(), 0
    for _ in range(timed):
        pixels, _ = next(iterator)
        if augment is not None:
            pixels = augment(pixels)
        images += len(pixels)
    return images / (time.perf_counter() - started)


def image_folder_loader(datamodule: ImageFilesDataModule) -> DataLoader:
    """torchvision's classic pipeline on the same folder: PIL decoding in ImageFolder, the
    same v2 training transforms (on PIL images, as its reference scripts do), a tensor at
    the end; same batch size, workers and shuffling."""
    root = datamodule.data_dir
    root = root / "train" if (root / "train").is_dir() else root
    transform = v2.Compose([datamodule.augment.per_image(datamodule.image_size), v2.PILToTensor()])
    workers = datamodule.worker_count()
    return DataLoader(
        ImageFolder(str(root), transform=transform),
        batch_size=datamodule.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        persistent_workers=False,  # its workers end with each round and do not weigh on ours
    )


def benchmark_data(cfg: DictConfig) -> float | None:
    validate(cfg)
    L.seed_everything(cfg.seed)
    settings = cfg.benchmark_data
    with PeakMemory() as setup_memory:
        started = time.perf_counter()
        datamodule: ImageDataModule = instantiate(cfg.data)
        datamodule.prepare_data()
        datamodule.setup("fit")
        setup_seconds = time.perf_counter() - started
    loaders = {"imgclf": datamodule.loader("train")}
    needed = settings.warmup_batches + settings.batches
    if needed > len(loaders["imgclf"]):
        raise UserError(
            f"benchmark_data.warmup_batches + benchmark_data.batches = {needed} is more than "
            f"the {len(loaders['imgclf'])} batches of an epoch: lower them, or data.batch_size"
        )
    files = isinstance(datamodule, ImageFilesDataModule)
    if settings.reference and files:
        loaders["ImageFolder"] = image_folder_loader(datamodule)
    augments = {"imgclf": datamodule.batch_augment if datamodule.in_memory else None}
    speeds: dict[str, list[float]] = {name: [] for name in loaders}
    peaks = {name: setup_memory.peak_bytes if name == "imgclf" else 0 for name in loaders}
    for round_number in range(settings.rounds):
        for name, loader in loaders.items():
            with PeakMemory() as memory:
                speeds[name].append(
                    images_per_second(
                        loader, settings.warmup_batches, settings.batches, augments.get(name)
                    )
                )
            peaks[name] = max(peaks[name], memory.peak_bytes)
        results = ", ".join(f"{name} {values[-1]:,.0f} images/s" for name, values in speeds.items())
        log.info("round %d: %s", round_number + 1, results)
    workers = 0 if datamodule.in_memory else datamodule.worker_count()
    print(
        f"data: {datamodule.dataset}, cache={datamodule.cache_mode if files else 'ram'}, "
        f"{len(datamodule.splits['train']):,} training images, image_size "
        f"{datamodule.image_size}, batch {datamodule.batch_size}, {workers} workers"
    )
    print(f"setup (list, split, cache, statistics): {setup_seconds:.1f} s")
    for name in loaders:
        label = "imgclf loader" if name == "imgclf" else "torchvision ImageFolder + DataLoader"
        print(
            f"{label}: {statistics.median(speeds[name]):,.0f} images/s, peak memory of all "
            f"processes {peaks[name] / 2**20:,.0f} MiB (PSS)"
        )
    if "ImageFolder" not in speeds:
        return None
    ratio = statistics.median(speeds["imgclf"]) / statistics.median(speeds["ImageFolder"])
    print(f"imgclf/ImageFolder speed ratio: {ratio:.2f}")
    return ratio


register_benchmark_config(
    "benchmark_data",
    {
        "batches": 40,  # timed batches per round and loader
        "warmup_batches": 5,  # untimed first: worker start-up, first reads
        "rounds": 2,  # imgclf, ImageFolder, imgclf, ImageFolder, ...
        "reference": True,  # also time ImageFolder (image folders only)
    },
    run_name="data_${hydra:runtime.choices.data}",
)


@command_line_app("benchmark_data")
@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="benchmark_data")
def main(cfg: DictConfig) -> None:
    with user_errors_reported():
        benchmark_data(cfg)


if __name__ == "__main__":
    main()
