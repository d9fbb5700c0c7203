"""Values of the disks probes (diffrep.analysis.disks_probes) outside disk_centres, against computations
written here: the read-out stream and the contrast-background draws replayed from their seeds, the
position read-out's least squares and the k-NN R^2 by brute force, Spearman's rho from average ranks,
and hand-made codes (a SAMI model whose posterior is a known function of the image) whose
monotonicity read-outs are known in closed form."""

import numpy as np
import pytest
import torch

from diffrep.analysis import sami as A
from diffrep.data.disks import disks_geometry, render_disks
from helpers import tiny_sami as tiny_model

CFG = disks_geometry(8).config  # the tiny model's geometry: centres in [1.5, 6.5], background U[0, 1], fg 0.5


def _measured(x):
    """(c_x, c_y, background) of images in [-1, 1], by disk_centres (0 where no disk) and the median."""
    c = np.nan_to_num(A.disk_centres(x.double()))
    bg = ((x.double().flatten(1).median(1).values + 1) / 2).numpy()
    return c[:, 0], c[:, 1], bg


def _contrast_background(rng, margin, lo=0.0, hi=1.0, fg=0.5):
    """The documented draw: a uniform on each side of the foreground that allows one (dark first), then a
    fair coin picks the side, falling back to the only side there is."""
    dark = (lo, min(hi, fg - margin)) if lo <= min(hi, fg - margin) else None
    bright = (max(lo, fg + margin), hi) if max(lo, fg + margin) <= hi else None
    draws = [rng.uniform(*s) if s else None for s in (dark, bright)]
    k = int(rng.integers(2))
    return draws[k] if draws[k] is not None else draws[1 - k]


def _ranks(a):
    """Ranks 0..n-1 with ties given their average rank."""
    a = np.asarray(a, dtype=np.float64)
    r = np.empty(len(a))
    for i, v in enumerate(a):
        r[i] = (a < v).sum() + ((a == v).sum() - 1) / 2
    return r


def _spearman(a, b):
    ra, rb = _ranks(a) - _ranks(a).mean(), _ranks(b) - _ranks(b).mean()
    return float((ra * rb).sum() / np.sqrt((ra ** 2).sum() * (rb ** 2).sum()))


def _knn_r2(X, y, seed, k=5, folds=5):
    """Shuffled k-fold R^2 of a k-nearest-neighbour mean, by brute-force distances."""
    from sklearn.model_selection import KFold

    scores = []
    for tr, te in KFold(folds, shuffle=True, random_state=seed).split(X):
        d = ((X[te, None, :] - X[None, tr, :]) ** 2).sum(-1)
        pred = y[tr][np.argsort(d, 1)[:, :k]].mean(1)
        scores.append(1 - ((y[te] - pred) ** 2).sum() / ((y[te] - y[te].mean()) ** 2).sum())
    return float(np.mean(scores))


