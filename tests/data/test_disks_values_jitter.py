"""The SAMI disks (docs/data.md#disks) against a renderer and a jitter written here from the module's stated
conventions: a raised-cosine edge from radius - transition to radius on an integer pixel grid, grid values
linspace(low, high, bins), jitter uniform within half a grid step each side (clipped to the range) seeded by
(seed, index), and the SAMI training set in [-1, 1]. Found by mutation testing
(benches/results/mutation_gaps_2026-12-08.md)."""

import numpy as np
import pytest
import torch

from diffrep.data.disks import Disks, DisksConfig, DisksTensorDataset, disks_geometry, render_disks


def _render(x, y, bg, size, radius, transition, fg):
    """value = bg + (fg - bg) (1 + cos(pi t)) / 2, t = clip((r - (radius - transition)) / transition, 0, 1)."""
    out = np.empty((len(x), size, size, 1), np.float32)
    for n in range(len(x)):
        for i in range(size):  # row: y
            for j in range(size):  # column: x
                r = np.hypot(j - x[n], i - y[n])
                t = min(max((r - (radius - transition)) / transition, 0.0), 1.0)
                out[n, i, j, 0] = bg[n] + (fg - bg[n]) * (1 + np.cos(np.pi * t)) / 2
    return out


CFG = dict(size=12, radius=3.0, transition=1.5, foreground=0.25, x_range=(2.0, 10.0), y_range=(3.0, 9.0),
           background_range=(0.4, 0.8), bins=(1, 2, 3))


def _grid_and_half():
    vals = [np.array([2.0]), np.linspace(3.0, 9.0, 2), np.linspace(0.4, 0.8, 3)]
    half = np.array([0.0, 6.0 / 2, 0.4 / 2 / 2])  # a single-value factor does not move
    return vals, half


def test_item_jitter_by_hand():
    ds = Disks(DisksConfig(**CFG), jitter=True, seed=4, item_format="uint8")
    vals, half = _grid_and_half()
    lo, hi = np.array([2.0, 3.0, 0.4]), np.array([10.0, 9.0, 0.8])
    idx = [5, 0, 3]
    want = []
    for i in idx:
        f = ds.index_to_factors(np.array([i]))[0]
        v = np.array([vals[k][f[k]] for k in range(3)])
        v = np.clip(v + np.random.default_rng([4, i]).uniform(-1.0, 1.0, size=(1, 3))[0] * half, lo, hi)
        want.append(v)
    want = np.array(want)
    np.testing.assert_allclose(ds.images(idx), _render(*want.T, 12, 3.0, 1.5, 0.25), atol=1e-6)
    assert ds.images([]).shape == (0, 12, 12, 1)
    # the seed defaults to 0
    assert np.array_equal(Disks(DisksConfig(**CFG), jitter=True).images([1, 2]),
                          Disks(DisksConfig(**CFG), jitter=True, seed=0).images([1, 2]))


def test_factor_jitter_from_the_callers_rng():
    ds = Disks(DisksConfig(**CFG), jitter=True)
    vals, half = _grid_and_half()
    f = np.array([[0, 1, 2], [0, 0, 1], [0, 1, 0]])
    v = np.stack([vals[k][f[:, k]] for k in range(3)], 1)
    v = np.clip(v + np.random.default_rng(7).uniform(-1.0, 1.0, size=v.shape) * half, [2.0, 3.0, 0.4], [10.0, 9.0, 0.8])
    got = ds.sample_observations_from_factors(f, np.random.default_rng(7))
    np.testing.assert_allclose(got, _render(*v.T, 12, 3.0, 1.5, 0.25), atol=1e-6)


def test_continuous_draws_by_hand():
    ds = Disks(DisksConfig(**CFG))
    vals, images = ds.sample_continuous(4, np.random.default_rng(3))
    want = np.random.default_rng(3).uniform([2.0, 3.0, 0.4], [10.0, 9.0, 0.8], size=(4, 3))
    np.testing.assert_array_equal(vals, want)
    np.testing.assert_allclose(images, _render(*want.T, 12, 3.0, 1.5, 0.25), atol=1e-6)
    with pytest.raises(ValueError, match=r"^num \(the number of samples\) must be >= 0"):
        ds.sample_continuous(-1)


