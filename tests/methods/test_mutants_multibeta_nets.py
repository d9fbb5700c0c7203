"""The beta-conditioned networks of the multi-beta VAE against independent computations (mutation survivors of
2026-12-08, benches/results/mutation_nets_2026-12-08.md; docs/methods/multibeta.md#networks).

Each network is recomputed from its own weights with plain tensor ops in the order the docs state: the beta
embedding (sinusoid of 1000 beta, [cos, sin], Linear-SiLU-Linear), FiLM h (1 + s) + b after every hidden layer
(or the embedding concatenated to the flattened features / to z), the disentanglement_lib conv stacks (32-32-64-64,
kernels 4-4-2-2 with TensorFlow "same" padding; 4x4 transposed convs in the decoder), the residual nets' block
order, and LatentMLP's pre-norm FiLM blocks with one 2d-wide output split into (eps_hat, Delta_hat).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from helpers import randomise_parameters, sinusoid_reference
from diffrep.methods.multibeta_nets import (BetaConvDecoder, BetaConvEncoder, BetaEmbedding, BetaResDecoder,
                                            BetaResEncoder, FiLM, LatentMLP, conv_channels)
from diffrep.nn.layers import Downsample, ResBlock, Upsample


pytestmark = pytest.mark.usefixtures("float64_default")


def _embed_ref(emb: BetaEmbedding, beta: torch.Tensor, scale: float) -> torch.Tensor:
    l1, l2 = emb.mlp[0], emb.mlp[2]
    return F.silu(sinusoid_reference(beta * scale, l1.in_features) @ l1.weight.T + l1.bias) @ l2.weight.T + l2.bias


def _film_ref(film: FiLM, h: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    sb = e @ film.proj.weight.T + film.proj.bias
    c = h.shape[1]
    s, b = sb[:, :c], sb[:, c:]
    view = (h.shape[0], c) + (1,) * (h.dim() - 2)
    return h * (1 + s.reshape(view)) + b.reshape(view)


BETA = torch.tensor([0.0, 0.25, 0.9])


def test_conv_channels_are_disentanglement_lib():
    assert conv_channels(64) == [32, 32, 64, 64]
    assert conv_channels(32) == [32, 32, 64]
    for bad in (16, 128, True, "64"):
        with pytest.raises(ValueError, match=r"image_size must be 32 or 64 \(the disentanglement_lib conv stack\), got"):
            conv_channels(bad)


def test_beta_embedding_is_scaled_sinusoid_then_linear_silu_linear():
    emb = BetaEmbedding(6, scale=1000.0, base=8)
    assert (emb.scale, emb.base) == (1000.0, 8)
    assert [type(m).__name__ for m in emb.mlp] == ["Linear", "SiLU", "Linear"]
    assert (emb.mlp[0].in_features, emb.mlp[0].out_features, emb.mlp[2].out_features) == (8, 6, 6)
    randomise_parameters(emb)
    torch.testing.assert_close(emb(BETA), _embed_ref(emb, BETA, 1000.0))
    torch.testing.assert_close(emb._embed_grid(BETA), _embed_ref(emb, BETA, 1000.0))
    emb2 = BetaEmbedding(4, scale=3.5)
    assert emb2.base == 128 and emb2.mlp[0].in_features == 128
    randomise_parameters(emb2, 1)
    torch.testing.assert_close(emb2(BETA), _embed_ref(emb2, BETA, 3.5))
    torch.testing.assert_close(emb2._embed_grid(BETA), _embed_ref(emb2, BETA, 3.5))


def test_beta_embedding_grid_path_does_not_read_beta_back():
    emb = BetaEmbedding(4, base=4)
    beta = torch.tensor([0.5, math.nan])
    with pytest.raises(ValueError, match="finite"):
        emb(beta)
    assert torch.isnan(emb._embed_grid(beta)[1]).all() and torch.isfinite(emb._embed_grid(beta)[0]).all()


def test_film_keeps_the_activation_dtype():
    """Under mixed precision the embedding's dtype may differ from the features'; FiLM returns the features' dtype."""
    film = FiLM(3, 2)
    randomise_parameters(film)
    h = torch.randn(2, 2, 3, 3, dtype=torch.float32)
    e = torch.randn(2, 3)  # float64, as film's weights
    out = film(h, e)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, _film_ref(film, h.double(), e).float())