def test_readout_stream_least_squares_and_knn_r2_by_hand():
    m = tiny_model(dtype=torch.float32)
    calls = []

    def code(x):  # (c_x, c_y, background) as measured, mixed, the position's sign turned by the contrast's
        cx, cy, bg = _measured(x)
        calls.append(x.clone())
        turn = np.where(bg > 0.5, -1.0, 1.0)
        mu = np.stack([turn * (cx + 0.3 * cy), turn * (cy - 0.2 * bg), bg + 0.1 * cx], 1)
        return torch.from_numpy(mu).float(), torch.zeros(x.shape[0], 3)

    m.posterior = code
    n, seed, margin = 200, 3, 0.2
    r = A.posterior_mean_monotonicity(m, num_lines=2, num_points=4, seed=seed, background_margin=margin,
                                      num_readout=n)
    n_calls = len(calls)
    # the read-out disks: the stream (seed, 1), three uniforms, then the backgrounds redrawn with contrast
    rr = np.random.default_rng([seed, 1])
    vals = np.stack([rr.uniform(*rg, size=n) for rg in (CFG.x_range, CFG.y_range, CFG.background_range)], 1)
    vals[:, 2] = [_contrast_background(rr, margin) for _ in range(n)]
    assert np.all(np.abs(vals[:, 2] - 0.5) >= margin)
    img = torch.from_numpy(render_disks(vals[:, 0], vals[:, 1], vals[:, 2], CFG)).permute(0, 3, 1, 2) * 2 - 1
    torch.testing.assert_close(calls[0], img.float())
    mu = code(calls[0])[0].double().numpy()
    beta = {}
    for bright, name in ((False, "dark"), (True, "bright")):
        s = (vals[:, 2] > 0.5) == bright
        X = np.concatenate([mu[s], np.ones((s.sum(), 1))], 1)
        for f, fac in enumerate(("x", "y")):
            beta[bright, f] = np.linalg.lstsq(X, vals[s, f], rcond=None)[0]
            res = ((X @ beta[bright, f] - vals[s, f]) ** 2).sum()
            assert r[fac]["readout_r2"][name] == pytest.approx(1 - res / ((vals[s, f] - vals[s, f].mean()) ** 2).sum(),
                                                               abs=1e-9)
    for f, fac in enumerate(("x", "y", "background")):
        assert r["knn_r2"][fac] == pytest.approx(_knn_r2(mu, vals[:, f], seed), abs=1e-9)
    assert 0.5 < r["knn_r2"]["x"] < 1
    assert {k: r[k] for k in ("num_lines", "num_points", "seed", "num_readout")} == \
        dict(num_lines=2, num_points=4, seed=seed, num_readout=n)
    # 1 read-out batch, then 2 lines x 3 factors of 4 points
    assert n_calls == 7 and all(c.shape[0] == 4 for c in calls[1:n_calls])
    # the sweeps: the stream seed; per line three uniforms, a contrast background for position sweeps, the
    # swept factor on a grid over its range
    rng, ranges = np.random.default_rng(seed), (CFG.x_range, CFG.y_range, CFG.background_range)
    for f, fac in enumerate(("x", "y", "background")):
        rho, prho = [], []
        for line in range(2):
            v = np.stack([rng.uniform(*rg, size=1).repeat(4) for rg in ranges], 1)
            if f != 2:
                v[:, 2] = _contrast_background(rng, margin)
            v[:, f] = np.linspace(*ranges[f], 4)
            img = torch.from_numpy(render_disks(v[:, 0], v[:, 1], v[:, 2], CFG)).permute(0, 3, 1, 2) * 2 - 1
            x = calls[1 + 2 * f + line]
            torch.testing.assert_close(x, img.float())
            mu = code(x)[0].double().numpy()
            rho.append([_spearman(np.arange(4), mu[:, j]) if np.ptp(mu[:, j]) > 0 else 0.0 for j in range(3)])
            if f != 2:  # the projection on the read-out of the sweep's own side
                prho.append(_spearman(np.arange(4), np.concatenate([mu, np.ones((4, 1))], 1) @ beta[v[0, 2] > 0.5, f]))
        axis = int(np.argmax(np.abs(rho).mean(0)))
        assert r[fac]["axis"] == axis
        assert r[fac]["mean_abs_spearman"] == pytest.approx(np.abs(rho)[:, axis].mean(), abs=1e-9)
        if f != 2:
            assert r[fac]["readout_spearman"] == pytest.approx(np.mean(prho), abs=1e-9)
            assert r[fac]["readout_min_spearman"] == pytest.approx(np.min(prho), abs=1e-9)


def test_axis_measures_of_a_hand_made_code_with_a_constant_axis():
    """Code (0.7, I_bg, c_x, -c_y): each factor on its own axis, y decreasing; axis 0 never moves, so its
    rho is 0 (not NaN, not 1) and is never chosen."""
    m = tiny_model(dtype=torch.float32)

    def code(x):
        cx, cy, bg = _measured(x)
        mu = np.stack([np.full_like(bg, 0.7), bg, np.round(cx, 6), -np.round(cy, 6)], 1)
        return torch.from_numpy(mu).float(), torch.zeros(x.shape[0], 4)

    m.posterior = code
    r = A.posterior_mean_monotonicity(m, num_lines=3, num_points=8, num_readout=100)  # steps < 1 px
    for fac, axis in (("x", 2), ("y", 3), ("background", 1)):
        assert r[fac]["axis"] == axis
        assert r[fac]["mean_abs_spearman"] == pytest.approx(1.0)
        assert r[fac]["sign_consistent"] == 1.0 and r[fac]["fraction_strictly_monotone"] == 1.0
    for fac in ("x", "y"):  # the read-out is exact on each side: c_x, c_y are columns of the code
        assert r[fac]["readout_spearman"] == pytest.approx(1.0) and r[fac]["readout_fraction_strictly_monotone"] == 1.0
        assert min(r[fac]["readout_r2"].values()) > 0.99


