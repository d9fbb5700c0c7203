"""SAMI (docs/methods/sami.md#what-the-tests-check): guidance, loss and its gradients against twin paths, errata pins,
sampler algebra, schedules, save/load, pretrained mode and the CLI (analyses: tests/analysis). Tiny models, float64."""

from __future__ import annotations

import json
import math
import shutil
import sys
import types

import pytest
import torch


def _twin_log_posterior(z, mu, logvar):
    """The specification, independent of diffrep: mean_s sum_j log N(z_sj; mu_j, exp(logvar_j))."""
    lp = torch.distributions.Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    return lp.mean(0) if z.dim() == 3 else lp


try:  # the fused op lives in diffrep.ops.guidance; in a build without it, its twin stands in (tests only)
    import diffrep.ops.guidance  # noqa: F401
    HAVE_OP = True
except ModuleNotFoundError:
    _fake = types.ModuleType("diffrep.ops.guidance")
    _fake.log_posterior = _twin_log_posterior
    sys.modules["diffrep.ops.guidance"] = _fake
    HAVE_OP = False

from diffrep.methods import sami as S  # noqa: E402
from diffrep.methods.sami import SAMI, SAMIConvNetConfig  # noqa: E402
from diffrep.config import ConfigError  # noqa: E402
from diffrep.diffusion import DDPMSampler, NoiseScheduleConfig  # noqa: E402
from diffrep.nn import HalfUNetConfig, UNetConfig  # noqa: E402

from helpers import sami_fixed_draws as _fixed, tiny_sami as tiny_model  # noqa: E402
from helpers import tiny_sami_config as tiny_config  # noqa: E402


def images(n=3, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((n, 1, 8, 8), generator=g, dtype=dtype) * 2 - 1)


def _manual_guidance(model, x_t, z, logq=_twin_log_posterior):
    x = x_t.detach().requires_grad_(True)
    mu, lv = model.encoder(x)
    (g,) = torch.autograd.grad(logq(z, mu, lv).sum(), x)
    return g


# -- guidance (tests 1-2, 4) ----------------------------------------------------------------------
@pytest.mark.parametrize("S_", [None, 3])
def test_guidance_equals_autograd_of_twin(S_):
    m = tiny_model()
    x = images()
    z = torch.randn((3, 3) if S_ is None else (S_, 3, 3), dtype=torch.float64)
    g, lq = m.guidance(x, z)
    torch.testing.assert_close(g, _manual_guidance(m, x, z), rtol=1e-9, atol=1e-12)
    mu, lv = m.encoder(x)
    torch.testing.assert_close(lq, _twin_log_posterior(z, mu, lv).detach(), rtol=1e-10, atol=1e-12)


def test_log_det_term_is_the_full_gaussian_one():
    """Algorithms 1-2 print log|sigma I| (half the log-det); the Gaussian's log|Sigma| is pinned here."""
    mu = torch.zeros(2, 4, dtype=torch.float64)
    lv = torch.full((2, 4), math.log(4.0), dtype=torch.float64)  # sigma = 2
    z = torch.zeros(2, 4, dtype=torch.float64)
    lq = S.log_posterior(z, mu, lv)
    expected = -0.5 * 4 * (math.log(4.0) + math.log(2 * math.pi))  # sum_j log sigma_j^2, not log sigma_j
    torch.testing.assert_close(lq, torch.full((2,), expected, dtype=torch.float64))


def _rigid_twin(z, mu, lv, axes=(0, 2)):
    """A.4 written out: the Mahalanobis distance over ``axes`` only, the log-det over every axis."""
    a = list(axes)
    maha = ((z[..., a] - mu[..., a]) ** 2 / lv[..., a].exp()).sum(-1)
    lp = -0.5 * (maha + lv.sum(-1) + mu.shape[-1] * math.log(2 * math.pi))
    return lp.mean(0) if z.dim() == 3 else lp