def test_beta_embedding_default_scale_is_1000():
    emb = BetaEmbedding(4, base=4)
    assert emb.scale == 1000.0
    randomise_parameters(emb)
    torch.testing.assert_close(emb(BETA), _embed_ref(emb, BETA, 1000.0))


@pytest.mark.parametrize("kw, name", [(dict(dim=0), "dim"), (dict(dim=4, scale=0.0), "scale"),
                                      (dict(dim=4, base=0), "base")])
def test_beta_embedding_validates(kw, name):
    with pytest.raises(ValueError, match=f"^{name} must be"):
        BetaEmbedding(**kw)


def test_film_starts_as_identity_and_then_scales_and_shifts():
    film = FiLM(3, 4)
    assert (film.proj.in_features, film.proj.out_features) == (3, 8)
    assert not film.proj.weight.any() and not film.proj.bias.any()
    h4 = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(0))
    e = torch.randn(2, 3, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(film(h4, e), h4)
    randomise_parameters(film)
    torch.testing.assert_close(film(h4, e), _film_ref(film, h4, e))
    h2 = h4[:, :, 0, 0]
    torch.testing.assert_close(film(h2, e), _film_ref(film, h2, e))
    for kw, name in ((dict(emb_dim=0, channels=2), "emb_dim"), (dict(emb_dim=2, channels=0), "channels")):
        with pytest.raises(ValueError, match=f"^{name} must be a positive int"):
            FiLM(**kw)


def _conv_encoder_ref(net: BetaConvEncoder, x, beta, film: bool, kernels):
    e = _embed_ref(net.embed, beta, 250.0)
    h = x
    for i, (conv, k) in enumerate(zip(net.convs, kernels)):
        h = F.conv2d(h, conv.weight, conv.bias, stride=2, padding=(k - 2) // 2)
        if film:
            h = _film_ref(net.conv_films[i], h, e)
        h = torch.relu(h)
    h = h.reshape(h.shape[0], -1)
    if not film:
        h = torch.cat([h, e], dim=1)
    h = h @ net.fc.weight.T + net.fc.bias
    if film:
        h = _film_ref(net.fc_film, h, e)
    return torch.relu(h) @ net.head.weight.T + net.head.bias


@pytest.mark.parametrize("cond", ["film", "concat"])
@pytest.mark.parametrize("size", [32, 64])
def test_conv_encoder_equals_reference(cond, size):
    net = BetaConvEncoder(1, size, latent_dim=3, hidden=5, emb_dim=4, conditioning=cond, beta_embed_scale=250.0)
    kernels = (4, 4, 2, 2)[: {32: 3, 64: 4}[size]]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0]) for c in net.convs] == [
        (a, b, k, 2) for a, b, k in zip([1] + conv_channels(size)[:-1], conv_channels(size), kernels)]
    last = conv_channels(size)[-1]
    assert net.fc.in_features == last * 16 + (0 if cond == "film" else 4) and net.fc.out_features == 5
    assert (net.conv_films is not None, net.fc_film is not None) == ((cond == "film"),) * 2
    randomise_parameters(net)
    x = torch.randn(2, 1, size, size, generator=torch.Generator().manual_seed(3))
    out = net(x, BETA[:2])
    assert out.shape == (2, 3)
    torch.testing.assert_close(out, _conv_encoder_ref(net, x, BETA[:2], cond == "film", kernels))


def test_conv_encoder_kernels_argument():
    net = BetaConvEncoder(1, 32, 2, 4, 4, "film", 250.0, conv_kernels=(4, 4, 4, 4))
    assert [c.kernel_size[0] for c in net.convs] == [4, 4, 4]
    randomise_parameters(net)
    x = torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(net(x, BETA[1:2]), _conv_encoder_ref(net, x, BETA[1:2], True, (4, 4, 4)))


