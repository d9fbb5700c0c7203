"""Value tests of the multi-beta VAE (docs/methods/multibeta.md#phase-1-the-multi-beta-vae): Eq. 4 against an
independent computation (torch.distributions, hand-built tables), the weighting extremes (autoencoder at
beta = 0, KL only at beta = B, half the ELBO at beta = B / 2), the beta-only tables on the Algorithm 1 grid, the
off-grid rules, the floors, and the input validation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

from diffrep.config import ConfigError
from diffrep.methods.multibeta import MultiBetaVAE, MultiBetaVAEConfig, beta_grid


def tiny(**kw) -> MultiBetaVAE:
    cfg = dict(image_size=32, in_channels=1, latent_dim=3, hidden=16, beta_embed_dim=8, num_steps=4)
    cfg.update(kw)
    torch.manual_seed(0)
    m = MultiBetaVAE(MultiBetaVAEConfig(**cfg)).double()
    with torch.no_grad():  # break the zero-initialised FiLM layers: beta must change the nets' outputs
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m


def images(n=4, seed=1):
    return torch.rand(n, 1, 32, 32, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 2 - 1


def noise(m, n=4, seed=2):
    return torch.randn((n,) + m.config.latent_shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def hand_tables(m):
    """sigma_i^2 and log s_i^2 rebuilt from the raw parameters by the formulas of the docs page."""
    c = m.config
    eta = m.sigma_eta.detach()
    step = c.sigma2_min_step * (torch.arange(len(eta)) > 0).to(eta.dtype)
    s2 = c.sigma2_min + torch.cumsum(torch.log1p(torch.exp(eta)) + step, 0)
    return s2, m.log_s2_table.detach().clamp_min(c.log_s2_min)


def independent_eq4(m, x, beta, eps):
    """-L of Eq. 4 per example, computed with torch.distributions from the nets and the hand tables."""
    c = m.config
    s2, log_s2 = hand_tables(m)
    idx = torch.round(beta * c.num_steps / c.beta_max).long()
    sig = s2[idx].sqrt()
    s = torch.exp(0.5 * log_s2[idx])
    with torch.no_grad():
        f = m.encoder(x, beta)
        z = f + sig[:, None] * eps
        g = m.decoder(z, beta)
    nll = -Normal(g, s[:, None, None, None]).log_prob(x).flatten(1).sum(1)
    kl = kl_divergence(Normal(f, sig[:, None].expand_as(f)), Normal(torch.zeros_like(f), torch.ones_like(f))).sum(1)
    return (c.beta_max - beta) * nll + beta * kl, nll, kl


@pytest.mark.parametrize("beta_max", [1.0, 2.0])
def test_eq4_equals_an_independent_computation(beta_max):
    m = tiny(beta_max=beta_max)
    with torch.no_grad():
        m.log_s2_table.copy_(torch.tensor([-1.0, -0.5, 0.0, 0.3, 0.7], dtype=torch.float64))
    x, eps = images(), noise(m)
    beta = torch.tensor([0.0, 1.0, 2.0, 4.0], dtype=torch.float64) * beta_max / 4  # grid points incl. 0 and B
    out = m.loss(x, step=0, beta=beta, noise=eps)
    per, nll, kl = independent_eq4(m, x, beta, eps)
    assert float(out["loss"].detach()) == pytest.approx(float(per.mean()), rel=1e-12)
    assert float(out["recon"]) == pytest.approx(float(nll.mean()), rel=1e-12)
    assert float(out["kl"]) == pytest.approx(float(kl.mean()), rel=1e-12)
    with torch.no_grad():
        rec = m.decoder(m.encoder(x, beta) + hand_tables(m)[0][[0, 1, 2, 4]].sqrt()[:, None] * eps, beta)
    assert float(out["mse"]) == pytest.approx(float((x - rec).pow(2).mean()), rel=1e-12)


def test_eq4_by_hand_with_constant_networks():
    """f = mu, g = const: every number of Eq. 4 is written out here."""
    m = tiny(num_steps=2)

    class Enc(torch.nn.Module):
        def forward(self, x, beta):
            return torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64).expand(x.shape[0], 3) + 0 * beta[:, None]

    class Dec(torch.nn.Module):
        def forward(self, z, beta):
            return torch.full((z.shape[0], 1, 32, 32), 0.25, dtype=torch.float64)

    m.encoder, m.decoder = Enc(), Dec()
    with torch.no_grad():
        m.log_s2_table.copy_(torch.tensor([math.log(0.5), 0.0, math.log(2.0)], dtype=torch.float64))
    x = torch.zeros(2, 1, 32, 32, dtype=torch.float64)
    beta = torch.tensor([0.5, 0.5], dtype=torch.float64)  # grid index 1: s^2 = 1
    s2 = float(hand_tables(m)[0][1])
    out = m.loss(x, step=0, beta=beta, noise=torch.zeros(2, 3, dtype=torch.float64))
    D = 1024
    nll = 0.5 * D * 0.25**2 + 0.5 * D * math.log(2 * math.pi)
    kl = 0.5 * (1 + 4 + 0.25 + 3 * s2 - 3 * math.log(s2) - 3)
    assert float(out["recon"]) == pytest.approx(nll, rel=1e-12)
    assert float(out["kl"]) == pytest.approx(kl, rel=1e-12)
    assert float(out["loss"].detach()) == pytest.approx(0.5 * nll + 0.5 * kl, rel=1e-12)  # B = 1, beta = 1/2: half the -ELBO


def test_weighting_reaches_the_autoencoder_and_kl_only_extremes():
    m = tiny()
    x, eps = images(), noise(m)
    zero = torch.zeros(4, dtype=torch.float64)
    out0 = m.loss(x, step=0, beta=zero, noise=eps)
    assert float(out0["loss"].detach()) == pytest.approx(float(out0["recon"]), rel=1e-12)  # beta = 0: reconstruction only
    # ... and no KL gradient: f's gradient is the reconstruction's alone
    m.zero_grad()
    out0["loss"].backward()
    sig_grad = m.sigma_eta.grad.clone()
    assert sig_grad[0] != 0  # sigma_0 is pushed by the reconstruction (towards its floor, Prop. 3.1)

    top = torch.ones(4, dtype=torch.float64)
    m.zero_grad()
    out1 = m.loss(x, step=0, beta=top, noise=eps)
    assert float(out1["loss"].detach()) == pytest.approx(float(out1["kl"]), rel=1e-12)  # beta = B: KL only
    out1["loss"].backward()
    for name, p in m.decoder.named_parameters():  # Prop. 3.2: g(., B) gets no gradient
        assert p.grad is None or float(p.grad.abs().max()) == 0.0, name
    assert float(m.log_s2_table.grad.abs().max()) == 0.0  # nor does s_B (nor any s)
    enc = [p.grad for p in m.encoder.parameters() if p.grad is not None]
    assert enc and max(float(g.abs().max()) for g in enc) > 0  # the KL still trains f(x, B) -> 0
    # the KL gradient on sigma_B: d/d sigma^2 of d/2 (sigma^2 - log sigma^2) = d/2 (1 - 1/sigma^2), nothing else
    s2 = hand_tables(m)[0]
    g_s2 = 0.5 * 3 * (1 - 1 / s2[4])
    softplus_grad = torch.sigmoid(m.sigma_eta.detach())
    torch.testing.assert_close(m.sigma_eta.grad, g_s2 * softplus_grad, rtol=1e-10, atol=1e-12)


def test_kl_gradient_is_zero_at_beta_zero():
    """At beta = 0 the loss does not depend on the KL: perturbing the encoder in a direction that changes only
    ||f||^2 through the KL would change nothing; checked as d loss / d sigma_eta at indices > 0 = 0."""
    m = tiny()
    out = m.loss(images(), step=0, beta=torch.zeros(4, dtype=torch.float64), noise=noise(m))
    out["loss"].backward()
    # sigma_0^2 = sigma2_min + softplus(eta_0): only eta_0 matters at beta = 0
    assert float(m.sigma_eta.grad[1:].abs().max()) == 0.0


def test_beta_vae_weighting_is_the_classic_form_capped():
    m = tiny(weighting="beta_vae", train_top=False, max_kl_weight=5.0)
    x, eps = images(), noise(m)
    beta = torch.tensor([0.0, 0.25, 0.5, 0.75], dtype=torch.float64)
    out = m.loss(x, step=0, beta=beta, noise=eps)
    _, nll, kl = independent_eq4(m, x, beta, eps)
    w = torch.tensor([0.0, 1 / 3, 1.0, 3.0], dtype=torch.float64)
    assert float(out["loss"].detach()) == pytest.approx(float((nll + w * kl).mean()), rel=1e-12)
    wr, wk = m.weights(torch.tensor([0.9, 1.0], dtype=torch.float64))
    assert wk.tolist() == [5.0, 5.0] and wr.tolist() == [1.0, 1.0]  # 0.9 / 0.1 = 9 and infinity both capped at 5
    assert m.weights(torch.tensor([0.3]))[1].tolist() == pytest.approx([0.3 / 0.7])


def test_tables_start_as_documented_and_the_monotone_table_stays_increasing():
    m = MultiBetaVAE(MultiBetaVAEConfig(image_size=32, in_channels=1, latent_dim=2, num_steps=5, hidden=8))
    s2 = m.sigma_grid().detach().double().pow(2)
    want = 1e-4 + torch.arange(6, dtype=torch.float64) / 5
    want[0] = 1e-4 + 1e-6
    torch.testing.assert_close(s2, want, rtol=1e-6, atol=1e-9)  # (the minimum step is part of each increment)
    assert m.log_s2_grid().tolist() == [0.0] * 6
    torch.testing.assert_close(m.grid(), beta_grid(5))
    assert beta_grid(4, 2.0).tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    with torch.no_grad():
        m.sigma_eta.copy_(torch.randn(6) * 5)
    assert m.sigma_is_increasing()
    with torch.no_grad():
        m.sigma_eta.fill_(-60.0)  # softplus underflows to ~1e-26: every step is the minimum step
    s2 = m.sigma_grid().detach().double().pow(2)
    torch.testing.assert_close(torch.diff(s2), torch.full((5,), 1e-6, dtype=torch.float64), rtol=1e-3, atol=0)
    assert bool((torch.diff(m.sigma_grid()) > 0).all())  # still strictly increasing in float32
    assert bool((torch.diff(m.sigma_grid()) > 0).all())
    assert float(m.sigma_grid()[0].double() ** 2) >= 1e-4 * (1 - 1e-6)


def test_free_table_starts_like_the_monotone_one():
    m = MultiBetaVAE(MultiBetaVAEConfig(image_size=32, in_channels=1, latent_dim=2, num_steps=5, hidden=8,
                                        sigma_table="free", sigma2_init_top=0.5))
    want = 1e-4 + 0.5 * torch.arange(6, dtype=torch.float64) / 5
    want[0] = 1e-4 + 1e-6
    torch.testing.assert_close(m.log_sigma2_grid().detach().double().exp(), want, rtol=1e-6, atol=1e-10)
    assert m.floors() == {"sigma2": 0, "log_s2": 0}


def test_floors_bind_and_are_reported():
    m = tiny(sigma_table="free")
    with torch.no_grad():
        m.log_sigma2_table.copy_(torch.tensor([-30.0, -1.0, -2.0, 0.0, 0.0], dtype=torch.float64))
        m.log_s2_table.copy_(torch.tensor([-20.0, -9.0, -3.0, 0.0, 0.0], dtype=torch.float64))
    assert float(m.log_sigma2_grid()[0]) == pytest.approx(math.log(1e-4))
    assert float(m.log_s2_grid()[0]) == -9.0
    assert m.floors() == {"sigma2": 1, "log_s2": 2}
    assert not m.sigma_is_increasing()  # -1 then -2: the free table is not monotone
    out = m.loss(images(), step=0, beta=torch.zeros(4, dtype=torch.float64), noise=noise(m))
    assert (out["sigma2_floor"], out["log_s2_floor"]) == (1, 2)  # logged by the trainer
    out["loss"].backward()
    assert float(m.log_sigma2_table.grad[0]) == 0.0 and float(m.log_s2_table.grad[0]) == 0.0  # floored: no gradient


def test_off_grid_rules():
    m = tiny()
    with torch.no_grad():
        m.log_s2_table.copy_(torch.tensor([-1.0, 0.0, 2.0, 3.0, 5.0], dtype=torch.float64))
    L = m.log_sigma2_grid().detach()
    b = torch.tensor([0.1, 0.25, 0.6, 1.0], dtype=torch.float64)  # tau = 0.25
    lin = torch.stack([0.6 * L[0] + 0.4 * L[1], L[1], 0.6 * L[2] + 0.4 * L[3], L[4]])
    torch.testing.assert_close(m.log_sigma2(b), lin, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m.sigma(b), torch.exp(0.5 * lin), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m.log_s2(b), torch.tensor([-0.6, 0.0, 2.4, 5.0], dtype=torch.float64), rtol=1e-12, atol=1e-12)
    nearest = tiny(off_grid="nearest")
    with torch.no_grad():
        nearest.log_s2_table.copy_(m.log_s2_table)
    assert nearest.log_s2(b).tolist() == [-1.0, 0.0, 2.0, 5.0]
    strict = tiny(off_grid="error")
    assert strict.log_s2(torch.tensor([0.25, 1.0], dtype=torch.float64)).tolist() == strict.log_s2_grid()[[1, 4]].tolist()
    with pytest.raises(ValueError, match="on the grid"):
        strict.sigma(0.1)
    # the loss reads the same interpolated tables off the grid
    x, eps = images(2), noise(m, 2)
    beta = torch.tensor([0.1, 0.6], dtype=torch.float64)
    out = m.loss(x, step=0, beta=beta, noise=eps)
    with torch.no_grad():
        f = m.encoder(x, beta)
        sig, ls2 = m.sigma(beta), m.log_s2(beta)
        g = m.decoder(f + sig[:, None] * eps, beta)
    nll = -Normal(g, torch.exp(0.5 * ls2)[:, None, None, None]).log_prob(x).flatten(1).sum(1)
    kl = kl_divergence(Normal(f, sig[:, None].expand_as(f)), Normal(0.0, 1.0)).sum(1)
    assert float(out["loss"].detach()) == pytest.approx(float(((1 - beta) * nll + beta * kl).mean()), rel=1e-12)


def test_beta_prior_draws():
    m = tiny(num_steps=4)
    g = torch.Generator().manual_seed(0)
    b = m.sample_beta(4000, generator=g)
    assert set(torch.round(b * 4).long().tolist()) == {0, 1, 2, 3, 4}
    torch.testing.assert_close(b * 4, torch.round(b * 4))
    counts = torch.bincount(torch.round(b * 4).long(), minlength=5).double() / 4000
    assert float((counts - 0.2).abs().max()) < 0.03
    no_top = tiny(num_steps=4, train_top=False).sample_beta(2000, generator=g)
    assert set(torch.round(no_top * 4).long().tolist()) == {0, 1, 2, 3}
    un = tiny(beta_prior="uniform", train_top=False, num_steps=4).sample_beta(4000, generator=g)
    assert float(un.max()) < 1 - 1 / 8 + 1e-9 and float(un.max()) > 0.86  # beta ~ U[0, B (1 - 1/(2N))): below the top cell
    u = tiny(beta_prior="uniform", beta_max=2.0).sample_beta(4000, generator=g)
    assert 0 <= float(u.min()) and float(u.max()) <= 2.0 and abs(float(u.mean()) - 1.0) < 0.05
    assert len(set(u.tolist())) > 3000


def test_encode_decode_depend_on_beta_and_film_concat_both_work():
    for cond in ("film", "concat"):
        m = tiny(conditioning=cond)
        x = images(2)
        assert m.encode(x, 0.0).shape == (2, 3)
        assert not torch.allclose(m.encode(x, 0.0), m.encode(x, 1.0))
        z = noise(m, 2)
        assert m.decode(z, 0.5).shape == (2, 1, 32, 32)
        assert not torch.allclose(m.decode(z, 0.0), m.decode(z, 0.75))
        per = m.encode(x, torch.tensor([0.0, 1.0], dtype=torch.float64))
        torch.testing.assert_close(per[1], m.encode(x[1:], 1.0)[0])
    assert tiny().sigma(0.5).shape == (1,) and tiny().sigma(torch.tensor([0.0, 0.5, 1.0])).shape == (3,)


def test_resnet_spatial_latent_shapes():
    m = MultiBetaVAE(MultiBetaVAEConfig(image_size=16, in_channels=3, arch="resnet", latent="spatial", latent_channels=2,
                                        model_channels=8, channel_mult=(1, 2), num_groups=4, num_steps=4))
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    assert m.config.latent_shape == (2, 8, 8)
    assert m.encode(x, 0.5).shape == (2, 2, 8, 8)
    assert m.decode(torch.randn(2, 2, 8, 8), 0.5).shape == (2, 3, 16, 16)
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out["loss"]) and out["kl"] >= 0


def test_input_validation():
    m = tiny()
    x = images(2)
    with pytest.raises(ValueError, match=r"lie in \[0, B=1\]"):
        m.encode(x, 1.5)
    with pytest.raises(ValueError, match=r"lie in \[0, B=1\]"):
        m.encode(x, -0.1)
    with pytest.raises(ValueError, match=r"^beta must be finite numbers in \[0, B=1\], got NaN or infinite values$"):
        m.sigma(float("nan"))
    with pytest.raises(TypeError, match="beta must be a number"):
        m.encode(x, "0.5")
    with pytest.raises(ValueError, match=r"shape \[2\]"):
        m.encode(x, torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(ValueError, match=r"shape \[B, 1, 32, 32\]"):
        m.encode(torch.zeros(2, 3, 32, 32, dtype=torch.float64), 0.5)
    with pytest.raises(ValueError, match=r"z must have shape \[B, 3\]"):
        m.decode(torch.zeros(2, 4, dtype=torch.float64), 0.5)
    with pytest.raises(TypeError, match="z must be a tensor"):
        m.decode([0.0, 1.0, 2.0], 0.5)
    with pytest.raises(TypeError, match="beta must be a tensor"):
        m.loss(x, step=0, beta=0.5)
    with pytest.raises(ValueError, match="noise must have shape"):
        m.loss(x, step=0, beta=torch.zeros(2), noise=torch.zeros(2, 5))
    with pytest.raises(ValueError, match="NaN"):
        m.loss(x * float("nan"), step=0)
    with pytest.raises(ConfigError, match="spatial latent needs arch='resnet'"):
        MultiBetaVAEConfig(latent="spatial")
    with pytest.raises(ConfigError, match="32x32 or 64x64"):
        MultiBetaVAEConfig(image_size=48)
    with pytest.raises(ConfigError, match="train_top"):
        MultiBetaVAEConfig(weighting="beta_vae")
    with pytest.raises(ConfigError, match="below the floor"):
        MultiBetaVAEConfig(log_s2_init=-10.0)
    with pytest.raises(ConfigError, match="sigma2_min"):
        MultiBetaVAEConfig(sigma2_min=0.0)
    with pytest.raises(ConfigError, match="sigma2_min_step"):
        MultiBetaVAEConfig(num_steps=1000, sigma2_min_step=1e-3)


def test_nll_and_kl_closed_forms_match_monte_carlo_free_forms():
    """The Gaussian NLL with learned s matches torch.distributions; the isotropic KL matches a float64 Monte Carlo."""
    g = torch.Generator().manual_seed(0)
    f = torch.tensor([0.3, -1.2, 2.0], dtype=torch.float64)
    s2 = 0.37
    z = f + math.sqrt(s2) * torch.randn(400000, 3, generator=g, dtype=torch.float64)
    mc = (Normal(f, math.sqrt(s2)).log_prob(z) - Normal(0.0, 1.0).log_prob(z)).sum(1).mean()
    closed = 0.5 * (float(f.pow(2).sum()) + 3 * s2 - 3 * math.log(s2) - 3)
    assert float(mc) == pytest.approx(closed, abs=0.01)
    assert F.softplus(torch.tensor(0.0)).item() == pytest.approx(math.log(2))


def test_validation_details_named_fields_and_edges():
    """Each config error names its field; the edges of each check (mutation testing found them unpinned)."""
    for kw, field in [(dict(image_size=48), "image_size"), (dict(latent="spatial"), "latent"),
                      (dict(num_steps=1000, sigma2_min_step=1e-3), "sigma2_min_step"),
                      (dict(log_s2_init=-10.0), "log_s2_init"), (dict(weighting="beta_vae"), "train_top")]:
        with pytest.raises(ConfigError) as exc:
            MultiBetaVAEConfig(**kw)
        assert exc.value.field == field and str(exc.value).count("None") == 0, kw
    MultiBetaVAEConfig(log_s2_init=-9.0)  # at the floor is allowed
    MultiBetaVAEConfig(arch="resnet", image_size=16, model_channels=16, channel_mult=(1, 3), num_groups=16)  # 48 % 16 == 0
    m = tiny()
    x = images(2)
    with pytest.raises(TypeError, match="got str"):
        m.encode(x, "0.5")
    with pytest.raises(TypeError, match="got list"):
        m.decode([0.0], 0.5)
    with pytest.raises(TypeError, match=r"^MultiBetaVAE.decode: z must be a floating-point tensor, got dtype torch.int64$"):
        m.decode(torch.zeros(2, 3, dtype=torch.int64), 0.5)  # integer codes
    with pytest.raises(ValueError, match=r"MultiBetaVAE.encode: x must have shape"):
        m.encode(torch.zeros(2, 1, 16, 16, dtype=torch.float64), 0.5)
    assert m.decode(torch.zeros(1, 3, dtype=torch.float64), 0.5).shape == (1, 1, 32, 32)  # a batch of one
    with pytest.raises(ValueError, match=r"^beta must lie"):
        m.sigma(2.0)
    with pytest.raises(ValueError, match=r"^beta must lie"):
        m.s(-1.0)
    with pytest.raises(TypeError, match="beta must be a tensor of shape \\[2\\], got float"):
        m.loss(x, step=0, beta=0.5)
    with pytest.raises(ValueError, match=r"MultiBetaVAE.loss: beta must be a number or a tensor of shape \[2\]"):
        m.loss(x, step=0, beta=torch.zeros(3))
    with pytest.raises(ValueError, match=r"noise must have shape \(2, 3\), got \(2, 5\)"):
        m.loss(x, step=0, beta=torch.zeros(2), noise=torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"MultiBetaVAE.loss: batch must have shape \[B, 1, 32, 32\]"):
        m.loss(torch.zeros(2, 3, 32, 32, dtype=torch.float64), step=0)
    with pytest.raises(ValueError, match=r"MultiBetaVAE.loss: batch must have shape \[B, 1, 32, 32\]"):
        m.loss(torch.zeros(2, 1, 16, 16, dtype=torch.float64), step=0)
    # one beta out of range is named as given (it read "got values in [2, 2]"); a tensor by its range; a NaN among
    # valid betas as a NaN (min / max read "[nan, nan]")
    with pytest.raises(ValueError, match=r"^beta must lie in \[0, B=1\], got 2$"):
        m.encode(x, 2.0)
    with pytest.raises(ValueError, match=r"^beta must lie in \[0, B=1\], got -0.25$"):
        m.encode(x, torch.tensor(-0.25))
    with pytest.raises(ValueError, match=r"^MultiBetaVAE.loss: beta must lie in \[0, B=1\], got values in \[0, 1.5\]$"):
        m.loss(x, step=0, beta=torch.tensor([0.0, 1.5]))
    with pytest.raises(ValueError, match=r"^MultiBetaVAE.loss: beta must be finite numbers in \[0, B=1\], got NaN"):
        m.loss(x, step=0, beta=torch.tensor([0.5, float("nan")]))
    # a beta a hair above B (float rounding) is read as B
    assert float(m.log_s2(1.0 + 5e-7)) == float(m.log_s2(1.0))


def test_loss_of_a_single_example_and_generator_reproducibility():
    m = tiny()
    x1 = images(1)
    out = m.loss(x1, step=0, beta=torch.tensor([0.5], dtype=torch.float64), noise=noise(m, 1))
    per, _, _ = independent_eq4(m, x1, torch.tensor([0.5], dtype=torch.float64), noise(m, 1))
    assert float(out["loss"].detach()) == pytest.approx(float(per[0]), rel=1e-12)
    x = images(8)
    torch.manual_seed(1)
    a = m.loss(x, step=0, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(2)  # the global RNG plays no part when a generator is given
    b = m.loss(x, step=0, generator=torch.Generator().manual_seed(3))
    c = m.loss(x, step=0, generator=torch.Generator().manual_seed(4))
    assert float(a["loss"].detach()) == float(b["loss"].detach()) != float(c["loss"].detach())
    for prior in ("grid", "uniform"):
        mm = tiny(beta_prior=prior)
        torch.manual_seed(1)
        u = mm.sample_beta(16, generator=torch.Generator().manual_seed(0))
        torch.manual_seed(2)
        assert torch.equal(u, mm.sample_beta(16, generator=torch.Generator().manual_seed(0)))
        assert u.dtype == torch.float64


def test_an_equal_step_is_not_increasing():
    m = tiny(sigma_table="free")
    with torch.no_grad():
        m.log_sigma2_table.copy_(torch.tensor([-5.0, -1.0, -1.0, 0.0, 0.1], dtype=torch.float64))
    assert not m.sigma_is_increasing()


def test_fixed_s_and_the_grid_in_float64():
    m = tiny(learn_s=False, log_s2_init=-2.0)
    assert "log_s2_table" in dict(m.named_buffers()) and "log_s2_table" not in dict(m.named_parameters())
    assert m.log_s2_grid().tolist() == [-2.0] * 5
    out = m.loss(images(2), step=0, beta=torch.tensor([0.25, 0.5], dtype=torch.float64), noise=noise(m, 2))
    _, nll, _ = independent_eq4(m, images(2), torch.tensor([0.25, 0.5], dtype=torch.float64), noise(m, 2))
    assert float(out["recon"]) == pytest.approx(float(nll.mean()), rel=1e-12)
    g = beta_grid(1000, dtype=torch.float64)
    torch.testing.assert_close(g, torch.arange(1001, dtype=torch.float64) / 1000, rtol=1e-15, atol=1e-15)


def test_s_and_grid_accessors():
    m = tiny(beta_max=2.0)
    with torch.no_grad():
        m.log_s2_table.copy_(torch.tensor([-1.0, 0.0, 2.0, 3.0, 5.0], dtype=torch.float64))
    b = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)
    torch.testing.assert_close(m.s(b), torch.exp(0.5 * torch.tensor([-1.0, 2.0, 5.0], dtype=torch.float64)))
    assert m.grid().tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]


def test_pinned_table_keeps_sigma_top_at_one_and_stays_monotone():
    m = tiny(sigma_table="monotone_pinned")
    for seed in range(3):
        with torch.no_grad():
            m.sigma_eta.copy_(torch.randn(5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 4)
        s2 = m.log_sigma2_grid().exp()
        assert float(s2[-1]) == pytest.approx(1.0, rel=1e-12)  # Prop. 3.2's optimum sigma_B = 1, by construction
        assert float(s2[0]) >= 1e-4 and m.sigma_is_increasing()
        # the same shape as the unpinned table, rescaled: (s2 - min) proportional to the cumulative increments
        step = 1e-6 * (torch.arange(5) > 0).double()
        cum = torch.cumsum(torch.log1p(torch.exp(m.sigma_eta.detach())) + step, 0)
        torch.testing.assert_close(s2.detach() - 1e-4, cum * (1 - 1e-4) / cum[-1], rtol=1e-10, atol=1e-14)
    out = m.loss(images(), step=0, beta=torch.tensor([0.25, 0.5, 0.75, 1.0], dtype=torch.float64), noise=noise(m))
    out["loss"].backward()
    assert m.sigma_eta.grad is not None and float(m.sigma_eta.grad.abs().sum()) > 0
    with pytest.raises(ConfigError, match="sigma2_init_top"):
        MultiBetaVAEConfig(sigma_table="monotone_pinned", sigma2_min=0.5, sigma2_init_top=0.4, num_steps=10)


def test_eq4_is_invariant_to_rotations_of_the_latent_space():
    """With the isotropic sigma_beta^2 I of Eq. 3 and the N(0, I) prior, Eq. 4 has no preferred latent axes: rotating
    the code by an orthogonal R (encoder head R W, decoder first layer W R^T) and the noise by R leaves every
    example's loss unchanged at every beta (hand-derived: ||R f||^2 = ||f||^2, g(R^T (R f + sigma R eps)) =
    g(f + sigma eps)). Axis alignment (MIG / DCI) therefore gets no push from the objective itself
    (docs/methods/multibeta.md#learned-s-and-where-the-beta-range-does-its-work)."""
    import copy

    m = tiny()
    r, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64))
    rot = copy.deepcopy(m)
    with torch.no_grad():
        rot.encoder.head.weight.copy_(r @ m.encoder.head.weight)
        rot.encoder.head.bias.copy_(r @ m.encoder.head.bias)
        rot.decoder.fc1.weight.copy_(m.decoder.fc1.weight @ r.T)
    x = images(5)
    beta = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64)
    eps = torch.randn(5, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    a = m.loss(x, step=0, beta=beta, noise=eps)
    b = rot.loss(x, step=0, beta=beta, noise=eps @ r.T)
    for key in ("loss", "recon", "kl", "mse"):
        assert float(b[key]) == pytest.approx(float(a[key]), rel=1e-10)
    torch.testing.assert_close(rot.encode(x, beta), m.encode(x, beta) @ r.T)