@pytest.mark.parametrize("S_", [None, 2])
def test_guidance_axes_restrict_the_mahalanobis_term_only_by_default(S_):
    """The paper's rigid/sloppy form (A.4) is the default; ``logdet="axes"`` masks the log-det too."""
    m = tiny_model()
    x = images()
    z = torch.randn((3, 3) if S_ is None else (S_, 3, 3), dtype=torch.float64)
    assert m.config.guidance_logdet == "all"
    g, lq = m.guidance(x, z, axes=(0, 2))
    torch.testing.assert_close(g, _manual_guidance(m, x, z, _rigid_twin), rtol=1e-9, atol=1e-12)
    mu, lv = m.encoder(x)
    torch.testing.assert_close(lq, _rigid_twin(z, mu, lv).detach(), rtol=1e-10, atol=1e-12)
    g_both, _ = m.guidance(x, z, axes=(0, 2), logdet="axes")
    ref = _manual_guidance(m, x, z, lambda z, mu, lv: _twin_log_posterior(z[..., [0, 2]], mu[..., [0, 2]], lv[..., [0, 2]]))
    torch.testing.assert_close(g_both, ref, rtol=1e-9, atol=1e-12)
    assert (g - g_both).abs().max() > 1e-6  # the two forms differ by grad of the sloppy axis' log-det
    # the analytic (S -> infinity) limit follows the same rule
    mu0, lv0 = (a.detach() for a in m.posterior(images(seed=7)))
    ga, _ = m.guidance(x, analytic=(mu0, lv0), axes=(1,))
    x_ = x.detach().requires_grad_(True)
    mu, lv = m.encoder(x_)
    ref = -0.5 * (((mu0[:, 1] - mu[:, 1]) ** 2 + lv0[:, 1].exp()) / lv[:, 1].exp() + lv.sum(-1))
    torch.testing.assert_close(ga, torch.autograd.grad(ref.sum(), x_)[0], rtol=1e-9, atol=1e-12)
    # the config default reaches generation
    mc = tiny_model(guidance_axes=(0, 2), guidance_logdet="axes")
    torch.testing.assert_close(mc.guidance(x, z)[0], ref_g := m.guidance(x, z, axes=(0, 2), logdet="axes")[0])
    assert ref_g.shape == x.shape
    with pytest.raises(ValueError, match="logdet"):
        m.guidance(x, z, axes=(0,), logdet="none")
    with pytest.raises(ValueError, match="axes"):
        m.guidance(x, z, axes=(3,))


def test_score_identity_and_mc_convergence_to_analytic():
    m = tiny_model()
    x = images()
    mu, lv = m.posterior(x)
    g0, _ = m.guidance(x, analytic=(mu.detach(), lv.detach()))
    assert g0.abs().max() < 1e-12  # mu_0 = mu_t, sigma_0 = sigma_t: u = w = 0
    # MC average (inside) -> analytic limit at rate 1/sqrt(S)
    x0 = images(seed=5)
    mu0, lv0 = (a.detach() for a in m.posterior(x0))
    ga, _ = m.guidance(x, analytic=(mu0, lv0))
    torch.manual_seed(0)
    errs = []
    for Sn in (16, 4096):
        z = mu0 + (0.5 * lv0).exp() * torch.randn(Sn, *mu0.shape, dtype=torch.float64)
        errs.append(float((m.guidance(x, z)[0] - ga).norm() / ga.norm()))
    assert errs[1] < errs[0] / 5  # 1/sqrt(S): a factor 16 expected


# -- the loss (Eq. 10) and its gradient (tests 3, 5, 7) ------------------------------------------------


def _manual_loss(m, x0, t, noise, z_noise, beta):
    """Eq. 10 written out independently: + gamma_t g, mean over pixels, sum over latent dims, S outside."""
    ab = m.schedule.alphas_cumprod[t].to(x0).reshape(-1, 1, 1, 1)
    x_t = (ab.sqrt() * x0 + (1 - ab).sqrt() * noise).detach().requires_grad_(True)
    mu0, lv0 = m.encoder(x0)
    mut, lvt = m.encoder(x_t)
    eps_theta = m.denoiser(x_t.detach(), t)
    terms = []
    for s in range(z_noise.shape[0]):
        z = mu0 + (0.5 * lv0).exp() * z_noise[s]
        (g,) = torch.autograd.grad(_twin_log_posterior(z, mut, lvt).sum(), x_t, create_graph=True)
        terms.append(((noise - eps_theta + (1 - ab).sqrt() * g) ** 2).flatten(1).mean(1))
    lx = torch.stack(terms).mean(0).mean()
    kl = (0.5 * (mu0 ** 2 + lv0.exp() - lv0 - 1)).mean(0).sum()
    return lx + beta * kl