def _conv_decoder_ref(net: BetaConvDecoder, z, beta, film: bool, c0: int):
    e = _embed_ref(net.embed, beta, 250.0)
    h = z if film else torch.cat([z, e], dim=1)
    h = h @ net.fc1.weight.T + net.fc1.bias
    if film:
        h = _film_ref(net.films[0], h, e)
    h = torch.relu(h) @ net.fc2.weight.T + net.fc2.bias
    if film:
        h = _film_ref(net.films[1], h, e)
    h = torch.relu(h).reshape(z.shape[0], c0, 4, 4)
    n = len(net.deconvs)
    for i, d in enumerate(net.deconvs):
        h = F.conv_transpose2d(h, d.weight, d.bias, stride=2, padding=1)
        if i < n - 1:
            if film:
                h = _film_ref(net.films[2 + i], h, e)
            h = torch.relu(h)
    return h


@pytest.mark.parametrize("cond", ["film", "concat"])
@pytest.mark.parametrize("size", [32, 64])
def test_conv_decoder_equals_reference(cond, size):
    net = BetaConvDecoder(2, size, latent_dim=3, hidden=5, emb_dim=4, conditioning=cond, beta_embed_scale=250.0)
    chans = conv_channels(size)[::-1]
    assert net.c0 == chans[0] == 64
    assert [(d.in_channels, d.out_channels, d.kernel_size[0], d.stride[0], d.padding[0]) for d in net.deconvs] == [
        (a, b, 4, 2, 1) for a, b in zip(chans, chans[1:] + [2])]
    assert (net.fc1.in_features, net.fc1.out_features, net.fc2.out_features) == (3 + (0 if cond == "film" else 4), 5, 64 * 16)
    if cond == "film":
        assert [f.proj.out_features for f in net.films] == [2 * 5, 2 * 64 * 16] + [2 * c for c in chans[1:]]
    else:
        assert not hasattr(net, "films")
    assert net.last_layer() is net.deconvs[-1].weight
    randomise_parameters(net, scale=0.1)
    z = torch.randn(2, 3, generator=torch.Generator().manual_seed(4))
    out = net(z, BETA[1:])
    assert out.shape == (2, 2, size, size)
    torch.testing.assert_close(out, _conv_decoder_ref(net, z, BETA[1:], cond == "film", 64))


def test_concat_casts_the_embedding_to_the_features_dtype():
    """The beta embedding is cast to the features' dtype before the concatenation (here a float64 embedding in a
    float32 net): the fc layer reads one dtype."""
    enc = BetaConvEncoder(1, 32, 2, 4, 4, "concat", 250.0).float()
    dec = BetaConvDecoder(1, 32, 2, 4, 4, "concat", 250.0).float()
    for net in (enc, dec):
        randomise_parameters(net)
        net.embed.double()
    x = torch.randn(2, 1, 32, 32, generator=torch.Generator().manual_seed(3))
    z = torch.randn(2, 2, generator=torch.Generator().manual_seed(4))
    out = enc(x.float(), BETA[:2])
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, _conv_encoder_ref(enc.double(), x, BETA[:2], False, (4, 4, 2)).float(),
                               atol=1e-5, rtol=1e-5)
    out = dec(z.float(), BETA[:2])
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, _conv_decoder_ref(dec.double(), z, BETA[:2], False, 64).float(),
                               atol=1e-5, rtol=1e-5)


def test_conv_nets_film_differs_from_concat_only_by_the_conditioning():
    """conditioning is an exact string: anything but "film" concatenates (the code's reading)."""
    enc = BetaConvEncoder(1, 32, 2, 4, 4, "concat", 1000.0)
    assert not enc.film and enc.conv_films is None and enc.fc_film is None


def _res_structure(blocks):
    out = []
    for b in blocks:
        if isinstance(b, ResBlock):
            out.append(("res", b.in_channels, b.in_conv.out_channels))
        elif isinstance(b, Downsample):
            out.append(("down", b.op.in_channels, b.op.out_channels))
        elif isinstance(b, Upsample):
            out.append(("up", b.conv.in_channels, b.conv.out_channels))
    return out


def _gn_silu(norm, h):
    return F.silu(F.group_norm(h, norm[0].num_groups, norm[0].weight, norm[0].bias, norm[0].eps))


