"""Checks shared by the dataset readers: checksums and safe unpickling."""

import hashlib
import io
import pickle
from pathlib import Path

from imgclf.errors import CorruptDataError


def md5sum(path: Path, chunk_bytes: int = 1 << 22) -> str:
    digest = hashlib.md5()
    with path.open("rb") as file:
        while chunk := file.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def corrupt(path: Path, problem: str) -> CorruptDataError:
    return CorruptDataError(
        f"{path} is corrupt: {problem}. Delete it and run again to download a fresh copy "
        "(data.download=true), or replace it with the original file."
    )


def verify_md5(path: Path, expected_md5: str) -> None:
    """Full-size official files must match their published checksum byte for byte."""
    actual = md5sum(path)
    if actual != expected_md5:
        raise corrupt(path, f"its MD5 is {actual}, the official file's is {expected_md5}")


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles the CIFAR-10 python batches without running code a pickle could name."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle's signature
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def load_numpy_pickle(path: Path) -> dict:
    """A pickled dict of NumPy arrays and plain values; latin1 reads Python 2 pickles."""
    try:
        loaded = _NumpyOnlyUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except Exception as error:  # any unpickling failure means the file is not what we expect
        raise corrupt(path, f"it cannot be unpickled ({error})") from error
    if not isinstance(loaded, dict):
        raise corrupt(path, f"it holds a {type(loaded).__name__}, not a dict")
    return loaded
