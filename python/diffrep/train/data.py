"""Deterministic, resumable data order for the trainer.

The order and its sampler are :func:`diffrep.data.sampling.epoch_permutation` and
:class:`diffrep.data.sampling.EpochBatchSampler` (re-exported here): the trainer asks for global
batches with ``drop_last=True``, so step s is batch s mod S of epoch s // S (S batches per epoch) and
resuming at step s is a matter of starting there. This module adds the worker initialisation.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from ..data.sampling import EpochBatchSampler, epoch_permutation, seeded_generator

__all__ = ["EpochBatchSampler", "epoch_permutation", "seeded_generator", "worker_init_fn"]


def worker_init_fn(worker_id: int) -> None:
    """Reseed numpy and ``random`` in each DataLoader worker from torch's per-worker seed."""
    s = torch.initial_seed() % 2**32
    np.random.seed(s)
    random.seed(s)