def test_plateaus_are_not_strictly_monotone_and_rho_counts_ties():
    """Code (min(c_x, 4), -min(c_y, 4), I_bg): along a position sweep the code stops moving past 4 px:
    monotone but not strictly (in either direction); rho is the tied-rank rho computed here."""
    m = tiny_model(dtype=torch.float32)
    sweeps = []

    def code(x):
        cx, cy, bg = _measured(x)
        mu = np.stack([np.minimum(np.round(cx, 6), 4.0), -np.minimum(np.round(cy, 6), 4.0), bg], 1)
        if x.shape[0] == 6:  # a sweep: 2 of x, then 2 of y, then 2 of the background
            sweeps.append(mu)
        return torch.from_numpy(mu).float(), torch.zeros(x.shape[0], 3)

    m.posterior = code
    r = A.posterior_mean_monotonicity(m, num_lines=2, num_points=6, num_readout=60)
    for f, fac in enumerate(("x", "y")):
        assert r[fac]["axis"] == f and r[fac]["fraction_strictly_monotone"] == 0.0
        rho = [_spearman(np.arange(6), s[:, f]) for s in sweeps[2 * f:2 * f + 2]]
        assert len(rho) == 2 and all(0.5 < abs(v) < 1 for v in rho)
        assert r[fac]["mean_abs_spearman"] == pytest.approx(np.mean(np.abs(rho)), abs=1e-9)
    assert r["background"]["fraction_strictly_monotone"] == 1.0


def test_a_code_blind_to_position_has_constant_projections_rho_zero():
    """Code (I_bg, I_bg^2): along a position sweep the code, and so its read-out projection, is constant:
    rho 0 by definition (no order to follow), for the read-out and for every axis."""
    m = tiny_model(dtype=torch.float32)

    def code(x):
        bg = _measured(x)[2]
        return torch.from_numpy(np.stack([bg, bg ** 2], 1)).float(), torch.zeros(x.shape[0], 2)

    m.posterior = code
    r = A.posterior_mean_monotonicity(m, num_lines=3, num_points=4, num_readout=100)
    for fac in ("x", "y"):
        assert r[fac]["readout_spearman"] == 0.0 and r[fac]["readout_min_spearman"] == 0.0
        assert r[fac]["readout_fraction_strictly_monotone"] == 0.0
        assert r[fac]["mean_abs_spearman"] == 0.0 and r[fac]["axis"] == 0
        assert r[fac]["fraction_strictly_monotone"] == 0.0
    assert r["background"]["mean_abs_spearman"] == pytest.approx(1.0)


