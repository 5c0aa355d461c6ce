"""A map-style Dataset of image files, read in DataLoader workers: decoded from the file or
read from its disk-cache entry, then transformed; it yields (uint8 image, label)."""

import logging
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from imgclf.data.decode import UnreadableImageError, read_view

log = logging.getLogger(__name__)


class ImageFileDataset(Dataset):
    """`sources` are image files (`cached=False`) or their disk-cache entries (`cached=True`).

    A file that fails to decode mid-training (a truncated JPEG that its header did not
    betray) is reported once and replaced by the next readable one, so one bad file does
    not end a long run.
    """

    def __init__(
        self,
        sources: np.ndarray,
        labels: torch.Tensor,
        transform: Callable[[torch.Tensor], torch.Tensor],
        channels: int,
        cached: bool = False,
        short_side: int | None = None,
    ) -> None:
        """`short_side`: the size `transform` shrinks the short side to first, if it does
        (`decode_image_file` may then decode a large JPEG at reduced size)."""
        self.sources = sources
        self.labels = labels
        self.transform = transform
        self.channels = channels
        self.cached = cached
        self.short_side = short_side
        self.reported: set[int] = set()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        for attempt in range(len(self)):
            candidate = (index + attempt) % len(self)
            try:
                image = read_view(
                    str(self.sources[candidate]),
                    self.channels,
                    self.cached,
                    self.transform,
                    self.short_side,
                )
            except (UnreadableImageError, OSError) as error:
                if candidate not in self.reported:
                    self.reported.add(candidate)
                    log.warning("%s; using another image in its place", error)
                continue
            return image, self.labels[candidate]
        raise UnreadableImageError("no image in this split can be read")
