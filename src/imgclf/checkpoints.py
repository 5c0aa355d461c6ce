"""Checkpoint files, the one place that writes and reads them: written atomically (a run
killed while saving keeps its previous checkpoint), read without running code, and the step a
run resumes from."""

import os
import re
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from imgclf.errors import UserError
from imgclf.targets import refuse_unknown_targets, rename_old_targets

# Where a run keeps its place, in its folder: a stopped or requeued run continues from it.
LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to a hidden temporary file beside the target, then rename it over the target:
    rename is atomic on POSIX and Windows file systems, so `last.ckpt` is always either the
    old checkpoint or the new one, never half of one."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        path = Path(path)
        temporary = path.with_name(f".{path.name}.partial")
        try:
            super().save_checkpoint(checkpoint, temporary, storage_options)
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)


def unreadable_reason(error: Exception) -> str:
    """Why torch.load refused a file, in a few words, without PyTorch's advice to load it
    with `weights_only=False` (which would run the code in it) or to report a bug."""
    text = str(error)
    found = re.search(r"unsupported GLOBAL (\S+)", text)
    if "Weights only load failed" in text:
        named = f" ({found.group(1)})" if found else ""
        return f"it holds objects{named} that only running code could rebuild, which imgclf refuses"
    if "zip archive" in text or isinstance(error, EOFError | OSError):
        return "it is truncated or not a PyTorch file"
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"it is not a PyTorch checkpoint ({type(error).__name__}: {first.split('. ')[0]})"


def read_checkpoint(path: str | Path, argument: str) -> dict[str, Any]:
    """An imgclf checkpoint's contents, read with `weights_only`: only tensors and plain data
    come out, no code in the file can run. `argument` names where the path came from."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(
            f"{argument}={path}: no such checkpoint. Pass a run's checkpoints/last.ckpt or the "
            "best_checkpoint in its metrics.json."
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        checkpoint["hyper_parameters"], checkpoint["state_dict"]  # noqa: B018
    except Exception as error:  # unpickling, truncation, a dict without our keys: all unusable
        raise UserError(
            f"{argument}={path} is not a readable imgclf checkpoint: "
            f"{unreadable_reason(error)}. Pass a .ckpt file written by `python train.py`."
        ) from error
    # Its hyperparameters name the classes that rebuild the model: only imgclf's may.
    refuse_unknown_targets(checkpoint["hyper_parameters"], f"{argument}={path}")
    rename_old_targets(checkpoint["hyper_parameters"])
    rename_old_state_keys(checkpoint["state_dict"])
    check_holds_normalisation(checkpoint["state_dict"], f"{argument}={path}")
    return checkpoint


# imgclf 0.3 kept the network and its normalisation at the top of the model's state; they
# now sit in its `classifier` (`imgclf.classifier.Classifier`).
MOVED_INTO_CLASSIFIER = ("net.", "normalisation.")
NORMALISATION_KEY = "classifier.normalisation.mean"


def rename_old_state_keys(state: dict[str, Any]) -> None:
    """An 0.3 model state's keys renamed to today's, in place: read_checkpoint does it, and
    the model's on_load_checkpoint (a resumed run)."""
    for key in [key for key in state if key.startswith(MOVED_INTO_CLASSIFIER)]:
        state[f"classifier.{key}"] = state.pop(key)


def check_holds_normalisation(state: dict[str, Any], described: str) -> None:
    if NORMALISATION_KEY not in state:
        raise UserError(
            f"{described} was written by imgclf 0.2 or earlier, whose models did not hold their "
            "own normalisation; train it again with this version."
        )


def checkpoint_step(path: str | Path) -> int:
    """The optimizer step a checkpoint was saved at."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(checkpoint["global_step"])
    except Exception as error:  # truncated, foreign, not a checkpoint: all unusable
        raise UserError(
            f"{path} cannot be read as a checkpoint: {unreadable_reason(error)}. Resume from "
            "a run whose checkpoints/last.ckpt is intact, or start the run again."
        ) from error
