"""DiffAE (docs/methods/diffae.md): DDIM inversion, the conditioning order, the objectives, save/load."""

import torch
import torch.nn.functional as F
import pytest

from diffrep.config import ConfigError
from diffrep.diffusion import DDIMSampler, NoiseSchedule, NoiseScheduleConfig
from diffrep.methods.diffae import DiffAE, DiffAEConfig, LatentDDIMConfig, diffae_unet
from diffrep.viz import slerp as viz_slerp
from diffrep.nn.layers import ResBlock
from helpers import break_zero_init


def _model(**kw):
    torch.manual_seed(0)
    return DiffAE(DiffAEConfig(**kw))


def _images(n=3, seed=1):
    return torch.rand((n, 3, 16, 16), generator=torch.Generator().manual_seed(seed)) * 2 - 1


# -- DDIM inversion (DiffAE Eq. 8) --------------------------------------------------------------
@pytest.mark.parametrize("steps", [1, 7, 50, 1000])
def test_ddim_inversion_then_decoding_is_exact_in_the_noise_free_limit(steps):
    """A denoiser exact for the image (x0 prediction = the image along the path): inversion then
    decoding returns the image to float64 precision, for any number of steps."""
    sch = NoiseSchedule(NoiseScheduleConfig(kind="linear", num_timesteps=1000))
    m = torch.randn(2, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def exact(x, t):
        ab = sch.gather("alphas_cumprod", t, x)
        return (x - ab.sqrt() * m) / (1 - ab).sqrt()

    s = DDIMSampler(sch)
    xT = s.invert(exact, m, num_steps=steps)
    # x_T is a proper noisy state, not the image itself (one step: the sequence is {0}, nothing to invert)
    assert (xT - m).abs().max() > 1e-3 or steps == 1
    back = s.sample(exact, m.shape, x_T=xT, num_steps=steps)
    torch.testing.assert_close(back, m, rtol=0, atol=1e-12)


def test_ddim_inversion_steps_match_a_hand_computation():
    sch = NoiseSchedule(NoiseScheduleConfig(kind="linear", num_timesteps=10))
    ab = sch.alphas_cumprod.double()
    x0 = torch.tensor([[0.3, -0.7]], dtype=torch.float64)

    def model(x, t):  # any smooth model: eps = 0.5 x + 0.1 t
        return 0.5 * x + 0.1 * t.double()[:, None]

    got = DDIMSampler(sch).invert(model, x0, num_steps=2)  # sequence 5, 0: from t=0 to t=5
    e = 0.5 * x0
    x0h = (x0 - (1 - ab[0]).sqrt() * e) / ab[0].sqrt()
    want = ab[5].sqrt() * x0h + (1 - ab[5]).sqrt() * e
    torch.testing.assert_close(got, want, rtol=0, atol=1e-14)


def test_ddim_inversion_error_shrinks_with_the_step_count_on_a_gaussian():
    """Data N(0, sigma^2 I): the exact eps is linear; round trips converge as the steps shrink."""
    sch = NoiseSchedule(NoiseScheduleConfig(kind="linear", num_timesteps=1000))
    sig2 = 0.25

    def eps(x, t):
        ab = sch.gather("alphas_cumprod", t, x)
        return (1 - ab).sqrt() * x / (ab * sig2 + 1 - ab)

    x0 = 0.5 * torch.randn(4, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    s = DDIMSampler(sch)
    errs = [(s.sample(eps, x0.shape, x_T=s.invert(eps, x0, num_steps=k), num_steps=k) - x0).abs().max().item()
            for k in (10, 100, 1000)]
    assert errs[2] < errs[1] / 5 < errs[0] / 25 and errs[2] < 1e-2


def test_ddim_inversion_refuses_a_stochastic_sampler():
    sch = NoiseSchedule(NoiseScheduleConfig(num_timesteps=10))
    with pytest.raises(ValueError, match="eta = 0"):
        DDIMSampler(sch, eta=0.5).invert(lambda x, t: x, torch.zeros(1, 2))
    with pytest.raises(TypeError, match="floating-point"):
        DDIMSampler(sch).invert(lambda x, t: x, torch.zeros(1, 2, dtype=torch.long))


# -- conditioning order (DiffAE Eq. 7) ------------------------------------------------------------
def test_two_cond_resblock_matches_an_independent_computation():
    torch.manual_seed(0)
    blk = ResBlock(8, 8, 12, latent_dim=5, latent_cond="diffae", num_groups=4, zero_init=False).double()
    x = torch.randn(2, 8, 4, 4, dtype=torch.float64)
    emb = torch.randn(2, 12, dtype=torch.float64)
    z = torch.randn(2, 5, dtype=torch.float64)
    h = blk.in_conv(F.silu(F.group_norm(x, 4, blk.in_norm.weight, blk.in_norm.bias, 1e-5)))
    ts, tb = (F.linear(F.silu(emb), blk.emb_layers[1].weight, blk.emb_layers[1].bias)).chunk(2, dim=1)
    zs = F.linear(F.silu(z), blk.z_layers[1].weight, blk.z_layers[1].bias)
    g = F.group_norm(h, 4, blk.out_norm.weight, blk.out_norm.bias, 1e-5)
    h = (g * (1 + ts[:, :, None, None]) + tb[:, :, None, None]) * (1 + zs[:, :, None, None])  # time first, then z scale
    want = x + blk.out_conv(F.silu(h))
    torch.testing.assert_close(blk(x, emb, z), want, rtol=0, atol=1e-12)
    # the other order (z scale inside the time scale-shift) differs: the test can tell the two apart
    h2 = g * (1 + zs[:, :, None, None]) * (1 + ts[:, :, None, None]) + tb[:, :, None, None]
    assert (blk(x, emb, z) - (x + blk.out_conv(F.silu(h2)))).abs().max() > 1e-3
    assert blk.z_layers[1].out_features == 8  # a scale only, no shift


# -- objectives ----------------------------------------------------------------------------------
def test_autoencoder_loss_equals_eq9_recomputed():
    m = break_zero_init(_model().double(), std=0.1, layers=(torch.nn.Conv2d, torch.nn.Linear))
    x = _images().double()
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    t = m.schedule.sample_timesteps(3, generator=g)
    noise = torch.randn(x.shape, generator=g, dtype=x.dtype)
    ab = m.schedule.alphas_cumprod.double()[t][:, None, None, None]
    xt = ab.sqrt() * x + (1 - ab).sqrt() * noise
    pred = m.unet(xt, t, m.encoder(x)[0])
    assert pred.abs().mean() > 1e-2  # a non-zero prediction: the sign of the error matters
    torch.testing.assert_close(out["loss"], ((pred - noise) ** 2).mean(), rtol=1e-12, atol=0)
    m.config.loss = "l1"
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(out["loss"], (pred - noise).abs().mean(), rtol=1e-12, atol=0)


def test_gradients_reach_the_semantic_encoder():
    m = _model()
    break_zero_init(m.unet, std=0.1)  # so that the latent/shifts matter
    m.loss(_images(), step=0)["loss"].backward()
    assert m.encoder.mean_head[-1].weight.grad.abs().sum() > 0
    assert m.encoder.var_head[-1].weight.grad is None or m.encoder.var_head[-1].weight.grad.abs().sum() == 0


def test_latent_loss_is_eq10_on_standardised_codes():
    m = _model(stage="latent").double()
    break_zero_init(m.latent_net, std=0.1, layers=(torch.nn.Linear,))
    x = _images(4).double()
    with pytest.raises(ValueError, match="fit_latent_stats"):
        m.loss(x, step=0)
    z = m.encode(x).detach()
    m.fit_latent_stats(z)
    torch.testing.assert_close(m.z_mean, z.mean(0))
    torch.testing.assert_close(m.z_std, z.std(0))
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    zn = (z - z.mean(0)) / z.std(0)
    t = m.latent_schedule.sample_timesteps(4, generator=g)
    noise = torch.randn(zn.shape, generator=g, dtype=zn.dtype)
    ab = torch.full((4, 1), 1 - 0.008, dtype=torch.float64).pow(t[:, None].double() + 1)  # constant beta 0.008
    pred = m.latent_net(ab.sqrt() * zn + (1 - ab).sqrt() * noise, t)
    assert pred.abs().mean() > 1e-2
    torch.testing.assert_close(out["loss"], (pred - noise).abs().mean(), rtol=1e-10, atol=0)
    m.config.latent.loss = "l2"
    out_l2 = m.loss(x, step=0, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(out_l2["loss"], ((pred - noise) ** 2).mean(), rtol=1e-10, atol=0)
    m.config.latent.loss = "l1"
    # the autoencoder is frozen in this stage
    out["loss"].backward()
    assert all(p.grad is None for p in m.unet.parameters()) and all(p.grad is None for p in m.encoder.parameters())
    assert not any(p.requires_grad for p in m.unet.parameters()) and m.latent_net.out.weight.grad is not None
    m.set_stage("autoencoder")
    assert all(p.requires_grad for p in m.unet.parameters()) and not m.latent_net.out.weight.requires_grad
    with pytest.raises(ValueError, match="stage must be"):
        m.set_stage("decoder")


# -- verbs and plumbing ----------------------------------------------------------------------------
def test_slerp_end_points_and_norm():
    def slerp(a, b, alpha):  # DiffAE's x_T interpolation: per example
        return viz_slerp(a, b, [alpha], batched=True)[0]

    a, b = torch.randn(2, 5, dtype=torch.float64), torch.randn(2, 5, dtype=torch.float64)
    torch.testing.assert_close(slerp(a, b, 0.0), a)
    torch.testing.assert_close(slerp(a, b, 1.0), b)
    u, v = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    torch.testing.assert_close(slerp(u, v, 0.5), torch.tensor([[2 ** -0.5, 2 ** -0.5]]))


def test_verbs_shapes_and_errors():
    m = _model(sample_steps=4)
    x = _images(2)
    assert m.reconstruct(x).shape == x.shape
    assert m.interpolate(x, x.flip(0), [0.0, 0.5, 1.0]).shape == (3, 2, 3, 16, 16)
    assert m.swap(x, x.flip(0), [0, 3]).shape == x.shape
    with pytest.raises(ValueError, match="fit_latent_stats"):
        m.sample(2)
    m.fit_latent_stats(torch.randn(10, 32))
    assert m.sample(2, generator=torch.Generator().manual_seed(0)).shape == (2, 3, 16, 16)
    assert m.traverse(x, 1, [-1.0, 1.0]).shape == (2, 2, 3, 16, 16)
    with pytest.raises(ValueError, match="dims"):
        m.swap(x, x, [40])
    with pytest.raises(ValueError, match="z_sem"):
        m.decode(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="channels|shape"):
        m.encode(torch.zeros(2, 1, 16, 16))


def test_manipulation_follows_a_fitted_classifier_direction():
    m = _model()
    m.fit_latent_stats(torch.randn(50, 32, generator=torch.Generator().manual_seed(0)))
    z = torch.randn(100, 32, generator=torch.Generator().manual_seed(1))
    y = (z[:, 4] > 0).float()  # the attribute is the sign of dimension 4 (standardisation keeps it ~)
    w = m.fit_attribute(m.denormalize_z(z), y, steps=100)
    assert w.abs().argmax().item() == 4


def test_config_validation_names_the_field():
    with pytest.raises(ConfigError, match="encoder.latent_dim"):
        DiffAEConfig(latent_dim=8)
    with pytest.raises(ConfigError, match="unet"):
        DiffAEConfig(unet=diffae_unet(16, image_size=16, model_channels=16, channel_mult=(1, 2), num_res_blocks=1,
                                      attention_resolutions=(), num_groups=8))
    with pytest.raises(ConfigError, match="sample_steps"):
        LatentDDIMConfig(sample_steps=0)


def test_save_load_round_trip(tmp_path):
    m = _model()
    m.fit_latent_stats(torch.randn(10, 32))
    m.save_pretrained(tmp_path)
    m2 = DiffAE.from_pretrained(tmp_path)
    x = _images(2)
    torch.testing.assert_close(m2.encode(x), m.encode(x), rtol=0, atol=0)
    torch.testing.assert_close(m2.z_std, m.z_std, rtol=0, atol=0)
    assert bool(m2.z_stats_fitted)
