"""Disks and digits generators; binarisation conventions."""

import numpy as np
import pytest

from diffrep.data.binarize import binarize
from diffrep.data.digits import Digits, load_digits_raw
from diffrep.data.disks import Disks, DisksConfig, render_disks


def test_disks_factors_and_background():
    d = Disks(item_format="01")
    assert d.factor_names == ("x", "y", "background") and d.factor_sizes == (32, 32, 32)
    assert np.allclose(d.factor_values[0][[0, -1]], [6, 26]) and np.allclose(d.factor_values[2][[0, -1]], [0, 1])
    f = np.array([[0, 31, 7], [31, 0, 20], [16, 16, 31]])
    obs = d.sample_observations_from_factors(f)
    assert obs.shape == (3, 32, 32, 1) and obs.dtype == np.float32
    for k, (ix, iy, ib) in enumerate(f):
        bg, x, y = d.factor_values[2][ib], d.factor_values[0][ix], d.factor_values[1][iy]
        # a corner far from the disk holds exactly the background factor
        far = (0, 31) if x > 16 else (31, 31) if y < 16 else (31, 0)
        assert obs[k, far[0], far[1], 0] == pytest.approx(bg, abs=1e-6)
        # foreground 0.5 inside the inner radius (pixel grid at integer coordinates)
        assert obs[k, int(round(y)), int(round(x)), 0] == pytest.approx(0.5, abs=1e-6)
        # intensity-weighted centroid of |img - bg| sits at the centre
        w = np.abs(obs[k, :, :, 0] - bg)
        if w.sum() > 1:
            ii, jj = np.mgrid[0:32, 0:32]
            assert (w * jj).sum() / w.sum() == pytest.approx(x, abs=0.05)
            assert (w * ii).sum() / w.sum() == pytest.approx(y, abs=0.05)


def test_disks_soft_edge_profile_and_hard_edge():
    img = render_disks([16.0], [16.0], [0.0])[0, :, :, 0]
    row = img[16]
    assert row[16 + 4] == pytest.approx(0.5)  # inner radius 4: still foreground
    assert row[16 + 5] == pytest.approx(0.25, abs=1e-6)  # half-way in the ramp: (1 + cos(pi/2))/2 * 0.5
    assert row[16 + 6] == pytest.approx(0.0, abs=1e-7)
    hard = render_disks([16.0], [16.0], [0.2], DisksConfig(hard_edge=True))[0, :, :, 0]
    assert np.allclose(np.unique(hard), [0.2, 0.5])
    assert int((hard == np.float32(0.5)).sum()) == int(sum(1 for i in range(32) for j in range(32)
                                                           if (i - 16) ** 2 + (j - 16) ** 2 <= 36))


def test_disks_jitter_and_continuous_seeded():
    d = Disks(jitter=True, seed=3)
    a, b = d.images([5, 900]), Disks(jitter=True, seed=3).images([5, 900])
    assert np.array_equal(a, b)
    assert not np.array_equal(a, Disks(jitter=False).images([5, 900]))
    v1, x1 = d.sample_continuous(4, np.random.default_rng(1))
    v2, x2 = d.sample_continuous(4, np.random.default_rng(1))
    assert np.array_equal(x1, x2) and v1.shape == (4, 3)
    assert (v1[:, :2] >= 6).all() and (v1[:, :2] <= 26).all()
    with pytest.raises(ValueError, match="transition"):
        Disks(transition=10.0)
    with pytest.raises(ValueError, match="out of range"):
        d.sample_observations_from_factors([[32, 0, 0]])


def test_digits_real_and_binary():
    raw, labels = load_digits_raw()
    assert raw.shape == (1797, 8, 8) and raw.max() == 16 and labels[:10].tolist() == list(range(10))
    d = Digits(size=16, item_format="01")
    assert len(d) == 1797
    x, y = d[3]
    assert x.shape == (1, 16, 16) and int(y) == 3 and set(x.unique().tolist()) <= {0.0, 1.0}
    full = Digits(size=8, binarize=None)
    assert np.array_equal(full.images([0])[0, :, :, 0], np.round(raw[0].astype(float) * 255 / 16).astype(np.uint8))
    assert len(Digits(split="train")) == 1500 and len(Digits(split="test")) == 297
    with pytest.raises(ValueError, match="split"):
        Digits(split="val")


def test_dynamic_binarisation_seeded_and_per_epoch():
    d = Digits(size=16, binarize="dynamic", seed=7)
    a = d.images([0, 1, 2])
    assert np.array_equal(a, Digits(size=16, binarize="dynamic", seed=7).images([0, 1, 2]))
    assert np.array_equal(a[1], d.images([1])[0])  # independent of batch composition
    d.set_epoch(1)
    b = d.images([0, 1, 2])
    assert not np.array_equal(a, b) and set(np.unique(b)) <= {0, 255}
    d.set_epoch(0)
    assert np.array_equal(d.images([0, 1, 2]), a)
    s = Digits(size=16, binarize="static", seed=7)
    s0 = s.images([4])
    s.set_epoch(5)
    assert np.array_equal(s.images([4]), s0)
    # Bernoulli mean follows the grey level
    grey = np.full((1, 200, 200), 64, np.uint8)
    m = binarize(grey, np.array([0]), "dynamic", 0, 0).mean() / 255
    assert m == pytest.approx(64 / 255, abs=0.01)
    t = binarize(np.array([[127, 128]], np.uint8), np.array([0]), "threshold")
    assert t.tolist() == [[0, 255]]
    assert binarize(np.array([[0, 1, 255]], np.uint8), np.array([0]), "nonzero").tolist() == [[0, 255, 255]]
    with pytest.raises(ValueError, match="binarize"):
        Digits(binarize="otsu")
