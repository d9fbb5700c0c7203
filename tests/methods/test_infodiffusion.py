"""InfoDiffusion (docs/methods/infodiffusion.md): objective values, the MMD term, the priors,
the conditioning order, save/load."""

import math

import pytest
import torch
import torch.nn.functional as F

from diffrep.config import ConfigError
from diffrep.methods.infodiffusion import InfoDiffusion, InfoDiffusionConfig, info_weights, sample_prior
from diffrep.nn.layers import ResBlock
from diffrep.ops.mmd import mmd2
from helpers import break_zero_init


def _model(**kw):
    torch.manual_seed(0)
    m = InfoDiffusion(InfoDiffusionConfig(**kw)).double()
    break_zero_init(m.unet, std=0.05)  # so that the latent/shifts matter
    return m


def _images(n=4, seed=1):
    return (torch.rand((n, 3, 16, 16), generator=torch.Generator().manual_seed(seed)) * 2 - 1).double()


def _rbf_mmd_biased(x, y, h):
    k = lambda a, b: torch.exp(-torch.cdist(a, b).pow(2) / h)  # noqa: E731
    return k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()


def test_loss_equals_the_objective_recomputed():
    m = _model(kl_weight=0.3, mmd_weight=0.2)
    x = _images()
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    s = m.schedule
    ab_all = s.alphas_cumprod.double()
    t = s.sample_timesteps(4, generator=g)
    noise = torch.randn(x.shape, generator=g, dtype=x.dtype)
    mu, logvar = m.encoder(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=g, dtype=mu.dtype)
    ab = ab_all[t][:, None, None, None]
    diff = (m.unet(ab.sqrt() * x + (1 - ab).sqrt() * noise, t, z) - noise).pow(2).mean()
    n1 = torch.randn(x.shape, generator=g, dtype=x.dtype)
    beta0 = 1e-5
    x1 = math.sqrt(1 - beta0) * x + math.sqrt(beta0) * n1  # abar_0 = alpha_0 = 1 - beta_0
    e1 = m.unet(x1, torch.zeros(4, dtype=torch.long), z)
    mean1 = (x1 - beta0 / math.sqrt(beta0) * e1) / math.sqrt(1 - beta0)
    rec = (mean1 - x).pow(2).mean() / 1000
    kl = (0.5 * (mu.pow(2) + logvar.exp() - logvar - 1)).sum(1).mean()
    prior = torch.randn((4, 8), generator=g, dtype=torch.float64)
    mmd = _rbf_mmd_biased(z, prior, 8.0 ** 2)
    want = diff + rec + 0.3 * kl + 0.2 * mmd
    torch.testing.assert_close(out["loss"], want, rtol=1e-9, atol=0)
    torch.testing.assert_close(out["mmd"], mmd, rtol=1e-9, atol=0)
    torch.testing.assert_close(out["kl"], kl, rtol=1e-12, atol=0)
    # the x_0 term alone (its 1/T weight hides it in the total)
    torch.testing.assert_close(out["reconstruction"], (mean1 - x).pow(2).mean(), rtol=1e-9, atol=0)


def test_mmd_term_is_the_fused_op():
    m = _model()
    z = torch.randn(6, 8, dtype=torch.float64)
    p = torch.randn(6, 8, dtype=torch.float64)
    torch.testing.assert_close(m.mmd(z, p), mmd2(z, p), rtol=0, atol=0)
    torch.testing.assert_close(m.mmd(z, p), _rbf_mmd_biased(z, p, 64.0), rtol=1e-10, atol=0)
    m.config.mmd_bandwidth = 2.0
    torch.testing.assert_close(m.mmd(z, p), _rbf_mmd_biased(z, p, 2.0), rtol=1e-10, atol=0)


