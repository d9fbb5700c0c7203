"""scripts/diagnose_multibeta_phase2.py (fast): the regressions against independent computations (numpy least
squares, hand-made neighbours), the head errors against a direct evaluation of the heads, the chain trace against
``denoise``. The real report: benches/results/multibeta_phase2_diagnosis_*.json."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import load_script

ROOT = Path(__file__).resolve().parents[2]


def _load():
    return load_script("diagnose_multibeta_phase2")


def test_ridge_r2_equals_least_squares_and_closed_forms():
    dm = _load()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 4, generator=g, dtype=torch.float64)
    w = torch.randn(4, 3, generator=g, dtype=torch.float64)
    y = x @ w + 0.5 * torch.randn(200, 3, generator=g, dtype=torch.float64) + 2.0
    xf, yf, xe, ye = x[:120], y[:120], x[120:], y[120:]
    got = dm.ridge_r2(xf, yf, xe, ye, lam=0.0)
    a = np.c_[xf.numpy(), np.ones(120)]
    coef = np.linalg.lstsq(a, yf.numpy(), rcond=None)[0]
    pred = np.c_[xe.numpy(), np.ones(80)] @ coef
    sse = ((ye.numpy() - pred) ** 2).sum()
    sst = ((ye.numpy() - ye.numpy().mean(0)) ** 2).sum()
    assert got["r2"] == pytest.approx(1 - sse / sst, rel=1e-9)
    assert got["mse"] == pytest.approx(sse / 80, rel=1e-9)
    assert dm.ridge_r2(xf, xf @ w, xe, xe @ w, lam=0.0)["r2"] == pytest.approx(1.0, abs=1e-9)  # exact linear map
    # a heavy penalty shrinks every weight to 0: the prediction is the fit mean, R^2 = -n (mean shift)^2 / SST
    far = dm.ridge_r2(xf, yf, xe, ye, lam=1e9)
    shift = (yf.mean(0) - ye.mean(0)).pow(2).sum() * 80
    assert far["r2"] == pytest.approx(1 - (sst + float(shift)) / sst, abs=1e-6)
    # a moderate penalty: the closed form (Xc^T Xc + lam tr(Xc^T Xc) / p I)^-1 Xc^T Yc, p = 4 inputs
    xc, yc = xf.numpy() - xf.numpy().mean(0), yf.numpy() - yf.numpy().mean(0)
    g = xc.T @ xc
    wr = np.linalg.solve(g + 0.3 * np.trace(g) / 4 * np.eye(4), xc.T @ yc)
    pred = (xe.numpy() - xf.numpy().mean(0)) @ wr + yf.numpy().mean(0)
    want = 1 - ((ye.numpy() - pred) ** 2).sum() / sst
    assert dm.ridge_r2(xf, yf, xe, ye, lam=0.3)["r2"] == pytest.approx(want, rel=1e-9)
    with pytest.raises(ValueError, match="same number of rows"):
        dm.ridge_r2(xf, yf[:5], xe, ye)


def test_knn_r2_by_hand():
    dm = _load()
    xf = torch.tensor([[0.0], [1.0], [10.0], [11.0]])
    yf = torch.tensor([[0.0], [2.0], [20.0], [22.0]])
    xe = torch.tensor([[0.2], [10.9]])
    ye = torch.tensor([[1.0], [21.0]])
    # k = 2: the neighbours of 0.2 are 0 and 1 (mean 1), of 10.9 are 11 and 10 (mean 21): exact
    assert dm.knn_r2(xf, yf, xe, ye, k=2)["r2"] == pytest.approx(1.0)
    # k = 1: predictions 0 and 22; SSE = 1 + 1, SST = 200
    assert dm.knn_r2(xf, yf, xe, ye, k=1)["r2"] == pytest.approx(1 - 2 / 200)
    with pytest.raises(ValueError, match="k must"):
        dm.knn_r2(xf, yf, xe, ye, k=5)


def _tiny_denoiser():
    from diffrep.methods.multibeta import LatentDenoiser, LatentDenoiserConfig

    torch.manual_seed(0)
    d = LatentDenoiser(LatentDenoiserConfig(latent_dim=3, num_steps=5, hidden=16, depth=1))
    with torch.no_grad():
        for p in d.parameters():
            p.add_(0.1 * torch.randn_like(p))
    d.set_schedule(torch.tensor([0.05, 0.2, 0.4, 0.6, 0.8, 1.0]))
    return d.eval()


def test_head_errors_equal_a_direct_evaluation():
    dm = _load()
    d = _tiny_denoiser()
    g = torch.Generator().manual_seed(1)
    f_t, f_prev, noise = (torch.randn(50, 3, generator=g) for _ in range(3))
    out = dm.head_errors(d, f_t, f_prev, 3, noise)
    z = f_t + 0.6 * noise  # sigma_3 = 0.6
    with torch.no_grad():
        e, dl = d.net(z, torch.full((50,), 3 * 0.2))
    delta = f_prev - f_t
    assert out["eps_rel"] == pytest.approx(float((e - noise).pow(2).sum() / noise.pow(2).sum()), rel=1e-5)
    assert out["delta_rel"] == pytest.approx(float((dl - delta).pow(2).sum() / delta.pow(2).sum()), rel=1e-5)
    assert out["delta_sq"] == pytest.approx(float(delta.pow(2).sum(1).mean()), rel=1e-6)
    assert torch.allclose(out["z_t"], z)


def test_chain_trace_runs_the_configured_sampler():
    dm = _load()
    d = _tiny_denoiser()
    g = torch.Generator().manual_seed(2)
    z, f0 = torch.randn(40, 3, generator=g), torch.randn(40, 3, generator=g)
    for cfg in (dict(sampler="alg2"), dict(sampler="deterministic", deterministic_noise="eps_hat")):
        d.config = dataclasses.replace(d.config, **cfg)
        out = dm.chain_trace(d, z.clone(), 4, f0, trace_every=2, generator=torch.Generator().manual_seed(3))
        ref = d.denoise(z.clone(), 0.8, 0.0, generator=torch.Generator().manual_seed(3))
        assert torch.equal(out["final"], ref)
        assert [i for i, _ in out["trace"]] == [4, 2, 0]
        want = float((ref.double() - f0.double()).pow(2).sum() / f0.double().pow(2).sum())
        assert out["sq_dist_to_f0"] == pytest.approx(want, rel=1e-9)
        h = 20
        r = 0.5 * (dm.ridge_r2(ref[:h], f0[:h], ref[h:], f0[h:])["r2"] + dm.ridge_r2(ref[h:], f0[h:], ref[:h], f0[:h])["r2"])
        assert out["trace"][-1][1] == pytest.approx(r, rel=1e-12)


def test_bad_arguments_are_refused_before_the_work(tmp_path, capsys):
    """A beta outside [0, B] was a traceback from the encoder and a head index outside 1..N failed after the whole
    information table; both are now refused at once (exit 2) on a saved phase-2 pipeline, as is a missing folder."""
    from diffrep.methods.multibeta import MultiBeta, multibeta_config

    dm = _load()
    cfg = multibeta_config(image_size=32, in_channels=1, latent_dim=3, num_steps=5,
                           vae={"hidden": 16, "beta_embed_dim": 8}, denoiser={"hidden": 16, "depth": 1})
    MultiBeta(cfg).set_phase(2).save_pretrained(tmp_path / "saved" / "multibeta")
    MultiBeta(cfg).save_pretrained(tmp_path / "p1" / "multibeta")
    load = ["--load-dir", str(tmp_path / "saved")]
    cases = [(["--load-dir", str(tmp_path / "missing")], "no multibeta/config.json there"),
             (["--load-dir", str(tmp_path / "p1")], "is in phase 1, not after phase 2"),
             (load + ["--betas", "0.5,1.2"], "--betas must be betas in [0, B=1], got [0.5, 1.2]"),
             (load + ["--start-betas", "-0.1"], "--start-betas must be betas in [0, B=1]"),
             (load + ["--head-indices", "1,6"], "--head-indices must be grid indices in 1..N=5, got [1, 6]"),
             (load + ["--head-indices", "0"], "--head-indices must be grid indices in 1..N=5"),
             (load + ["--num-fit", "4"], "must be >= 16"),
             (load + ["--betas", "a"], "numbers separated by commas")]
    for argv, msg in cases:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            dm.main(argv)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and msg in err and "Traceback" not in err, (argv, err)
