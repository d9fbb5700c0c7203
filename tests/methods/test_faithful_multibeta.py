"""Faithfulness review of the denoising multi-beta VAE against Uppal et al. (2025) (docs/methods/multibeta.md).

Every expected value here is computed inside the test, independently of the module under test: the
networks are replaced by closed-form stand-ins, the tables are rebuilt from their documented initial values,
the Gaussian terms come from ``torch.distributions``, and the samplers are re-run by hand.

- Eq. 4 (maximised, so the loss is -L): per example (B - beta) (-log N(x; g, s_beta^2 I)) + beta KL(N(f, sigma_beta^2 I)
  || N(0, I)), averaged over the batch (one beta per example, Algorithm 1), for B = 1 and B = 2;
- sigma_beta and s_beta on the Algorithm 1 grid beta_i = i B / N (N + 1 values); off the grid log sigma^2 is
  interpolated linearly;
- the weighting extremes (Prop. 3.1 / 3.2): at beta = 0 nothing reaches the KL, at beta = B nothing reaches the
  decoder g(., B) or s_B;
- the beta-VAE form of Eq. 4 (divide by B - beta);
- Eq. 19 on a stand-in network with the encoder known in closed form (tau = one grid step, the Delta target
  f(x, t - tau) - f(x, t), the eps target, w(t) = 1 or the ELBO weight);
- Algorithm 2 with exact heads: the sign consistent with Eq. 19 carries f(x, t) to f(x, 0), the printed sign
  does not; the stochastic step; the ancestral variant equals brute-force Gaussian conditioning; ``sample``
  starts from N(0, I) and visits t = T, T - tau, ..., tau once each.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.distributions import Normal, kl_divergence

from diffrep.methods.multibeta import (LatentDenoiser, LatentDenoiserConfig, MultiBeta, MultiBetaVAE, MultiBetaVAEConfig,
                                       beta_grid, multibeta_config)

D_LAT = 3
SIDE = 32


class LinEnc(nn.Module):
    """f(x, beta) = (1 - beta / 2) W x + beta^2 c (a closed form, with a parameter so gradients can be read)."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(11)
        self.W = nn.Parameter(0.02 * torch.randn(D_LAT, SIDE * SIDE, generator=g, dtype=torch.float64))
        self.c = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)

    def forward(self, x, beta):
        b = beta.to(torch.float64)[:, None]
        return (1 - b / 2) * (x.flatten(1) @ self.W.T) + b**2 * self.c


