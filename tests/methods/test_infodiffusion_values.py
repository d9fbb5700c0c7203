"""InfoDiffusion (docs/methods/infodiffusion.md): values of the decoder and the stochastic encoder (DDIM by
hand), the priors redrawn from the same generator, the MMD's unbiased estimator, the configuration checks
and the messages. Written to kill the mutants that survived tests/methods/test_infodiffusion.py
(benches/results/mutation_diffusion_baselines_2026-12-06c.md)."""

import math

import pytest
import torch

from diffrep.config import ConfigError
from diffrep.methods.infodiffusion import InfoDiffusion, InfoDiffusionConfig, infodiffusion_unet, sample_prior
from diffrep.nn.encoders import HalfUNetConfig
from helpers import break_zero_init, ddim_decode_by_hand, ddim_invert_by_hand, linear_alphas_cumprod

ABAR = linear_alphas_cumprod(1000, 1e-5, 1e-2)  # the authors' schedule, InfoDiffusion's default


def _model(**kw):
    torch.manual_seed(0)
    m = InfoDiffusion(InfoDiffusionConfig(**kw)).double()
    break_zero_init(m.unet, std=0.05)
    return m


def _images(n=2, seed=1):
    return (torch.rand((n, 3, 16, 16), generator=torch.Generator().manual_seed(seed)) * 2 - 1).double()


def _cfg(latent_dim, **kw):
    """A config with encoder and decoder built for ``latent_dim``."""
    enc = HalfUNetConfig(image_size=16, in_channels=3, model_channels=16, channel_mult=(1, 2), num_res_blocks=1,
                         latent_dim=latent_dim, act="silu", bias=True, num_groups=8, variance_head="logvar")
    unet = infodiffusion_unet(latent_dim, image_size=16, model_channels=16, channel_mult=(1, 2), num_res_blocks=1,
                              attention_resolutions=(), num_groups=8)
    return InfoDiffusionConfig(latent_dim=latent_dim, encoder=enc, unet=unet, **kw)


