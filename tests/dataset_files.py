"""Writers of tiny datasets in the real on-disk formats, for tests that must not need the
real files: CIFAR-10 binary and python, IDX (plain and .gz), and an image folder; and the
ways a disk-cache entry goes bad."""

import csv
import gzip
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from imgclf.data.cifar10 import CLASS_NAMES as CIFAR_CLASSES


def random_images(count: int, channels: int, side: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(count, channels, side, side), dtype=np.uint8)
    labels = np.arange(count) % 10
    return images, labels


def cifar_batches(per_batch: int) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(name, images, labels) of each CIFAR-10 batch file, the same for both versions."""
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for seed, name in enumerate(names):
        yield name, *random_images(per_batch, 3, 32, seed)


def write_cifar_binary(data_dir: Path, per_batch: int = 20) -> Path:
    folder = data_dir / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    for name, images, labels in cifar_batches(per_batch):
        records = np.concatenate(
            [labels[:, None].astype(np.uint8), images.reshape(per_batch, -1)], 1
        )
        records.tofile(folder / f"{name}.bin")
    (folder / "batches.meta.txt").write_text("\n".join(CIFAR_CLASSES) + "\n")
    return folder


def write_cifar_python(data_dir: Path, per_batch: int = 20) -> Path:
    """The same images as write_cifar_binary, pickled as torchvision's CIFAR10 reads them."""
    folder = data_dir / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, images, labels in cifar_batches(per_batch):
        batch = {
            "batch_label": name,
            "labels": labels.tolist(),
            "data": images.reshape(per_batch, -1),
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {"label_names": CIFAR_CLASSES, "num_cases_per_batch": per_batch, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def idx_bytes(array: np.ndarray) -> bytes:
    magic = 0x0800 | array.ndim
    header = magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_dataset(
    data_dir: Path, folder_name: str, gzipped: bool, train: int = 100, test: int = 30
) -> Path:
    raw = data_dir / folder_name / "raw"
    raw.mkdir(parents=True)
    for prefix, count, seed in (("train", train, 0), ("t10k", test, 1)):
        images, labels = random_images(count, 1, 28, seed)
        for kind, array in (("images-idx3", images[:, 0]), ("labels-idx1", labels)):
            data = idx_bytes(array)
            name = f"{prefix}-{kind}-ubyte"
            if gzipped:
                (raw / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (raw / name).write_bytes(data)
    return raw


def write_image_folder(
    root: Path, classes: tuple[str, ...] = ("cat", "dog", "fox"), per_class: int = 10
) -> Path:
    """PNGs and JPEGs of mixed sizes and modes, one subfolder per class."""
    rng = np.random.default_rng(0)
    modes = ["RGB", "L", "RGBA", "P"]
    for label, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            side = int(rng.integers(20, 90))
            pixels = rng.integers(0, 256, size=(side, side + 5, 3), dtype=np.uint8)
            image = Image.fromarray(pixels).convert(modes[(label + i) % len(modes)])
            suffix = ".jpg" if image.mode in ("RGB", "L") and i % 2 else ".png"
            image.save(root / name / f"{name}_{i}{suffix}")
    return root


def write_image_csv(image_root: Path, csv_path: Path, val_every: int = 0) -> Path:
    """A `path,label,split` CSV of every image under `image_root`'s class folders, paths
    relative to the CSV; with `val_every`, every n-th image of a class goes to val."""
    with csv_path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["path", "label", "split"])
        for class_folder in sorted(p for p in image_root.iterdir() if p.is_dir()):
            for index, image in enumerate(sorted(class_folder.iterdir())):
                split = "val" if val_every and index % val_every == val_every - 1 else "train"
                relative = image.relative_to(csv_path.parent)
                writer.writerow([relative.as_posix(), class_folder.name, split])
    return csv_path


def damage(entries: list[Path]) -> dict[Path, str]:
    """Four ways a cache entry goes bad, each named by what the check reports."""
    truncated, zeroed, foreign, garbage = entries
    truncated.write_bytes(truncated.read_bytes()[:-100])  # a crash or a full disk mid-copy
    zeroed.write_bytes(bytes(zeroed.stat().st_size))  # a file system's repair after a crash
    np.save(foreign, np.zeros((16, 16), dtype=np.float32))  # another program's array
    garbage.write_bytes(b"not an array at all")
    return {
        truncated: "truncated", zeroed: "not a NumPy array file",
        foreign: "float32 array of shape (16, 16)", garbage: "not a NumPy array file",
    }  # fmt: skip
