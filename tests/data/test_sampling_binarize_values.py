"""Values of diffrep.data.sampling and diffrep.data.binarize against the conventions their docstrings
state, recomputed here: the (seed, epoch) order through SeedSequence, the global batches cut and padded
by wrapping, the rank slices, and the Bernoulli draws keyed by (seed, epoch, item) (added after
mutation testing of both modules, 2026-12-07)."""

import numpy as np
import torch

from diffrep.data.binarize import binarize
from diffrep.data.sampling import EpochBatchSampler, epoch_permutation, seeded_generator, worker_generator


def _seed(*keys):
    """The documented seed: the first uint64 word of SeedSequence(keys), shifted right by one (fits int64)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1, dtype=np.uint64)[0]) >> 1


def test_epoch_order_is_randperm_from_the_seedsequence_seed():
    for n, seed, epoch in ((10, 0, 0), (37, 5, 3), (1, 2, 9)):
        want = torch.randperm(n, generator=torch.Generator().manual_seed(_seed(seed, epoch))).numpy()
        assert np.array_equal(epoch_permutation(n, seed, epoch), want)
    assert seeded_generator(4, 1).initial_seed() == _seed(4, 1)
    assert worker_generator(3, 2, 5).initial_seed() == _seed(3, 2, 5)
    assert worker_generator(3, 2).initial_seed() == _seed(3, 2, 0)  # the main process is worker 0


def test_batches_padded_by_wrapping_and_sliced_per_rank():
    """n = 7, B = 4, W = 2, in order: the order [0..6] wraps to [0..6, 0]; batches [0 1 2 3], [4 5 6 0];
    rank 0 takes the first half of each, rank 1 the second."""
    r = [EpochBatchSampler(7, 4, shuffle=False, rank=k, world_size=2) for k in (0, 1)]
    assert [list(s) for s in r] == [[[0, 1], [4, 5]], [[2, 3], [6, 0]]]
    assert r[1].indices().tolist() == [2, 3, 6, 0] and len(r[1]) == 2
    one = EpochBatchSampler(7, 4, shuffle=False)
    assert list(one) == [[0, 1, 2, 3], [4, 5, 6]]  # one rank: the short batch kept, not padded
    assert list(EpochBatchSampler(7, 4, shuffle=False, drop_last=True)) == [[0, 1, 2, 3]]
    late = EpochBatchSampler(7, 4, shuffle=False, rank=1, world_size=2, start=1)
    assert list(late) == [[6, 0]] and len(late) == 1 and late.indices().tolist() == [6, 0]
    assert EpochBatchSampler(8, 4).batches_per_epoch == 2 and EpochBatchSampler(9, 4).batches_per_epoch == 3
    assert EpochBatchSampler(9, 4, drop_last=True).batches_per_epoch == 2


def test_shuffled_batches_cut_the_epoch_order():
    """Batch b is order[b B : (b + 1) B] of epoch_permutation(n, seed, epoch); with W ranks, rank r
    takes the r-th of W equal slices of each batch (the short last one too, after the wrap)."""
    order = epoch_permutation(13, 7, 4).tolist()
    assert list(EpochBatchSampler(13, 3, seed=7, epoch=4)) == [order[i:i + 3] for i in range(0, 13, 3)]
    padded = order + order[:1]  # 13 -> 14, a multiple of W = 2
    for r in (0, 1):
        s = EpochBatchSampler(13, 4, seed=7, epoch=4, rank=r, world_size=2)
        want = [padded[b + 2 * r:b + 2 * r + 2] for b in range(0, 12, 4)] + [[padded[12 + r]]]
        assert list(s) == want
    s = EpochBatchSampler(13, 3, seed=7, epoch=0)
    s.set_epoch(4, 2)
    assert list(s) == [order[i:i + 3] for i in range(6, 13, 3)]


def test_bernoulli_draws_keyed_by_seed_epoch_and_item():
    """dynamic: pixel -> 255 iff u < pixel / 255 with u from default_rng([seed, epoch, item]); static: the
    key [seed, item] (no epoch); 0 and 255 stay 0 and 255."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 6, 5), dtype=np.uint8)
    images[0, 0, :2] = (0, 255)
    idx = np.array([11, 2, 7])
    for mode, key in (("dynamic", lambda i: [4, 3, i]), ("static", lambda i: [4, i])):
        got = binarize(images, idx, mode, seed=4, epoch=3)
        assert got.dtype == np.uint8 and got.shape == images.shape
        for k, i in enumerate(idx):
            u = np.random.default_rng(key(int(i))).random((6, 5))
            assert np.array_equal(got[k], np.where(u < images[k] / 255.0, 255, 0))
        assert got[0, 0, :2].tolist() == [0, 255]
    assert np.array_equal(binarize(images, idx, "static", 4, 0), binarize(images, idx, "static", 4, 9))
    assert not np.array_equal(binarize(images, idx, "dynamic", 4, 0), binarize(images, idx, "dynamic", 4, 9))
    assert binarize(images, idx, "none") is images