@pytest.mark.parametrize("latent", ["vector", "spatial"])
def test_res_encoder_layout_and_forward(latent):
    net = BetaResEncoder(2, 8, model_channels=4, channel_mult=(1, 2), num_res_blocks=2, num_groups=2, emb_dim=6,
                         beta_embed_scale=250.0, latent=latent, latent_dim=3, latent_channels=5)
    # per level: num_res_blocks blocks to model_channels * m, a down-sampling between levels, then one more block
    assert _res_structure(net.blocks) == [("res", 4, 4), ("res", 4, 4), ("down", 4, 4), ("res", 4, 8), ("res", 8, 8),
                                          ("res", 8, 8)]
    res = [b for b in net.blocks if isinstance(b, ResBlock)]
    assert all(b.emb_dim == 6 and b.use_scale_shift_norm and b.out_conv.weight.any() for b in res)  # no zero init
    assert all(b.in_norm.num_groups == 2 for b in res)
    assert (net.conv_in.in_channels, net.conv_in.out_channels, net.conv_in.kernel_size, net.conv_in.padding) == (
        2, 4, (3, 3), (1, 1))
    if latent == "vector":
        assert (net.out.in_features, net.out.out_features) == (8 * 4 * 4, 3)
    else:
        assert (net.out.in_channels, net.out.out_channels, net.out.kernel_size, net.out.padding) == (8, 5, (3, 3), (1, 1))
    randomise_parameters(net, scale=0.2)
    x = torch.randn(2, 2, 8, 8, generator=torch.Generator().manual_seed(5))
    e = _embed_ref(net.embed, BETA[:2], 250.0)
    h = F.conv2d(x, net.conv_in.weight, net.conv_in.bias, padding=1)
    for b in net.blocks:
        h = b(h, e) if isinstance(b, ResBlock) else b(h)
    h = _gn_silu(net.norm_out, h)
    ref = (h.reshape(2, -1) @ net.out.weight.T + net.out.bias if latent == "vector"
           else F.conv2d(h, net.out.weight, net.out.bias, padding=1))
    torch.testing.assert_close(net(x, BETA[:2]), ref)


@pytest.mark.parametrize("latent", ["vector", "spatial"])
def test_res_decoder_layout_and_forward(latent):
    net = BetaResDecoder(2, 8, model_channels=4, channel_mult=(1, 2), num_res_blocks=2, num_groups=2, emb_dim=6,
                         beta_embed_scale=250.0, latent=latent, latent_dim=3, latent_channels=5)
    assert (net.side, net.top) == (4, 8)
    # the mirror: a block at the top width, then per level (deepest first) num_res_blocks blocks and an
    # up-sampling except after the first level
    assert _res_structure(net.blocks) == [("res", 8, 8), ("res", 8, 8), ("res", 8, 8), ("up", 8, 8), ("res", 8, 4),
                                          ("res", 4, 4)]
    res = [b for b in net.blocks if isinstance(b, ResBlock)]
    assert all(b.emb_dim == 6 and b.out_conv.weight.any() for b in res)
    assert (net.conv_out.in_channels, net.conv_out.out_channels) == (4, 2)
    assert net.last_layer() is net.conv_out.weight
    if latent == "vector":
        assert (net.inp.in_features, net.inp.out_features) == (3, 8 * 4 * 4)
        z = torch.randn(2, 3, generator=torch.Generator().manual_seed(6))
    else:
        assert (net.inp.in_channels, net.inp.out_channels, net.inp.padding) == (5, 8, (1, 1))
        z = torch.randn(2, 5, 4, 4, generator=torch.Generator().manual_seed(6))
    randomise_parameters(net, scale=0.2)
    e = _embed_ref(net.embed, BETA[1:], 250.0)
    h = (z @ net.inp.weight.T + net.inp.bias).reshape(2, 8, 4, 4) if latent == "vector" else F.conv2d(
        z, net.inp.weight, net.inp.bias, padding=1)
    for b in net.blocks:
        h = b(h, e) if isinstance(b, ResBlock) else b(h)
    ref = F.conv2d(_gn_silu(net.norm_out, h), net.conv_out.weight, net.conv_out.bias, padding=1)
    out = net(z, BETA[1:])
    assert out.shape == (2, 2, 8, 8)
    torch.testing.assert_close(out, ref)


