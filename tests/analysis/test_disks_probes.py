"""Probes of disks models (diffrep.analysis.disks_probes): disk centres, position transfer, and the
posterior-mean read-out along factor sweeps."""

import numpy as np
import pytest
import torch

from diffrep.analysis import sami as A
from diffrep.data.disks import disks_geometry, render_disks
from helpers import tiny_sami as tiny_model


def test_disk_centres_recover_rendered_centres():
    rng = np.random.default_rng(0)
    for size in (16, 32):
        cfg = disks_geometry(size).config
        cx, cy = rng.uniform(*cfg.x_range, 64), rng.uniform(*cfg.y_range, 64)
        bg = np.where(rng.random(64) < 0.5, rng.uniform(0, 0.3, 64), rng.uniform(0.7, 1, 64))
        x = torch.from_numpy(render_disks(cx, cy, bg, cfg)).permute(0, 3, 1, 2) * 2 - 1
        c = A.disk_centres(x)
        assert np.abs(c - np.stack([cx, cy], 1)).max() < 0.15
    # background equal to the foreground: no disk to find
    flat = torch.from_numpy(render_disks(np.array([8.0]), np.array([8.0]), np.array([0.5]), disks_geometry(16).config))
    assert np.isnan(A.disk_centres(flat.permute(0, 3, 1, 2) * 2 - 1)).all()
    with pytest.raises(ValueError, match=r"\[N, 1, S, S\]"):
        A.disk_centres(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="NaN"):
        A.disk_centres(torch.full((1, 1, 8, 8), float("nan")))


def test_disk_position_transfer_tells_copying_from_ignoring_the_guide():
    m = tiny_model(dtype=torch.float32)
    cfg = disks_geometry(8).config
    rng = np.random.default_rng(1)

    def random_disks(n):
        img = render_disks(rng.uniform(*cfg.x_range, n), rng.uniform(*cfg.y_range, n), rng.uniform(0.8, 1, n), cfg)
        return torch.from_numpy(img).permute(0, 3, 1, 2).float() * 2 - 1

    m.sample_unconditional = lambda n, **kw: random_disks(n)
    m.conditional_sample = lambda g, n, **kw: g.repeat(n, 1, 1, 1)  # a perfect copy of the guide
    r = A.disk_position_transfer(m, num_guides=4, num_samples=8)
    assert r["cond_abs_error_px"] == pytest.approx(0.0, abs=1e-9)
    assert r["uncond_abs_error_px"] > 0.5 and r["samples_without_disk"] == 0
    m.conditional_sample = lambda g, n, **kw: random_disks(n)  # ignores the guide
    r = A.disk_position_transfer(m, num_guides=4, num_samples=64)
    assert r["cond_abs_error_px"] == pytest.approx(r["uncond_abs_error_px"], rel=0.35)
    with pytest.raises(ValueError, match="foreground"):
        A.disk_position_transfer(m, disks_geometry(8).__class__(cfg, background_range=(0.4, 0.6)))
    with pytest.raises(ValueError, match="min_contrast"):
        A.disk_position_transfer(m, min_contrast=0.0)


def test_monotonicity_readout_follows_a_polar_code_the_axis_measure_misses():
    m = tiny_model(dtype=torch.float32)

    def polar_code(x, rng=np.random.default_rng(0)):
        # Fig. 2E: the position code turns with the sign of the contrast; here dark backgrounds put
        # c_x on axis 0 and bright ones on axis 1, scaled by the contrast
        c = torch.from_numpy(np.nan_to_num(A.disk_centres(x) - 4.0))  # no disk at zero contrast
        bg = ((x.flatten(1).median(1).values + 1) / 2).double()
        k = (bg - 0.5).abs().unsqueeze(1)
        pos = torch.where((bg > 0.5).unsqueeze(1), c.flip(1), c) * k
        mu = torch.cat([pos, bg.unsqueeze(1)], 1) + 1e-6 * torch.from_numpy(rng.standard_normal((x.shape[0], 3)))
        return mu.float(), torch.zeros_like(mu).float()

    m.posterior = polar_code
    r = A.posterior_mean_monotonicity(m, num_lines=8, num_points=6, num_readout=400)
    for f in ("x", "y"):
        assert r[f]["readout_spearman"] == pytest.approx(1.0) and r[f]["readout_min_spearman"] == pytest.approx(1.0)
        assert r[f]["readout_fraction_strictly_monotone"] == 1.0
        assert min(r[f]["readout_r2"].values()) > 0.8  # below 1: the code shrinks with contrast
        assert r[f]["mean_abs_spearman"] < 0.9  # the best single axis carries the factor on one side only
    assert r["background"]["mean_abs_spearman"] == pytest.approx(1.0)

    # a code blind to the position: the read-out fits noise, the sweeps do not follow it
    g = torch.Generator().manual_seed(0)
    m.posterior = lambda x: (torch.cat([polar_code(x)[0][:, 2:], torch.randn(x.shape[0], 2, generator=g)], 1),
                             torch.zeros(x.shape[0], 3))
    r = A.posterior_mean_monotonicity(m, num_lines=8, num_points=6, num_readout=400)
    assert abs(r["x"]["readout_spearman"]) < 0.4 and max(r["x"]["readout_r2"].values()) < 0.2
    with pytest.raises(ValueError, match="num_readout"):
        A.posterior_mean_monotonicity(m, num_lines=2, num_points=4, num_readout=3)
    with pytest.raises(ValueError, match="num_readout"):
        A.posterior_mean_monotonicity(m, num_readout=0)
