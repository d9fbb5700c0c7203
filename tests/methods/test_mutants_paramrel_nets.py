"""ParamReL's self-encoder, hyper-feature head and decoder config against independent computations (mutation
survivors of 2026-12-08, benches/results/mutation_nets_2026-12-08.md; docs/methods/paramrel.md).

- ``ParamRelEncoder`` (App. C.3, Fig. 8): a U-Net down-path (3x3 conv in, per level ``num_res_blocks`` residual
  blocks to ``model_channels * mult``, a down-sampling between levels), GroupNorm + SiLU, global average pool (or
  flatten), a linear Gaussian head of width 2|z|. The progressive encoder reads a time embedding (sinusoid of
  ``model_channels``, Linear-SiLU-Linear to 4 ``model_channels``) by AdaGN in every block; the vanilla one has none.
- ``_Bottleneck`` / ``HyperFeatureHead`` (SepDiff Eq. 15-16).
- ``xattn_resolutions`` / ``decoder_unet``.
"""

from __future__ import annotations

import math
import os
import warnings

import pytest
import torch
import torch.nn.functional as F

from helpers import randomise_parameters, sinusoid_reference
from diffrep.bfn.config import BFNDataConfig
from diffrep.config import ConfigError
from diffrep.methods.paramrel_nets import (HyperFeatureHead, ParamRelEncoder, ParamRelEncoderConfig, _Bottleneck,
                                           decoder_unet, gaussian_kl, xattn_resolutions)
from diffrep.nn.layers import Downsample, ResBlock


pytestmark = pytest.mark.usefixtures("float64_default")


def _structure(blocks):
    return [("res", b.in_channels, b.in_conv.out_channels) if isinstance(b, ResBlock) else
            ("down", b.op.in_channels, b.op.out_channels) for b in blocks]


def test_encoder_config_defaults_and_final_size():
    c = ParamRelEncoderConfig()
    assert (c.image_size, c.in_channels, c.model_channels, c.channel_mult, c.num_res_blocks, c.num_groups, c.dropout,
            c.pool) == (28, 1, 32, (1, 2, 4), 1, 8, 0.0, "mean")
    assert c.final_size == 7  # 28 -> 14 -> 7
    assert ParamRelEncoderConfig(image_size=16, channel_mult=(1,), num_groups=4).final_size == 16
    assert ParamRelEncoderConfig(image_size=32, channel_mult=(1, 1, 1, 1), num_groups=4).final_size == 4


@pytest.mark.parametrize("kw, text", [
    (dict(model_channels=6, channel_mult=(1, 2), num_groups=4), "channel count 6 is not divisible by num_groups=4"),
    (dict(model_channels=4, channel_mult=(1, 3), num_groups=8), "channel count 4 is not divisible by num_groups=8"),
    (dict(model_channels=8, channel_mult=(1, 3), num_groups=16), "channel count 8 is not divisible"),
    (dict(model_channels=4, channel_mult=(2, 3), num_groups=8), "channel count 4 is not divisible"),
    (dict(model_channels=8, channel_mult=(2, 3), num_groups=16), "channel count 8 is not divisible"),
    # model_channels itself (conv_in's width) is checked even when every level's width divides
    (dict(model_channels=6, channel_mult=(2, 4), num_groups=4), "channel count 6 is not divisible by num_groups=4"),
])
def test_encoder_config_checks_every_width_against_the_groups(kw, text):
    with pytest.raises(ConfigError) as e:
        ParamRelEncoderConfig(image_size=8, **kw)
    assert e.value.field == "num_groups" and text in e.value.message


def test_encoder_config_accepts_widths_divisible_by_the_groups():
    c = ParamRelEncoderConfig(image_size=8, model_channels=4, channel_mult=(1, 3), num_groups=4)  # 4, 4, 12
    assert c.channel_mult == (1, 3)


def test_encoder_config_checks_the_levels():
    with pytest.raises(ConfigError) as e:
        ParamRelEncoderConfig(image_size=8, channel_mult=())
    assert e.value.field == "channel_mult"
    with pytest.raises(ConfigError):
        ParamRelEncoderConfig(image_size=6, channel_mult=(1, 1, 1), num_groups=1)