def test_position_transfer_values_with_known_samples():
    """Conditional samples: half copies of the guide, half flat (no disk); unconditional: one fixed disk.
    The guides replay the seed's stream; a background range on one side of the foreground only ever gives
    dark backgrounds."""
    m = tiny_model(dtype=torch.float32)
    flat = torch.full((1, 1, 8, 8), 0.0)  # background 0.5 = the foreground: no disk
    fixed = torch.from_numpy(render_disks(np.array([2.0]), np.array([5.0]), np.array([0.05]), CFG)).permute(0, 3, 1, 2)
    fixed = fixed.float() * 2 - 1
    m.conditional_sample = lambda g, n, **kw: torch.cat([g.repeat(n // 2, 1, 1, 1), flat.repeat(n - n // 2, 1, 1, 1)])
    m.sample_unconditional = lambda n, **kw: fixed.repeat(n, 1, 1, 1)
    cfg = disks_geometry(8).__class__(CFG, background_range=(0.0, 0.3)).config
    seed, G, S, margin = 5, 3, 4, 0.25
    r = A.disk_position_transfer(m, disks_geometry(8).__class__(CFG, background_range=(0.0, 0.3)),
                                 num_guides=G, num_samples=S, min_contrast=margin, seed=seed)
    rng = np.random.default_rng(seed)
    cx, cy = rng.uniform(*cfg.x_range, G), rng.uniform(*cfg.y_range, G)
    bg = [_contrast_background(rng, margin, *cfg.background_range) for _ in range(G)]
    assert r["guide_background"] == pytest.approx(bg, abs=0) and max(bg) <= 0.25
    assert np.abs(np.array(r["guide_centres"]) - np.stack([cx, cy], 1)).max() < 0.2  # 8 px disks
    assert r["samples_without_disk"] == G * (S - S // 2)
    assert r["cond_abs_error_px"] == 0.0 and r["cond_abs_error_per_guide"] == [0.0] * G
    unc = A.disk_centres(fixed)[0]
    expect = np.mean([np.abs(unc - np.array(c)).mean() for c in r["guide_centres"]])
    assert r["uncond_abs_error_px"] == pytest.approx(expect, abs=1e-12)
    assert (r["num_guides"], r["num_samples"], r["seed"]) == (G, S, seed)
    # no disk in any sample: the errors are NaN, not 0 and not a warning
    m.conditional_sample = lambda g, n, **kw: flat.repeat(n, 1, 1, 1)
    m.sample_unconditional = lambda n, **kw: flat.repeat(n, 1, 1, 1)
    r = A.disk_position_transfer(m, num_guides=2, num_samples=2)
    assert np.isnan(r["cond_abs_error_px"]) and np.isnan(r["uncond_abs_error_px"]) and r["samples_without_disk"] == 4
    # the default range allows both sides: the coin is replayed too
    m.conditional_sample = lambda g, n, **kw: g.repeat(n, 1, 1, 1)
    r = A.disk_position_transfer(m, num_guides=6, num_samples=1, min_contrast=0.3, seed=2)
    rng = np.random.default_rng(2)
    rng.uniform(size=12)
    assert r["guide_background"] == pytest.approx([_contrast_background(rng, 0.3) for _ in range(6)], abs=0)


def test_monotonicity_defaults_one_sided_backgrounds_and_messages():
    m = tiny_model(dtype=torch.float32)
    sizes, backgrounds = [], []

    def code(x):
        sizes.append(x.shape[0])
        cx, cy, bg = _measured(x)
        backgrounds.append(bg)
        return torch.from_numpy(np.stack([cx, cy, bg], 1)).float(), torch.zeros(x.shape[0], 3)

    m.posterior = code
    r = A.posterior_mean_monotonicity(m)  # 16 lines of 16 points, 2000 read-out disks, seed 0, margin 0.15
    assert {k: r[k] for k in ("num_lines", "num_points", "seed", "num_readout")} == \
        dict(num_lines=16, num_points=16, seed=0, num_readout=2000)
    assert sum(sizes[:8]) == 2000 and sizes[8:] == [16] * 48  # read-out in batches of 256, then the sweeps
    rr = np.random.default_rng([0, 1])
    rr.uniform(size=3 * 2000)
    bg = [_contrast_background(rr, 0.15) for _ in range(2000)]
    np.testing.assert_allclose(np.concatenate(backgrounds[:8]), bg, atol=1e-6)  # the image median is the background
    assert r["x"]["readout_r2"]["dark"] > 0.9
    # only bright backgrounds: the dark read-out is skipped (not fitted, not an error), the bright one kept
    sizes.clear()
    bright = disks_geometry(8).__class__(CFG, background_range=(0.7, 1.0))
    r = A.posterior_mean_monotonicity(m, bright, num_lines=2, num_points=3, num_readout=50)
    assert set(r["x"]["readout_r2"]) == {"bright"} and r["x"]["readout_r2"]["bright"] > 0.9
    for kw, name in ((dict(num_lines=0), "num_lines"), (dict(num_readout=0), "num_readout"),
                     (dict(num_points=2), "num_points"), (dict(num_points=3.0), "num_points")):
        with pytest.raises(ValueError, match=rf"\b{name}\b"):
            A.posterior_mean_monotonicity(m, **kw)
    r = A.posterior_mean_monotonicity(m, bright, num_lines=1, num_points=3, num_readout=20)  # 3 points suffice
    # 3 read-out disks cannot fit 3 latents and a bias on either side: the first position sweep names its side
    # a side needs more disks than the 3 latents + bias (an exactly determined fit has no R^2): with seed 5,
    # 9 disks put 4 on the dark side (too few), with seed 6, 10 disks put 5 (enough); the first sweep is dark
    with pytest.raises(ValueError, match="too few dark"):
        A.posterior_mean_monotonicity(m, num_lines=1, num_points=3, num_readout=9, seed=5)
    r = A.posterior_mean_monotonicity(m, num_lines=1, num_points=3, num_readout=10, seed=6)
    assert set(r["x"]["readout_r2"]) == {"dark", "bright"}
    for seed, n, dark in ((5, 9, 4), (6, 10, 5)):
        rr = np.random.default_rng([seed, 1])
        rr.uniform(size=3 * n)
        assert sum(_contrast_background(rr, 0.15) < 0.5 for _ in range(n)) == dark
    # a sweep over 0.2 px still has an order: its projection moves by about 0.2 px, and rho is 1, not 0
    narrow = disks_geometry(8).__class__(CFG, x_range=(3.9, 4.1))
    r = A.posterior_mean_monotonicity(m, narrow, num_lines=4, num_points=3, num_readout=100)
    assert r["x"]["readout_spearman"] == 1.0 and r["x"]["mean_abs_spearman"] == 1.0
    for seed in (2, 3):
        rng = np.random.default_rng(seed)
        rng.uniform(size=3)
        side = "bright" if _contrast_background(rng, 0.15) > 0.5 else "dark"
        assert side == ("bright" if seed == 2 else "dark")
        with pytest.raises(ValueError, match=f"num_readout=3 drew too few {side} backgrounds to fit the position read-out"):
            A.posterior_mean_monotonicity(m, num_lines=1, num_points=3, num_readout=3, seed=seed)
    assert r["num_points"] == 3


def test_position_transfer_forwards_sampler_settings_defaults_and_messages():
    m = tiny_model(dtype=torch.float32)
    seen = []

    def cond(g, n, **kw):
        seen.append((n, kw))
        return g.repeat(n, 1, 1, 1)

    def unc(n, **kw):
        seen.append((n, kw))
        return torch.full((n, 1, 8, 8), 0.0)

    m.conditional_sample, m.sample_unconditional = cond, unc
    r = A.disk_position_transfer(m, sampler="ddim", num_steps=3, seed=4)
    assert len(seen) == 9 and [n for n, _ in seen] == [16] * 9  # 8 guides, then the unconditional draw
    gens = {id(kw["generator"]) for _, kw in seen}
    assert len(gens) == 1 and seen[0][1]["generator"].initial_seed() == 4  # one stream, seeded
    assert all(kw["sampler"] == "ddim" and kw["num_steps"] == 3 for _, kw in seen)
    assert (r["num_guides"], r["num_samples"], r["seed"]) == (8, 16, 4)
    seen.clear()
    r = A.disk_position_transfer(m, min_contrast=0.5, num_guides=1, num_samples=1)  # 0.5 allowed
    assert r["seed"] == 0 and seen[0][1]["generator"].initial_seed() == 0
    assert r["guide_background"][0] in (0.0, 1.0)  # 0.5 away from the foreground: an end of the range
    for kw, name in ((dict(num_guides=0), "num_guides"), (dict(num_samples=0), "num_samples"),
                     (dict(min_contrast=0.51), "min_contrast")):
        with pytest.raises(ValueError, match=rf"\b{name}\b"):
            A.disk_position_transfer(m, **kw)
    # a foreground of 0.7: the centres are measured against it (at 0.5 the mask would be wrong)
    guides = []
    m.conditional_sample = lambda g, n, **kw: guides.append(g) or g.repeat(n, 1, 1, 1)
    m.sample_unconditional = lambda n, **kw: guides[0].repeat(n, 1, 1, 1)  # always the first guide
    fg7 = disks_geometry(8).__class__(CFG, foreground=0.7, background_range=(0.0, 0.3))
    r = A.disk_position_transfer(m, fg7, num_guides=3, num_samples=1, min_contrast=0.3, seed=1)
    rng = np.random.default_rng(1)
    cx, cy = rng.uniform(*CFG.x_range, 3), rng.uniform(*CFG.y_range, 3)
    bg = [_contrast_background(rng, 0.3, 0.0, 0.3, 0.7) for _ in range(3)]
    want = torch.from_numpy(render_disks(cx, cy, np.array(bg), fg7.config)).permute(0, 3, 1, 2).float() * 2 - 1
    torch.testing.assert_close(torch.cat(guides), want)  # the guides in [-1, 1]
    truth = np.array(r["guide_centres"])
    assert np.abs(truth - np.stack([cx, cy], 1)).max() < 0.2
    assert r["cond_abs_error_px"] == 0.0  # copies measured against the same foreground as their guide
    assert r["uncond_abs_error_px"] == pytest.approx(np.mean(np.abs(truth - truth[0]).mean(1)), abs=1e-12)
