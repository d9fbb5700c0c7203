"""The encoders of diffrep.nn.encoders checked against forward passes written here from the papers' tables.

Every reference below is built from torch.nn.functional with the module's own weights, so a dropped
activation, a wrong padding or a reordered layer changes the numbers: Locatello et al. (2019) Table 1 for
the conv VAE networks (docs/methods/vae.md), the DyGA paper's Table 9 and EncDiff's Encoder4 for the feature
extractors (docs/methods/dyga.md, docs/methods/encdiff.md), SAMI Table A.5 for the Half-U-Net
(docs/methods/sami.md#architectures). Found by mutation testing (benches/results/mutation_gaps_2026-12-08.md).
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from diffrep.config import ConfigError
from diffrep.nn.encoders import (ConvDecoder, ConvEncoder, ConvVAEConfig, FeatureExtractor, FeatureExtractorConfig,
                                 HalfUNet, HalfUNetConfig, PerUnitMLP, check_conv_kernels,
                                 gaussian_head_output)
from diffrep.nn.layers import AttentionBlock, Downsample, GroupNorm, ResBlock


def _conv_encoder_by_hand(net: ConvEncoder, x, extra=None):
    """Table 1: stride-2 convs 32, 32, 64, 64 (kernels 4, 4, 2, 2; TF "same" = (k - 2)/2 per side), ReLU
    after each, FC 256 + ReLU, then a linear layer to 2 * latent_dim (mean, log-variance)."""
    convs = [m for m in net.convs if isinstance(m, nn.Conv2d)]
    h = x
    for c in convs:
        k = c.weight.shape[-1]
        h = F.relu(F.conv2d(h, c.weight, c.bias, stride=2, padding=(k - 2) // 2))
    h = h.flatten(1)
    if extra is not None:
        h = torch.cat([h, extra], dim=1)
    h = F.relu(F.linear(h, net.fc[0].weight, net.fc[0].bias))
    out = F.linear(h, net.head.weight, net.head.bias)
    d = out.shape[1] // 2
    return out[:, :d], out[:, d:]


def _conv_decoder_by_hand(net: ConvDecoder, z, extra=None):
    """dlib deconv_decoder: FC 256 + ReLU, FC 4*4*64 + ReLU, reshape [64, 4, 4], 4x4 stride-2 transposed convs
    64, 32, 32 (64 px) with ReLU between, the last to C channels without an activation."""
    if extra is not None:
        z = torch.cat([z, extra], dim=1)
    h = F.relu(F.linear(z, net.fc[0].weight, net.fc[0].bias))
    h = F.relu(F.linear(h, net.fc[2].weight, net.fc[2].bias)).reshape(z.shape[0], 64, 4, 4)
    deconvs = [m for m in net.deconvs if isinstance(m, nn.ConvTranspose2d)]
    for i, d in enumerate(deconvs):
        h = F.conv_transpose2d(h, d.weight, d.bias, stride=2, padding=1)
        if i < len(deconvs) - 1:
            h = F.relu(h)
    return h


@pytest.mark.parametrize("size", [32, 64])
def test_conv_encoder_and_decoder_are_table1(size):
    torch.manual_seed(0)
    cfg = ConvVAEConfig(image_size=size, in_channels=2, latent_dim=3, hidden=7)
    enc, dec = ConvEncoder(cfg).double(), ConvDecoder(cfg).double()
    x = torch.randn(3, 2, size, size, dtype=torch.float64)
    mean, logvar = enc(x)
    ref_mean, ref_logvar = _conv_encoder_by_hand(enc, x)
    torch.testing.assert_close(mean, ref_mean)
    torch.testing.assert_close(logvar, ref_logvar)
    z = torch.randn(3, 3, dtype=torch.float64)
    torch.testing.assert_close(dec(z), _conv_decoder_by_hand(dec, z))
    # layer shapes from the table: encoder convs (C->32, 32->32, 32->64[, 64->64]) with kernels 4, 4, 2[, 2]
    convs = [m for m in enc.convs if isinstance(m, nn.Conv2d)]
    want = [(32, 2, 4), (32, 32, 4), (64, 32, 2), (64, 64, 2)][: 4 if size == 64 else 3]
    assert [(c.out_channels, c.in_channels, c.kernel_size[0]) for c in convs] == want
    assert all(c.stride == (2, 2) for c in convs)
    last = want[-1][0]
    assert (enc.fc[0].in_features, enc.fc[0].out_features, enc.head.out_features) == (last * 16, 7, 6)
    # decoder: 3 -> 7 -> last*16, then transposed convs back to the encoder's channels reversed, then C
    assert (dec.fc[0].in_features, dec.fc[2].out_features) == (3, last * 16)
    deconvs = [m for m in dec.deconvs if isinstance(m, nn.ConvTranspose2d)]
    chans = [c[0] for c in want][::-1] + [2]
    assert [(d.in_channels, d.out_channels) for d in deconvs] == list(zip(chans[:-1], chans[1:]))
    assert all(d.kernel_size == (4, 4) and d.stride == (2, 2) and d.padding == (1, 1) for d in deconvs)


def test_conv_encoder_parameter_count_by_hand():
    # 64 px, C = 1, latent 10, FC 256 (Table 1): conv weights k*k*cin*cout + cout biases each
    cfg = ConvVAEConfig(image_size=64, in_channels=1, latent_dim=10)
    n_convs = (16 * 1 * 32 + 32) + (16 * 32 * 32 + 32) + (4 * 32 * 64 + 64) + (4 * 64 * 64 + 64)
    n_fc = 64 * 4 * 4 * 256 + 256
    n_head = 256 * 20 + 20
    assert sum(p.numel() for p in ConvEncoder(cfg).parameters()) == n_convs + n_fc + n_head == 309204


def test_conv_networks_with_an_extra_input():
    # extra_input_dim: a conditioning vector concatenated before the first FC of both networks
    torch.manual_seed(1)
    cfg = ConvVAEConfig(image_size=32, in_channels=1, latent_dim=3, hidden=5, extra_input_dim=4)
    enc, dec = ConvEncoder(cfg), ConvDecoder(cfg)
    assert enc.fc[0].in_features == 64 * 16 + 4 and dec.fc[0].in_features == 3 + 4
    x, e = torch.randn(2, 1, 32, 32), torch.randn(2, 4)
    mean, logvar = enc(x, e)
    ref_mean, ref_logvar = _conv_encoder_by_hand(enc, x, e)
    torch.testing.assert_close(mean, ref_mean)
    torch.testing.assert_close(logvar, ref_logvar)
    z = torch.randn(2, 3)
    torch.testing.assert_close(dec(z, e), _conv_decoder_by_hand(dec, z, e))
    # a float64 extra is cast to the network's float32 (a float64 concatenation would fail in the FC)
    torch.testing.assert_close(enc(x, e.double())[0], ref_mean)
    torch.testing.assert_close(dec(z, e.double()), _conv_decoder_by_hand(dec, z, e))
    for bad in (None, torch.randn(2, 3), torch.randn(1, 4)):
        with pytest.raises(ValueError, match=r"^ConvEncoder: extra must have shape \[B, 4\]"):
            enc(x, bad)
        with pytest.raises(ValueError, match=r"^ConvDecoder: extra must have shape \[B, 4\]"):
            dec(z, bad)


def test_conv_networks_inputs():
    cfg = ConvVAEConfig(image_size=32, in_channels=1, latent_dim=3)
    enc, dec = ConvEncoder(cfg), ConvDecoder(cfg)
    x = torch.randn(2, 1, 32, 32)
    # float64 images and codes are cast to the networks' precision
    torch.testing.assert_close(enc(x.double())[0], enc(x)[0])
    z = torch.randn(1, 3)  # a batch of one is a batch
    torch.testing.assert_close(dec(z.double()), dec(z))
    # non-finite images are allowed through (finite=False): NaN in, NaN out
    assert torch.isnan(enc(torch.full((1, 1, 32, 32), float("nan")))[0]).all()
    for bad in (torch.randn(2, 3, 32, 32), torch.randn(2, 1, 64, 64)):
        with pytest.raises(ValueError, match=r"^ConvEncoder: x must have shape \[B, 1, 32, 32\]"):
            enc(bad)
    with pytest.raises(ValueError, match=r"ConvDecoder: z must have shape \[B, 3\], got \(2, 5\)"):
        dec(torch.randn(2, 5))


@pytest.mark.parametrize("kernels", [(4, 4, 2), (4, 4, 2, 3), (4, 4, 2, 0), (4, 4, 2, 4.0)])
def test_conv_kernels_must_be_four_even_ints(kernels):
    with pytest.raises(ConfigError, match="conv_kernels"):
        ConvVAEConfig(conv_kernels=kernels)
    with pytest.raises(ConfigError, match="conv_kernels"):  # the check itself, before the config's field types
        check_conv_kernels(kernels)


def test_gaussian_head_messages_and_a_single_element():
    mean, logvar = gaussian_head_output(torch.zeros(1, 1), torch.zeros(1, 1), "softplus_sq")
    torch.testing.assert_close(logvar, torch.full((1, 1), 2 * math.log(math.log(2.0))))
    with pytest.raises(TypeError, match="raw must be a floating-point tensor, got torch.int64"):
        gaussian_head_output(torch.zeros(2), torch.zeros(2, dtype=torch.long), "logvar")
    with pytest.raises(TypeError, match="mean must be a floating-point tensor, got list"):
        gaussian_head_output([0.0], torch.zeros(1), "logvar")


def test_half_unet_layers_are_table_a5():
    # one level of 16 px and one of 8 px, attention at 8 px, biases and SiLU (the CelebA-HQ variant)
    cfg = HalfUNetConfig(image_size=16, in_channels=3, model_channels=4, channel_mult=(1, 2), num_res_blocks=1,
                         attention_resolutions=(8,), latent_dim=5, num_groups=2, act="silu", bias=True)
    m = HalfUNet(cfg)
    kinds = [type(layer) for layer in m.body]
    assert kinds == [nn.Conv2d, ResBlock, Downsample, ResBlock, AttentionBlock, ResBlock, ResBlock, GroupNorm, nn.SiLU]
    stem = m.body[0]
    assert (stem.in_channels, stem.out_channels, stem.kernel_size, stem.padding) == (3, 4, (3, 3), (1, 1))
    blocks = [m.body[i] for i in (1, 3, 5, 6)]
    assert [(b.in_conv.in_channels, b.in_conv.out_channels) for b in blocks] == [(4, 4), (4, 8), (8, 8), (8, 8)]
    for b in blocks:  # unconditioned, SiLU, not zero-initialised, with biases
        assert b.emb_layers is None and b.z_layers is None and isinstance(b.act, nn.SiLU)
        assert b.out_conv.weight.abs().sum() > 0 and b.in_conv.bias is not None and b.out_conv.bias is not None
        assert b.in_norm.bias is not None and b.in_norm.num_groups == 2
    down = m.body[2].op
    assert isinstance(down, nn.Conv2d) and down.stride == (2, 2) and down.kernel_size == (3, 3) and down.bias is not None
    attn = m.body[4]
    assert (attn.channels, attn.num_heads, attn.norm.num_groups) == (8, 1, 2)
    assert m.body[7].num_channels == 8 and m.body[7].num_groups == 2 and m.body[7].bias is not None
    for head in (m.mean_head, m.var_head):
        assert [type(layer) for layer in head] == [nn.Linear, nn.SiLU, nn.Linear]
        assert (head[0].in_features, head[0].out_features, head[2].out_features) == (8, 8, 5)
        assert head[0].bias is not None and head[2].bias is not None
    assert stem.bias is not None
    # three levels of 16, 8, 4 px: two down-samplings; attention at 4 px is after the third level's blocks
    m3 = HalfUNet(HalfUNetConfig(image_size=16, model_channels=4, channel_mult=(1, 1, 1), num_res_blocks=1,
                                 attention_resolutions=(4,), latent_dim=2, num_groups=2, act="relu"))
    kinds = [type(layer) for layer in m3.body]
    assert kinds == [nn.Conv2d, ResBlock, Downsample, ResBlock, Downsample, ResBlock, AttentionBlock, ResBlock,
                     ResBlock, GroupNorm, nn.ReLU]
    assert all(isinstance(b.act, nn.ReLU) for b in m3.body if isinstance(b, ResBlock))


def test_half_unet_inputs():
    torch.manual_seed(0)
    m = HalfUNet(HalfUNetConfig(image_size=8, in_channels=1, model_channels=4, channel_mult=(1,), latent_dim=2,
                                num_groups=2))
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(m(x.double())[0], m(x)[0])  # cast to the module's float32
    assert torch.isnan(m(torch.full((1, 1, 8, 8), float("nan")))[0]).all()  # finite=False
    with pytest.raises(ValueError, match=r"^HalfUNet: x must have shape \[B, 1, 8, 8\]"):
        m(torch.randn(2, 3, 8, 8))


def test_half_unet_config_checks_attention_and_groups():
    with pytest.raises(ConfigError, match="attention_resolutions"):
        HalfUNetConfig(image_size=16, model_channels=4, channel_mult=(1, 1), attention_resolutions=(5,), num_groups=2)
    # widths 4, 8 and 4 are all divisible by 4 groups
    HalfUNetConfig(image_size=16, model_channels=4, channel_mult=(1, 2), num_groups=4)
    with pytest.raises(ConfigError, match="num_groups"):
        HalfUNetConfig(image_size=16, model_channels=4, channel_mult=(1, 3), num_groups=8)


def test_per_unit_mlp_init_bounds_default_and_inputs():
    torch.manual_seed(0)
    mlp = PerUnitMLP(64, (1, 16, 9))
    # nn.Linear's init: U(-1/sqrt(d_in), 1/sqrt(d_in)) for weights and biases
    for w, b, din in zip(mlp.weights, mlp.biases, (1, 16)):
        bound = 1 / math.sqrt(din)
        for p in (w, b):
            assert p.abs().max() <= bound
            assert p.min() < -0.9 * bound and p.max() > 0.9 * bound
    # the default ends with the activation (ReLU)
    s = torch.randn(5, 64)
    h = torch.relu(torch.einsum("bni,nio->bno", s.unsqueeze(-1), mlp.weights[0]) + mlp.biases[0])
    torch.testing.assert_close(mlp(s), torch.relu(torch.einsum("bni,nio->bno", h, mlp.weights[1]) + mlp.biases[1]))
    torch.testing.assert_close(mlp(s.double()), mlp(s))  # cast to the weights' float32
    with pytest.raises(TypeError, match="PerUnitMLP: s must be a floating-point tensor .*, got torch.int64"):
        mlp(torch.zeros(2, 64, dtype=torch.long))
    with pytest.raises(TypeError, match="PerUnitMLP: s must be a floating-point tensor .*, got list"):
        mlp([0.0])
    with pytest.raises(ValueError, match="PerUnitMLP: num_units"):
        PerUnitMLP(0, (1, 2))
    with pytest.raises(ValueError, match="PerUnitMLP: act must be an activation name"):
        PerUnitMLP(2, (1, 2), act="tanh")


@pytest.mark.parametrize("widths", [(1,), (2, 4), (1, 0), (1, 2.5)])
def test_per_unit_mlp_widths(widths):
    with pytest.raises(ValueError, match=r"PerUnitMLP: widths must be \(1, \.\.\., d_out\)"):
        PerUnitMLP(2, widths)


def _bn_eval(h, bn):
    return (h - bn.running_mean[None, :, None, None]) / torch.sqrt(bn.running_var[None, :, None, None] + bn.eps) \
        * bn.weight[None, :, None, None] + bn.bias[None, :, None, None]


def _per_unit(s, mlp, act, final):
    h = s.unsqueeze(-1)
    for i, (w, b) in enumerate(zip(mlp.weights, mlp.biases)):
        h = torch.einsum("bni,nio->bno", h, w) + b
        if i < len(mlp.weights) - 1 or final:
            h = act(h)
    return h


def _random_bn_stats(m):
    g = torch.Generator().manual_seed(3)
    for bn in m.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean.copy_(torch.randn(bn.num_features, generator=g) * 0.1)
            bn.running_var.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
            bn.weight.data.copy_(torch.rand(bn.num_features, generator=g) + 0.5)
            bn.bias.data.copy_(torch.randn(bn.num_features, generator=g) * 0.1)


@torch.no_grad()
def test_encdiff_extractor_by_hand():
    # EncDiff Encoder4: four 4x4 stride-2 convs of 128 + BN (no ReLU after the third), two residual blocks
    # x + conv1x1(ReLU(BN(conv3x3(ReLU(x))))), Linear(2048 -> N), per-unit MLP 1-64-128-16 with ELU, no final act
    torch.manual_seed(0)
    m = FeatureExtractor(FeatureExtractorConfig(preset="encdiff", num_units=3)).eval()
    _random_bn_stats(m)
    x = torch.randn(2, 3, 64, 64)
    convs = [c for c in m.cnn if isinstance(c, nn.Conv2d)]
    bns = [b for b in m.cnn if isinstance(b, nn.BatchNorm2d)]
    h = x
    for i, (c, bn) in enumerate(zip(convs, bns)):
        assert (c.kernel_size, c.stride, c.padding, c.out_channels) == ((4, 4), (2, 2), (1, 1), 128)
        h = _bn_eval(F.conv2d(h, c.weight, c.bias, stride=2, padding=1), bn)
        if i != 2:
            h = F.relu(h)
    blocks = [b for b in m.cnn if not isinstance(b, (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Flatten))]
    assert len(blocks) == 2
    for blk in blocks:
        c3, bn, c1 = [u for u in blk.net if isinstance(u, (nn.Conv2d, nn.BatchNorm2d))]
        assert c3.kernel_size == (3, 3) and c1.kernel_size == (1, 1)
        r = F.relu(_bn_eval(F.conv2d(F.relu(h), c3.weight, c3.bias, padding=1), bn))
        h = h + F.conv2d(r, c1.weight, c1.bias)
    s_ref = F.linear(h.flatten(1), m.fc.weight, m.fc.bias)
    s, c = m(x)
    torch.testing.assert_close(s, s_ref, rtol=1e-4, atol=1e-5)
    assert [tuple(w.shape) for w in m.mlp.weights] == [(3, 1, 64), (3, 64, 128), (3, 128, 16)]
    torch.testing.assert_close(c, _per_unit(s, m.mlp, F.elu, final=False), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match=r"^FeatureExtractor: x must have shape \[B, 3, 64, 64\]"):
        m(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match=r"^FeatureExtractor: x must have shape \[B, 3, 64, 64\]"):
        m(torch.randn(1, 3, 32, 32))
    torch.testing.assert_close(m(x.double())[0], s)  # cast to float32
    assert torch.isnan(m(torch.full((1, 3, 64, 64), float("nan")))[0]).all()  # finite=False


@torch.no_grad()
def test_dyga_extractor_by_hand():
    # DyGA Table 9: conv 7x7 stride 1 pad 3 (3 -> 64) + BN + ReLU, four 4x4 stride-2 convs 128, 256, 256, 256
    # + BN + ReLU, FC 4096-4096-ReLU-256-ReLU-N, per-unit MLP 1-256-512-32 with ReLU after every layer
    torch.manual_seed(0)
    m = FeatureExtractor(FeatureExtractorConfig(preset="dyga", num_units=2)).eval()
    _random_bn_stats(m)
    x = torch.randn(1, 3, 64, 64)
    convs = [c for c in m.cnn if isinstance(c, nn.Conv2d)]
    bns = [b for b in m.cnn if isinstance(b, nn.BatchNorm2d)]
    want = [(64, 7, 1, 3), (128, 4, 2, 1), (256, 4, 2, 1), (256, 4, 2, 1), (256, 4, 2, 1)]
    assert [(c.out_channels, c.kernel_size[0], c.stride[0], c.padding[0]) for c in convs] == want
    h = x
    for (_, _, st, pad), c, bn in zip(want, convs, bns):
        h = F.relu(_bn_eval(F.conv2d(h, c.weight, c.bias, stride=st, padding=pad), bn))
    lin = [u for u in m.fc if isinstance(u, nn.Linear)]
    h = F.relu(F.linear(h.flatten(1), lin[0].weight, lin[0].bias))
    h = F.relu(F.linear(h, lin[1].weight, lin[1].bias))
    s_ref = F.linear(h, lin[2].weight, lin[2].bias)
    s, c = m(x)
    torch.testing.assert_close(s, s_ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(c, _per_unit(s, m.mlp, F.relu, final=True), rtol=1e-4, atol=1e-5)