def test_sampler_defaults_edges_and_messages():
    """Defaults seed 0 and epoch 0; n = B (one batch) and rank W - 1 are allowed, start = the batch count
    (nothing left) too; each bad argument is named."""
    import pytest

    assert list(EpochBatchSampler(10, 5)) == [epoch_permutation(10, 0, 0)[:5].tolist(), epoch_permutation(10, 0, 0)[5:].tolist()]
    assert list(EpochBatchSampler(4, 4, shuffle=False)) == [[0, 1, 2, 3]]
    s = EpochBatchSampler(8, 4, shuffle=False, rank=3, world_size=4)
    assert list(s) == [[3], [7]] and s.per_rank == 1 and isinstance(s.per_rank, int)
    s.set_epoch(1, 2)
    assert list(s) == [] and len(s) == 0 and s.indices().tolist() == [] and s.indices().dtype == np.int64
    with pytest.raises(ValueError, match=r"^need 0 <= rank < world_size, got rank=4, world_size=4$"):
        EpochBatchSampler(8, 4, rank=4, world_size=4)
    with pytest.raises(ValueError, match=r"^start batch 3 outside \[0, 2\]$"):
        s.set_epoch(0, 3)
    with pytest.warns(DeprecationWarning, match=r"^EpochBatchSampler\(num_replicas=\) is deprecated; use world_size=$"):
        old = EpochBatchSampler(8, 4, shuffle=False, rank=1, num_replicas=2)
    assert list(old) == [[2, 3], [6, 7]]
    for kwargs, msg in ((dict(n=-1, batch_size=1), "n must be a non-negative int"),
                        (dict(n=4, batch_size=0), "batch_size must be a positive int"),
                        (dict(n=4, batch_size=2, world_size=0), "world_size must be a positive int"),
                        (dict(n=4, batch_size=2, start=-1), "start must be a non-negative int"),
                        (dict(n=4, batch_size=2, seed=-1), "seed must be a non-negative int"),
                        (dict(n=4, batch_size=2, epoch=-1), "epoch must be a non-negative int"),
                        (dict(n=4, batch_size=2, shuffle=1), "shuffle must be True or False"),
                        (dict(n=4, batch_size=2, drop_last=None), "drop_last must be True or False")):
        with pytest.raises((ValueError, TypeError), match="^" + msg):
            EpochBatchSampler(**kwargs)
    with pytest.raises(ValueError, match="^start_batch must be a non-negative int"):
        EpochBatchSampler(4, 2).set_epoch(0, -1)
    with pytest.raises(ValueError, match="^n must be a non-negative int"):
        epoch_permutation(-1, 0, 0)


def test_binarize_levels_defaults_and_messages():
    """255 is always on and 0 always off (p = pixel / 255 exactly); threshold at 128; defaults seed 0,
    epoch 0; bad inputs named."""
    import pytest

    full = np.full((1, 100, 100), 255, np.uint8)
    assert (binarize(full, np.array([0]), "dynamic", 1, 2) == 255).all()
    assert (binarize(full - 255, np.array([0]), "static", 1) == 0).all()
    ramp = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    assert np.array_equal(binarize(ramp, np.array([0]), "threshold"), np.where(ramp >= 128, 255, 0))
    assert np.array_equal(binarize(ramp, np.array([3]), "dynamic"), binarize(ramp, np.array([3]), "dynamic", 0, 0))
    with pytest.raises(ValueError, match=r"^mode must be one of .*got None$"):
        binarize(ramp, np.array([0]), None)
    with pytest.raises(ValueError, match=r"^mode must be one of .*got 'otsu'$"):
        binarize(ramp, np.array([0]), "otsu")
    with pytest.raises(TypeError, match=r"^images must be a numpy array \(n, \.\.\.\) of uint8 images, got list$"):
        binarize([[1, 2]], np.array([0]), "threshold")
    with pytest.raises(TypeError, match=r"^images must be a numpy array \(n, \.\.\.\) of uint8 images, got \(3,\)$"):
        binarize(np.zeros(3, np.uint8), np.array([0]), "threshold")
    with pytest.raises(TypeError, match="^binarize expects uint8 images, got float32$"):
        binarize(ramp.astype(np.float32), np.array([0]), "threshold")
    for name, kw in (("seed", dict(seed=1.5)), ("epoch", dict(epoch=-1)), ("seed", dict(seed=True))):
        with pytest.raises(ValueError, match=f"^{name} must be a non-negative int"):
            binarize(ramp, np.array([0]), "dynamic", **kw)
    for bad in (np.array([[0]]), np.array([0, 1]), np.array([0.0])):
        with pytest.raises(ValueError, match=r"^indices must be 1 integer item indices \(n,\) for the 1 images"):
            binarize(ramp, bad, "threshold")


def test_worker_generator_names_its_arguments():
    import pytest

    for args, name in (((-1, 0), "seed"), ((0, 1.5), "epoch"), ((0, 0, True), "worker_id")):
        with pytest.raises(ValueError, match=f"^{name} must be a non-negative int"):
            worker_generator(*args)
