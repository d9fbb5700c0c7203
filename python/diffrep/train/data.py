"""Deterministic, resumable data order.

The order of epoch e is a permutation that depends only on (seed, epoch): it is drawn from a
``torch.Generator`` seeded with ``numpy.random.SeedSequence([seed, epoch])``. Global batch b of an
epoch is ``perm[b*B:(b+1)*B]`` (B the global batch; the incomplete tail is dropped) and rank r of W
takes the r-th contiguous slice of B/W indices. Step s is therefore batch s mod S of epoch s // S
(S batches per epoch), so resuming at step s is a matter of starting there: no sampler state to save,
and a W-rank run sees exactly the examples a 1-rank run sees at the same global batch.
"""

from __future__ import annotations

import random

import numpy as np
import torch

__all__ = ["EpochBatchSampler", "epoch_permutation", "seeded_generator", "worker_init_fn"]


def seeded_generator(*keys: int) -> torch.Generator:
    """A CPU generator seeded from a tuple of ints through ``numpy.random.SeedSequence``."""
    seed = int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, dtype=np.uint64)[0] >> 1)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=seeded_generator(seed, epoch))


class EpochBatchSampler:
    """Yields this rank's index lists for the batches ``start..`` of epoch ``epoch``."""

    def __init__(self, n: int, global_batch: int, *, seed: int, epoch: int, rank: int = 0, world_size: int = 1,
                 start: int = 0):
        if n < global_batch:
            raise ValueError(f"dataset has {n} examples, fewer than the global batch size {global_batch}")
        if global_batch % world_size:
            raise ValueError(f"batch_size {global_batch} is not divisible by the world size {world_size}")
        self.n, self.B, self.seed, self.epoch = n, global_batch, seed, epoch
        self.rank, self.world, self.start = rank, world_size, start
        self.per_rank = global_batch // world_size
        if not 0 <= start <= self.batches_per_epoch:
            raise ValueError(f"start batch {start} outside [0, {self.batches_per_epoch}]")

    @property
    def batches_per_epoch(self) -> int:
        return self.n // self.B

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start

    def __iter__(self):
        perm = epoch_permutation(self.n, self.seed, self.epoch)
        for b in range(self.start, self.batches_per_epoch):
            lo = b * self.B + self.rank * self.per_rank
            yield perm[lo:lo + self.per_rank].tolist()


def worker_init_fn(worker_id: int) -> None:
    """Reseed numpy and ``random`` in each DataLoader worker from torch's per-worker seed."""
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)
