"""Value tests of every term of SAMI's objective (Eq. 10) and its options, against hand-derived
numbers and independent computations: a flipped sign, a changed constant or a changed reduction in
any term fails here (issue 17, "Tests that catch wrong maths")."""

from __future__ import annotations

import math

import pytest
import torch

from diffrep.methods.sami import SAMI
from diffrep.methods.sami_guidance import expected_log_posterior, log_q
from helpers import sami_fixed_draws as _fixed, sami_images as images, tiny_sami as tiny_model, tiny_sami_config




class ConstEncoder(torch.nn.Module):
    """mu, logvar fixed per call (the same for every image): the guidance is zero, the KL hand-computable."""

    def __init__(self, mu, logvar):
        super().__init__()
        self.mu = torch.nn.Parameter(torch.as_tensor(mu, dtype=torch.float64))
        self.lv = torch.nn.Parameter(torch.as_tensor(logvar, dtype=torch.float64))

    def forward(self, x):
        B = x.shape[0]
        return self.mu.expand(B, -1) + 0 * x.flatten(1)[:, :1], self.lv.expand(B, -1) + 0 * x.flatten(1)[:, :1]


def _const(mu=(1.0, 0.0, -2.0), lv=(0.0, 1.0, -1.0), **kw):
    m = tiny_model(**kw)
    m.encoder = ConstEncoder(mu, lv)
    return m


def _kl_hand(mu, lv):
    return [0.5 * (m_ ** 2 + math.exp(l_) - l_ - 1) for m_, l_ in zip(mu, lv)]


def test_kl_term_by_hand_and_its_reductions():
    mu, lv = (1.0, 0.0, -2.0), (0.0, 1.0, -1.0)
    per_dim = _kl_hand(mu, lv)  # 0.5, 0.5 (e - 2), 0.5 (4 + 1/e)
    m = _const(mu, lv, kl_weight=0.25)
    out = m.loss(images(), **_fixed(m))
    assert float(out["kl"]) == pytest.approx(sum(per_dim), rel=1e-12)
    # the guidance is zero (sigma and mu do not depend on x): loss_x is the unguided error
    assert float(out["loss_x"]) == pytest.approx(float(out["mse_uncond"]), rel=1e-12)
    assert float(out["loss"].detach()) == pytest.approx(float(out["loss_x"]) + 0.25 * sum(per_dim), rel=1e-12)
    mm = _const(mu, lv, kl_weight=0.25, kl_reduction="mean")
    assert float(mm.loss(images(), **_fixed(mm))["kl"]) == pytest.approx(sum(per_dim) / 3, rel=1e-12)


def test_free_bits_floor_each_dimension_of_the_batch_mean():
    mu, lv = (1.0, 0.0, -2.0), (0.0, 1.0, -1.0)
    per_dim = _kl_hand(mu, lv)  # 0.5, 0.359, 2.184
    m = _const(mu, lv, free_bits=0.45)
    out = m.loss(images(), **_fixed(m))
    assert float(out["kl"]) == pytest.approx(sum(max(k, 0.45) for k in per_dim), rel=1e-12)
    # below the floor the KL sends no gradient to that dimension
    m2 = _const(mu, lv, free_bits=0.45, kl_weight=1.0)
    k2 = m2.loss(images(), **_fixed(m2))
    (g_lv,) = torch.autograd.grad(k2["loss"] - k2["loss_x"], [m2.encoder.lv])
    # d KL_j / d lv_j = 0.5 (e^lv - 1), except the floored dim 1
    want = [0.5 * (math.exp(lv[0]) - 1), 0.0, 0.5 * (math.exp(lv[2]) - 1)]
    torch.testing.assert_close(g_lv, torch.tensor(want, dtype=torch.float64), rtol=1e-10, atol=1e-12)


