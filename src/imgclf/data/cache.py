"""`data.cache`: decode the user's image files once, into memory (`ram`) or into a folder that
later runs reuse (`disk`), or on every read (`none`); `auto` picks `ram` when it fits."""

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from numpy.lib import format as np_format
from torchvision.transforms.v2 import functional as F

from imgclf.data.decode import check_header, decode_image_file
from imgclf.data.image_listing import list_names
from imgclf.data.parallel import map_files
from imgclf.data.splits import Labelled, LabelledFiles, LabelledImages

log = logging.getLogger(__name__)

CACHE_MODES = ("auto", "ram", "disk", "none")
# The .npy header formats np.save writes.
HEADER_READERS = {
    (1, 0): np_format.read_array_header_1_0,
    (2, 0): np_format.read_array_header_2_0,
}


def choose_cache_mode(
    requested: str, image_count: int, image_bytes: int, max_gb: float, cache_dir: Path
) -> str:
    """The mode to use, logged with the reason. `disk` falls back to `ram` (if it fits) or
    `none` when `cache_dir` cannot be written."""
    needed_gb = image_count * image_bytes / 1e9
    fits = needed_gb <= max_gb
    if requested == "auto":
        mode = "ram" if fits else "disk"
        log.info(
            "data.cache=auto: the decoded images take %.2f GB, %s data.cache_max_gb=%g: cache=%s",
            needed_gb,
            "within" if fits else "over",
            max_gb,
            mode,
        )
    else:
        mode = requested
        log.info("data.cache=%s (%.2f GB if decoded into memory)", mode, needed_gb)
    if mode == "disk":
        problem = unwritable(cache_dir)
        if problem:
            fallback = "ram" if fits else "none"
            log.warning(
                "the cache folder %s cannot be written (%s): using cache=%s instead. Set "
                "paths.cache_dir (or IMGCLF_CACHE_DIR) to a writable folder to cache on disk.",
                cache_dir,
                problem,
                fallback,
            )
            mode = fallback
    return mode


def unwritable(folder: Path) -> str | None:
    """Why files cannot be written into `folder` (created if missing), or None."""
    if folder.exists() and not folder.is_dir():
        return "it is a file, not a folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as error:
        return error.strerror or str(error)
    return None


def shrink_short_side(image: torch.Tensor, size: int) -> torch.Tensor:
    """Scaled down (antialiased) so that its short side is `size`; smaller images are kept."""
    if min(image.shape[-2:]) <= size:
        return image
    return F.resize(image, size, antialias=True)


class DiskCache:
    """Each image decoded once, its short side shrunk to `short_side`, and saved as a raw
    .npy array (no decoding to read it back). An entry's name hashes the file's path, size and
    modification time, so a changed file is decoded again and a stale entry is never read."""

    def __init__(self, folder: Path, short_side: int, channels: int) -> None:
        self.folder = folder / f"short{short_side}_c{channels}"
        self.short_side = short_side
        self.channels = channels
        # Entries found or written by `entries` in this process.
        self.known: dict[str, Path] = {}
        # Damaged entries found and replaced, each "<entry> (<what was wrong>)".
        self.replaced: list[str] = []

    def entries(
        self, paths: np.ndarray, workers: int, description: str
    ) -> Iterator[tuple[int, Path | None]]:
        """(index, entry) of every path, None for an unreadable file: the entries this
        process found before at once, the others found (and checked) or decoded in `workers`
        processes, and remembered, so that `setup` after `prepare_data` reads no file twice.
        Damaged entries that were decoded again are kept for `warn_replaced`."""
        unknown = [index for index, path in enumerate(paths) if str(path) not in self.known]
        for index, path in enumerate(paths):
            if str(path) in self.known:
                yield index, self.known[str(path)]
        if not unknown:
            return
        for position, stored in map_files(paths[unknown], self.store, workers, description):
            index = unknown[position]
            entry, problem = stored if stored is not None else (None, None)
            if entry is not None:
                self.known[str(paths[index])] = entry
            if problem:
                self.replaced.append(f"{entry} ({problem})")
            yield index, entry

    def warn_replaced(self) -> None:
        """One warning for the damaged entries replaced since the last one."""
        if self.replaced:
            log.warning(
                "decoded %d image(s) again whose disk-cache entries were damaged, and replaced "
                "the entries: %s",
                len(self.replaced),
                list_names(self.replaced),
            )
            self.replaced = []

    def entry(self, path: str) -> Path:
        status = os.stat(path)
        key = f"{os.path.abspath(path)}|{status.st_size}|{status.st_mtime_ns}"
        digest = hashlib.sha1(key.encode()).hexdigest()
        return self.folder / digest[:2] / f"{digest}.npy"

    def store(self, path: str) -> tuple[Path, str | None]:
        """The entry of `path`, decoded and written now unless a sound one is there already,
        and what was wrong with the one it replaced (None: nothing was there, or it was kept)."""
        entry = self.entry(path)
        problem = entry_problem(entry, self.channels, self.short_side)
        if problem is None:
            return entry, None
        image = decode_image_file(path, self.channels, self.short_side)
        image = shrink_short_side(image, self.short_side)
        entry.parent.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed: a run killed mid-write, or two runs filling the same
        # cache, never leave a half-written entry under the real name.
        unfinished = entry.with_suffix(f".{os.getpid()}.partial")
        with unfinished.open("wb") as file:
            np.save(file, image.numpy())
        unfinished.replace(entry)
        return entry, None if problem == MISSING else problem