def test_res_nets_three_levels_one_block():
    enc = BetaResEncoder(1, 16, 2, (1, 2, 4), 1, 1, 4, 1000.0, "vector", 2, 1)
    assert _res_structure(enc.blocks) == [("res", 2, 2), ("down", 2, 2), ("res", 2, 4), ("down", 4, 4), ("res", 4, 8),
                                          ("res", 8, 8)]
    assert enc.out.in_features == 8 * 4 * 4
    dec = BetaResDecoder(1, 16, 2, (1, 2, 4), 1, 1, 4, 1000.0, "vector", 2, 1)
    # the top width is model_channels times the LAST multiplier
    assert _res_structure(dec.blocks) == [("res", 8, 8), ("res", 8, 8), ("up", 8, 8), ("res", 8, 4), ("up", 4, 4),
                                          ("res", 4, 2)]
    assert (dec.side, dec.top, dec.inp.out_features) == (4, 8, 8 * 16)
    assert all(e.embed.scale == 1000.0 for e in (enc, dec))


def _latent_mlp_ref(net: LatentMLP, z, t, scale):
    e = _embed_ref(net.embed, t, scale)
    h = z @ net.inp.weight.T + net.inp.bias
    for blk in net.blocks:
        w = h.shape[1]
        sb = e @ blk.film.weight.T + blk.film.bias
        u = F.layer_norm(h, (w,), blk.norm.weight, blk.norm.bias, 1e-5) @ blk.fc1.weight.T + blk.fc1.bias
        h = h + F.silu(u * (1 + sb[:, :w]) + sb[:, w:]) @ blk.fc2.weight.T + blk.fc2.bias
    ln, lin = net.out[0], net.out[2]
    o = F.silu(F.layer_norm(h, (h.shape[1],), ln.weight, ln.bias, 1e-5)) @ lin.weight.T + lin.bias
    d = z.shape[1]
    return o[:, :d], o[:, d:]


def test_latent_mlp_equals_reference_and_counts():
    net = LatentMLP(latent_dim=3, hidden=6, depth=2, time_scale=50.0)
    assert net.embed.scale == 50.0 and net.embed.mlp[2].out_features == 6
    assert len(net.blocks) == 2 and net.out[2].out_features == 6
    # per block: LayerNorm 2w, fc1 w^2 + w, FiLM 2w * w + 2w, fc2 w^2 + w (w = 6, emb = hidden)
    w = 6
    block = 2 * w + (w * w + w) + (w * 2 * w + 2 * w) + (w * w + w)
    embed = (128 * w + w) + (w * w + w)
    total = embed + (3 * w + w) + 2 * block + (2 * w + w * 6 + 6)
    assert sum(p.numel() for p in net.parameters()) == total
    randomise_parameters(net, scale=0.3)
    z = torch.randn(3, 3, generator=torch.Generator().manual_seed(7))
    t = torch.tensor([0.02, 0.5, 1.0])
    eps, delta = net(z, t)
    ref_eps, ref_delta = _latent_mlp_ref(net, z, t, 50.0)
    torch.testing.assert_close(eps, ref_eps)
    torch.testing.assert_close(delta, ref_delta)
    eps_g, delta_g = net._forward_grid(z, t)
    torch.testing.assert_close(eps_g, ref_eps)
    torch.testing.assert_close(delta_g, ref_delta)


@pytest.mark.parametrize("kw, name", [
    (dict(latent_dim=0, hidden=4, depth=1, time_scale=1.0), "latent_dim"),
    (dict(latent_dim=2, hidden=0, depth=1, time_scale=1.0), "hidden"),
    (dict(latent_dim=2, hidden=4, depth=0, time_scale=1.0), "depth"),
    (dict(latent_dim=2, hidden=4, depth=1, time_scale=0.0), "time_scale"),
    (dict(latent_dim=2, hidden=4, depth=1, time_scale=-math.inf), "time_scale"),
])
def test_latent_mlp_validates(kw, name):
    with pytest.raises(ValueError, match=f"^{name} must be"):
        LatentMLP(**kw)
