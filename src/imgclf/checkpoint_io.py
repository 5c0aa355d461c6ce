"""Checkpoints written atomically: a run killed while saving keeps its previous checkpoint."""

import os
from pathlib import Path
from typing import Any

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO


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
