"""SAMI's disks inference network and its configuration against independent computations (mutation survivors of
2026-12-08, benches/results/mutation_nets_2026-12-08.md).

- ``SAMIConvNet``: the Table A.5 layout (docs/methods/sami.md#architectures): 3x3 stride-2 convs of
  ``base_channels * channel_mult[i]`` channels, ReLU, no biases; the head (ours) is flatten, then one bias-free
  linear map per head, sigma = softplus(a). The forward pass is recomputed with plain ``torch.nn.functional`` ops
  from the module's weights; the parameter count is derived by hand.
- ``SAMIConfig.validate``: every branch raises a ConfigError naming its field; the defaults are the documented ones.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from helpers import randomise_parameters
from diffrep.config import ConfigError
from diffrep.diffusion import NoiseScheduleConfig
from diffrep.methods.sami_config import SAMIConfig
from diffrep.methods.sami_nets import SAMIConvNet, SAMIConvNetConfig
from diffrep.nn.encoders import HalfUNetConfig
from diffrep.nn.unet import UNetConfig


pytestmark = pytest.mark.usefixtures("float64_default")


def _reference(net: SAMIConvNet, x: torch.Tensor, act, bias: bool, variance_head: str):
    """Table A.5 read literally: conv(3x3, stride 2, pad 1) -> act per level, flatten, two linear heads."""
    h = x
    convs = [m for m in net.body if isinstance(m, torch.nn.Conv2d)]
    for conv in convs:
        h = act(F.conv2d(h, conv.weight, conv.bias if bias else None, stride=2, padding=1))
    h = h.reshape(h.shape[0], -1)
    mean = h @ net.mean_head.weight.T + (net.mean_head.bias if bias else 0)
    a = h @ net.var_head.weight.T + (net.var_head.bias if bias else 0)
    if variance_head == "softplus_sq":
        logvar = 2 * torch.log(torch.log1p(torch.exp(a)))  # sigma = softplus(a), logvar = log sigma^2
    else:
        logvar = a
    return mean, logvar


def test_default_convnet_is_table_a5_with_hand_counted_parameters():
    cfg = SAMIConvNetConfig()
    # docs/methods/sami.md#architectures: disks ConvNet 48 channels, [2, 2], ReLU, no biases, sigma = softplus
    assert (cfg.image_size, cfg.in_channels, cfg.base_channels, cfg.channel_mult, cfg.latent_dim) == (32, 1, 48, (2, 2), 3)
    assert (cfg.act, cfg.bias, cfg.variance_head) == ("relu", False, "softplus_sq")
    net = SAMIConvNet(cfg)
    c = 48 * 2  # both levels: 96 channels
    convs = 1 * c * 9 + c * c * 9  # no biases
    feat = c * 8 * 8  # 32 -> 16 -> 8
    heads = 2 * feat * 3
    assert sum(p.numel() for p in net.parameters()) == convs + heads == 120672
    assert all(m.bias is None for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    assert [type(m).__name__ for m in net.body] == ["Conv2d", "ReLU", "Conv2d", "ReLU", "Flatten"]
    convs_ = [m for m in net.body if isinstance(m, torch.nn.Conv2d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding) for m in convs_] == [
        (1, 96, (3, 3), (2, 2), (1, 1)), (96, 96, (3, 3), (2, 2), (1, 1))]


@pytest.mark.parametrize("size, levels, expect", [(32, 2, 8), (7, 1, 4), (7, 2, 2), (9, 3, 2), (1, 2, 1), (6, 1, 3)])
def test_feature_size_is_the_conv_arithmetic(size, levels, expect):
    # floor((s + 2 * 1 - 3) / 2) + 1 per level, by hand
    cfg = SAMIConvNetConfig(image_size=size, channel_mult=(1,) * levels, base_channels=2)
    assert cfg.feature_size == expect
    x = torch.zeros(1, 1, size, size)
    assert SAMIConvNet(cfg).body(x).shape[1] == 2 * expect * expect


@pytest.mark.parametrize("act, bias, head", [("relu", False, "softplus_sq"), ("silu", True, "logvar"),
                                             ("relu", True, "softplus_sq"), ("silu", False, "logvar")])
def test_forward_equals_functional_reference(act, bias, head):
    cfg = SAMIConvNetConfig(image_size=7, in_channels=2, base_channels=3, channel_mult=(1, 2), latent_dim=2,
                            act=act, bias=bias, variance_head=head)
    net = SAMIConvNet(cfg)
    randomise_parameters(net, scale=0.5)
    x = torch.randn(3, 2, 7, 7, generator=torch.Generator().manual_seed(1))
    mean, logvar = net(x)
    ref_mean, ref_logvar = _reference(net, x, F.relu if act == "relu" else F.silu, bias, head)
    assert mean.shape == logvar.shape == (3, 2)
    torch.testing.assert_close(mean, ref_mean)
    torch.testing.assert_close(logvar, ref_logvar)
    assert [m.out_channels for m in net.body if isinstance(m, torch.nn.Conv2d)] == [3, 6]
    # convs 2->3, 3->6 (3x3), heads from 6 x 2 x 2 features (7 -> 4 -> 2 px) to 2, biases only when asked
    convs = 2 * 3 * 9 + 3 * 6 * 9 + (3 + 6 if bias else 0)
    heads = 2 * (24 * 2 + (2 if bias else 0))
    assert sum(p.numel() for p in net.parameters()) == convs + heads


def test_input_checks_name_the_network_and_cast_to_its_dtype():
    cfg = SAMIConvNetConfig(image_size=8, in_channels=2, base_channels=2, channel_mult=(1,), latent_dim=2)
    net = SAMIConvNet(cfg)
    for bad in (torch.zeros(1, 1, 8, 8), torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 8, 4)):
        with pytest.raises(ValueError) as e:
            net(bad)
        assert str(e.value) == f"SAMIConvNet: x must have shape [B, 2, 8, 8], got {tuple(bad.shape)}"
    # the module's precision: a float32 batch is cast to the float64 weights
    mean, logvar = net(torch.ones(2, 2, 8, 8, dtype=torch.float32))
    assert mean.dtype == logvar.dtype == torch.float64
    torch.testing.assert_close(mean, net(torch.ones(2, 2, 8, 8))[0])
    # finite=False: no host read of the batch here, the loss checks the data; a NaN propagates
    mean, _ = net(torch.full((1, 2, 8, 8), float("nan")))
    assert torch.isnan(mean).all()


def test_empty_channel_mult_names_the_field():
    with pytest.raises(ConfigError, match="config field 'channel_mult': needs at least one positive multiplier"):
        SAMIConvNetConfig(channel_mult=())


# ---------------------------------------------------------------- SAMIConfig


def _tiny(**kw) -> SAMIConfig:
    base = dict(denoiser=UNetConfig(image_size=8, in_channels=1, out_channels=1, model_channels=8, channel_mult=(1,),
                                    attention_resolutions=(), middle_attention=False, num_groups=4),
                convnet=SAMIConvNetConfig(image_size=8, in_channels=1, base_channels=2, channel_mult=(2,), latent_dim=3),
                schedule=NoiseScheduleConfig(kind="linear", num_timesteps=10, beta_start=1e-3, beta_end=0.02), sample_steps=5)
    base.update(kw)
    return SAMIConfig(**base)


def test_sami_config_defaults_are_the_documented_ones():
    c = SAMIConfig()
    d = c.denoiser
    # docs/methods/sami.md#schedules / Table A.5: disks denoiser 6 levels of 128, no attention, no scale-shift
    assert (d.image_size, d.in_channels, d.out_channels, d.model_channels, d.channel_mult) == (32, 1, 1, 128, (1,) * 6)
    assert (d.attention_resolutions, d.middle_attention, d.use_scale_shift_norm) == ((), False, False)
    s = c.schedule
    assert (s.kind, s.num_timesteps, s.beta_start, s.beta_end) == ("linear", 400, 2.5e-4, 0.05)
    assert (c.encoder, c.sigma_min, c.kl_weight, c.pixel_reduction, c.kl_reduction) == ("convnet", 1e-4, 5e-6, "mean", "sum")
    assert (c.lambda_t, c.t_sampling, c.t_beta_a, c.t_band_frac, c.train_samples, c.mc_placement) == (
        "simple", "uniform", 4.0, 0.75, 1, "outside")
    assert (c.sampler, c.sample_steps, c.sample_variance, c.guidance_scale, c.z_mode, c.guidance_logdet) == (
        "ddpm", 50, "fixed_large", 1.0, "fixed", "all")
    assert c.encoder_config is c.convnet and c.latent_dim == 3


def test_encoder_config_and_latent_dim_follow_the_chosen_encoder():
    hu = HalfUNetConfig(image_size=8, in_channels=1, model_channels=4, channel_mult=(1,), latent_dim=5, num_groups=2)
    c = _tiny(encoder="half_unet", half_unet=hu)
    assert c.encoder_config is c.half_unet and c.latent_dim == 5
    c = _tiny(half_unet=hu)
    assert c.encoder_config is c.convnet and c.latent_dim == 3


_BAND = "t_sampling='band' needs (lo, hi) with 0 <= lo < hi <= 10, got {} (overrides apply in order: give t_band first)"


@pytest.mark.parametrize("kw, field, text", [
    (dict(denoiser=UNetConfig(image_size=8, in_channels=1, out_channels=2, model_channels=8, channel_mult=(1,),
                              attention_resolutions=(), num_groups=4)),
     "denoiser.out_channels", "must equal denoiser.in_channels (eps prediction)"),
    (dict(denoiser=UNetConfig(image_size=8, in_channels=1, out_channels=1, model_channels=8, channel_mult=(1,),
                              attention_resolutions=(), num_groups=4, latent_dim=2)),
     "denoiser", "SAMI's denoiser is unconditional: latent_dim=0, context_dim=0, num_outputs=1"),
    (dict(denoiser=UNetConfig(image_size=8, in_channels=1, out_channels=1, model_channels=8, channel_mult=(1,),
                              attention_resolutions=(), num_groups=4, context_dim=2)),
     "denoiser", "SAMI's denoiser is unconditional: latent_dim=0, context_dim=0, num_outputs=1"),
    (dict(denoiser=UNetConfig(image_size=8, in_channels=1, out_channels=1, model_channels=8, channel_mult=(1,),
                              attention_resolutions=(), num_groups=4, num_outputs=2)),
     "denoiser", "SAMI's denoiser is unconditional: latent_dim=0, context_dim=0, num_outputs=1"),
    (dict(convnet=SAMIConvNetConfig(image_size=8, in_channels=2, base_channels=2, channel_mult=(2,))),
     "convnet", "image shape (2, 8) differs from the denoiser's (1, 8)"),
    (dict(convnet=SAMIConvNetConfig(image_size=16, in_channels=1, base_channels=2, channel_mult=(2,))),
     "convnet", "image shape (1, 16) differs from the denoiser's (1, 8)"),
    (dict(lambda_t="custom", lambda_values=(1.0,) * 9),
     "lambda_values", "lambda_t='custom' needs 10 non-negative values, got 9"),
    (dict(lambda_t="custom", lambda_values=(1.0,) * 11), "lambda_values", "lambda_t='custom' needs 10 non-negative values, got 11"),
    (dict(lambda_values=(1.0,) * 10), "lambda_values", "only used with lambda_t='custom'"),
    (dict(lambda_t="elbo", lambda_values=(1.0,)), "lambda_values", "only used with lambda_t='custom'"),
    (dict(t_sampling="band", t_band=(3,)), "t_band", _BAND.format("(3,)")),
    (dict(t_sampling="band", t_band=(3, 4, 5)), "t_band", _BAND.format("(3, 4, 5)")),
    (dict(t_sampling="band", t_band=(-1, 4)), "t_band", _BAND.format("(-1, 4)")),
    (dict(t_sampling="band", t_band=(4, 4)), "t_band", _BAND.format("(4, 4)")),
    (dict(t_sampling="band", t_band=(5, 4)), "t_band", _BAND.format("(5, 4)")),
    (dict(t_sampling="band", t_band=(0, 11)), "t_band", _BAND.format("(0, 11)")),
    (dict(sample_steps=11), "sample_steps", "must be <= schedule.num_timesteps=10"),
    (dict(guidance_axes=(3,)), "guidance_axes", "must be distinct latent indices in [0, 3), got (3,)"),
])
def test_every_validation_branch_names_its_field(kw, field, text):
    with pytest.raises(ConfigError) as e:
        _tiny(**kw)
    assert (e.value.field, e.value.message) == (field, text)


@pytest.mark.parametrize("kw", [
    dict(lambda_t="custom", lambda_values=(0.5,) * 10),
    dict(t_sampling="band", t_band=(0, 10)), dict(t_sampling="band", t_band=(0, 1)), dict(t_sampling="band", t_band=(9, 10)),
    dict(t_band=(7,)),  # t_band is only read by t_sampling="band"
    dict(sample_steps=10), dict(guidance_axes=(0, 2)),
])
def test_boundary_values_are_accepted(kw):
    c = _tiny(**kw)
    for k, v in kw.items():
        assert getattr(c, k) == v


def test_half_unet_shape_mismatch_names_half_unet():
    hu = HalfUNetConfig(image_size=16, in_channels=1, model_channels=4, channel_mult=(1,), latent_dim=5, num_groups=2)
    with pytest.raises(ConfigError) as e:
        _tiny(encoder="half_unet", half_unet=hu)
    assert (e.value.field, e.value.message) == ("half_unet", "image shape (1, 16) differs from the denoiser's (1, 8)")