@pytest.mark.parametrize("pool", ["mean", "flatten"])
def test_progressive_encoder_layout_and_forward(pool):
    cfg = ParamRelEncoderConfig(image_size=8, in_channels=2, model_channels=4, channel_mult=(1, 2), num_res_blocks=2,
                                num_groups=2, dropout=0.25, pool=pool)
    enc = ParamRelEncoder(cfg, latent_dim=3, time_conditioned=True)
    te = enc.time_embed
    assert [type(m).__name__ for m in te] == ["Linear", "SiLU", "Linear"]
    assert (te[0].in_features, te[0].out_features, te[2].out_features) == (4, 16, 16)  # 4 x model_channels
    assert _structure(enc.blocks) == [("res", 4, 4), ("res", 4, 4), ("down", 4, 4), ("res", 4, 8), ("res", 8, 8)]
    res = [b for b in enc.blocks if isinstance(b, ResBlock)]
    assert all(b.emb_dim == 16 and b.use_scale_shift_norm and b.dropout.p == 0.25 and b.in_norm.num_groups == 2
               and b.out_conv.weight.any() for b in res)
    assert (enc.conv_in.in_channels, enc.conv_in.out_channels, enc.conv_in.kernel_size, enc.conv_in.padding) == (
        2, 4, (3, 3), (1, 1))
    assert enc.out[0].num_groups == 2 and enc.out[0].num_channels == 8 and type(enc.out[1]).__name__ == "SiLU"
    width = 8 * 4 * 4 if pool == "flatten" else 8
    assert enc.width == width and (enc.head.in_features, enc.head.out_features) == (width, 6)
    assert (enc.cfg, enc.latent_dim, enc.time_conditioned) == (cfg, 3, True)
    randomise_parameters(enc)
    enc.eval()
    x, t = torch.randn(2, 2, 8, 8, generator=torch.Generator().manual_seed(1)), torch.tensor([3.0, 700.0])
    emb = F.silu(sinusoid_reference(t, 4) @ te[0].weight.T + te[0].bias) @ te[2].weight.T + te[2].bias
    h = F.conv2d(x, enc.conv_in.weight, enc.conv_in.bias, padding=1)
    for b in enc.blocks:
        h = b(h, emb) if isinstance(b, ResBlock) else b(h)
    gn = enc.out[0]
    h = F.silu(F.group_norm(h, 2, gn.weight, gn.bias, gn.eps))
    feat = h.reshape(2, -1) if pool == "flatten" else h.mean(dim=(2, 3))
    params = feat @ enc.head.weight.T + enc.head.bias
    torch.testing.assert_close(enc.features(x, t), feat)
    torch.testing.assert_close(enc.gaussian_params(x, t), params)
    torch.testing.assert_close(enc._gaussian_params_grid(x, t), params)
    mean, logvar = enc(x, t)
    torch.testing.assert_close(mean, params[:, :3])
    torch.testing.assert_close(logvar, params[:, 3:])


def test_vanilla_encoder_has_no_time_path_and_ignores_t():
    cfg = ParamRelEncoderConfig(image_size=8, model_channels=4, channel_mult=(1, 2), num_groups=2)
    enc = ParamRelEncoder(cfg, latent_dim=2, time_conditioned=False)
    assert enc.time_embed is None
    assert all(b.emb_dim == 0 and b.emb_layers is None for b in enc.blocks if isinstance(b, ResBlock))
    assert sum(isinstance(b, Downsample) for b in enc.blocks) == 1
    randomise_parameters(enc)
    x = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    h = F.conv2d(x, enc.conv_in.weight, enc.conv_in.bias, padding=1)
    for b in enc.blocks:
        h = b(h)
    gn = enc.out[0]
    feat = F.silu(F.group_norm(h, 2, gn.weight, gn.bias, gn.eps)).mean(dim=(2, 3))
    torch.testing.assert_close(enc.features(x), feat)
    torch.testing.assert_close(enc.features(x, torch.tensor([1.0, 2.0, 3.0])), feat)
    torch.testing.assert_close(enc._gaussian_params_grid(x, None), feat @ enc.head.weight.T + enc.head.bias)