class LinDec(nn.Module):
    """g(z, beta) = (1 + beta) U z, reshaped to an image."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(12)
        self.U = nn.Parameter(0.3 * torch.randn(SIDE * SIDE, D_LAT, generator=g, dtype=torch.float64))

    def forward(self, z, beta):
        b = beta.to(torch.float64)[:, None]
        return ((1 + b) * (z @ self.U.T)).reshape(z.shape[0], 1, SIDE, SIDE)


def vae(N=10, B=1.0, **kw) -> MultiBetaVAE:
    cfg = MultiBetaVAEConfig(image_size=SIDE, in_channels=1, latent_dim=D_LAT, hidden=8, beta_embed_dim=8,
                             num_steps=N, beta_max=B, **kw)
    m = MultiBetaVAE(cfg).double()
    m.encoder, m.decoder = LinEnc(), LinDec()
    return m


def init_sigma2(N, B=1.0, top=1.0, s2min=1e-4):
    """The documented initial table: sigma_0^2 = sigma2_min + 1e-6, sigma_i^2 = sigma2_min + (i / N) top."""
    s2 = s2min + torch.arange(N + 1, dtype=torch.float64) / N * top
    s2[0] = s2min + 1e-6
    return s2


def imgs(n, seed=1):
    return torch.rand(n, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1


def lat_noise(n, seed=2):
    return torch.randn(n, D_LAT, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def brute_eq4(m, x, beta, eps, log_s2, sigma2):
    """-L_beta per example from torch.distributions, with tables given by the test."""
    B, N = m.config.beta_max, m.config.num_steps
    idx = torch.round(beta / B * N).long()
    sig = sigma2[idx].sqrt()
    s = torch.exp(0.5 * log_s2[idx])
    with torch.no_grad():
        f = LinEnc.forward(m.encoder, x, beta)
        z = f + sig[:, None] * eps
        g = LinDec.forward(m.decoder, z, beta)
    log_lik = Normal(g, s[:, None, None, None].expand_as(g)).log_prob(x).flatten(1).sum(1)
    kl = kl_divergence(Normal(f, sig[:, None].expand_as(f)), Normal(torch.zeros_like(f), torch.ones_like(f))).sum(1)
    return (B - beta) * (-log_lik) + beta * kl, -log_lik, kl


# -- phase 1: Eq. 2-4, Algorithm 1 ---------------------------------------------------------------------------
@pytest.mark.parametrize("B", [1.0, 2.0])
def test_eq4_is_the_batch_mean_of_the_weighted_nll_and_kl(B):
    N = 10
    m = vae(N, B)
    log_s2 = torch.linspace(-1.0, 0.5, N + 1, dtype=torch.float64)
    with torch.no_grad():
        m.log_s2_table.copy_(log_s2)
    beta = torch.tensor([0.0, 0.3, 0.5, 0.8, 1.0], dtype=torch.float64) * B  # on the grid, both ends included
    x, eps = imgs(5), lat_noise(5)
    out = m.loss(x, beta=beta, noise=eps)
    want, nll, kl = brute_eq4(m, x, beta, eps, log_s2, init_sigma2(N))
    assert torch.allclose(out["loss"], want.mean(), rtol=1e-5)  # the mean over the batch, not the sum
    assert torch.allclose(m.s(beta), torch.exp(0.5 * log_s2[torch.round(beta / B * N).long()]), rtol=1e-12)  # s is a std
    assert torch.allclose(out["recon"], nll.mean(), rtol=1e-5)
    assert torch.allclose(out["kl"], kl.mean(), rtol=1e-5)
    # the KL has the closed form 1/2 (||f||^2 + d sigma^2 - d log sigma^2 - d), d = 3 equal terms
    s2 = init_sigma2(N)[torch.round(beta / B * N).long()]
    f = LinEnc.forward(m.encoder, x, beta).detach()
    assert torch.allclose(kl, 0.5 * (f.pow(2).sum(1) + D_LAT * (s2 - s2.log() - 1)), rtol=1e-10)


def test_the_tables_live_on_the_algorithm_1_grid_and_interpolate_log_sigma2_off_it():
    N = 10
    assert torch.allclose(beta_grid(N, 2.0, dtype=torch.float64), torch.arange(N + 1, dtype=torch.float64) * 0.2)
    m = vae(N)
    s2 = init_sigma2(N)
    grid = torch.arange(N + 1, dtype=torch.float64) / N
    assert torch.allclose(m.sigma(grid), s2.sqrt(), rtol=1e-6)  # sigma_beta^2 = beta (+ the floor) at init
    assert torch.allclose(m.s(grid), torch.ones(N + 1, dtype=torch.float64))  # log s^2 = 0 at init
    # off the grid: log sigma^2 linear between the neighbours (beta = 0.23 lies 30% of the way from 0.2 to 0.3)
    want = torch.exp(0.5 * (0.7 * s2[2].log() + 0.3 * s2[3].log()))
    assert torch.allclose(m.sigma(0.23), want.reshape(1), rtol=1e-6)
    # sigma increases along the grid (Sec. 3.2) and the diffusion's sigma_{t|t-tau}^2 is positive
    assert bool((torch.diff(m.sigma_grid()) > 0).all())


def test_beta_vae_weighting_is_eq4_divided_by_B_minus_beta():
    N = 10
    x, eps = imgs(3), lat_noise(3)
    beta = torch.tensor([0.1, 0.4, 0.7], dtype=torch.float64)
    per = []
    for weighting in ("eq4", "beta_vae"):
        m = vae(N, weighting=weighting, train_top=False)
        per.append(torch.stack([m.loss(x[i:i + 1], beta=beta[i:i + 1], noise=eps[i:i + 1])["loss"] for i in range(3)]))
    assert torch.allclose(per[1] * (1 - beta), per[0], rtol=1e-6)


def test_prop_3_2_end_no_gradient_reaches_the_decoder_or_s_B_and_prop_3_1_end_no_kl():
    N = 10
    m = vae(N)
    x, eps = imgs(2), lat_noise(2)
    top = torch.ones(2, dtype=torch.float64)
    m.loss(x, beta=top, noise=eps)["loss"].backward()
    assert torch.count_nonzero(m.decoder.U.grad) == 0
    assert float(m.log_s2_table.grad.abs().sum()) == 0.0
    # the encoder is still trained, by the KL alone: d/dW of mean_b 1 * KL_b = mean_b f_b x_b^T (1 - 1/2)
    f = LinEnc.forward(m.encoder, x, top).detach()
    want = (f[:, :, None] * x.flatten(1)[:, None, :] * 0.5).mean(0)
    assert torch.allclose(m.encoder.W.grad, want, rtol=1e-8)
    # beta = 0: the loss is the plain reconstruction NLL (weight B = 1), whatever the prior term would be
    zero = torch.zeros(2, dtype=torch.float64)
    out = m.loss(x, beta=zero, noise=eps)
    want0, nll, _ = brute_eq4(m, x, zero, eps, torch.zeros(N + 1, dtype=torch.float64), init_sigma2(N))
    assert torch.allclose(out["loss"], nll.mean(), rtol=1e-6) and torch.allclose(want0, nll)


def test_beta_prior_draws():
    N = 5
    m = vae(N)
    g = torch.Generator().manual_seed(0)
    b = m.sample_beta(6000, generator=g)
    vals = torch.unique(b)
    assert torch.allclose(vals, torch.arange(N + 1, dtype=torch.float64) / N)  # all N + 1 values, 0 and B included
    counts = torch.stack([(b == v).sum() for v in vals]).double()
    assert float(counts.min()) > 6000 / (N + 1) * 0.8
    assert float(m.sample_beta(3000, generator=g).max()) == 1.0
    m2 = vae(N, train_top=False)
    assert float(m2.sample_beta(3000, generator=g).max()) < 1.0
    m3 = vae(N, 2.0, beta_prior="uniform")
    u = m3.sample_beta(20000, generator=g)
    assert 0 <= float(u.min()) and float(u.max()) <= 2.0 and abs(float(u.mean()) - 1.0) < 0.03


# -- phase 2: Eq. 13-19 ------------------------------------------------------------------------------------------
N2 = 10
TAU = 1.0 / N2


def f_enc(x, t):
    """A closed-form encoder: f(x, t) = cos(t) x + t^3 [1, -2], non-linear in t."""
    t = t.to(torch.float64)[:, None]
    return torch.cos(t) * x + t**3 * torch.tensor([1.0, -2.0], dtype=torch.float64)


def sched():
    i = torch.arange(N2 + 1, dtype=torch.float64)
    return torch.sqrt(0.01 + 0.6 * i / N2 + 0.3 * (i / N2) ** 2)


class AffineNet(nn.Module):
    """eps_hat = 0.5 z + t, Delta_hat = -0.1 z - t^2: a network whose outputs the test can recompute."""

    def forward(self, z, t):
        t = t[:, None]
        return 0.5 * z + t, -0.1 * z - t**2


def denoiser(**kw) -> LatentDenoiser:
    d = LatentDenoiser(LatentDenoiserConfig(latent_dim=2, hidden=8, depth=1, num_steps=N2, **kw)).double()
    d.set_schedule(sched())
    return d


@pytest.mark.parametrize("weighting", ["simple", "elbo"])
def test_eq19_by_hand(weighting):
    d = denoiser(weighting=weighting)
    d.net = AffineNet()
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    i = torch.tensor([1, 3, 7, 10])
    eps = torch.randn(4, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    out = d.loss(x, encoder=f_enc, t_index=i, noise=eps)
    s = sched()
    t = i.double() * TAU  # tau = T / N (footnote 3)
    f_t, f_prev = f_enc(x, t), f_enc(x, t - TAU)
    z = f_t + s[i][:, None] * eps  # Eq. 18: z_t = f(x, t) + sigma_t eps
    eps_hat, delta_hat = 0.5 * z + t[:, None], -0.1 * z - t[:, None] ** 2
    w_inv = torch.ones(4, dtype=torch.float64) if weighting == "simple" else \
        torch.clamp((s[i] ** 2 - s[i - 1] ** 2) / (2 * s[i - 1] ** 2), max=1e3)  # Eq. 11's weight in eps form
    per = w_inv * ((eps_hat - eps) ** 2).sum(1) + ((f_prev - f_t - delta_hat) ** 2).sum(1)
    assert torch.allclose(out["loss"], per.mean(), rtol=1e-10)
    assert torch.allclose(out["delta_mse"], ((f_prev - f_t - delta_hat) ** 2).sum(1).mean(), rtol=1e-10)


def test_the_elbo_weight_is_the_eps_form_of_eq11():
    """w(t)^-1 = sigma_{t|t-tau}^2 / (2 sigma_{t-tau}^2): the KL between Eq. 15 and Eq. 17 (equal Delta) divided by
    ||eps_hat - eps||^2, computed here from the two Gaussian means."""
    d = denoiser(weighting="elbo")
    s2 = sched() ** 2
    for i in (2, 5, 10):
        z = torch.tensor([[0.3, -0.7]], dtype=torch.float64)
        f_t, eps, eps_hat = torch.tensor([[0.1, 0.2]]).double(), torch.tensor([[0.5, -1.0]]).double(), \
            torch.tensor([[0.2, 0.4]]).double()
        var_step = s2[i] - s2[i - 1]
        x_hat = z - s2[i].sqrt() * eps_hat
        f_from_eps = z - s2[i].sqrt() * eps
        mu_model = s2[i - 1] / s2[i] * z + var_step / s2[i] * x_hat
        mu_true = s2[i - 1] / s2[i] * z + var_step / s2[i] * f_from_eps
        post_var = var_step * s2[i - 1] / s2[i]
        kl = ((mu_model - mu_true) ** 2).sum() / (2 * post_var)
        w = d.weight_inv(torch.tensor([i]))
        assert torch.allclose(w * ((eps_hat - eps) ** 2).sum(), kl, rtol=1e-10), (i, f_t)


def oracle_net(x):
    """The exact heads for the closed-form encoder and a fixed batch x."""
    s = sched()

    class Oracle(nn.Module):
        calls: list = []

        def forward(self, z, t):
            i = torch.round(t / TAU).long()
            Oracle.calls.append(float(t[0]))
            f_t = f_enc(x, t)
            return (z - f_t) / s[i][:, None], f_enc(x, t - TAU) - f_t

    return Oracle()


def test_algorithm_2_with_exact_heads_lands_on_f_x_0_and_the_printed_sign_does_not():
    x = torch.randn(3, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    z = f_enc(x, torch.full((3,), 0.6, dtype=torch.float64)) + 0.37  # any start: the exact eps head removes it
    d = denoiser(sampler="deterministic", deterministic_noise="zero")
    d.net = oracle_net(x)
    out = d.denoise(z, 0.6, 0.0)
    assert torch.allclose(out, f_enc(x, torch.zeros(3, dtype=torch.float64)), atol=1e-12)
    # the printed step mu_{t - tau} = mu_t - Delta_hat: the last step (t = tau) gives 2 f(x, tau) - f(x, 0)
    d2 = denoiser(sampler="deterministic", deterministic_noise="zero", printed_sign=True)
    d2.net = oracle_net(x)
    out2 = d2.denoise(z, 0.6, 0.0)
    tau = torch.full((3,), TAU, dtype=torch.float64)
    assert torch.allclose(out2, 2 * f_enc(x, tau) - f_enc(x, 0 * tau), atol=1e-12)
    assert not torch.allclose(out2, out, atol=1e-3)
    # stopping at beta_to = 0.2 lands on f(x, 0.2)
    out3 = d.denoise(z, 0.6, 0.2)
    assert torch.allclose(out3, f_enc(x, torch.full((3,), 0.2, dtype=torch.float64)), atol=1e-12)


def test_algorithm_2_stochastic_step_renoises_at_sigma_t_minus_tau():
    x = torch.randn(3, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    z = torch.randn(3, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    d = denoiser()  # sampler alg2
    d.net = oracle_net(x)
    g = torch.Generator().manual_seed(8)
    out = d.denoise(z, 0.3, 0.0, generator=g)
    g_copy = torch.Generator().manual_seed(8)
    xis = [torch.randn(3, 2, generator=g_copy, dtype=torch.float64) for _ in range(3)]
    # the last step (t = tau) returns mu_0 + sigma_0 xi = f(x, 0) + sigma_0 xi_3
    assert torch.allclose(out, f_enc(x, torch.zeros(3, dtype=torch.float64)) + sched()[0] * xis[-1], atol=1e-12)


def test_ancestral_variant_is_gaussian_conditioning_of_eq14():
    x = torch.randn(2, 2, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    d = denoiser(sampler="ancestral")
    d.net = oracle_net(x)
    s2 = sched() ** 2
    i = 4
    t, tp = torch.full((2,), i * TAU, dtype=torch.float64), torch.full((2,), (i - 1) * TAU, dtype=torch.float64)
    z = torch.randn(2, 2, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    xi = torch.randn(2, 2, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    out = d.step(z, i, xi=xi)
    # joint of (z_{t-tau}, z_t): z_{t-tau} ~ N(f(x, t-tau), s2[i-1]); z_t = z_{t-tau} + f_t - f_{t-tau} + N(0, s2[i]-s2[i-1])
    # so cov = s2[i-1], var(z_t) = s2[i]: the conditional mean and variance by the Gaussian formulas
    mean = f_enc(x, tp) + s2[i - 1] / s2[i] * (z - f_enc(x, t))
    var = s2[i - 1] - s2[i - 1] ** 2 / s2[i]
    assert torch.allclose(out, mean + var.sqrt() * xi, atol=1e-12)


def test_sample_starts_from_the_prior_and_visits_every_grid_time_once():
    x = torch.zeros(2, 2, dtype=torch.float64)
    d = denoiser(sampler="deterministic", deterministic_noise="zero")
    net = oracle_net(x)
    type(net).calls = []
    d.net = net
    d.sample(2, generator=torch.Generator().manual_seed(0))
    assert type(net).calls == pytest.approx([i * TAU for i in range(N2, 0, -1)])


def test_pipeline_phase_2_uses_the_vae_sigma_table_and_denoise_decode_decodes_at_beta_0():
    cfg = multibeta_config(image_size=SIDE, in_channels=1, latent_dim=2, num_steps=N2,
                           vae={"hidden": 8, "beta_embed_dim": 8}, denoiser={"hidden": 8, "depth": 1})
    mb = MultiBeta(cfg).double()
    mb.set_phase(2)
    assert torch.allclose(mb.denoiser.sigma_table, mb.vae.sigma_grid().detach())
    assert torch.allclose(mb.denoiser.sigma_table ** 2, init_sigma2(N2), rtol=1e-5)
    seen = []

    class Dec(nn.Module):
        def forward(self, z, beta):
            seen.append(beta.clone())
            return torch.zeros(z.shape[0], 1, SIDE, SIDE, dtype=z.dtype)

    mb.vae.decoder = Dec()
    mb.denoise_decode(torch.zeros(3, 2, dtype=torch.float64), 0.5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(seen[-1], torch.zeros(3, dtype=seen[-1].dtype))
    assert math.isclose(mb.denoiser.config.tau, 1 / N2)
