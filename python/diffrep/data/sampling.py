"""Deterministic shuffling from (seed, epoch), and a fast batched DataLoader.

The order of epoch ``e`` is ``numpy.random.default_rng([seed, e]).permutation(n)``: a pure function of
(seed, epoch, n), so a resumed run (``start_batch``) sees exactly the batches it would have seen, and
DataLoader workers (which only receive index batches from the main process) cannot change it. With
``num_replicas > 1`` the permutation is padded by wrapping to a multiple of ``num_replicas`` and rank ``r``
takes every ``num_replicas``-th element (the DistributedSampler convention).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """int64 permutation of range(n) for (seed, epoch)."""
    for name, v in (("n", n), ("seed", seed), ("epoch", epoch)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} must be a non-negative int, got {v!r}")
    return np.random.default_rng([int(seed), int(epoch)]).permutation(int(n)).astype(np.int64)


class EpochBatchSampler(Sampler):
    """Yields lists of indices: batch ``b`` of epoch ``epoch`` of the (seed, epoch) permutation.

    ``shuffle=False`` yields indices in order. ``drop_last`` drops a final short batch. ``start_batch``
    skips the first batches of the current epoch (for resuming mid-epoch); it is cleared by ``set_epoch``.
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, shuffle: bool = True, drop_last: bool = False,
                 num_replicas: int = 1, rank: int = 0):
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if not (isinstance(num_replicas, int) and num_replicas >= 1 and isinstance(rank, int) and 0 <= rank < num_replicas):
            raise ValueError(f"need 0 <= rank < num_replicas, got rank={rank!r}, num_replicas={num_replicas!r}")
        epoch_permutation(n, seed, 0)  # validates n and seed
        self.n, self.batch_size, self.seed = int(n), int(batch_size), int(seed)
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        epoch_permutation(0, self.seed, epoch)
        if not isinstance(start_batch, int) or start_batch < 0:
            raise ValueError(f"start_batch must be a non-negative int, got {start_batch!r}")
        self.epoch, self.start_batch = int(epoch), start_batch

    def indices(self) -> np.ndarray:
        """This rank's indices for the current epoch, in order."""
        order = epoch_permutation(self.n, self.seed, self.epoch) if self.shuffle else np.arange(self.n)
        if self.num_replicas > 1:
            total = -(-self.n // self.num_replicas) * self.num_replicas
            order = np.resize(order, total)[self.rank :: self.num_replicas]
        return order

    def __len__(self) -> int:
        m = len(self.indices()) if self.num_replicas > 1 else self.n
        full = m // self.batch_size if self.drop_last else -(-m // self.batch_size)
        return max(0, full - self.start_batch)

    def __iter__(self):
        order = self.indices()
        stop = (len(order) // self.batch_size) * self.batch_size if self.drop_last else len(order)
        for b in range(self.start_batch * self.batch_size, stop, self.batch_size):
            yield order[b : b + self.batch_size].tolist()


def make_loader(dataset, batch_size: int, seed: int = 0, epoch: int = 0, shuffle: bool = True,
                drop_last: bool = False, num_workers: int = 0, start_batch: int = 0, **loader_kwargs) -> DataLoader:
    """A DataLoader that fetches whole batches at once (``dataset[list_of_indices]`` -> ``get_batch``).

    Yields ``(images, targets)`` tensors. Call ``loader.sampler.set_epoch(e)`` (and, for datasets
    with dynamic binarisation, ``dataset.set_epoch(e)``) before each epoch; or build one loader per epoch.
    """
    sampler = EpochBatchSampler(len(dataset), batch_size, seed, shuffle, drop_last)
    sampler.set_epoch(epoch, start_batch)
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    return DataLoader(dataset, batch_size=None, sampler=sampler, num_workers=num_workers, **loader_kwargs)


def worker_generator(seed: int, epoch: int, worker_id: int | None = None) -> torch.Generator:
    """A torch Generator for random augmentations, seeded from (seed, epoch, worker) deterministically."""
    if worker_id is None:
        info = torch.utils.data.get_worker_info()
        worker_id = info.id if info is not None else 0
    ss = np.random.SeedSequence([int(seed), int(epoch), int(worker_id)])
    return torch.Generator().manual_seed(int(ss.generate_state(1, dtype=np.uint64)[0] >> 1))