def test_sami_training_set_in_pm1():
    geo = disks_geometry()  # 32 px by default: lineage B's geometry
    assert geo.config == DisksConfig()
    assert disks_geometry(2).config.size == 2  # the smallest side
    with pytest.raises(ValueError, match=r"size must be an int >= 2, got 1"):
        disks_geometry(1)
    ds = DisksTensorDataset()  # 2000 images of 32 px drawn with seed 0
    assert len(ds) == 2000 and ds.factor_names == ("x", "y", "background")
    vals, images = Disks().sample_continuous(2000, np.random.default_rng(0))
    torch.testing.assert_close(ds.factors, torch.from_numpy(vals).float())
    torch.testing.assert_close(ds.images, torch.from_numpy(images).permute(0, 3, 1, 2) * 2 - 1)
    for kw, name in ((dict(num_images=0), "num_images"), (dict(seed=-1), "seed")):
        with pytest.raises(ValueError, match=f"^{name}"):
            DisksTensorDataset(**kw)


def test_disks_arguments():
    cfg = DisksConfig(**CFG)
    ds = Disks(cfg)
    x, _ = ds[4]  # pm1 by default: 2 v - 1, channels first
    torch.testing.assert_close(x, torch.from_numpy(ds.images([4])[0]).permute(2, 0, 1) * 2 - 1)
    with pytest.raises(TypeError, match="config must be a DisksConfig or None, got dict"):
        Disks(CFG)
    with pytest.raises(ValueError, match="^seed"):
        Disks(seed=-1)
    with pytest.raises(TypeError, match="cfg must be a DisksConfig or None, got str"):
        render_disks([1.0], [1.0], [0.0], "cfg")
    for name, args in (("x", (None, [1.0], [0.0])), ("y", ([1.0], [1j], [0.0])), ("background", ([1.0], [1.0], "0"))):
        with pytest.raises(TypeError, match=f"^{name} must be a 1-D array of real numbers, got "):
            render_disks(*args)
    with pytest.raises(TypeError, match="^x must be a 1-D array of real numbers, got list"):
        render_disks([object()], [1.0], [0.0])
    with pytest.raises(TypeError, match="^x must be a 1-D array of real numbers, got ndarray"):
        render_disks(np.array([1.0 + 0j]), [1.0], [0.0])  # float64 conversion would drop the imaginary part
    with pytest.raises(ValueError, match=r"^y must be a 1-D array \[n\], got shape \(1, 1\)"):
        render_disks([1.0], [[1.0]], [0.0])
    with pytest.raises(ValueError, match="^background contains NaN or inf"):
        render_disks([1.0], [1.0], [np.nan])
    with pytest.raises(ValueError, match="must have equal lengths, got 1, 2, 1"):
        render_disks([1.0], [1.0, 2.0], [0.0])


@pytest.mark.parametrize("kw", [dict(size=2), dict(radius=0.5, transition=0.5), dict(transition=6.0),
                                dict(hard_edge=True, transition=0.0), dict(x_range=(5.0, 5.0)),
                                dict(foreground=0.0), dict(foreground=1.0), dict(background_range=(0.5, 0.5)),
                                dict(background_range=(0.0, 1.0)), dict(bins=(1, 1, 1))])
def test_config_edges_accepted(kw):
    DisksConfig(**kw).validate()


@pytest.mark.parametrize("kw, why", [
    (dict(size=3.0), r"^size must be an int >= 2, got 3\.0"), (dict(size=1), r"^size must be an int >= 2"),
    (dict(radius=None), r"^radius must be a finite number"), (dict(radius=0.0, transition=0.0, hard_edge=True), r"^radius must be > 0"),
    (dict(transition=None), r"^transition must be a finite number"), (dict(transition=0.0), r"^transition must be in \(0, radius"),
    (dict(foreground=None), r"^foreground must be a finite number"),
    (dict(x_range=(1.0, 2.0, 3.0)), r"^x_range must be a pair \(low, high\)"),
    (dict(y_range=(0.0, np.inf)), r"^y_range must be a finite number"),
    (dict(bins=3), r"^bins must be three ints >= 1, got 3"),
    (dict(x_range=(3.0, 2.0)), r"^x_range must be \(low, high\) with low <= high, got \(3\.0, 2\.0\)"),
    (dict(background_range=(-0.5, 0.5)), r"^background_range must lie in \[0, 1\]"),
    (dict(background_range=(0.0, 1.5)), r"^background_range must lie in \[0, 1\]"),
])
def test_config_refusals(kw, why):
    with pytest.raises(ValueError, match=why):
        DisksConfig(**kw).validate()
