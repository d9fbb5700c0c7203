"""worker_generator inside real DataLoader workers (diffrep.data.sampling): each worker reads its own id from
torch's worker info, so its augmentation stream is the documented (seed, epoch, worker) one and two
workers never draw the same augmentations (added after mutation testing, 2026-12-07: no test ran a
worker process). Two workers, because worker 0's id equals the main process's fallback 0."""

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from diffrep.data.sampling import worker_generator

SEED, EPOCH = 7, 3


def _seed(*keys):
    """The documented seed: the first uint64 word of SeedSequence(keys), shifted right by one (fits int64)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1, dtype=np.uint64)[0]) >> 1


class _Augmenting(Dataset):
    """Each item: the worker generator's seed and two uniforms drawn from it (a stand-in augmentation)."""

    def __len__(self):
        return 4

    def __getitem__(self, i):
        g = worker_generator(SEED, EPOCH)
        return torch.tensor(g.initial_seed(), dtype=torch.int64), torch.rand(2, generator=g, dtype=torch.float64)


def test_each_worker_seeds_from_its_own_id():
    # the DataLoader hands items to its workers in turn: item i is fetched by worker i % 2
    loader = DataLoader(_Augmenting(), batch_size=None, num_workers=2, multiprocessing_context="fork")
    got = list(loader)
    assert len(got) == 4
    for i, (seed, draw) in enumerate(got):
        want = _seed(SEED, EPOCH, i % 2)
        assert int(seed) == want
        torch.testing.assert_close(draw, torch.rand(2, generator=torch.Generator().manual_seed(want), dtype=torch.float64),
                                   rtol=0, atol=0)
    assert int(got[0][0]) != int(got[1][0])  # the two workers' streams differ
    # outside any worker the id is 0
    assert worker_generator(SEED, EPOCH).initial_seed() == _seed(SEED, EPOCH, 0)