@pytest.mark.parametrize("S_", [1, 2])
def test_loss_and_gradient_match_the_twin_path(S_):
    m = tiny_model(train_samples=S_)
    m.eval()  # no annealing step
    x0 = images()
    fx = _fixed(m, S_=S_)
    out = m.loss(x0, **fx)
    gl = torch.autograd.grad(out["loss"], list(m.parameters()), allow_unused=True)
    ref = _manual_loss(m, x0, fx["t"], fx["noise"], fx["z_noise"], m.config.kl_weight)
    gr = torch.autograd.grad(ref, list(m.parameters()), allow_unused=True)
    torch.testing.assert_close(out["loss"], ref, rtol=1e-10, atol=1e-12)
    for a, b in zip(gl, gr):
        if a is None or b is None:
            assert a is None and b is None or float((a if a is not None else b).abs().max()) == 0
            continue
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-11)
    # encoder parameters receive gradient through g (the double backward) and through z
    enc_grad = sum(float(p.abs().sum()) for p in (gl[i] for i, (n, _) in enumerate(m.named_parameters())
                                                   if n.startswith("encoder.")) if p is not None)
    assert enc_grad > 0


@pytest.mark.skipif(not HAVE_OP, reason="the fused guidance op is not in this build")
def test_fused_op_and_reference_twin_give_the_same_loss_gradient():
    """The training loss through the dispatched (native) op equals the same loss on the op's twin."""
    from diffrep.ops import use_backend

    m = tiny_model(train_samples=2)
    m.eval()
    x0 = images()
    fx = _fixed(m, S_=2)
    params = list(m.parameters())
    out = m.loss(x0, **fx)
    ga = torch.autograd.grad(out["loss"], params, allow_unused=True)
    with use_backend("reference"):
        ref = m.loss(x0, **fx)
        gb = torch.autograd.grad(ref["loss"], params, allow_unused=True)
    torch.testing.assert_close(out["loss"], ref["loss"], rtol=1e-12, atol=1e-14)
    for a, b in zip(ga, gb):
        if a is not None or b is not None:
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