def test_encoder_input_messages():
    enc = ParamRelEncoder(ParamRelEncoderConfig(image_size=8, in_channels=2, model_channels=4, channel_mult=(1,),
                                                num_groups=2), 2, time_conditioned=True)
    for bad in (torch.zeros(3, 1, 8, 8), torch.zeros(3, 2, 8, 4), torch.zeros(3, 2, 4, 8), torch.zeros(3, 8, 8)):
        with pytest.raises(ValueError) as e:
            enc(bad, torch.zeros(3))
        assert str(e.value) == f"ParamRelEncoder: input must be [B, 2, 8, 8], got {tuple(bad.shape)}"
    for t in (None, torch.zeros(2), torch.zeros(4), torch.zeros(3, 1)):  # the batch is 3, the channels 2
        with pytest.raises(ValueError) as e:
            enc(torch.zeros(3, 2, 8, 8), t)
        assert str(e.value) == "the progressive encoder needs t of shape [B]"
    assert enc(torch.zeros(3, 2, 8, 8), torch.zeros(3))[0].shape == (3, 2)
    with pytest.raises(ValueError, match="finite"):
        enc(torch.zeros(2, 2, 8, 8), torch.tensor([1.0, math.nan]))
    # the sampling chain's grid path does not read t back
    assert enc._gaussian_params_grid(torch.zeros(2, 2, 8, 8), torch.tensor([1.0, math.nan])).shape == (2, 4)


def test_bottleneck_equals_reference():
    b = _Bottleneck(3, 4, 6, size=8, num_groups=2)
    assert [type(m).__name__ for m in b.net] == ["Conv2d", "GroupNorm", "SiLU", "Conv2d", "GroupNorm", "SiLU"]
    c1, g1, c2, g2 = b.net[0], b.net[1], b.net[3], b.net[4]
    assert (c1.kernel_size, c2.kernel_size, c2.padding, g1.num_groups, g2.num_groups) == ((1, 1), (3, 3), (1, 1), 2, 2)
    assert (b.fc.in_features, b.fc.out_features, b.size) == (4, 6, 8)
    randomise_parameters(b)

    def ref(u):
        h = F.silu(F.group_norm(F.conv2d(u, c1.weight, c1.bias), 2, g1.weight, g1.bias, g1.eps))
        h = F.silu(F.group_norm(F.conv2d(h, c2.weight, c2.bias, padding=1), 2, g2.weight, g2.bias, g2.eps))
        return h.mean(dim=(2, 3)) @ b.fc.weight.T + b.fc.bias

    u8 = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(b(u8), ref(u8))
    u4 = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(b(u4), ref(F.interpolate(u4, size=(8, 8), mode="bilinear", align_corners=False)))
    # the spatial size decides the up-sampling, not the channel count (here equal to the data size)
    b8 = _Bottleneck(8, 4, 6, size=8, num_groups=2)
    randomise_parameters(b8, seed=9)
    u = torch.randn(1, 8, 4, 4, generator=torch.Generator().manual_seed(10))
    up = F.interpolate(u, size=(8, 8), mode="bilinear", align_corners=False)
    torch.testing.assert_close(b8(u), b8(up))
    assert not torch.allclose(b8(u), b8.fc(b8.net(u).mean(dim=(2, 3))))