MISSING = "missing"


def entry_problem(entry: Path, channels: int, short_side: int) -> str | None:
    """Why `entry` cannot be the decoded image it stands for (MISSING, truncated, not a NumPy
    array, another shape or type), or None. Reads the header only: a crash, a full disk or a
    file from another program shows there or in the size; changed pixel bytes would not."""
    try:
        with entry.open("rb") as file:
            version = np_format.read_magic(file)
            read_header = HEADER_READERS.get(version)
            if read_header is None:
                return f"NumPy format version {version}"
            shape, fortran_order, dtype = read_header(file)
            data_offset, size = file.tell(), os.fstat(file.fileno()).st_size
    except FileNotFoundError:
        return MISSING
    except (OSError, ValueError, EOFError):
        return "not a NumPy array file"
    if dtype != np.uint8 or len(shape) != 3 or fortran_order:
        return f"a {dtype} array of shape {shape}, not a (channels, height, width) uint8 image"
    if shape[0] != channels or min(shape[1:]) > short_side:
        return f"of shape {shape}, not {channels} channel(s) with a short side <= {short_side}"
    expected = data_offset + int(np.prod(shape))
    if size != expected:
        return f"{size:,} bytes where its header needs {expected:,}: truncated"
    return None


def cache_splits(
    splits: dict[str, LabelledFiles],
    mode: str,
    disk_cache: DiskCache,
    read_image: Callable[[str], torch.Tensor],
    image_shape: tuple[int, int, int],
    workers: int,
) -> dict[str, Labelled]:
    """Each split read by `read_image` into one tensor of `image_shape` images (`ram`), into
    `disk_cache` (`disk`; the files become their entries), or only checked to be images
    (`none`: the loader decodes). Unreadable files are dropped and all named in one warning."""
    cached: dict[str, Labelled] = {}
    unreadable: list[str] = []
    for split, data in splits.items():
        description = f"{split}: cache={mode}"
        if mode == "disk":
            results = disk_cache.entries(data.paths, workers, description)
        else:
            work = read_image if mode == "ram" else check_header
            results = map_files(data.paths, work, workers, description, stack=mode == "ram")
        readable = torch.zeros(len(data), dtype=torch.bool)
        images = torch.empty((len(data), *image_shape) if mode == "ram" else 0, dtype=torch.uint8)
        entries = np.empty(len(data), dtype=object)
        for index, result in results:
            readable[index] = result is not None
            if result is not None and mode == "ram":
                images[index] = result
            elif result is not None and mode == "disk":
                entries[index] = str(result)
        unreadable += [str(path) for path in data.paths[~readable.numpy()]]
        kept = data.subset(torch.nonzero(readable).flatten())
        if mode == "ram":
            # Indexing copies: only when a file was dropped, so memory peaks at one copy.
            cached[split] = LabelledImages(
                images if readable.all() else images[readable], kept.labels, kept.ids
            )
        elif mode == "disk":
            entry_paths = entries[readable.numpy()].astype(np.str_)
            cached[split] = LabelledFiles(entry_paths, kept.labels, kept.ids)
        else:
            cached[split] = kept
    warn_unreadable(unreadable)
    disk_cache.warn_replaced()
    return cached


def warn_unreadable(unreadable: list[str]) -> None:
    if unreadable:
        log.warning(
            "skipped %d unreadable image file(s): %s. Replace or remove them.",
            len(unreadable),
            list_names(unreadable),
        )