def test_pixel_reduction_sum_is_D_times_mean_and_mse_uncond_by_hand():
    fx = None
    vals = {}
    for red in ("mean", "sum"):
        m = tiny_model(kl_weight=0.0, pixel_reduction=red)
        fx = fx or _fixed(m)
        vals[red] = m.loss(images(), **fx)
    assert float(vals["sum"]["loss_x"]) == pytest.approx(64 * float(vals["mean"]["loss_x"]), rel=1e-12)
    assert float(vals["sum"]["mse_uncond"]) == pytest.approx(64 * float(vals["mean"]["mse_uncond"]), rel=1e-12)
    m = tiny_model(kl_weight=0.0)
    x0 = images()
    ab = m.schedule.alphas_cumprod[fx["t"]].double().reshape(-1, 1, 1, 1)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * fx["noise"]
    with torch.no_grad():
        eps = m.denoiser(x_t, fx["t"])
    assert float(vals["mean"]["mse_uncond"]) == pytest.approx(float(((fx["noise"] - eps) ** 2).mean()), rel=1e-12)


def test_lambda_weights_multiply_each_example():
    m = tiny_model(kl_weight=0.0)
    fx = _fixed(m)
    x0 = images()
    per = []
    for b in range(3):  # per-example guided errors, one example at a time
        sub = dict(t=fx["t"][b:b + 1], noise=fx["noise"][b:b + 1], z_noise=fx["z_noise"][:, b:b + 1])
        per.append(float(m.loss(x0[b:b + 1], **sub)["loss_x"]))
    lam = [float(i + 1) for i in range(20)]
    mc = tiny_model(kl_weight=0.0, lambda_t="custom", lambda_values=tuple(lam))
    got = float(mc.loss(x0, **fx)["loss_x"])
    assert got == pytest.approx(sum(lam[int(t)] * p for t, p in zip(fx["t"], per)) / 3, rel=1e-10)
    assert float(m.loss(x0, **fx)["loss_x"]) == pytest.approx(sum(per) / 3, rel=1e-10)


def test_elbo_lambda_with_the_small_reverse_variance():
    m = tiny_model(lambda_t="elbo", sample_variance="fixed_small")
    s = m.schedule
    t = torch.tensor([0, 1, 7, 19])
    b, a, ab = s.betas.double(), s.alphas.double(), s.alphas_cumprod.double()
    ab_prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])
    var = b * (1 - ab_prev) / (1 - ab)
    var[0] = b[0]  # t = 0: beta (the posterior variance is 0 there)
    want = b[t] ** 2 / (2 * var[t] * a[t] * (1 - ab[t]))
    torch.testing.assert_close(m.lambda_weights(t).double(), want, rtol=1e-6, atol=0)


def test_kl_annealing_schedule_values():
    m = tiny_model(kl_weight=2.0, kl_anneal_steps=10, kl_anneal_start=1e-4)
    # beta_k = beta r^(1 - k/K)
    for k in (0, 3, 9):
        assert m.kl_weight_at(k) == pytest.approx(2.0 * 1e-4 ** (1 - k / 10), rel=1e-12)
    assert m.kl_weight_at(10) == 2.0 and tiny_model(kl_weight=2.0).kl_weight_at(0) == 2.0
    with pytest.raises(ValueError, match="step"):
        m.kl_weight_at(-1)