def test_the_code_variant_of_the_reconstruction_term():
    m = _model(rec_term="code", mmd_weight=0.0, rec_weight=0.5)
    x = _images()
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    t = m.schedule.sample_timesteps(4, generator=g)
    noise = torch.randn(x.shape, generator=g, dtype=x.dtype)
    mu, logvar = m.encoder(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn(mu.shape, generator=g, dtype=mu.dtype)
    ab = m.schedule.alphas_cumprod.double()[t][:, None, None, None]
    pred = m.unet(ab.sqrt() * x + (1 - ab).sqrt() * noise, t, z)
    beta0 = 1e-5
    rec = ((x - beta0 / math.sqrt(beta0) * pred) / math.sqrt(1 - beta0) - x).pow(2).mean()
    torch.testing.assert_close(out["loss"], (pred - noise).pow(2).mean() + 0.5 * rec, rtol=1e-10, atol=0)


def test_priors_sample_their_stated_distributions():
    g = torch.Generator().manual_seed(0)
    n = 200_000
    zg = sample_prior("gaussian", n, 4, generator=g, dtype=torch.float64)
    assert zg.mean(0).abs().max() < 0.01 and (zg.var(0) - 1).abs().max() < 0.02
    zm = sample_prior("mixture10", n, 4, generator=g, dtype=torch.float64)
    for pair in (zm[:, :2], zm[:, 2:]):
        ang = torch.atan2(pair[:, 1], pair[:, 0])
        lab = torch.round(ang / (2 * math.pi / 10)) % 10  # components sit at angles 2 pi l / 10, radius 1.4
        for lbl in (0, 3, 7):
            sel = pair[lab == lbl]
            r = 2 * math.pi * lbl / 10
            assert abs(sel.shape[0] / n - 0.1) < 0.01
            centre = torch.tensor([1.4 * math.cos(r), 1.4 * math.sin(r)], dtype=torch.float64)
            assert (sel.mean(0) - centre).abs().max() < 0.02
            d = sel - centre
            u = d[:, 0] * math.cos(r) + d[:, 1] * math.sin(r)  # back to the component's own frame
            v = -d[:, 0] * math.sin(r) + d[:, 1] * math.cos(r)
            assert abs(u.std().item() - 0.5) < 0.03 and abs(v.std().item() - 0.1) < 0.01
    zr = sample_prior("swiss_roll", 5000, 2, generator=g, dtype=torch.float64, roll_noise=0.0)
    s = 5 * zr.norm(dim=1)  # without noise the radius is the roll parameter s in [1.5 pi, 4.5 pi]
    assert s.min() >= 1.5 * math.pi - 1e-9 and s.max() <= 4.5 * math.pi + 1e-9
    torch.testing.assert_close(5 * zr, torch.stack([s * torch.cos(s), s * torch.sin(s)], 1), rtol=0, atol=1e-9)
    # uniform parameter: the mean of s is 3 pi
    assert abs(s.mean().item() - 3 * math.pi) < 0.1
    with pytest.raises(ValueError, match="even"):
        sample_prior("mixture10", 3, 3)
    with pytest.raises(ValueError, match="2-dimensional"):
        sample_prior("swiss_roll", 3, 4)
    with pytest.raises(ValueError, match="prior must be"):
        sample_prior("laplace", 3, 4)


def test_infodiffusion_conditioning_order_matches_an_independent_computation():
    torch.manual_seed(0)
    blk = ResBlock(8, 8, 12, latent_dim=5, latent_cond="infodiff", num_groups=4, zero_init=False).double()
    x = torch.randn(2, 8, 4, 4, dtype=torch.float64)
    emb, z = torch.randn(2, 12, dtype=torch.float64), torch.randn(2, 5, dtype=torch.float64)
    h = blk.in_conv(F.silu(F.group_norm(x, 4, blk.in_norm.weight, blk.in_norm.bias, 1e-5)))
    ts, tb = F.linear(F.silu(emb), blk.emb_layers[1].weight, blk.emb_layers[1].bias)[:, :, None, None].chunk(2, 1)
    zs, zb = F.linear(F.silu(z), blk.z_layers[1].weight, blk.z_layers[1].bias)[:, :, None, None].chunk(2, 1)
    g = F.group_norm(h, 4, blk.out_norm.weight, blk.out_norm.bias, 1e-5)
    want = x + blk.out_conv(F.silu((g * (1 + ts) + tb) * (1 + zs) + zb))
    torch.testing.assert_close(blk(x, emb, z), want, rtol=0, atol=1e-12)


def test_weights_config_and_errors():
    assert info_weights(1.0, 0.1) == (0.0, pytest.approx(0.1))
    with pytest.raises(ConfigError, match="prior"):
        InfoDiffusionConfig(prior="swiss_roll")
    with pytest.raises(ConfigError, match="encoder.latent_dim"):
        InfoDiffusionConfig(latent_dim=4)
    m = _model()
    with pytest.raises(ValueError, match="z must be"):
        m.decode(torch.zeros(2, 3, dtype=torch.float64))


def test_verbs_and_save_load(tmp_path):
    m = InfoDiffusion(InfoDiffusionConfig(sample_steps=3))
    x = _images(2).float()
    assert m.sample(2, generator=torch.Generator().manual_seed(0)).shape == (2, 3, 16, 16)
    assert m.reconstruct(x).shape == x.shape
    assert m.swap(x, x.flip(0), [1]).shape == x.shape
    assert m.traverse(x, 0, [-1, 0, 1]).shape == (3, 2, 3, 16, 16)
    m.save_pretrained(tmp_path)
    m2 = InfoDiffusion.from_pretrained(tmp_path)
    torch.testing.assert_close(m2.encode(x), m.encode(x), rtol=0, atol=0)
    assert m2.config == m.config


def test_mean_code_options_and_the_logged_terms():
    """decoder_latent="mean" feeds the posterior mean to the denoiser; mmd_on="mean" scores the means;
    the logged "diffusion" entry is the denoising term; zero weights add no term."""
    x = _images()
    m = _model(decoder_latent="mean", mmd_on="mean", mmd_weight=0.2, rec_weight=0.0)
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    s = m.schedule
    t = s.sample_timesteps(4, generator=g)
    noise = torch.randn(x.shape, generator=g, dtype=x.dtype)
    mu, logvar = m.encoder(x)
    torch.randn(mu.shape, generator=g, dtype=mu.dtype)  # the sample's noise is still drawn
    diff = (m.unet(s.q_sample(x, t, noise), t, mu) - noise).pow(2).mean()
    prior = torch.randn((4, 8), generator=g, dtype=torch.float64)
    mmd = _rbf_mmd_biased(mu, prior, 8.0 ** 2)
    torch.testing.assert_close(out["diffusion"], diff.detach(), rtol=1e-9, atol=0)
    torch.testing.assert_close(out["mmd"], mmd.detach(), rtol=1e-9, atol=0)
    torch.testing.assert_close(out["loss"], diff + 0.2 * mmd, rtol=1e-9, atol=0)
    assert "reconstruction" not in out and "kl" not in out
    m = _model(mmd_weight=0.0, rec_weight=0.0)
    assert set(m.loss(x, step=0)) == {"loss", "diffusion"}


@pytest.mark.parametrize("kind, dim", [("gaussian", 4), ("mixture10", 4), ("swiss_roll", 2)])
def test_priors_follow_the_generator(kind, dim):
    a = sample_prior(kind, 50, dim, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(123)
    b = sample_prior(kind, 50, dim, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_swiss_roll_noise_scale():
    """The point is (s cos s, s sin s)/5 plus N(0, roll_noise^2)/5 noise: with the default 0.5 the residual
    from the noise-free roll has standard deviation 0.1 per coordinate."""
    g = torch.Generator().manual_seed(0)
    z = sample_prior("swiss_roll", 20000, 2, generator=g, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    s = 1.5 * math.pi * (1 + 2 * torch.rand((20000,), generator=g, dtype=torch.float64))
    clean = torch.stack([s * torch.cos(s), s * torch.sin(s)], 1) / 5
    resid = z - clean
    assert abs(resid.std().item() - 0.1) < 0.005
    assert abs(resid.mean().item()) < 0.005


@pytest.mark.parametrize("zeta, lam, word, weight", [(1.5, 0.1, "KL weight", "-0.5"), (1.0001, 5.0, "KL weight", "-0.0001"),
                                                      (0.9, 0.01, "MMD weight", "-0.09"), (-1.0, 1.0, "MMD weight", "-1")])
def test_info_weights_refuse_a_weight_that_flips_its_sign(zeta, lam, word, weight):
    """InfoVAE's weights (1 - zeta, zeta + lambda - 1) multiply divergences the loss minimises: a negative one
    is refused, naming zeta (and lam for the MMD weight) and the weight (computed here by hand)."""
    with pytest.raises(ValueError, match=rf"zeta = .*{word} .*= {weight}\b"):
        info_weights(zeta, lam)
    if word == "MMD weight":
        with pytest.raises(ValueError, match=rf"lam = {lam:.4g}"):
            info_weights(zeta, lam)
        kl, mmd = info_weights(zeta, lam, allow_negative_mmd_weight=True)  # the explicit opt-in: the literal values
        assert kl == 1.0 - zeta and mmd == zeta + lam - 1.0 and mmd < 0
    else:
        with pytest.raises(ValueError, match="zeta must be <= 1"):
            info_weights(zeta, lam, allow_negative_mmd_weight=True)  # no opt-in for a negative KL weight


def test_info_weights_keep_the_boundaries_and_check_the_opt_in():
    assert info_weights(1.0, 0.0) == (0.0, 0.0)  # both weights zero: allowed
    assert info_weights(0.25, 0.75) == (0.75, 0.0)
    assert info_weights(-1.0, 2.5) == (2.0, 0.5)  # zeta < 0 (a beta-VAE-like KL weight > 1) with MMD weight >= 0
    with pytest.raises(TypeError, match="allow_negative_mmd_weight must be a bool"):
        info_weights(1.0, 0.1, allow_negative_mmd_weight="yes")
