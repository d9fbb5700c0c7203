"""Faithfulness review of SAMI against Lyo, Simoncelli & Savin (arXiv 2512.17127; docs/methods/sami.md).

The networks are replaced by closed-form stand-ins so that every expected value is written out here:
a linear-Gaussian inference network mu(x) = W x, log sigma^2(x) = V x + c, whose guidance score has the closed form

    g = grad_x log N(z; W x, diag e^{V x + c}) = W^T (z - mu) / sigma^2 + V^T [((z - mu)^2 / sigma^2 - 1) / 2]

(the log-determinant sum_j log sigma_j^2, not Algorithms 1-2's "log|sigma I|"), and an affine denoiser. Checked:

- Eq. 10 (beta-SAMI, Eq. 8's sign): per example mean over pixels of (eps - eps_theta + sqrt(1 - abar_t) g)^2, averaged
  over the batch, plus beta times the summed closed-form KL of q(z | x_0); S draws outside the square (Algorithm 2)
  or averaged inside the log-density (Eq. 9); the ELBO weight lambda_t of Ho et al. Eq. 12;
- the variance-preserving forward process and the schedules (linear endpoints scaled by 1000 / T, cosine s = 0.008),
  0-based timestep indices (index 0 is the first noise level);
- the S -> infinity (Rao-Blackwellised) guidance and the rigid/sloppy mask of A.4;
- Algorithm 1 with A.2's guided mean mu_theta + (1 - alpha_t)/sqrt(alpha_t) g (signs corrected), re-run by hand,
  and Algorithm 1's literal sqrt(1 - alpha_t) g step; DDIM on the guided eps;
- the timestep sampler Beta(4, 1), the exponential KL annealing;
- the analyses' definitions: variability V, the A.8 coherence N_i, the normalised participation ratio, straightness.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from helpers import tiny_sami

D = 64  # 1 x 8 x 8
T = 20
BETAS = torch.linspace(1e-3, 0.2, T, dtype=torch.float64)  # tiny_sami's linear schedule
ALPHAS = 1 - BETAS
ABAR = torch.cumprod(ALPHAS, 0)


class LinGauss(nn.Module):
    """mu(x) = W x, log sigma^2(x) = V x + c (no batch coupling)."""

    def __init__(self, d=3, seed=0, vscale=0.05):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.W = nn.Parameter(0.2 * torch.randn(d, D, generator=g, dtype=torch.float64))
        self.V = nn.Parameter(vscale * torch.randn(d, D, generator=g, dtype=torch.float64))
        self.c = nn.Parameter(torch.tensor([0.1, -0.4, 0.3][:d], dtype=torch.float64))

    def forward(self, x):
        h = x.flatten(1)
        return h @ self.W.T, h @ self.V.T + self.c


class AffineDenoiser(nn.Module):
    """eps_theta(x_t, t) = 0.3 x_t + 0.01 t."""

    def forward(self, x, t):
        return 0.3 * x + 0.01 * t.to(x.dtype).reshape(-1, 1, 1, 1)


def model(**kw):
    m = tiny_sami(**kw)
    m.encoder, m.denoiser = LinGauss(), AffineDenoiser()
    return m


def enc(m, x):
    with torch.no_grad():
        return m.encoder(x)


def g_closed(m, x_t, z):
    """The closed-form guidance score for z [B, d]."""
    mu, lv = enc(m, x_t)
    var = lv.exp()
    u = (z - mu) / var
    w = 0.5 * ((z - mu) ** 2 / var - 1)
    return (u @ m.encoder.W.detach() + w @ m.encoder.V.detach()).reshape(x_t.shape)


def imgs(n=3, seed=1):
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1


def draws(n=3, S=1, seed=3):
    g = torch.Generator().manual_seed(seed)
    return dict(t=torch.tensor([0, 7, 19][:n]), noise=torch.randn(n, 1, 8, 8, generator=g, dtype=torch.float64),
                z_noise=torch.randn(S, n, 3, generator=g, dtype=torch.float64))


def kl_closed(mu, lv):
    return 0.5 * (mu**2 + lv.exp() - lv - 1).sum(1)


# -- schedules and the forward process -------------------------------------------------------------------------
def test_schedules_and_0_based_timesteps():
    m = model()
    assert torch.allclose(m.schedule.alphas_cumprod, ABAR)
    x0 = imgs(2)
    t = torch.tensor([0, T - 1])
    eps = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    xt = m.schedule.q_sample(x0, t, eps)
    # index 0 is already the first noise level: abar_0 = 1 - beta_1
    assert torch.allclose(xt[0], (1 - BETAS[0]).sqrt() * x0[0] + BETAS[0].sqrt() * eps[0])
    assert torch.allclose(xt[1], ABAR[-1].sqrt() * x0[1] + (1 - ABAR[-1]).sqrt() * eps[1])
    from diffrep.recipes.sami import disks_config, celeba64_config

    s = disks_config().model.schedule  # Table A.5 disks: linear, T = 400, Ho et al.'s endpoints x 1000 / T
    assert (s.kind, s.num_timesteps) == ("linear", 400)
    assert s.beta_start == pytest.approx(2.5e-4) and s.beta_end == pytest.approx(0.05)
    from diffrep.diffusion import NoiseSchedule

    c = NoiseSchedule(celeba64_config().model.schedule)  # CelebA 64: cosine, T = 1000, s = 0.008
    k = np.arange(1001) / 1000
    f = np.cos((k + 0.008) / 1.008 * np.pi / 2) ** 2
    want = np.minimum(1 - (f[1:] / f[0]) / (f[:-1] / f[0]), 0.999)
    assert np.allclose(c.betas.numpy(), want, rtol=1e-10, atol=1e-14)


# -- Eq. 8-10 --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pixel_reduction", ["mean", "sum"])
def test_eq10_by_hand(pixel_reduction):
    m = model(kl_weight=0.3, pixel_reduction=pixel_reduction)
    x0 = imgs()
    dr = draws()
    out = m.loss(x0, **dr)
    t, eps = dr["t"], dr["noise"]
    ab = ABAR[t].reshape(-1, 1, 1, 1)
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    mu0, lv0 = enc(m, x0)
    z = mu0 + (0.5 * lv0).exp() * dr["z_noise"][0]
    g = g_closed(m, xt, z)
    resid = (eps - (0.3 * xt + 0.01 * t.double().reshape(-1, 1, 1, 1)) + (1 - ab).sqrt() * g) ** 2
    per = resid.flatten(1).mean(1) if pixel_reduction == "mean" else resid.flatten(1).sum(1)
    kl = kl_closed(mu0, lv0).mean()
    assert float(out["loss_x"]) == pytest.approx(float(per.mean()), rel=1e-10)
    assert float(out["kl"]) == pytest.approx(float(kl), rel=1e-10)
    assert float(out["loss"].detach()) == pytest.approx(float(per.mean() + 0.3 * kl), rel=1e-10)
    # Eq. 8: the guided estimate eps_theta - gamma_t g (the loss is ||eps - eps_hat||^2)
    eh = m.guided_eps(xt, t, z)
    assert torch.allclose(eh, 0.3 * xt + 0.01 * t.double().reshape(-1, 1, 1, 1) - (1 - ab).sqrt() * g, atol=1e-12)


@pytest.mark.parametrize("placement", ["outside", "inside"])
def test_monte_carlo_draws_outside_or_inside_the_square(placement):
    S = 3
    m = model(kl_weight=0.0, train_samples=S, mc_placement=placement)
    x0 = imgs()
    dr = draws(S=S)
    out = m.loss(x0, **dr)
    t, eps = dr["t"], dr["noise"]
    ab = ABAR[t].reshape(-1, 1, 1, 1)
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    mu0, lv0 = enc(m, x0)
    gs = [g_closed(m, xt, mu0 + (0.5 * lv0).exp() * dr["z_noise"][s]) for s in range(S)]
    base = eps - (0.3 * xt + 0.01 * t.double().reshape(-1, 1, 1, 1))
    if placement == "outside":  # Algorithm 2: S loss terms, averaged
        per = torch.stack([((base + (1 - ab).sqrt() * g) ** 2).flatten(1).mean(1) for g in gs]).mean(0)
    else:  # Eq. 9: the score averaged over the draws, then squared
        per = ((base + (1 - ab).sqrt() * sum(gs) / S) ** 2).flatten(1).mean(1)
    assert float(out["loss_x"]) == pytest.approx(float(per.mean()), rel=1e-10)


@pytest.mark.parametrize("variance", ["fixed_large", "fixed_small"])
def test_elbo_lambda_is_ho_et_al_eq12(variance):
    m = model(kl_weight=0.0, lambda_t="elbo", sample_variance=variance)
    m_simple = model(kl_weight=0.0)
    x0 = imgs()
    dr = draws()
    t = dr["t"]
    ab_prev = torch.cat([torch.ones(1, dtype=torch.float64), ABAR[:-1]])
    s2 = BETAS if variance == "fixed_large" else BETAS * (1 - ab_prev) / (1 - ABAR)
    s2 = torch.where(s2 > 0, s2, BETAS)  # index 0 of fixed_small: the posterior variance is 0; beta_1 is used
    lam = BETAS**2 / (2 * s2 * ALPHAS * (1 - ABAR))
    # loss_x(elbo) = mean_b lambda_b per_b; recover per_b from three single-example simple losses
    per = torch.stack([m_simple.loss(x0[b:b + 1], t=t[b:b + 1], noise=dr["noise"][b:b + 1],
                                     z_noise=dr["z_noise"][:, b:b + 1])["loss_x"] for b in range(3)])
    # SAMI.lambda_weights returns float32 weights (so 1e-7, not 1e-10, even for a float64 model)
    assert float(m.loss(x0, **dr)["loss_x"]) == pytest.approx(float((lam[t] * per).mean()), rel=1e-6)


# -- guidance variants ------------------------------------------------------------------------------------------
def test_analytic_guidance_is_the_expectation_over_q_z_given_x0():
    m = model()
    x0, xt = imgs(2, 1), imgs(2, 5)
    mu0, lv0 = enc(m, x0)
    g, _ = m.guidance(xt, analytic=(mu0, lv0))
    mu, lv = enc(m, xt)
    var = lv.exp()
    u = (mu0 - mu) / var
    w = 0.5 * (((mu0 - mu) ** 2 + lv0.exp()) / var - 1)
    want = (u @ m.encoder.W.detach() + w @ m.encoder.V.detach()).reshape(xt.shape)
    assert torch.allclose(g, want, atol=1e-12)


@pytest.mark.parametrize("logdet", ["all", "axes"])
def test_rigid_sloppy_guidance_masks_the_mahalanobis_term(logdet):
    m = model()
    xt = imgs(2, 5)
    z = torch.randn(2, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    g, _ = m.guidance(xt, z, axes=(0, 2), logdet=logdet)
    mu, lv = enc(m, xt)
    var = lv.exp()
    W, V = m.encoder.W.detach(), m.encoder.V.detach()
    keep = [0, 2]
    maha = ((z - mu)[:, keep] / var[:, keep]) @ W[keep] + (0.5 * (z - mu)[:, keep] ** 2 / var[:, keep]) @ V[keep]
    det_rows = V if logdet == "all" else V[keep]  # d/dx of -1/2 sum_j log sigma_j^2 = -1/2 sum_j V_j
    want = maha - 0.5 * det_rows.sum(0)
    assert torch.allclose(g, want.reshape(xt.shape), atol=1e-12)


# -- Algorithm 1 / A.2 ------------------------------------------------------------------------------------------
def _chain_by_hand(m, z, xT, seed, literal=False, record=None):
    g_ = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(seed)
    x = xT.clone()
    for t in range(T - 1, -1, -1):
        tt = torch.full((x.shape[0],), t)
        b, a, ab = BETAS[t], ALPHAS[t], ABAR[t]
        eps_theta = 0.3 * x + 0.01 * t
        mu_theta = (x - b / (1 - ab).sqrt() * eps_theta) / a.sqrt()  # A.2 line 1 (coefficient corrected)
        g = g_closed(m, x, z)
        shift = b.sqrt() * g if literal else b / a.sqrt() * g  # Alg. 1 literal, or A.2 with the sign corrected
        if record is not None:  # Fig. 6 in score units: score = -eps / sqrt(1 - abar_t); posterior = prior + g
            gam = (1 - ab).sqrt()
            record.append((float((eps_theta / gam).norm()), float((-eps_theta / gam + g).norm()), float(g.norm()),
                           float((gam * g).norm()), float(eps_theta.norm())))
        xi = torch.randn(x.shape, generator=g_, dtype=x.dtype)
        x = mu_theta + shift + (b.sqrt() * xi if t > 0 else 0)  # variance beta_t (A.2 / fixed_large)
        del tt
    return x.clamp(-1, 1)


@pytest.mark.parametrize("literal", [False, True])
def test_algorithm_1_guided_ddpm_chain_by_hand(literal):
    m = model(alg1_literal=literal)
    z = torch.randn(2, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    xT = 0.3 * torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    out = m.generate(z, sampler="ddpm", x_T=xT, generator=torch.Generator().manual_seed(9))
    assert torch.allclose(out, _chain_by_hand(m, z, xT, 9, literal), atol=1e-9)


def test_ddim_runs_on_the_guided_eps():
    m = model()
    z = torch.randn(2, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    xT = 0.3 * torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    out = m.generate(z, sampler="ddim", num_steps=5, x_T=xT)
    x = xT.clone()
    seq = [16, 12, 8, 4, 0, -1]  # DDIM's uniform spacing c = T // 5 = 4, then the clean end
    for t, tp in zip(seq[:-1], seq[1:]):
        ab, abp = ABAR[t], (ABAR[tp] if tp >= 0 else torch.tensor(1.0, dtype=torch.float64))
        eh = 0.3 * x + 0.01 * t - (1 - ab).sqrt() * g_closed(m, x, z)
        x0 = (x - (1 - ab).sqrt() * eh) / ab.sqrt()
        x = abp.sqrt() * x0 + (1 - abp).sqrt() * eh
    assert torch.allclose(out, x.clamp(-1, 1), atol=1e-9)


# -- timesteps and annealing --------------------------------------------------------------------------------------
def test_beta_timestep_sampler_and_kl_annealing():
    m = model(t_sampling="beta", t_beta_a=4.0, kl_weight=2e-3, kl_anneal_steps=100, kl_anneal_start=1e-6)
    t = m.sample_timesteps(40000, generator=torch.Generator().manual_seed(0))
    # t = floor(T u), u ~ Beta(4, 1): P(t <= k) = ((k + 1) / T)^4
    for k in (4, 9, 14, 18):
        assert float((t <= k).double().mean()) == pytest.approx(((k + 1) / T) ** 4, abs=0.01)
    assert int(t.min()) >= 0 and int(t.max()) == T - 1
    assert m.kl_weight_at(0) == pytest.approx(2e-3 * 1e-6)
    assert m.kl_weight_at(50) == pytest.approx(2e-3 * 1e-3)
    assert m.kl_weight_at(100) == pytest.approx(2e-3) and m.kl_weight_at(10**6) == pytest.approx(2e-3)
    u = model().sample_timesteps(20000, generator=torch.Generator().manual_seed(1))
    assert int(u.min()) == 0 and int(u.max()) == T - 1 and abs(float(u.double().mean()) - (T - 1) / 2) < 0.2


def test_encode_is_the_posterior_mean_of_the_clean_image_and_sigma_is_a_std():
    from diffrep.methods.sami_nets import SAMIConvNet, SAMIConvNetConfig

    m = model()
    x = imgs(2)
    assert torch.allclose(m.encode(x), enc(m, x)[0])
    net = SAMIConvNet(SAMIConvNetConfig(image_size=8, in_channels=1, base_channels=2, latent_dim=3)).double()
    a = net.var_head(net.body(x))
    # Table A.5 head: sigma = softplus(a) is the standard deviation, so log sigma^2 = 2 log softplus(a)
    assert torch.allclose(net(x)[1], 2 * torch.log(torch.nn.functional.softplus(a)), atol=1e-12)


# -- analyses ---------------------------------------------------------------------------------------------------
def test_variability_participation_ratio_and_straightness_by_hand():
    from diffrep.analysis.variability import variability
    from diffrep.metrics.geometry import participation_ratio, straightness

    x = torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, 3.0]], dtype=torch.float64)  # mean (1, 1)
    # squared distances: 2, 2, 4 -> V = 8/3 summed, 4/3 per pixel (D = 2)
    v = variability(x)
    assert v["v_sum"] == pytest.approx(8 / 3) and v["v_per_pixel"] == pytest.approx(4 / 3)
    assert v["sem_per_pixel"] == pytest.approx(float(torch.tensor([2.0, 2.0, 4.0]).std()) / math.sqrt(3) / 2)
    w = np.array([[3.0, 0, 0, 0], [1.0, 1.0, 1.0, 1.0], [1.0, 2.0, 0, 0]])
    pr = participation_ratio(w)
    # ||w||_2^2 / ||w||_4^2: 1, sqrt(4) = 2, 5 / sqrt(17)
    assert pr.meta["per_row"] == pytest.approx([1.0, 2.0, 5 / math.sqrt(17)])
    traj = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 1.0], [2.0, 2.0]])  # turns of 45 deg, then 45 deg
    s = straightness(traj)
    assert s["straightness"] == pytest.approx(math.cos(math.pi / 4)) and s["curvature_deg"] == pytest.approx(45.0)


def test_a8_coherence_has_the_closed_form_of_a_log_linear_variance():
    """sigma_i^2(x) = exp(V_i x + c_i): grad sigma_i^2 = sigma_i^2 V_i, so ||grad sigma_i^2|| / sigma_i^4 = ||V_i|| / sigma_i^2
    and N_i = sqrt(2 Var_x0 mu_i) mean_xt ||V_i|| / sigma_i^2(x_t)."""
    from diffrep.analysis.posterior_geometry import global_axes

    m = model()
    x = imgs(5, 2)
    out = global_axes(m, x, t=12, num_noise=2, seed=4, batch_size=64)
    gen = torch.Generator().manual_seed(4)
    ratios = []
    for _ in range(2):
        noise = torch.randn(x.shape, generator=gen).to(x)
        xt = ABAR[12].sqrt() * x + (1 - ABAR[12]).sqrt() * noise
        ratios.append(m.encoder.V.detach().norm(dim=1) / enc(m, xt)[1].exp())
    mu0 = enc(m, x)[0]
    N = (2 * mu0.var(0, unbiased=True)).sqrt() * torch.cat(ratios).mean(0)
    assert out["N"] == pytest.approx(N.tolist(), rel=1e-8)
    assert out["coherence"] == pytest.approx((-N.log()).tolist(), rel=1e-8)


def test_guidance_magnitude_reports_fig6_in_score_units():
    from diffrep.analysis.guidance import guidance_magnitude

    m = model()
    x = imgs(1, 4)
    r = guidance_magnitude(m, x, sampler="ddpm", seed=5)
    gen = torch.Generator().manual_seed(5)
    xT = torch.randn((1, 1, 8, 8), generator=gen, dtype=torch.float64)
    rec = []
    _chain_by_hand(m, enc(m, x)[0], xT, gen, record=rec)
    prior, post, diff, gnorm, enorm = (list(v) for v in zip(*rec))
    assert r["t"] == list(range(T - 1, -1, -1))
    assert r["prior_score_norm"] == pytest.approx(prior, rel=1e-8)
    assert r["posterior_score_norm"] == pytest.approx(post, rel=1e-8)
    assert r["score_difference_norm"] == pytest.approx(diff, rel=1e-8)
    assert r["guidance_norm"] == pytest.approx(gnorm, rel=1e-8) and r["eps_norm"] == pytest.approx(enorm, rel=1e-8)


def test_variability_reduction_reports_the_papers_data_over_conditional_ratio():
    from diffrep.analysis.variability import variability, variability_reduction

    m = model(sampler="ddim", sample_steps=2)
    ref = imgs(6, 9)
    r = variability_reduction(m, imgs(2, 8), num_samples=3, reference=ref, num_steps=2)
    assert r["v_data"] == pytest.approx(variability(ref)["v_per_pixel"])
    assert r["ratio_data_over_cond"] == pytest.approx(r["v_data"] / r["v_cond_mean"], rel=1e-12)


def test_posterior_variance_spectrum_by_hand():
    """Fig. 3C-D: sigma_j^2(x_t) of one image, averaged over noise draws at each of 10 levels spread over [0, T - 1]."""
    from diffrep.analysis.posterior_geometry import posterior_variance_spectrum

    m = model()
    x = imgs(1, 3)
    r = posterior_variance_spectrum(m, x, num_noise=4, seed=2)
    ts = [int(v) for v in np.linspace(0, T - 1, 10).round()]
    assert r["timesteps"] == ts
    gen = torch.Generator().manual_seed(2)
    want = []
    for t in ts:
        noise = torch.randn((4, 1, 8, 8), generator=gen).to(x)
        xt = ABAR[t].sqrt() * x + (1 - ABAR[t]).sqrt() * noise
        want.append(enc(m, xt)[1].exp().mean(0))
    want = torch.stack(want)
    assert np.allclose(r["var"], want.numpy(), rtol=1e-10)
    assert np.allclose(r["var_clean"], enc(m, x)[1].exp()[0].numpy(), rtol=1e-12)
    assert r["rank_at_largest_t"] == torch.argsort(torch.argsort(want[-1])).tolist()


def test_disks_bayes_eps_mse_by_brute_force_gaussian_posteriors():
    """The exact-Bayes yardstick: on a 2 x 2 x 2 factor grid, E[x_0 | x_t (, a factor)] from explicit Gaussian
    likelihoods N(x_t; sqrt(abar) x_0k, (1 - abar) I) under the uniform grid prior, and the eps error
    abar / (1 - abar) ||x_0 - x_0_hat||^2 / D per pixel."""
    from torch.distributions import Normal

    from diffrep.analysis.disks_bayes import disks_bayes_eps_mse
    from diffrep.data.disks import disks_geometry, render_disks
    from diffrep.diffusion import NoiseSchedule

    sch = NoiseSchedule(kind="linear", num_timesteps=50, beta_start=1e-3, beta_end=0.1)
    disks = disks_geometry(16)
    ts = [3, 30]
    r = disks_bayes_eps_mse(sch, ts, disks, grid=(2, 2, 2), num_images=5, seed=7)
    cfg = disks.config
    vals = [np.linspace(*rg, 2) for rg in (cfg.x_range, cfg.y_range, cfg.background_range)]
    facs = [(i, j, k) for i in range(2) for j in range(2) for k in range(2)]  # the ij-meshgrid order
    bank = torch.from_numpy(render_disks([vals[0][i] for i, _, _ in facs], [vals[1][j] for _, j, _ in facs],
                                         [vals[2][k] for _, _, k in facs], cfg)).flatten(1).double() * 2 - 1
    truth = np.random.default_rng(7).integers(0, 8, 5)
    gen = torch.Generator().manual_seed(7)
    for n, t in enumerate(ts):
        ab = sch.alphas_cumprod[t]
        noise = torch.randn((5, bank.shape[1]), generator=gen, dtype=torch.float64)
        errs = {"unconditional": 0.0, "given_background": 0.0, "given_position": 0.0}
        for b in range(5):
            x0 = bank[truth[b]]
            xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noise[b]
            ll = torch.stack([Normal(ab.sqrt() * bank[k], (1 - ab).sqrt()).log_prob(xt).sum() for k in range(8)])
            i0, j0, k0 = facs[truth[b]]
            for key, keep in (("unconditional", [True] * 8), ("given_background", [f[2] == k0 for f in facs]),
                              ("given_position", [f[:2] == (i0, j0) for f in facs])):
                w = torch.softmax(ll.masked_fill(~torch.tensor(keep), float("-inf")), 0)
                errs[key] += float(((x0 - w @ bank) ** 2).sum())
        for key, e in errs.items():
            assert r[key][n] == pytest.approx(float(ab / (1 - ab)) * e / (5 * bank.shape[1]), rel=1e-9, abs=1e-15)
        assert r["snr"][n] == pytest.approx(float(ab / (1 - ab)))


def test_toy_ddpm_loss_is_ho_et_al_l_simple():
    from diffrep.methods.toy_ddpm import ToyDDPM, ToyDDPMConfig

    m = ToyDDPM(ToyDDPMConfig()).double()

    class Lin(nn.Module):
        def forward(self, x, t):
            return 0.5 * x - 0.002 * t.to(x.dtype).reshape(-1, 1, 1, 1)

    m.unet = Lin()
    x0 = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 - 1
    out = m.loss(x0, generator=torch.Generator().manual_seed(2))
    g = torch.Generator().manual_seed(2)
    t = torch.randint(0, 200, (4,), generator=g)  # 0-based index of the T = 200 cosine levels
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    k = np.arange(201) / 200
    f = np.cos((k + 0.008) / 1.008 * np.pi / 2) ** 2
    abar = torch.from_numpy(np.cumprod(1 - np.minimum(1 - f[1:] / f[:-1], 0.999)))[t].reshape(-1, 1, 1, 1)
    xt = abar.sqrt() * x0 + (1 - abar).sqrt() * eps
    want = ((0.5 * xt - 0.002 * t.double().reshape(-1, 1, 1, 1) - eps) ** 2).mean()  # Eq. 14, mean over all
    assert float(out["loss"]) == pytest.approx(float(want), rel=1e-6)


@pytest.mark.parametrize("backend", ["reference", "cpu"])
def test_guidance_op_is_the_mean_over_draws_of_the_normal_log_density_to_second_order(backend):
    """kernels.md (b): log_posterior = mean_s sum_j log N(z_sj; mu_j, e^{logvar_j}); its first derivatives (the
    cotangents u, w of Eq. 9) and a second derivative (the double backward of training) equal those of the
    torch.distributions twin."""
    from torch.distributions import Normal

    from diffrep.ops import use_backend
    from diffrep.ops.guidance import log_posterior

    g = torch.Generator().manual_seed(0)
    mu = torch.randn(2, 4, generator=g, dtype=torch.float64, requires_grad=True)
    lv = (0.3 * torch.randn(2, 4, generator=g, dtype=torch.float64)).requires_grad_(True)
    z = torch.randn(3, 2, 4, generator=g, dtype=torch.float64, requires_grad=True)
    with use_backend(backend, strict=True):
        ours = log_posterior(z, mu, lv)
        gu = torch.autograd.grad(ours.sum(), (mu, lv, z), create_graph=True)
        second = torch.autograd.grad((gu[0] ** 2).sum() + (gu[1] * z.mean(0)).sum(), (mu, lv, z))
    twin = Normal(mu, (0.5 * lv).exp()).log_prob(z).sum(-1).mean(0)
    gt = torch.autograd.grad(twin.sum(), (mu, lv, z), create_graph=True)
    second_t = torch.autograd.grad((gt[0] ** 2).sum() + (gt[1] * z.mean(0)).sum(), (mu, lv, z))
    assert torch.allclose(ours, twin, atol=1e-12)
    # u = mean_s (z - mu) / sigma^2, and the log-variance cotangent 1/2 (mean_s (z - mu)^2 / sigma^2 - 1)
    assert torch.allclose(gu[0], ((z - mu) / lv.exp()).mean(0), atol=1e-12)
    assert torch.allclose(gu[1], 0.5 * (((z - mu) ** 2).mean(0) / lv.exp() - 1), atol=1e-12)
    for a, b in zip(gu + second, gt + second_t):
        assert torch.allclose(a, b, atol=1e-10)


def test_algorithm_1_draws_one_latent_per_chain_from_q_z_given_x0():
    """Algorithm 1 steps 1-3: (mu_0, sigma_0) = f(x_0), z = mu_0 + sigma_0 eps once per chain, x_T ~ N(0, I), then the
    guided chain with that z fixed (here DDIM, 2 steps, on the guided eps)."""
    m = model()
    x0 = imgs(1, 4)
    g = torch.Generator().manual_seed(3)
    out = m.conditional_sample(x0, 2, z_mode="fixed", sampler="ddim", num_steps=2, generator=g)
    h = torch.Generator().manual_seed(3)
    mu0, lv0 = enc(m, x0)
    z = mu0.repeat(2, 1) + (0.5 * lv0).exp().repeat(2, 1) * torch.randn(2, 3, generator=h, dtype=torch.float64)
    x = torch.randn(2, 1, 8, 8, generator=h, dtype=torch.float64)
    for t, tp in ((10, 0), (0, -1)):
        ab, abp = ABAR[t], (ABAR[tp] if tp >= 0 else torch.tensor(1.0, dtype=torch.float64))
        eh = 0.3 * x + 0.01 * t - (1 - ab).sqrt() * g_closed(m, x, z)
        x = abp.sqrt() * (x - (1 - ab).sqrt() * eh) / ab.sqrt() + (1 - abp).sqrt() * eh
    assert torch.allclose(out, x.clamp(-1, 1), atol=1e-9)


def test_loss_options_by_hand_sigma_floor_annealing_free_bits_kl_mean_and_mse_uncond():
    x0 = imgs()
    dr = draws()
    t, eps = dr["t"], dr["noise"]
    ab = ABAR[t].reshape(-1, 1, 1, 1)
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    resid = eps - (0.3 * xt + 0.01 * t.double().reshape(-1, 1, 1, 1))
    # the soft floor sigma^2 -> sigma^2 + sigma_min^2 on every posterior the model reads
    m = model(sigma_min=0.3)
    mu, lv = enc(m, x0)
    assert torch.allclose(m.posterior(x0)[1], torch.log(lv.exp() + 0.09), atol=1e-12)
    m = model(kl_weight=0.5, kl_anneal_steps=10, kl_anneal_start=1e-2)
    out = m.loss(x0, step=5, **dr)
    kl = kl_closed(mu, lv).mean()
    assert float(out["kl_weight"]) == pytest.approx(0.5 * 1e-2 ** 0.5)
    assert float(out["loss"].detach()) == pytest.approx(float(out["loss_x"]) + 0.5 * 0.1 * float(kl), rel=1e-10)
    assert float(out["mse_uncond"]) == pytest.approx(float((resid ** 2).flatten(1).mean(1).mean()), rel=1e-10)
    per_dim = (0.5 * (mu ** 2 + lv.exp() - lv - 1)).mean(0)  # batch-mean KL of each latent dimension
    fb = float(per_dim.sort().values[1])  # a floor between the smallest and the largest
    out = model(free_bits=fb).loss(x0, **dr)
    assert float(out["kl"]) == pytest.approx(float(per_dim.clamp_min(fb).sum()), rel=1e-10)
    out = model(kl_reduction="mean").loss(x0, **dr)
    assert float(out["kl"]) == pytest.approx(float(per_dim.mean()), rel=1e-10)


def test_rao_blackwellised_log_q_value_with_a_mask():
    """E_{z ~ N(mu0, sigma0^2)} of the masked log-density: the Mahalanobis term over the axes only (with sigma0^2 added),
    the log-determinant and log 2 pi over every axis (logdet='all') or over the axes."""
    from diffrep.methods.sami_guidance import log_q

    g = torch.Generator().manual_seed(1)
    mu0, lv0, mu, lv = (torch.randn(2, 4, generator=g, dtype=torch.float64) for _ in range(4))
    axes = (1, 3)
    maha = (((mu0 - mu) ** 2 + lv0.exp()) / lv.exp())[:, list(axes)].sum(1)
    c = math.log(2 * math.pi)
    want_all = -0.5 * (maha + (lv + c).sum(1))
    want_axes = -0.5 * (maha + (lv[:, list(axes)] + c).sum(1))
    assert torch.allclose(log_q(None, mu, lv, axes, analytic=(mu0, lv0), logdet="all"), want_all, atol=1e-12)
    assert torch.allclose(log_q(None, mu, lv, axes, analytic=(mu0, lv0), logdet="axes"), want_axes, atol=1e-12)
    full = -0.5 * ((((mu0 - mu) ** 2 + lv0.exp()) / lv.exp()) + lv + c).sum(1)
    assert torch.allclose(log_q(None, mu, lv, (), analytic=(mu0, lv0)), full, atol=1e-12)