class _LossOf(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.m = model

    def forward(self, x, kw):
        return self.m.loss(x, **kw)["loss"]


def test_loss_gradcheck_through_the_double_backward():
    """gradcheck of the loss w.r.t. encoder and denoiser weights with z not detached (docs/methods/sami.md#what-the-tests-check)."""
    m = tiny_model()
    m.eval()
    x0 = images(2)
    fx = _fixed(m, B=2)
    wrap = _LossOf(m)
    names = ["m.encoder.mean_head.weight", "m.encoder.var_head.weight", "m.encoder.body.0.weight", "m.denoiser.out.2.bias"]
    params = dict(wrap.named_parameters())
    ws = tuple(params[n].detach().clone().requires_grad_(True) for n in names)

    def f(*w):
        return torch.func.functional_call(wrap, dict(zip(names, w)), (x0, fx), strict=False)

    assert torch.autograd.gradcheck(f, ws, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_loss_sign_follows_eq10_not_algorithm2():
    """With gamma_t g added (Eq. 10), the guided residual is eps - eps_theta + gamma g."""
    m = tiny_model(kl_weight=0.0)
    m.eval()
    x0 = images()
    fx = _fixed(m)
    out = m.loss(x0, **fx)
    ab = m.schedule.alphas_cumprod[fx["t"]].reshape(-1, 1, 1, 1)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * fx["noise"]
    mu0, lv0 = m.encoder(x0)
    z = mu0 + (0.5 * lv0).exp() * fx["z_noise"][0]
    g = _manual_guidance(m, x_t, z.detach())
    eps_theta = m.denoiser(x_t, fx["t"]).detach()
    plus = ((fx["noise"] - eps_theta + (1 - ab).sqrt() * g) ** 2).mean()
    minus = ((fx["noise"] - eps_theta - (1 - ab).sqrt() * g) ** 2).mean()
    torch.testing.assert_close(out["loss_x"], plus)
    assert abs(float(plus - minus)) > 1e-8


def test_expectation_placement_outside_minus_inside_is_the_variance_term():
    m = tiny_model(train_samples=4, kl_weight=0.0, pixel_reduction="sum")
    m.eval()
    x0 = images(1)
    fx = _fixed(m, B=1, S_=4)
    out_o = m.loss(x0, **fx)["loss"]
    m_in = SAMI(tiny_config(train_samples=4, kl_weight=0.0, pixel_reduction="sum", mc_placement="inside")).double()
    m_in.load_state_dict(m.state_dict())
    m_in.eval()
    out_i = m_in.loss(x0, **fx)["loss"]
    ab = m.schedule.alphas_cumprod[fx["t"]].reshape(-1, 1, 1, 1)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * fx["noise"]
    mu0, lv0 = m.encoder(x0)
    gs = torch.stack([_manual_guidance(m, x_t, (mu0 + (0.5 * lv0).exp() * fx["z_noise"][s]).detach()) for s in range(4)])
    var_term = float((1 - ab).squeeze() * ((gs - gs.mean(0)) ** 2).flatten(1).sum(1).mean())
    assert abs(float((out_o - out_i).detach()) - var_term) < 1e-8 * max(1.0, var_term)
    assert var_term > 0


def test_lambda_elbo_and_custom_weights():
    m = tiny_model(lambda_t="elbo")
    t = torch.tensor([0, 5, 19])
    b, a, ab = (getattr(m.schedule, n)[t] for n in ("betas", "alphas", "alphas_cumprod"))
    torch.testing.assert_close(m.lambda_weights(t).double(), b / (2 * a * (1 - ab)), rtol=1e-6, atol=0)
    vals = tuple(float(i) for i in range(20))
    m2 = tiny_model(lambda_t="custom", lambda_values=vals)
    assert m2.lambda_weights(t).tolist() == [0.0, 5.0, 19.0]
    with pytest.raises(ConfigError, match="lambda_values"):
        tiny_config(lambda_t="custom", lambda_values=(1.0,))


# -- schedules, timesteps, annealing (test 8) ------------------------------------------------------------
def test_beta_timestep_sampler_is_increasing_and_kl_annealing():
    m = tiny_model(t_sampling="beta", t_beta_a=4.0, kl_anneal_steps=100, kl_anneal_start=1e-6)
    t = m.sample_timesteps(200_000, generator=torch.Generator().manual_seed(0))
    hist = torch.bincount(t // 4, minlength=5).double()
    assert bool((hist[1:] > hist[:-1]).all())
    # p(t) ~ t^3: the last fifth holds 1 - 0.8^4 of the mass
    assert abs(float(hist[-1] / hist.sum()) - (1 - 0.8 ** 4)) < 0.01
    beta = m.config.kl_weight
    assert m.kl_weight_at(0) == pytest.approx(beta * 1e-6)
    assert m.kl_weight_at(50) == pytest.approx(beta * 1e-3)
    assert m.kl_weight_at(100) == beta and m.kl_weight_at(10_000) == beta
    # the trainer passes its 0-based step; evaluation (no step) uses the full weight
    x0 = images()
    assert float(m.loss(x0, step=50)["kl_weight"]) == pytest.approx(beta * 1e-3)
    assert float(m.loss(x0, step=0)["kl_weight"]) == pytest.approx(beta * 1e-6)
    assert float(m.loss(x0)["kl_weight"]) == pytest.approx(beta)


def test_band_timestep_sampler_mixes_band_and_uniform():
    m = tiny_model(t_sampling="band", t_band=(5, 10), t_band_frac=0.6)
    t = m.sample_timesteps(200_000, generator=torch.Generator().manual_seed(0))
    p = torch.bincount(t, minlength=20).double() / t.numel()
    # in band: 0.6/5 + 0.4/20 = 0.14 per level; outside: 0.4/20 = 0.02
    assert torch.allclose(p[5:10], torch.full((5,), 0.14, dtype=torch.float64), atol=0.004)
    assert torch.allclose(torch.cat([p[:5], p[10:]]), torch.full((15,), 0.02, dtype=torch.float64), atol=0.002)
    again = m.sample_timesteps(50, generator=torch.Generator().manual_seed(3))
    assert torch.equal(again, m.sample_timesteps(50, generator=torch.Generator().manual_seed(3)))
    assert m.loss(images())["loss"].isfinite()
    for bad in [dict(t_band=()), dict(t_band=(10, 5)), dict(t_band=(0, 21)), dict(t_band=(0, 5, 9)),
                dict(t_band=(0, 5), t_band_frac=0.0), dict(t_band=(0, 5), t_band_frac=1.5)]:
        with pytest.raises(ConfigError, match="t_band"):
            tiny_config(t_sampling="band", **bad)


def test_cosine_and_linear_schedules_match_formulas():
    m = tiny_model(schedule=NoiseScheduleConfig(kind="cosine", num_timesteps=20))
    s = 0.008
    f = lambda t: math.cos((t / 20 + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    assert float(m.schedule.alphas_cumprod[9]) == pytest.approx(f(10) / f(0), rel=1e-9)
    m = tiny_model()
    assert float(m.schedule.betas[0]) == pytest.approx(1e-3) and float(m.schedule.betas[-1]) == pytest.approx(0.2)


# -- sampling (test 6) -----------------------------------------------------------------------------
def test_guided_step_algebra():
    m = tiny_model()
    x = images()
    t = torch.tensor([3, 10, 19])
    z = torch.randn(3, 3, dtype=torch.float64)
    g = _manual_guidance(m, x, z)
    eps_hat = m.guided_eps(x, t, z)
    with torch.no_grad():
        eps = m.denoiser(x, t)
    ab = m.schedule.alphas_cumprod[t].reshape(-1, 1, 1, 1)
    a = m.schedule.alphas[t].reshape(-1, 1, 1, 1)
    x0_u = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
    x0_g = (x - (1 - ab).sqrt() * eps_hat) / ab.sqrt()
    torch.testing.assert_close(x0_g - x0_u, (1 - ab) / ab.sqrt() * g)  # Eq. 12 / end of Sec. 2
    s = DDPMSampler(m.schedule, variance="fixed_large")
    zero = torch.zeros_like(x)
    mu_theta = s.step(eps, t, x, noise=zero)
    mu_guided = s.step(eps_hat, t, x, noise=zero)
    torch.testing.assert_close(mu_guided, mu_theta + (1 - a) / a.sqrt() * g)  # A.2 with the corrected sign
    assert float(((1 - a) / a.sqrt() * g).abs().max()) > 0


def test_unguided_chain_reproduces_plain_ddpm_bit_for_bit():
    m = tiny_model()
    a = m.sample_unconditional(4, generator=torch.Generator().manual_seed(7))
    s = DDPMSampler(m.schedule, variance="fixed_large")
    b = s.sample(lambda x, t: m.denoiser(x, t), (4, 1, 8, 8), generator=torch.Generator().manual_seed(7),
                 dtype=torch.float64).clamp(-1, 1)
    assert torch.equal(a, b)


def test_conditional_sampling_without_noise_is_deterministic():
    m = tiny_model(sampler="ddim", ddim_eta=0.0)
    x0 = images(2)
    x_T = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    a = m.conditional_sample(x0, 1, z_mode="posterior_mean", x_T=x_T)
    b = m.conditional_sample(x0, 1, z_mode="posterior_mean", x_T=x_T)
    assert torch.equal(a, b)
    c = m.conditional_sample(x0, 1, z_mode="analytic", x_T=x_T)
    assert torch.equal(c, m.conditional_sample(x0, 1, z_mode="analytic", x_T=x_T))
    # DDPM with the same seed also repeats exactly; different seeds differ
    m2 = tiny_model()
    r1 = m2.conditional_sample(x0, 2, generator=torch.Generator().manual_seed(1))
    r2 = m2.conditional_sample(x0, 2, generator=torch.Generator().manual_seed(1))
    r3 = m2.conditional_sample(x0, 2, generator=torch.Generator().manual_seed(2))
    assert torch.equal(r1, r2) and not torch.equal(r1, r3) and r1.shape == (4, 1, 8, 8)


def test_alg1_literal_guidance_step_size():
    m = tiny_model(alg1_literal=True)
    t = torch.tensor([4])
    x = images(1)
    k = m.guidance_coefficient(t, x)
    b = m.schedule.betas[4]
    ab = m.schedule.alphas_cumprod[4]
    # mean shift = beta_t / (sqrt(alpha_t) sqrt(1 - abar_t)) * k_t = sqrt(1 - alpha_t) (Algorithm 1 literally)
    assert float(b / ((1 - b).sqrt() * (1 - ab).sqrt()) * k.flatten()[0]) == pytest.approx(float(b.sqrt()))
    mc = m.generate(torch.zeros(1, 3, dtype=torch.float64), generator=torch.Generator().manual_seed(0))
    assert mc.shape == (1, 1, 8, 8) and torch.isfinite(mc).all()


def test_sampling_modes_shapes_and_prior():
    m = tiny_model(sampler="ddim")
    x0 = images(2)
    assert m.conditional_sample(x0, 3, z_mode="mc_average", mc_samples=4).shape == (6, 1, 8, 8)
    assert m.reconstruct(x0).shape == (2, 1, 8, 8)
    assert m.sample(3, generator=torch.Generator().manual_seed(0)).shape == (3, 1, 8, 8)
    assert m.sample(2, condition="none").shape == (2, 1, 8, 8)
    m_ddpm = tiny_model()
    assert m_ddpm.sample(2, num_steps=5).shape == (2, 1, 8, 8)  # a step count < T picks DDIM


# -- save/load, pretrained mode, recipes (test 11) --------------------------------------------------------
def test_save_load_round_trip(tmp_path):
    m = tiny_model(dtype=torch.float32, encoder="half_unet",
                   half_unet=HalfUNetConfig(image_size=8, in_channels=1, model_channels=4, channel_mult=(1, 2),
                                            num_res_blocks=1, latent_dim=5, num_groups=2))
    m.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "config.json").is_file() and (tmp_path / "m" / "model.safetensors").is_file()
    r = SAMI.from_pretrained(tmp_path / "m")
    assert r.config == m.config and "train_step" not in r.state_dict()
    # weights saved with the old KL-annealing counter (before the trainer passed step) still load
    r.load_state_dict({**m.state_dict(), "train_step": torch.tensor(7)})
    x = images(2, dtype=torch.float32)
    torch.testing.assert_close(r.encode(x), m.encode(x))
    fx = {k: (v.float() if v.dtype.is_floating_point else v) for k, v in _fixed(m, B=2).items()}
    fx["z_noise"] = torch.randn(1, 2, 5)
    m.eval(), r.eval()
    torch.testing.assert_close(r.loss(x, **fx)["loss"], m.loss(x, **fx)["loss"])
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["_class_name"] == "SAMI" and cfg["encoder"] == "half_unet"


def test_pretrained_denoiser_mode(tmp_path):
    trained = tiny_model(dtype=torch.float32)
    trained.denoiser.save_pretrained(tmp_path / "unet")
    m = SAMI(tiny_config(freeze_denoiser=True, kl_weight=1e-3))
    m.load_denoiser(str(tmp_path / "unet"))
    for a, b in zip(m.denoiser.parameters(), trained.denoiser.parameters()):
        assert torch.equal(a, b) and not a.requires_grad
    m.train()
    x = images(16, dtype=torch.float32)
    before = [p.clone() for p in m.denoiser.parameters()]
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=3e-2)
    fx = {k: (v.float() if v.dtype.is_floating_point else v) for k, v in _fixed(m, B=16).items()}
    losses = []
    for _ in range(25):
        out = m.loss(x, **fx)
        out["loss"].backward()
        assert all(p.grad is None for p in m.denoiser.parameters())
        opt.step()
        opt.zero_grad()
        losses.append(float(out["loss"].detach()))
    assert losses[-1] < losses[0]
    assert all(torch.equal(a, b) for a, b in zip(before, m.denoiser.parameters()))
    # a trainer's directory holds raw and EMA weights: auto takes the EMA ones (what it samples with)
    ema = tiny_model(seed=5, dtype=torch.float32)
    trained.save_pretrained(tmp_path / "run")
    ema.save_pretrained(tmp_path / "ema_src")
    shutil.copy(tmp_path / "ema_src" / "model.safetensors", tmp_path / "run" / "ema.safetensors")
    for weights, want in (("auto", ema), ("ema", ema), ("model", trained)):
        got = SAMI(tiny_config()).load_denoiser(tmp_path / "run", weights=weights)
        assert all(torch.equal(a, b) for a, b in zip(got.denoiser.parameters(), want.denoiser.parameters()))
    with pytest.raises(ValueError, match="weights"):
        SAMI(tiny_config()).load_denoiser(tmp_path / "run", weights="best")
    with pytest.raises(ValueError, match="differs"):
        SAMI(tiny_config(denoiser=UNetConfig(image_size=8, in_channels=1, out_channels=1, model_channels=4,
                                             channel_mult=(1, 2), num_groups=2, attention_resolutions=(),
                                             middle_attention=False))).load_denoiser(trained)


def test_input_validation():
    m = tiny_model()
    with pytest.raises(ValueError, match="shape"):
        m.encode(torch.zeros(2, 3, 8, 8, dtype=torch.float64))
    with pytest.raises(TypeError):
        m.loss(torch.zeros(2, 1, 8, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="z must have shape"):
        m.guidance(images(), torch.zeros(3, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="exactly one"):
        m.guidance(images())
    with pytest.raises(ValueError, match="positive int"):
        m.sample(0)
    with pytest.raises(ValueError, match="DDPM sampler runs all"):
        m.generate(torch.zeros(1, 3, dtype=torch.float64), sampler="ddpm", num_steps=3)
    with pytest.raises(ConfigError, match="image shape"):
        tiny_config(convnet=SAMIConvNetConfig(image_size=16, in_channels=1, latent_dim=3))
    with pytest.raises(ConfigError, match="guidance_axes"):
        tiny_config(guidance_axes=(5,))
    with pytest.raises(ValueError, match="z_mode"):
        m.conditional_sample(images(1), 1, z_mode="bogus")


def test_cli_sample_and_analyze(tmp_path, capsys):
    from diffrep.cli import main

    m = tiny_model(dtype=torch.float32, sampler="ddim")
    m.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.yaml").write_text("data:\n  dataset: disks\n  size: 8\n  num_images: 16\n")
    assert main(["sami", "sample", str(tmp_path / "m"), "--mode", "cond", "--n", "2", "--guides", "2",
                 "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").is_file()
    assert main(["sami", "analyze", str(tmp_path / "m"), "--what", "variability,spectrum,global,guidance,position",
                 "--guides", "1", "--num-samples", "2", "--num-images", "4", "--out", str(tmp_path / "an")]) == 0
    rep = json.loads((tmp_path / "an" / "analysis.json").read_text())
    assert {"variability", "spectrum", "global_axes", "guidance_magnitude", "position_transfer"} <= set(rep)
    assert rep["position_transfer"]["num_guides"] == 1 and rep["position_transfer"]["num_samples"] == 2
    assert main(["sami", "analyze", str(tmp_path / "m"), "--what", "nope"]) == 2
    # rigid/sloppy guidance from the command line (A.4)
    assert main(["sami", "sample", str(tmp_path / "m"), "--mode", "cond", "--n", "1", "--guides", "1",
                 "--guidance-axes", "0,2", "--logdet", "axes", "--out", str(tmp_path / "r.png")]) == 0
    assert (tmp_path / "r.png").is_file()
    assert main(["sami", "sample", str(tmp_path / "m"), "--mode", "cond", "--guidance-axes", "0,x"]) == 2
    assert main(["sami", "sample", str(tmp_path / "m"), "--mode", "cond", "--guidance-axes", "7"]) == 2
    # no config.yaml: guides are procedural disks at the model's own size (8 x 8 here)
    m.save_pretrained(tmp_path / "bare")
    assert main(["sami", "sample", str(tmp_path / "bare"), "--mode", "cond", "--n", "2", "--guides", "1",
                 "--out", str(tmp_path / "b.png")]) == 0
    assert (tmp_path / "b.png").is_file()


def test_sigma_min_is_a_soft_floor_that_keeps_the_gradient():
    m = tiny_model(sigma_min=0.1)
    x = images()
    raw_mu, raw_lv = m.encoder(x)
    mu, lv = m.posterior(x)
    torch.testing.assert_close(lv.exp(), raw_lv.exp() + 0.01)
    assert bool((lv > 2 * math.log(0.1)).all())
    (gw,) = torch.autograd.grad(lv.sum(), m.encoder.var_head.weight)
    assert float(gw.abs().sum()) > 0


