"""The table-driven dSprites renderer draws exactly the pixels of the per-sprite renderer it replaced.

The reference below is that renderer, written out here: sprites grouped by (shape, scale, orientation),
one ``shape_row_intervals`` call per group on the group's pixel-centre rows, a pixel ON iff
ceil(lo + cx - 0.5) <= j <= floor(hi + cx - 0.5) for some piece. (The geometry itself is checked against a
per-pixel rasteriser in test_faithful_dsprites_render.py.) The whole grid was compared once, bit for bit,
when the table was introduced (benches/results/data_cpu_2core_2026-12-07.txt); here every sprite at the
canvas corners and mixed random batches.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from diffrep.data import dsprites
from diffrep.data.dsprites import DSprites, file_factor_values, render_dsprites, shape_row_intervals


def reference_render(f6: np.ndarray) -> np.ndarray:
    vals = file_factor_values()
    out = np.zeros((len(f6), 64, 64), dtype=np.uint8)
    cols = np.arange(64, dtype=np.float64)
    rows = np.arange(64, dtype=np.float64) + 0.5
    keys = f6[:, 1] * 240 + f6[:, 2] * 40 + f6[:, 3]
    for key in np.unique(keys):
        grp = np.flatnonzero(keys == key)
        shape, sc, orr = f6[grp[0], 1:4]
        cx = 16.0 + 32.0 * vals[4][f6[grp, 4]]
        cy = 16.0 + 32.0 * vals[5][f6[grp, 5]]
        y = rows[None, :] - cy[:, None]
        img = np.zeros((grp.size, 64, 64), dtype=bool)
        for lo, hi in shape_row_intervals(int(shape), vals[2][sc], vals[3][orr], y):
            jlo = np.ceil(lo + cx[:, None] - 0.5)
            jhi = np.floor(hi + cx[:, None] - 0.5)
            img |= (cols >= jlo[:, :, None]) & (cols <= jhi[:, :, None])
        out[grp] = img
    return out


def random_factors(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([np.zeros(n, np.int64)] + [rng.integers(0, s, n) for s in (3, 6, 40, 32, 32)], axis=1)


def every_sprite_at(px: int, py: int) -> np.ndarray:
    sprite = np.stack(np.unravel_index(np.arange(720), (3, 6, 40)), axis=1)
    return np.concatenate([np.zeros((720, 1), np.int64), sprite, np.full((720, 2), (px, py))], axis=1)


@pytest.mark.parametrize("px, py", [(0, 0), (31, 0), (0, 31), (31, 31), (13, 22)])
def test_every_sprite_at_the_corners_and_inside(px, py):
    f = every_sprite_at(px, py)
    got = render_dsprites(f)
    assert got.dtype == np.uint8 and got.shape == (720, 64, 64)
    assert np.array_equal(got, reference_render(f))


@pytest.mark.parametrize("seed", range(5))
def test_mixed_random_batches(seed):
    f = random_factors(seed, 600)
    f[::7] = f[3]  # repeated rows and an unsorted order
    want = reference_render(f)
    assert np.array_equal(render_dsprites(f), want)
    assert np.array_equal(render_dsprites(f[:, 1:]), want)  # the 5-column dsprites_full rows


def test_batches_longer_than_a_chunk(monkeypatch):
    monkeypatch.setattr(dsprites, "_CHUNK", 64)  # 600 rows in 10 passes, the last one short
    f = random_factors(7, 600)
    assert np.array_equal(render_dsprites(f), reference_render(f))
    assert render_dsprites(f[:0]).shape == (0, 64, 64)


def test_table_filled_from_two_threads(monkeypatch):
    monkeypatch.setattr(dsprites, "_ROWS", dsprites._RowIntervalTable())  # empty: both threads fill it
    f = random_factors(8, 800)
    got = [None, None]

    def work(k):
        got[k] = render_dsprites(f)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    want = reference_render(f)
    assert np.array_equal(got[0], want) and np.array_equal(got[1], want)


def test_cached_dataset_returns_the_reference_pixels():
    d, plain = DSprites(item_format="uint8"), DSprites(item_format="uint8", cache=False)
    rng = np.random.default_rng(9)
    seen = np.zeros(0, np.int64)
    for size in (5, 700, 1500, 64):  # the store grows past its first 1,024 slots, then serves repeats
        idx = np.concatenate([rng.integers(0, len(d), size), seen[:50]])
        want = reference_render(d._file_factors(idx))[:, None] * np.uint8(255)
        x, y = d.get_batch(idx)
        assert np.array_equal(x.numpy(), want) and np.array_equal(plain.get_batch(idx)[0].numpy(), want)
        assert np.array_equal(y.numpy(), np.stack(np.unravel_index(idx, (3, 6, 40, 32, 32)), axis=1))
        seen = np.concatenate([seen, idx])
    assert d._stored == len(np.unique(seen)) and len(d._bits) >= d._stored
