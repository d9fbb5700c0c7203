"""Values of the maths in diffrep.nn.layers against independent computations written here: the DDPM
spelling of the sinusoidal time embedding, the ResBlock's conditioning paths (DiffAE's scale-only latent,
the additive DDPM time embedding, up/down-sampling, the 1x1 skip), per-head scaled dot-product attention,
GEGLU and the bias-free GroupNorm (added after mutation testing of layers.py, 2026-12-07)."""

import math

import pytest
import torch
import torch.nn.functional as F

from diffrep.nn.layers import AttentionBlock, GroupNorm, ResBlock, SpatialTransformer, timestep_embedding


def _randomise(m, seed=0, scale=0.3):
    """Every parameter random (zero-initialised output convs would hide the branch under test)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return m


def _gn(h, gn):
    return F.group_norm(h, gn.num_groups, gn.weight, gn.bias, gn.eps)


def test_ddpm_embedding_spelling_sin_first_and_half_minus_one():
    """Ho et al. (2020) get_timestep_embedding: w_i = exp(-log(P) i / (half - 1)), [sin, cos]; written
    as a loop for dim 8 and max_period 100."""
    t = torch.tensor([0.0, 1.0, 7.0, 123.25])
    got = timestep_embedding(t, 8, max_period=100.0, flip_sin_to_cos=False, freq_shift=1.0)
    for row, tv in zip(got.tolist(), t.tolist()):
        w = [math.exp(-math.log(100.0) * i / 3) for i in range(4)]
        assert row == pytest.approx([math.sin(tv * wi) for wi in w] + [math.cos(tv * wi) for wi in w], abs=1e-5)
    # the default ADM spelling with another max_period and a fractional shift: w_i = P^(-i / (half - s))
    got = timestep_embedding(t, 6, max_period=50.0, freq_shift=0.5)
    for row, tv in zip(got.tolist(), t.tolist()):
        w = [50.0 ** (-i / 2.5) for i in range(3)]
        assert row == pytest.approx([math.cos(tv * wi) for wi in w] + [math.sin(tv * wi) for wi in w], abs=1e-5)
    assert got.dtype == torch.float32 and got.shape == (4, 6)


def test_resblock_diffae_scale_only_latent():
    """DiffAE Eq. 7: z_s ((1 + s_t) GN(h) + b_t) with z_s = 1 + Affine(z), no latent shift."""
    torch.manual_seed(0)
    blk = _randomise(ResBlock(8, 8, 16, latent_dim=3, latent_cond="diffae", num_groups=4), 1).eval()
    x, emb, z = torch.randn(2, 8, 4, 4), torch.randn(2, 16), torch.randn(2, 3)
    h = blk.in_conv(F.silu(_gn(x, blk.in_norm)))
    s_t, b_t = blk.emb_layers(emb)[:, :, None, None].chunk(2, 1)
    s_z = blk.z_layers(z)[:, :, None, None]
    assert s_z.shape[1] == 8  # a scale only
    a = ((1 + s_t) * _gn(h, blk.out_norm) + b_t) * (1 + s_z)
    torch.testing.assert_close(blk(x, emb, z), x + blk.out_conv(F.silu(a)), atol=1e-5, rtol=1e-5)


def test_resblock_additive_time_embedding_and_skip_conv():
    """DDPM ResnetBlock (use_scale_shift_norm=False): h = conv(act(GN(x))) + Linear(act(emb)), then
    conv(act(GN(h))); a 1x1 conv skip when the widths differ."""
    torch.manual_seed(1)
    blk = _randomise(ResBlock(4, 8, 6, use_scale_shift_norm=False, num_groups=2), 2).eval()
    x, emb = torch.randn(3, 4, 5, 5), torch.randn(3, 6)
    lin = blk.emb_layers[1]
    e = F.linear(F.silu(emb), lin.weight, lin.bias)[:, :, None, None]
    assert e.shape[1] == 8  # no scale-shift split
    h = blk.in_conv(F.silu(_gn(x, blk.in_norm))) + e
    h = blk.out_conv(F.silu(_gn(h, blk.out_norm)))
    skip = F.conv2d(x, blk.skip.weight, blk.skip.bias)
    torch.testing.assert_close(blk(x, emb), skip + h, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", ["up", "down"])
def test_resblock_resamples_both_branches(mode):
    """ADM: h = act(GN(x)) and x are both resampled (2x2 mean or nearest 2x) before the first conv."""
    torch.manual_seed(2)
    blk = _randomise(ResBlock(4, 4, 0, num_groups=2, **{mode: True}), 3).eval()
    x = torch.randn(2, 4, 4, 4)

    def resample(u):
        if mode == "down":  # mean of each 2x2 block
            return u.reshape(2, 4, 2, 2, 2, 2).mean(dim=(3, 5))
        return u.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)

    h = blk.in_conv(resample(F.silu(_gn(x, blk.in_norm))))
    h = blk.out_conv(F.silu(_gn(h, blk.out_norm)))
    torch.testing.assert_close(blk(x), resample(x) + h, atol=1e-5, rtol=1e-5)


def _attention(q, k, v, heads):
    """softmax(q k^T / sqrt(d)) v per head, by an explicit loop over heads."""
    d = q.shape[-1] // heads
    outs = []
    for j in range(heads):
        sl = slice(j * d, (j + 1) * d)
        w = torch.softmax(q[..., sl] @ k[..., sl].transpose(-1, -2) / math.sqrt(d), dim=-1)
        outs.append(w @ v[..., sl])
    return torch.cat(outs, dim=-1)


def test_attention_block_is_per_head_scaled_dot_product():
    """ADM AttentionBlock with 2 heads of width 4: x + proj(attention(qkv(GN(x)))) over the H*W positions."""
    torch.manual_seed(3)
    blk = _randomise(AttentionBlock(8, num_heads=2, num_groups=4), 4, scale=0.5).eval()
    x = torch.randn(2, 8, 3, 3)
    qkv = F.conv1d(_gn(x, blk.norm).reshape(2, 8, 9), blk.qkv.weight, blk.qkv.bias).transpose(1, 2)
    q, k, v = qkv[..., :8], qkv[..., 8:16], qkv[..., 16:]
    h = _attention(q, k, v, 2).transpose(1, 2)
    want = x + F.conv1d(h, blk.proj_out.weight, blk.proj_out.bias).reshape(2, 8, 3, 3)
    torch.testing.assert_close(blk(x), want, atol=1e-5, rtol=1e-5)


def test_spatial_transformer_depth_one_by_hand():
    """LDM SpatialTransformer: proj_in(GN(x)) -> tokens; x + attn1(LN1 x); x + attn2(LN2 x, context);
    x + W2 (a * gelu(g)) with [a, g] = W1 LN3 x (GEGLU, value half first); proj_out; residual."""
    torch.manual_seed(4)
    st = _randomise(SpatialTransformer(4, num_heads=2, dim_head=3, context_dim=5, num_groups=2), 5, scale=0.4).eval()
    x, ctx = torch.randn(2, 4, 2, 3), torch.randn(2, 7, 5)
    blk = st.blocks[0]

    def ln(u, m):
        return F.layer_norm(u, (u.shape[-1],), m.weight, m.bias, m.eps)

    def cross(a, u, c):
        q, k, v = u @ a.to_q.weight.T, c @ a.to_k.weight.T, c @ a.to_v.weight.T
        return F.linear(_attention(q, k, v, 2), a.to_out[0].weight, a.to_out[0].bias)

    h = F.conv2d(_gn(x, st.norm), st.proj_in.weight, st.proj_in.bias).reshape(2, 6, 6).transpose(1, 2)
    h = h + cross(blk.attn1, ln(h, blk.norm1), ln(h, blk.norm1))
    h = h + cross(blk.attn2, ln(h, blk.norm2), ctx)
    proj = F.linear(ln(h, blk.norm3), blk.ff[0].proj.weight, blk.ff[0].proj.bias)
    a, g = proj[..., :24], proj[..., 24:]
    h = h + F.linear(a * F.gelu(g), blk.ff[2].weight, blk.ff[2].bias)
    want = x + F.conv2d(h.transpose(1, 2).reshape(2, 6, 2, 3), st.proj_out.weight, st.proj_out.bias)
    torch.testing.assert_close(st(x, ctx), want, atol=1e-5, rtol=1e-5)


def test_groupnorm_without_bias_is_the_scaled_normalisation():
    """bias=False: gamma (x - mean_g) / sqrt(var_g + eps) per group, the biased variance, no shift."""
    norm = _randomise(GroupNorm(2, 4, eps=1e-3, bias=False), 6)
    assert norm.bias is None
    x = torch.randn(3, 4, 2, 2, dtype=torch.float64)
    g = x.reshape(3, 2, 8)
    y = ((g - g.mean(-1, keepdim=True)) / torch.sqrt(g.var(-1, unbiased=False, keepdim=True) + 1e-3)).reshape(3, 4, 2, 2)
    torch.testing.assert_close(norm.double()(x), y * norm.weight.double()[None, :, None, None], atol=1e-12, rtol=1e-12)


def test_timestep_embedding_edges_and_messages():
    """dim = 2 is the smallest ([cos t, sin t]); freq_shift just below dim // 2 is allowed; each bad input
    is refused with its own name and value."""
    torch.testing.assert_close(timestep_embedding(torch.tensor([1.5]), 2), torch.tensor([[math.cos(1.5), math.sin(1.5)]]))
    got = timestep_embedding(torch.tensor([2.0]), 4, freq_shift=1.5)  # w_i = 10000^(-i / 0.5)
    torch.testing.assert_close(got, torch.tensor([[1 * math.cos(2.0), math.cos(2e-8), math.sin(2.0), math.sin(2e-8)]]))
    with pytest.raises(ValueError, match=r"^t must be a 1-D tensor of shape \[B\], got torch.Size\(\[2, 1\]\)$"):
        timestep_embedding(torch.zeros(2, 1), 4)
    with pytest.raises(ValueError, match=r"^t must be a 1-D tensor of shape \[B\], got <class 'list'>$"):
        timestep_embedding([1.0], 4)
    for bad in (torch.zeros(2, dtype=torch.complex64), torch.zeros(2, dtype=torch.bool)):
        with pytest.raises(TypeError, match=f"^t must hold integer or real timesteps, got {bad.dtype}$"):
            timestep_embedding(bad, 4)
    with pytest.raises(ValueError, match=r"1 of 2 are NaN or infinite \(first: inf\)"):
        timestep_embedding(torch.tensor([3.0, float("inf")]), 4)
    for dim in (1, True, 4.0):
        with pytest.raises(ValueError, match=f"^dim must be an int >= 2, got {dim!r}$"):
            timestep_embedding(torch.zeros(2), dim)
    with pytest.raises(ValueError, match="^max_period must be > 0, got 0.0$"):
        timestep_embedding(torch.zeros(2), 4, max_period=0.0)
    with pytest.raises(ValueError, match="^freq_shift must be >= 0, got -1.0$"):
        timestep_embedding(torch.zeros(2), 4, freq_shift=-1.0)
    with pytest.raises(ValueError, match=r"^freq_shift=2.0 must be below dim // 2 = 2$"):
        timestep_embedding(torch.zeros(2), 4, freq_shift=2.0)


def test_groupnorm_casts_its_parameters_to_the_input_precision():
    """A float64 norm on a float32 input computes in float32 with its parameters cast down."""
    norm = _randomise(GroupNorm(2, 4), 7).double()
    x = torch.randn(2, 4, 3, 3)
    out = norm(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, F.group_norm(x, 2, norm.weight.float(), norm.bias.float(), 1e-5))


def test_resblock_checks_its_conditioning_inputs():
    """A conditioned block needs its emb / z, of shape [B, width], and names them; an unconditioned block
    ignores an emb or z it is handed (the U-Net passes emb to every block)."""
    blk = ResBlock(4, 4, 6, latent_dim=3, num_groups=2)
    x = torch.randn(2, 4, 3, 3)
    with pytest.raises(ValueError, match="^ResBlock: this block is time-conditioned but emb is None$"):
        blk(x, None, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="^ResBlock: this block is latent-conditioned but z is None$"):
        blk(x, torch.zeros(2, 6))
    with pytest.raises(ValueError, match=r"^ResBlock: emb must have shape \[B=2, 6\] \(B from x\), got \(2, 5\)$"):
        blk(x, torch.zeros(2, 5), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"^ResBlock: z must have shape \[B=2, 3\] \(B from x\), got \(1, 3\)$"):
        blk(x, torch.zeros(2, 6), torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"^ResBlock: x must have shape \[B, 4, H, W\]"):
        blk(torch.zeros(2, 5, 3, 3), torch.zeros(2, 6), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"^AttentionBlock: x must have shape \[B, 4, H, W\]"):
        AttentionBlock(4, num_groups=2)(torch.zeros(2, 3, 3, 3))
    plain = _randomise(ResBlock(4, 4, 0, num_groups=2), 8).eval()
    torch.testing.assert_close(plain(x, torch.zeros(5, 1), torch.zeros(7, 2)), plain(x))
