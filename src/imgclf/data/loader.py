"""Batches straight out of in-memory tensors: one index gather per batch, no collation."""

from collections.abc import Callable, Iterator

import torch

from imgclf.data.balance import balanced_order
from imgclf.data.splits import LabelledImages


class InMemoryBatches:
    """An iterable of (images, labels) batches that Lightning accepts as a dataloader.

    Each epoch reshuffles with a generator seeded by (seed, epoch), so runs with the same seed
    see the same order, and a run resumed from a checkpoint sees the order the uninterrupted
    run would have; `current_epoch` tells the epoch (the trainer's) when iteration starts.
    Under DDP each rank takes every `world_size`-th example of the shared permutation. For
    training (`equal_shares`) the shares are trimmed so that all ranks run the same number of
    steps, as gradient synchronisation needs; for evaluation every example is kept, so each
    is counted exactly once (a rank may then run one batch fewer, which evaluation allows).

    With `balanced` an epoch draws as many examples as the split holds, with replacement and
    every class equally likely (`data.sampler=balanced`).

    With `mirror_alternately` each image is mirrored in every other epoch, starting in a
    random (seeded) half, so that each pair of epochs shows every image both ways.
    """

    def __init__(
        self,
        data: LabelledImages,
        batch_size: int,
        shuffle: bool,
        drop_last: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        current_epoch: Callable[[], int] = lambda: 0,
        mirror_alternately: bool = False,
        balanced: bool = False,
        equal_shares: bool = True,
    ) -> None:
        self.data = data
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.current_epoch = current_epoch
        self.mirror_alternately = mirror_alternately
        self.balanced = balanced
        self.equal_shares = equal_shares

    def _examples_per_rank(self) -> int:
        if self.equal_shares:
            return len(self.data) // self.world_size
        return len(range(self.rank, len(self.data), self.world_size))

    def __len__(self) -> int:
        examples = self._examples_per_rank()
        # A share smaller than one batch still trains on it: dropping it would train nothing.
        if self.drop_last and examples >= self.batch_size:
            return examples // self.batch_size
        return -(-examples // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        epoch = self.current_epoch()
        device = self.data.labels.device
        if self.shuffle:
            # Kept within a generator seed's 64 bits for any run seed (torch's initial
            # seed, when nothing seeded it, is already a random 64-bit number).
            generator = torch.Generator().manual_seed((self.seed * 100_003 + epoch) % 2**63)
            order = (
                balanced_order(self.data.labels, len(self.data), generator)
                if self.balanced
                else torch.randperm(len(self.data), generator=generator)
            )
        else:
            order = torch.arange(len(self.data))
        order = order[self.rank :: self.world_size][: self._examples_per_rank()].to(device)
        if self.mirror_alternately:
            first_phase = torch.Generator().manual_seed(self.seed)
            mirrored = torch.rand(len(self.data), generator=first_phase) < 0.5
            mirrored = (mirrored ^ bool(epoch % 2)).to(device)
        for batch in range(len(self)):
            indices = order[batch * self.batch_size : (batch + 1) * self.batch_size]
            images = self.data.images[indices]
            if self.mirror_alternately:
                images = torch.where(mirrored[indices, None, None, None], images.flip(3), images)
            yield images, self.data.labels[indices]
