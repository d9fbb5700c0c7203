"""DiffAE (docs/methods/diffae.md): values of the decoder, the stochastic encoder, slerp, the latent
DDIM's network and the configuration checks, each against an independent computation. Written to kill
the mutants that survived tests/methods/test_diffae.py (benches/results/mutation_diffusion_baselines_2026-12-06c.md)."""

import math
import re

import pytest
import torch
import torch.nn.functional as F

from diffrep.config import ConfigError
from diffrep.diffusion import NoiseScheduleConfig
from diffrep.methods.diffae import DiffAE, DiffAEConfig, LatentDDIMConfig, LatentDDIMNet, diffae_unet
from diffrep.viz import slerp as viz_slerp
from helpers import break_zero_init, ddim_decode_by_hand, ddim_invert_by_hand, linear_alphas_cumprod


def _model(**kw):
    torch.manual_seed(0)
    return break_zero_init(DiffAE(DiffAEConfig(**kw)).double(), std=0.1)


def _images(n=2, seed=1):
    return (torch.rand((n, 3, 16, 16), generator=torch.Generator().manual_seed(seed)) * 2 - 1).double()


def _abar(T=1000, beta_start=1e-4, beta_end=0.02):
    return linear_alphas_cumprod(T, beta_start, beta_end)


def _ddim_decode(eps_fn, x, steps, clip=False):
    return ddim_decode_by_hand(eps_fn, x, steps, _abar(), clip)


def _ddim_invert(eps_fn, x, steps):
    return ddim_invert_by_hand(eps_fn, x, steps, _abar())


