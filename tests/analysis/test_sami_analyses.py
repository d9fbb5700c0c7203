"""The SAMI paper's analyses (diffrep.analysis) on tiny models and on synthetic codes."""

import math

import numpy as np
import pytest
import torch

from diffrep.analysis import sami as A
from helpers import sami_images as images, tiny_sami as tiny_model


def test_variability_matches_trace_of_covariance():
    g = torch.Generator().manual_seed(0)
    sd = torch.linspace(0.1, 1.0, 16, dtype=torch.float64)
    x = torch.randn(20000, 16, generator=g, dtype=torch.float64) * sd
    v = A.variability(x)
    assert v["v_per_pixel"] == pytest.approx(float((sd ** 2).sum() / 16), rel=0.03)
    assert v["v_sum"] == pytest.approx(float((sd ** 2).sum()), rel=0.03)


def test_global_axes_zero_for_constant_sigma_and_positive_otherwise():
    m = tiny_model()
    with torch.no_grad():
        m.encoder.var_head.weight.zero_()  # bias-free: sigma = softplus(0) for every x
    r = A.global_axes(m, images(4), num_noise=1)
    assert r["N"] == [0.0, 0.0, 0.0] and all(math.isinf(c) for c in r["coherence"])
    r2 = A.global_axes(tiny_model(), images(4), num_noise=1)
    assert all(n > 0 for n in r2["N"]) and sorted(r2["order_by_coherence"]) == [0, 1, 2]


def test_sami_fid_protocols():
    m = tiny_model(sampler="ddim")
    r = A.fid(m, images(6), lambda x: x.flatten(1)[:, :4].double(), protocol="both", batch_size=3)
    assert r["fid_prior"] >= 0 and r["fid_reconstruction"] >= 0


def test_analyses_run_on_a_tiny_model():
    m = tiny_model(sampler="ddim")
    x = images(4)
    v = A.variability_reduction(m, x[:2], 4, reference=x, seed=0)
    assert len(v["v_cond_per_guide"]) == 2 and v["v_uncond"] > 0 and v["v_data"] > 0
    s = A.posterior_variance_spectrum(m, x[:1], [0, 10, 19], num_noise=4)
    assert np.array(s["var"]).shape == (3, 3) and len(s["var_clean"]) == 3
    p = A.perturb_low_variance_axes(m, x[:1], (-1.0, 0.0, 1.0))
    assert p["rows"].shape == (2, 3, 1, 8, 8) and p["pair"].shape == (3, 3, 1, 8, 8)
    gm = A.guidance_magnitude(m, x[:1])
    assert len(gm["t"]) == 5 and all(r >= 0 for r in gm["ratio"])
    st = A.latent_straightness(m, torch.stack([x, x.flip(0)]).unsqueeze(0).flatten(1, 2)[:, :4])
    assert -1 <= st["latent_straightness"] <= 1