# -- decoding and stochastic encoding ------------------------------------------------------------------
def test_decoding_is_ddim_by_hand():
    m = _model(sample_steps=2)
    z = torch.randn(2, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    xT = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    eps = lambda x, t: m.unet(x, t, z)  # noqa: E731
    with torch.no_grad():
        torch.testing.assert_close(m.decode(z, xT, num_steps=3), ddim_decode_by_hand(eps, xT, 3, ABAR),
                                   rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(m.decode(z, xT), ddim_decode_by_hand(eps, xT, 2, ABAR), rtol=1e-10, atol=1e-12)
        x_rand = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
        got = m.decode(z, num_steps=3, generator=torch.Generator().manual_seed(4))
        torch.testing.assert_close(got, ddim_decode_by_hand(eps, x_rand, 3, ABAR), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match=r"x_T must have shape \(2, 3, 16, 16\), got \(2, 3, 8, 8\)"):
        m.decode(z, torch.zeros(2, 3, 8, 8, dtype=torch.float64))


def test_stochastic_encoding_is_ddim_inversion_by_hand():
    m = _model(sample_steps=2)
    x = _images()
    with torch.no_grad():
        mu, logvar = m.encoder(x)
        torch.testing.assert_close(m.encode(x), mu, rtol=0, atol=0)  # the posterior mean, not the log-variance
        assert (mu - logvar).abs().max() > 1e-3
        want = ddim_invert_by_hand(lambda xt, t: m.unet(xt, t, mu), x, 3, ABAR)
        torch.testing.assert_close(m.encode_stochastic(x, num_steps=3), want, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(m.encode_stochastic(x), ddim_invert_by_hand(lambda xt, t: m.unet(xt, t, mu), x, 2, ABAR),
                                   rtol=1e-10, atol=1e-12)
        z2 = torch.randn(2, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
        want2 = ddim_invert_by_hand(lambda xt, t: m.unet(xt, t, z2), x, 3, ABAR)
        assert (want2 - want).abs().max() > 1e-4
        torch.testing.assert_close(m.encode_stochastic(x, z2, num_steps=3), want2, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match=r"z must be a \[2, 8\] tensor, got torch.Size\(\[3, 8\]\)"):
        m.encode_stochastic(x, torch.zeros(3, 8, dtype=torch.float64))


# -- the priors, draw for draw ---------------------------------------------------------------------------
def test_priors_redrawn_from_the_same_generator():
    """Each prior's formula (module docstring) applied to the draws of a generator with the same seed."""
    n = 5
    g = torch.Generator().manual_seed(9)
    u = 0.5 * torch.randn((n, 2), generator=g, dtype=torch.float64)
    v = 0.1 * torch.randn((n, 2), generator=g, dtype=torch.float64)
    lab = torch.randint(0, 10, (n, 2), generator=g)
    r = 2 * math.pi * lab.double() / 10
    want = torch.stack([u * r.cos() - v * r.sin() + 1.4 * r.cos(), u * r.sin() + v * r.cos() + 1.4 * r.sin()], 2)
    got = sample_prior("mixture10", n, 4, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    torch.testing.assert_close(got, want.reshape(n, 4), rtol=0, atol=1e-14)
    g = torch.Generator().manual_seed(9)
    s = 1.5 * math.pi * (1 + 2 * torch.rand((n,), generator=g, dtype=torch.float64))
    noise = 0.3 * torch.randn((n, 2), generator=g, dtype=torch.float64)
    want = (torch.stack([s * s.cos(), s * s.sin()], 1) + noise) / 5
    got = sample_prior("swiss_roll", n, 2, generator=torch.Generator().manual_seed(9), dtype=torch.float64, roll_noise=0.3)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-14)


@pytest.mark.parametrize("kind, dim", [("gaussian", 4), ("mixture10", 4), ("swiss_roll", 2)])
def test_priors_are_placed_on_the_requested_device(kind, dim):
    """On ``device``; without one, on the generator's device (here the CPU, not the meta default device)."""
    assert sample_prior(kind, 3, dim, device="meta").device.type == "meta"
    with torch.device("meta"):
        assert sample_prior(kind, 3, dim, generator=torch.Generator().manual_seed(0)).device.type == "cpu"


def test_prior_argument_messages():
    with pytest.raises(ValueError, match=r"^n must be a positive int, got 0"):
        sample_prior("gaussian", 0, 4)
    with pytest.raises(ValueError, match=r"^dim must be a positive int, got 0"):
        sample_prior("gaussian", 3, 0)
    with pytest.raises(ValueError, match=r"prior must be one of gaussian, mixture10, swiss_roll; got 'laplace'"):
        sample_prior("laplace", 3, 4)


# -- the MMD term --------------------------------------------------------------------------------------
def test_the_unbiased_mmd_estimator_is_the_u_statistic():
    m = _model(mmd_estimator="unbiased")
    g = torch.Generator().manual_seed(0)
    z, p = torch.randn(5, 8, generator=g, dtype=torch.float64), torch.randn(4, 8, generator=g, dtype=torch.float64)
    k = lambda a, b: torch.exp(-torch.cdist(a, b).pow(2) / 64.0)  # noqa: E731  (h = d^2)
    kzz, kpp = k(z, z), k(p, p)
    want = ((kzz.sum() - kzz.diagonal().sum()) / 20 + (kpp.sum() - kpp.diagonal().sum()) / 12 - 2 * k(z, p).mean())
    torch.testing.assert_close(m.mmd(z, p), want, rtol=1e-10, atol=1e-14)


# -- configuration, plumbing and messages ----------------------------------------------------------------
def test_config_bounds_and_messages():
    for steps in (1, 1000):
        assert InfoDiffusionConfig(sample_steps=steps).sample_steps == steps
    with pytest.raises(ConfigError, match=r"'sample_steps': must be in \[1, 1000\], got 1001"):
        InfoDiffusionConfig(sample_steps=1001)
    assert _cfg(3).prior == "gaussian"  # an odd latent is fine for the Gaussian prior
    assert _cfg(6, prior="mixture10").latent_dim == 6
    with pytest.raises(ConfigError, match=r"config field 'prior': mixture10 needs an even latent_dim, got 3"):
        _cfg(3, prior="mixture10")
    assert _cfg(2, prior="swiss_roll").latent_dim == 2
    with pytest.raises(ConfigError, match=r"config field 'prior': swiss_roll is 2-dimensional, latent_dim is 3"):
        _cfg(3, prior="swiss_roll")
    with pytest.raises(ConfigError, match=r"config field 'rec_weight': must be >= 0, or -1 for 1/T; got -0.5"):
        InfoDiffusionConfig(rec_weight=-0.5)
    assert InfoDiffusionConfig(rec_weight=0.0).rec_weight_value == 0.0
    assert InfoDiffusionConfig().rec_weight_value == pytest.approx(1e-3)
    with pytest.raises(ConfigError, match=r"config field 'encoder.latent_dim': the encoder needs latent_dim=4 "
                                          r"and variance_head='logvar'"):
        InfoDiffusionConfig(latent_dim=4)
    with pytest.raises(ConfigError, match=r"use infodiffusion_unet\(\)"):
        InfoDiffusionConfig(unet=infodiffusion_unet(4, image_size=16, model_channels=16, channel_mult=(1, 2),
                                                    num_res_blocks=1, attention_resolutions=(), num_groups=8))


@pytest.mark.parametrize("who", ["loss", "posterior", "encode_stochastic"])
@pytest.mark.parametrize("shape", [(2, 1, 16, 16), (2, 3, 8, 8)])
def test_wrong_images_are_refused_by_name(who, shape):
    m = InfoDiffusion(InfoDiffusionConfig())
    call = {"loss": lambda x: m.loss(x, step=0), "posterior": m.posterior, "encode_stochastic": m.encode_stochastic}[who]
    name = "batch" if who == "loss" else "x"  # each message names the argument as the signature does
    with pytest.raises(ValueError, match=rf"^InfoDiffusion\.{who}: {name} must have shape \[B, 3, 16, 16\]"):
        call(torch.zeros(shape))


def test_code_checks_name_the_shape_and_type():
    m = InfoDiffusion(InfoDiffusionConfig())
    with pytest.raises(ValueError, match=r"z must be a \[B, 8\] tensor, got torch.Size\(\[2, 5\]\)"):
        m.decode(torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"z must be a \[B, 8\] tensor, got <class 'list'>"):
        m.decode([[0.0] * 8])


def test_tensors_made_by_the_objective_follow_the_images_device():
    """Every draw of the objective (t, eps, the z noise, the x_1 noise, the prior) is placed on the images'
    device, not the default one (a meta default device makes a misplaced draw fail)."""
    m, x = _model(kl_weight=0.1, mmd_weight=0.1), _images()
    for gen in (torch.Generator().manual_seed(5), None):
        with torch.device("meta"):
            out = m.loss(x, step=0, generator=gen)
        assert out["loss"].device.type == "cpu" and set(out) == {"loss", "diffusion", "reconstruction", "kl", "mmd"}


def test_sampling_decodes_prior_draws_by_hand():
    """z ~ p(z) then x_T ~ N(0, I), both from the one generator in the model's dtype, DDIM-decoded."""
    m = _model(sample_steps=2)
    got = m.sample(2, generator=torch.Generator().manual_seed(7), num_steps=3)
    g = torch.Generator().manual_seed(7)
    z = torch.randn(2, 8, generator=g, dtype=torch.float64)
    xT = torch.randn(2, 3, 16, 16, generator=g, dtype=torch.float64)
    with torch.no_grad():
        want = ddim_decode_by_hand(lambda x, t: m.unet(x, t, z), xT, 3, ABAR).clamp(-1, 1)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-11)


def test_decoding_and_sampling_draw_on_the_models_device():
    m = _model(sample_steps=2)
    z = torch.randn(2, 8, dtype=torch.float64)
    with torch.device("meta"), torch.no_grad():
        assert m.decode(z, generator=torch.Generator().manual_seed(0)).device.type == "cpu"
        assert m.sample(2, generator=torch.Generator().manual_seed(0)).device.type == "cpu"