# -- decoding and stochastic encoding (DiffAE Sec. 3.1-3.2, Eq. 8) -----------------------------------
def test_decoding_is_ddim_by_hand_with_and_without_clipping():
    m = _model(sample_steps=2)
    z = torch.randn(2, 32, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    xT = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    eps = lambda x, t: m.unet(x, t, z)  # noqa: E731
    with torch.no_grad():
        torch.testing.assert_close(m.decode(z, xT, num_steps=3), _ddim_decode(eps, xT, 3), rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(m.decode(z, xT), _ddim_decode(eps, xT, 2), rtol=1e-10, atol=1e-12)  # config steps
        # x_T ~ N(0, I) from the generator, in the code's dtype
        x_rand = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
        got = m.decode(z, num_steps=3, generator=torch.Generator().manual_seed(4))
        torch.testing.assert_close(got, _ddim_decode(eps, x_rand, 3), rtol=1e-10, atol=1e-12)
        # clip_x0: the x0 prediction clamped to [-1, 1] at every step (and eps re-derived from it)
        m.config.clip_x0 = True
        clipped = _ddim_decode(eps, xT, 3, clip=True)
        assert (clipped - _ddim_decode(eps, xT, 3)).abs().max() > 1e-3  # clipping changes this case
        torch.testing.assert_close(m.decode(z, xT, num_steps=3), clipped, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match=r"x_T must have shape \(2, 3, 16, 16\), got \(2, 3, 8, 8\)"):
        m.decode(z, torch.zeros(2, 3, 8, 8, dtype=torch.float64))


def test_stochastic_encoding_is_eq8_by_hand_and_never_clipped():
    m = _model(sample_steps=2, clip_x0=True)
    x = _images()
    with torch.no_grad():
        z = m.encode(x)
        z2 = torch.randn(2, 32, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
        want = _ddim_invert(lambda xt, t: m.unet(xt, t, z), x, 3)
        torch.testing.assert_close(m.encode_stochastic(x, num_steps=3), want, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(m.encode_stochastic(x), _ddim_invert(lambda xt, t: m.unet(xt, t, z), x, 2),
                                   rtol=1e-10, atol=1e-12)  # config steps
        # a given z_sem conditions the inversion
        want2 = _ddim_invert(lambda xt, t: m.unet(xt, t, z2), x, 3)
        assert (want2 - want).abs().max() > 1e-4
        torch.testing.assert_close(m.encode_stochastic(x, z2, num_steps=3), want2, rtol=1e-10, atol=1e-12)
        # clip_x0 applies to decoding only: the inversion with a clipped x0 would differ here
        clipped = m._sampler(clip=True).invert(lambda xt, t: m.unet(xt, t, z), x, num_steps=3)
        assert (clipped - want).abs().max() > 1e-4
    with pytest.raises(ValueError, match=r"z_sem must be a \[2, 32\] tensor, got torch.Size\(\[3, 32\]\)"):
        m.encode_stochastic(x, torch.zeros(3, 32, dtype=torch.float64))


# -- slerp (DiffAE Sec. 5.1): diffrep.viz.slerp with batched=True, one angle per example ----------------
def slerp(a, b, alpha):
    return viz_slerp(a, b, [alpha], batched=True)[0]


def _slerp_row(a, b, alpha):
    cos = sum(p * q for p, q in zip(a, b)) / (math.sqrt(sum(p * p for p in a)) * math.sqrt(sum(q * q for q in b)))
    th = math.acos(max(-1.0, min(1.0, cos)))
    if th < 1e-6:
        return [(1 - alpha) * p + alpha * q for p, q in zip(a, b)]
    return [(math.sin((1 - alpha) * th) * p + math.sin(alpha * th) * q) / math.sin(th) for p, q in zip(a, b)]


def test_slerp_matches_the_closed_form_per_example():
    """Rows of different norms (below 1) at angles 0.5 and 2.0 rad, image-shaped tensors."""
    g = torch.Generator().manual_seed(0)
    u = torch.randn(2, 8, generator=g, dtype=torch.float64)
    w = torch.randn(2, 8, generator=g, dtype=torch.float64)
    u = u / u.norm(dim=1, keepdim=True)
    w = w - (w * u).sum(1, keepdim=True) * u
    w = w / w.norm(dim=1, keepdim=True)  # w orthogonal to u, both unit
    ang = torch.tensor([[0.5], [2.0]], dtype=torch.float64)
    a = torch.tensor([[0.3], [0.05]], dtype=torch.float64) * u
    b = torch.tensor([[0.2], [0.9]], dtype=torch.float64) * (ang.cos() * u + ang.sin() * w)
    for alpha in (0.25, 0.7):
        got = slerp(a.reshape(2, 2, 2, 2), b.reshape(2, 2, 2, 2), alpha)
        want = torch.tensor([_slerp_row(a[i].tolist(), b[i].tolist(), alpha) for i in range(2)], dtype=torch.float64)
        torch.testing.assert_close(got.reshape(2, 8), want, rtol=1e-12, atol=1e-14)


def test_slerp_of_parallel_codes_is_linear():
    """theta ~ 0: the linear blend (1 - alpha) a + alpha b; this pair's cosine rounds to 1 + 2^-52 (the
    clamp to [-1, 1] keeps arccos finite)."""
    a = torch.tensor([[-0.2570023779889123, 0.3301812512710281, -0.3213562089327442, 0.036810371748993646,
                       -0.16989524254645638, 0.11193439025474987]], dtype=torch.float64)
    b = 2.5 * a
    assert ((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))).item() > 1.0
    for alpha in (0.3, 0.8):
        torch.testing.assert_close(slerp(a, b, alpha), (1 - alpha) * a + alpha * b, rtol=1e-12, atol=0)


# -- the latent DDIM's network (DiffAE Sec. 3.3, App. A) ----------------------------------------------
def test_latent_ddim_net_matches_an_independent_computation():
    torch.manual_seed(0)
    cfg = LatentDDIMConfig(num_layers=4, width=8, time_channels=6)
    net = LatentDDIMNet(cfg, 5).double()
    with torch.no_grad():  # non-trivial LayerNorm affine parameters
        for layer in net.layers:
            layer.norm.weight.normal_(1.0, 0.3)
            layer.norm.bias.normal_(0.0, 0.3)
    assert len(net.layers) == 3  # num_layers linear layers: 3 hidden + the output layer
    z = torch.randn(3, 5, dtype=torch.float64)
    t = torch.tensor([0, 17, 999])
    freqs = 10000.0 ** (-torch.arange(3, dtype=torch.float64) / 3)
    te = torch.cat([torch.cos(t[:, None] * freqs), torch.sin(t[:, None] * freqs)], 1)
    l1, l2 = net.time_embed[0], net.time_embed[2]
    emb = F.linear(F.silu(F.linear(te, l1.weight, l1.bias)), l2.weight, l2.bias)
    h = None
    for i, layer in enumerate(net.layers):
        inp = z if i == 0 else torch.cat([h, z], 1)
        scale = 1 + F.linear(F.silu(emb), layer.cond[1].weight, layer.cond[1].bias)
        hh = F.linear(inp, layer.linear.weight, layer.linear.bias) * scale
        h = F.silu(F.layer_norm(hh, (8,), layer.norm.weight, layer.norm.bias, 1e-5))
    want = F.linear(torch.cat([h, z], 1), net.out.weight, net.out.bias)
    torch.testing.assert_close(net(z, t), want, rtol=0, atol=1e-6)  # the sinusoidal embedding is float32
    for zz, tt in ((torch.zeros(3, 6), t), (torch.zeros(3, 5, 1), t), (z, t[:2])):
        with pytest.raises(ValueError, match=r"LatentDDIMNet: z must be \[B, 5\] and t \[B\], got "
                                             + re.escape(f"{tuple(zz.shape)}, {tuple(tt.shape)}")):
            net(zz, tt)


# -- configuration, plumbing and messages ------------------------------------------------------------
def test_config_bounds_and_messages():
    for steps in (1, 1000):  # both ends of [1, T] are allowed
        assert LatentDDIMConfig(sample_steps=steps).sample_steps == steps
        assert DiffAEConfig(sample_steps=steps).sample_steps == steps
    with pytest.raises(ConfigError, match=r"'sample_steps': must be in \[1, 1000\], got 1001"):
        LatentDDIMConfig(sample_steps=1001)
    with pytest.raises(ConfigError, match=r"'sample_steps': must be in \[1, 1000\], got 1001"):
        DiffAEConfig(sample_steps=1001)
    with pytest.raises(ConfigError, match=r"'time_channels': must be even \(sinusoidal embedding\), got 7"):
        LatentDDIMConfig(time_channels=7)
    with pytest.raises(ConfigError, match=r"'encoder.latent_dim': must equal latent_dim=8, got 32"):
        DiffAEConfig(latent_dim=8)
    with pytest.raises(ConfigError, match=r"use diffae_unet\(\)"):
        DiffAEConfig(unet=diffae_unet(16, image_size=16, model_channels=16, channel_mult=(1, 2), num_res_blocks=1,
                                      attention_resolutions=(), num_groups=8))


def test_the_decoder_schedule_is_the_configured_one():
    m = DiffAE(DiffAEConfig(schedule=NoiseScheduleConfig(num_timesteps=50, beta_end=0.05), sample_steps=5))
    torch.testing.assert_close(m.schedule.alphas_cumprod, _abar(50, 1e-4, 0.05), rtol=1e-12, atol=0)


def test_stage_switches_both_ways():
    m = DiffAE(DiffAEConfig())
    m.set_stage("latent")
    assert m.config.stage == "latent" and not m.unet.out[-1].weight.requires_grad
    assert m.latent_net.out.weight.requires_grad
    m.set_stage("autoencoder")
    assert m.config.stage == "autoencoder" and m.unet.out[-1].weight.requires_grad


@pytest.mark.parametrize("who", ["loss", "encode", "encode_stochastic", "reconstruct"])
@pytest.mark.parametrize("shape", [(2, 1, 16, 16), (2, 3, 8, 8)])
def test_wrong_images_are_refused_by_name(who, shape):
    m = DiffAE(DiffAEConfig())
    call = {"loss": lambda x: m.loss(x, step=0), "encode": m.encode, "encode_stochastic": m.encode_stochastic,
            "reconstruct": m.reconstruct}[who]
    with pytest.raises(ValueError, match=rf"^DiffAE\.{who}: x must have shape \[B, 3, 16, 16\]"):
        call(torch.zeros(shape))


def test_code_checks_name_the_shape_and_type():
    m = DiffAE(DiffAEConfig())
    with pytest.raises(ValueError, match=r"z_sem must be a \[B, 32\] tensor, got torch.Size\(\[2, 5\]\)"):
        m.decode(torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"z_sem must be a \[B, 32\] tensor, got <class 'list'>"):
        m.decode([[0.0] * 32])
    with pytest.raises(ValueError, match=r"^DiffAE\.latent_loss: the z_sem statistics are not fitted; call "
                                         r"fit_latent_stats\(encode\(train images\)\) after training the autoencoder"):
        m.latent_loss(torch.zeros(2, 3, 16, 16))


def test_standardisation_round_trip_values():
    m = DiffAE(DiffAEConfig())
    z = torch.randn(6, 32, generator=torch.Generator().manual_seed(0)) * 3 + 2
    m.fit_latent_stats(z)
    zn = torch.randn(4, 32, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(m.denormalize_z(zn), zn * z.std(0) + z.mean(0))
    torch.testing.assert_close(m.normalize_z(m.denormalize_z(zn)), zn, rtol=1e-5, atol=1e-5)


def test_the_logged_terms_with_a_batch_unlike_the_channels():
    """B = 2 (not the 3 channels): t has one entry per example; the logged terms equal the loss."""
    m = _model()
    x = _images(2)
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    t = torch.randint(0, 1000, (2,), generator=g)
    noise = torch.randn(x.shape, generator=g, dtype=x.dtype)
    ab = _abar()[t][:, None, None, None]
    pred = m.unet(ab.sqrt() * x + (1 - ab).sqrt() * noise, t, m.encoder(x)[0])
    torch.testing.assert_close(out["loss"], ((pred - noise) ** 2).mean(), rtol=1e-12, atol=0)
    torch.testing.assert_close(out["diffusion"], out["loss"].detach(), rtol=0, atol=0)
    m.fit_latent_stats(torch.randn(5, 32, dtype=torch.float64))
    m.set_stage("latent")
    out = m.loss(x, step=0)
    assert set(out) == {"loss", "latent"}
    torch.testing.assert_close(out["latent"], out["loss"].detach(), rtol=0, atol=0)


def test_tensors_made_by_the_objectives_follow_the_images_device():
    """Every tensor the objectives draw is placed on the images' device, not the default one (a meta
    default device makes a misplaced draw fail)."""
    m = _model()
    x = _images(2)
    with torch.device("meta"):
        out = m.loss(x, step=0, generator=torch.Generator().manual_seed(5))
    assert out["loss"].device.type == "cpu"
    m.fit_latent_stats(torch.randn(5, 32, dtype=torch.float64))
    m.set_stage("latent")
    with torch.device("meta"):
        out = m.loss(x, step=0, generator=torch.Generator().manual_seed(5))
    assert out["loss"].device.type == "cpu"


def test_half_precision_errors_are_reduced_in_float32():
    torch.manual_seed(0)
    m = break_zero_init(DiffAE(DiffAEConfig()), std=0.1).to(torch.bfloat16)
    x = _images(2).to(torch.bfloat16)
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(5))
    assert out["loss"].dtype == torch.float32
    g = torch.Generator().manual_seed(5)
    t = torch.randint(0, 1000, (2,), generator=g)
    noise = torch.randn(x.shape, generator=g, dtype=x.dtype)
    pred = m.unet(m.schedule.q_sample(x, t, noise), t, m.encoder(x)[0])
    torch.testing.assert_close(out["loss"], (pred - noise).float().pow(2).mean(), rtol=1e-6, atol=0)


def test_unconditional_sampling_is_the_latent_ddim_then_the_decoder_by_hand():
    """DiffAE Sec. 3.3: z_sem from the latent DDIM (constant beta 0.008, its own step count), de-standardised,
    then x_T ~ N(0, I) decoded; every draw from the one generator, in the model's dtype."""
    m = _model(latent=LatentDDIMConfig(num_layers=3, width=16, sample_steps=2))
    stats = torch.randn(6, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 + 1
    m.fit_latent_stats(stats)
    got = m.sample(2, generator=torch.Generator().manual_seed(7), num_steps=3)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        zn = ddim_decode_by_hand(m.latent_net, torch.randn(2, 32, generator=g, dtype=torch.float64), 2,
                                 linear_alphas_cumprod(1000, 0.008, 0.008))
        z = zn * stats.std(0) + stats.mean(0)
        xT = torch.randn(2, 3, 16, 16, generator=g, dtype=torch.float64)
        want = _ddim_decode(lambda x, t: m.unet(x, t, z), xT, 3).clamp(-1, 1)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-11)


def test_decoding_draws_x_T_on_the_codes_device():
    m = _model()
    z = torch.randn(2, 32, dtype=torch.float64)
    with torch.device("meta"), torch.no_grad():
        out = m.decode(z, num_steps=2, generator=torch.Generator().manual_seed(0))
    assert out.device.type == "cpu"
