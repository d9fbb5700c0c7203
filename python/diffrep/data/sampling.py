"""Deterministic shuffling from (seed, epoch), the one epoch batch sampler, and a fast batched DataLoader.

The order of epoch ``e`` is ``torch.randperm(n)`` drawn from a CPU generator seeded with
``numpy.random.SeedSequence([seed, e])`` (:func:`seeded_generator`): a pure function of (seed, epoch, n)
(the trainer's order since its first release, so recorded runs reproduce), so a resumed run (``start``) sees exactly the batches it would have seen, and
DataLoader workers (which only receive index batches from the main process) cannot change it.

:class:`EpochBatchSampler` cuts that order into global batches of ``batch_size``: batch ``b`` is
``order[b*B:(b+1)*B]``. With ``world_size`` W > 1 ranks, B must be divisible by W and rank ``r`` takes
the r-th contiguous slice of B/W indices of every global batch, so a W-rank run sees exactly the
examples a 1-rank run sees at the same step. Step s of a training run is batch s mod S of epoch s // S
(S batches per epoch): resuming at step s is a matter of starting there, with no sampler state to save.
``drop_last`` drops a final short batch (the trainer's choice); otherwise the short batch is kept and,
with W > 1, padded by wrapping around the order to a multiple of W (the DistributedSampler convention)
so every rank takes the same number of indices.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from .._checks import map_style_dataset, non_negative_int, positive_int
from .base import check_flag

__all__ = ["epoch_permutation", "EpochBatchSampler", "make_loader", "seeded_generator", "worker_generator"]


def seeded_generator(*keys: int) -> torch.Generator:
    """A CPU generator seeded from a tuple of ints through ``numpy.random.SeedSequence``."""
    seed = int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1, dtype=np.uint64)[0] >> 1)
    return torch.Generator().manual_seed(seed)


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """int64 permutation of range(n) for (seed, epoch)."""
    for name, v in (("n", n), ("seed", seed), ("epoch", epoch)):
        non_negative_int(v, name)
    return torch.randperm(int(n), generator=seeded_generator(seed, epoch)).numpy()


class EpochBatchSampler(Sampler):
    """Yields this rank's index lists for the global batches ``start..`` of epoch ``epoch`` (see the
    module docstring for the order, the sharding and ``drop_last``).

    ``shuffle=False`` takes the indices in order. ``set_epoch(e, start_batch)`` moves to another epoch
    (and a first batch, for resuming mid-epoch). ``num_replicas`` is an old name of ``world_size``.
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, shuffle: bool = True, drop_last: bool = False, *,
                 epoch: int = 0, start: int = 0, rank: int = 0, world_size: int = 1, num_replicas: int | None = None):
        if num_replicas is not None:
            warnings.warn("EpochBatchSampler(num_replicas=) is deprecated; use world_size=", DeprecationWarning,
                          stacklevel=2)
            world_size = num_replicas
        n, batch_size = non_negative_int(n, "n"), positive_int(batch_size, "batch_size")
        world_size = positive_int(world_size, "world_size")
        if not (isinstance(rank, int) and not isinstance(rank, bool) and 0 <= rank < world_size):
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank!r}, world_size={world_size!r}")
        if batch_size % world_size:
            raise ValueError(f"batch_size {batch_size} is not divisible by the world size {world_size}")
        if n < batch_size:
            raise ValueError(f"dataset has n={n} examples, fewer than the global batch size {batch_size}")
        non_negative_int(start, "start")  # set_epoch's message would name its start_batch
        epoch_permutation(0, seed, epoch)  # validates seed and epoch
        self.n, self.batch_size, self.seed = n, batch_size, int(seed)
        self.shuffle, self.drop_last = check_flag(shuffle, "shuffle"), check_flag(drop_last, "drop_last")
        self.rank, self.world_size = rank, world_size
        self.per_rank = batch_size // world_size
        self.set_epoch(epoch, start)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        epoch_permutation(0, self.seed, epoch)
        start_batch = non_negative_int(start_batch, "start_batch")
        if start_batch > self.batches_per_epoch:
            raise ValueError(f"start batch {start_batch} outside [0, {self.batches_per_epoch}]")
        self.epoch, self.start = int(epoch), start_batch

    @property
    def batches_per_epoch(self) -> int:
        full, short = divmod(self.n, self.batch_size)
        return full + (1 if short and not self.drop_last else 0)

    def _order(self) -> np.ndarray:
        """The epoch's global order, cut (drop_last) or padded (several ranks) to whole batches."""
        order = epoch_permutation(self.n, self.seed, self.epoch) if self.shuffle else np.arange(self.n, dtype=np.int64)
        if self.drop_last:
            return order[: self.n // self.batch_size * self.batch_size]
        return np.resize(order, -(-self.n // self.world_size) * self.world_size)

    def _batches(self, order: np.ndarray):
        for lo in range(self.start * self.batch_size, len(order), self.batch_size):
            batch = order[lo : lo + self.batch_size]
            k = len(batch) // self.world_size
            yield batch[self.rank * k : (self.rank + 1) * k]

    def indices(self) -> np.ndarray:
        """This rank's indices for the current epoch (from ``start``), in order."""
        parts = list(self._batches(self._order()))
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start

    def __iter__(self):
        for batch in self._batches(self._order()):
            yield batch.tolist()


def make_loader(dataset, batch_size: int, seed: int = 0, epoch: int = 0, shuffle: bool = True,
                drop_last: bool = False, num_workers: int = 0, start_batch: int = 0, **loader_kwargs) -> DataLoader:
    """A DataLoader that fetches whole batches at once (``dataset[list_of_indices]`` -> ``get_batch``).

    Yields ``(images, targets)`` tensors. Call ``loader.sampler.set_epoch(e)`` (and, for datasets
    with dynamic binarisation, ``dataset.set_epoch(e)``) before each epoch; or build one loader per epoch.
    """
    map_style_dataset(dataset)
    non_negative_int(num_workers, "num_workers")  # torch's own check named it only for negative ints
    non_negative_int(start_batch, "start_batch")  # the sampler's message would name its start
    sampler = EpochBatchSampler(len(dataset), batch_size, seed, shuffle, drop_last, epoch=epoch, start=start_batch)
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    return DataLoader(dataset, batch_size=None, sampler=sampler, num_workers=num_workers, **loader_kwargs)


def worker_generator(seed: int, epoch: int, worker_id: int | None = None) -> torch.Generator:
    """A torch Generator for random augmentations, seeded from (seed, epoch, worker) deterministically."""
    non_negative_int(seed, "seed")  # int() truncated 1.5 and read True as 1
    non_negative_int(epoch, "epoch")
    if worker_id is not None:
        non_negative_int(worker_id, "worker_id")
    if worker_id is None:
        info = torch.utils.data.get_worker_info()
        worker_id = info.id if info is not None else 0
    return seeded_generator(seed, epoch, worker_id)