def test_uniform_and_band_timesteps_cover_their_ranges():
    m = tiny_model()
    t = m.sample_timesteps(20000, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(t, minlength=20).double()
    assert counts.shape == (20,) and bool((counts > 800).all()) and int(t.max()) == 19
    mb = tiny_model(t_sampling="band", t_band=(4, 6), t_band_frac=1.0)
    tb = mb.sample_timesteps(5000, generator=torch.Generator().manual_seed(0))
    assert set(tb.tolist()) == {4, 5}
    mbeta = tiny_model(t_sampling="beta", t_beta_a=1.0)  # a = 1: uniform
    tu = mbeta.sample_timesteps(40000, generator=torch.Generator().manual_seed(1))
    assert abs(float(tu.double().mean()) - 9.5) < 0.1 and int(tu.min()) == 0 and int(tu.max()) == 19


def test_guidance_coefficient_values():
    m = tiny_model()
    t = torch.tensor([0, 9, 19])
    x = images(3)
    ab, b = m.schedule.alphas_cumprod.double(), m.schedule.betas.double()
    k = m.guidance_coefficient(t, x).flatten()
    torch.testing.assert_close(k, (1 - ab[t]).sqrt())
    kl = m.guidance_coefficient(t, x, literal=True).flatten()
    torch.testing.assert_close(kl, (1 - ab[t]).sqrt() * (1 - b[t]).sqrt() / b[t].sqrt())
    # guided_eps = eps_theta - scale k g, with the plain k even when alg1_literal is set
    ml = tiny_model(alg1_literal=True)
    z = torch.randn(3, 3, dtype=torch.float64)
    g, _ = ml.guidance(x, z)
    with torch.no_grad():
        eps = ml.denoise(x, t)
    torch.testing.assert_close(ml.guided_eps(x, t, z, scale=0.5), eps - 0.5 * (1 - ab[t]).sqrt().reshape(-1, 1, 1, 1) * g)


def test_expected_log_posterior_by_hand():
    # d = 1: E_{z ~ N(1, 4)} log N(z; 0, 1) = -0.5 ((1 + 4) / 1 + 0 + log 2 pi)
    one = torch.ones(1, 1, dtype=torch.float64)
    v = expected_log_posterior(one, torch.full((1, 1), math.log(4.0), dtype=torch.float64), 0 * one, 0 * one)
    assert float(v) == pytest.approx(-0.5 * (5 + math.log(2 * math.pi)), rel=1e-12)
    # mu = 2, var = 2: -0.5 ((1 - 2)^2 + 4) / 2 - 0.5 log 2 - 0.5 log 2 pi
    v2 = expected_log_posterior(one, torch.full((1, 1), math.log(4.0), dtype=torch.float64), 2 * one,
                                torch.full((1, 1), math.log(2.0), dtype=torch.float64))
    assert float(v2) == pytest.approx(-0.5 * (5 / 2 + math.log(2.0) + math.log(2 * math.pi)), rel=1e-12)
    # and the masked forms of log_q: axis 0 only, the log-det over both or one axis
    mu, lv = torch.zeros(1, 2, dtype=torch.float64), torch.tensor([[0.0, math.log(9.0)]], dtype=torch.float64)
    z = torch.tensor([[2.0, 5.0]], dtype=torch.float64)
    c = math.log(2 * math.pi)
    assert float(log_q(z, mu, lv, (0,))) == pytest.approx(-0.5 * (4 + c) - 0.5 * (math.log(9.0) + c), rel=1e-12)
    assert float(log_q(z, mu, lv, (0,), logdet="axes")) == pytest.approx(-0.5 * (4 + c), rel=1e-12)
    assert float(log_q(z, mu, lv)) == pytest.approx(-0.5 * (4 + c) - 0.5 * (25 / 9 + math.log(9.0) + c), rel=1e-12)


def test_detach_z_cuts_only_the_path_through_z():
    m = tiny_model(kl_weight=0.0)
    md = SAMI(tiny_sami_config(kl_weight=0.0, detach_z=True)).double()
    md.load_state_dict(m.state_dict())
    fx = _fixed(m)
    x0 = images()
    a, b = m.loss(x0, **fx), md.loss(x0, **fx)
    assert float(a["loss"].detach()) == pytest.approx(float(b["loss"].detach()), rel=1e-12)
    ga = torch.autograd.grad(a["loss"], [m.encoder.mean_head.weight])[0]
    gb = torch.autograd.grad(b["loss"], [md.encoder.mean_head.weight])[0]
    assert float((ga - gb).abs().max()) > 1e-9


def test_posterior_mean_encode_and_draws():
    m = tiny_model(sigma_min=0.0)
    x = images(2)
    mu, lv = m.posterior(x)
    torch.testing.assert_close(m.encode(x), mu.detach())
    eps = torch.randn((4, 2, 3), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    z = m.draw_latents(mu, lv, 4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(z, mu + (0.5 * lv).exp() * eps)
    ms = tiny_model(sigma_min=0.3)
    _, lvs = ms.posterior(x)
    torch.testing.assert_close(lvs.exp(), ms.encoder(x)[1].exp() + 0.09)