@pytest.mark.parametrize("mixing", ["softmax", "raw"])
def test_hyper_head_mixes_as_eq16(mixing):
    head = HyperFeatureHead([4, 2], width=2, latent_dim=3, size=4, num_groups=1, mixing=mixing)
    assert head.mixing == mixing and len(head.bottlenecks) == 2
    assert [(b.net[0].in_channels, b.fc.out_features, b.size) for b in head.bottlenecks] == [(4, 6, 4), (2, 6, 4)]
    init = torch.zeros(3) if mixing == "softmax" else torch.full((3,), 1 / 3)
    torch.testing.assert_close(head.omega.detach(), init)
    randomise_parameters(head, seed=5)
    feats = [torch.randn(2, 4, 2, 2, generator=torch.Generator().manual_seed(6)),
             torch.randn(2, 2, 4, 4, generator=torch.Generator().manual_seed(7))]
    theta = torch.randn(2, 6, generator=torch.Generator().manual_seed(8))
    om = head.omega.detach()
    w = torch.exp(om) / torch.exp(om).sum() if mixing == "softmax" else om
    g = w[2] * theta + w[0] * head.bottlenecks[0](feats[0]) + w[1] * head.bottlenecks[1](feats[1])
    mean, logvar = head([f.float() for f in feats], theta)  # features are cast to theta's dtype
    assert mean.dtype == theta.dtype
    torch.testing.assert_close(mean, g[:, :3], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(logvar, g[:, 3:], atol=1e-6, rtol=1e-6)
    with pytest.raises(ValueError) as e:
        head(feats[:1], theta)
    assert str(e.value) == "expected 2 decoder feature maps, got 1"
    with pytest.raises(ValueError) as e:
        HyperFeatureHead([4], 2, 2, 4, 1, "mean")
    assert str(e.value) == "mixing must be 'softmax' or 'raw', got 'mean'"


def test_hyper_head_default_mixing_is_softmax():
    assert HyperFeatureHead([2], 2, 1, 4, 1).mixing == "softmax"


def test_xattn_resolutions_by_hand():
    assert xattn_resolutions(32, (1, 2, 2, 2)) == (32, 16, 8, 4)
    assert xattn_resolutions(28, (1, 2)) == (28, 14)
    assert xattn_resolutions(8, (1,)) == (8,)


def _fields():
    return dict(model_channels=8, channel_mult=(1, 2), num_res_blocks=1, num_groups=4, attention_resolutions=(4,),
                middle_attention=False)


def test_decoder_unet_adagn_and_infodiff():
    bfn = BFNDataConfig(data="continuous", image_size=8, channels=3)
    for cond in ("adagn_eq12", "infodiff"):
        u = decoder_unet(bfn, 6, cond, **_fields())
        assert (u.image_size, u.in_channels, u.out_channels, u.num_outputs) == (8, 3, 3, 1)
        assert (u.latent_dim, u.latent_cond, u.context_dim) == (6, cond, 0)
        assert (u.attention_resolutions, u.middle_attention, u.model_channels) == ((4,), False, 8)
    assert decoder_unet(bfn, 6, **_fields()).latent_cond == "adagn_eq12"


def test_decoder_unet_cross_attention():
    bfn = BFNDataConfig(data="continuous", image_size=8, channels=1)
    u = decoder_unet(bfn, 6, "xattn", xattn_tokens=3, **_fields())
    assert (u.latent_dim, u.context_dim, u.attention_resolutions, u.middle_attention) == (0, 2, (8, 4), True)
    u = decoder_unet(bfn, 6, "xattn", xattn_tokens=2, xattn_levels="bottleneck", **_fields())
    assert (u.latent_dim, u.context_dim, u.attention_resolutions, u.middle_attention) == (0, 3, (), True)
    u = decoder_unet(bfn, 8, "xattn", **_fields())  # default: 4 tokens, every level
    assert (u.context_dim, u.attention_resolutions) == (2, (8, 4))
    with pytest.raises(ConfigError) as e:
        decoder_unet(bfn, 6, "xattn", xattn_tokens=4, **_fields())
    assert (e.value.field, e.value.message) == ("xattn_tokens", "4 does not divide latent_dim=6")
    with pytest.raises(ConfigError) as e:
        decoder_unet(bfn, 6, "xattn", xattn_tokens=3, xattn_levels="middle", **_fields())
    assert (e.value.field, e.value.message) == ("xattn_levels", "must be 'all' or 'bottleneck', got 'middle'")


def test_deprecated_gaussian_kl_warns_and_sums_the_closed_form():
    mean = torch.tensor([[0.5, -1.0], [0.0, 2.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)], [math.log(0.5), 0.0]])
    want = 0.5 * (mean ** 2 + logvar.exp() - 1 - logvar).sum(1)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        got = gaussian_kl(mean, logvar)
    torch.testing.assert_close(got, want)
    assert len(w) == 1 and w[0].category is DeprecationWarning
    assert "diffrep.nn.gaussian_kl(mean, logvar, reduction='sum')" in str(w[0].message)
    assert os.path.basename(w[0].filename) != "paramrel_nets.py"  # stacklevel 2: blames the caller, not the alias


def test_paramrel_data_alias_warns_and_points_to_the_new_home():
    import diffrep.methods.paramrel_data as old
    from diffrep.data.pooled import Pooled

    with pytest.warns(DeprecationWarning, match="diffrep.methods.paramrel_data.Pooled moved to diffrep.data.pooled.Pooled"):
        assert old.Pooled is Pooled
