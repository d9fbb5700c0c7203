"""Layers shared by the U-Net, the Half-U-Net and the VQ autoencoder (ADM lineage).

ResBlock follows Dhariwal & Nichol (2021, "ADM") with scale-shift norm (AdaGN,
AdaGN(h, y) = y_s GroupNorm(h) + y_b, their Sec. 3 / Eq. before Table 3) and an optional second
AdaGN on a latent vector z:

- ``latent_cond="adagn_eq12"``: AGN(h, z, t) = (1 + s(t)) GN((1 + s(z)) GN(h) + b(z)) + b(t)
  (ParamReL Eq. 12; docs/methods/paramrel.md#eq-10-12-conditional-decoder-and-adagn);
- ``latent_cond="infodiff"``: normalise once, apply (1 + s_t, b_t), then (1 + s_z, b_z)
  (InfoDiffusion ``AuxResBlock``, docs/methods/paramrel.md#eq-10-12-conditional-decoder-and-adagn);
- ``latent_cond="diffae"``: normalise once, apply (1 + s_t, b_t), then the scale (1 + s_z) only
  (DiffAE Eq. 7, the U-Net's "two-cond" scale; docs/methods/diffae.md).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import finite_float, non_negative_float, non_negative_int, positive_float, positive_int

__all__ = ["check_levels", "check_groups", "timestep_embedding", "GroupNorm", "zero_module", "ResBlock", "AttentionBlock", "SpatialTransformer",
           "Downsample", "Upsample", "make_act", "feature_map", "row_vectors"]


def check_levels(image_size: int, channel_mult, attention_resolutions=(), field: str = "channel_mult") -> list[int]:
    """Validate a level structure; return the feature-map resolutions (px). Raises ConfigError naming the field."""
    from ..config import ConfigError

    def counts(v) -> bool:
        return isinstance(v, (tuple, list)) and all(isinstance(m, int) and not isinstance(m, bool) and m >= 1 for m in v)

    if not channel_mult or not counts(channel_mult):
        raise ConfigError(field, f"must be a non-empty tuple of positive ints, got {channel_mult!r}")
    if not counts(attention_resolutions):
        raise ConfigError("attention_resolutions", f"must be a tuple of positive ints, got {attention_resolutions!r}")
    levels = len(channel_mult)
    if isinstance(image_size, bool) or not isinstance(image_size, int):
        raise ConfigError("image_size", f"must be a positive int, got {image_size!r}")
    if image_size < 1 or image_size % 2 ** (levels - 1):
        raise ConfigError("image_size", f"{image_size} is not divisible by 2^{levels - 1} (needed by {levels} levels of {field})")
    res = [image_size // 2**i for i in range(levels)]
    for r in attention_resolutions:
        if r not in res:
            raise ConfigError("attention_resolutions", f"resolution {r} does not exist in this network; its feature "
                              f"maps are {res} px (image_size={image_size}, {levels} levels)")
    return res


def check_groups(channels, num_groups: int) -> None:
    """Every channel count must be divisible by the GroupNorm group count."""
    from ..config import ConfigError

    if isinstance(num_groups, bool) or not isinstance(num_groups, int) or num_groups < 1:  # 0: ZeroDivisionError
        raise ConfigError("num_groups", f"must be a positive int, got {num_groups!r}")
    for c in channels:
        if c % num_groups:
            raise ConfigError("num_groups", f"channel count {c} is not divisible by num_groups={num_groups}")


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0, *, flip_sin_to_cos: bool = True,
                       freq_shift: float = 0.0) -> torch.Tensor:
    """Sinusoidal embedding [cos(t w_i), sin(t w_i)], w_i = max_period^(-i/(half - freq_shift)) (Vaswani et al.
    2017; ADM code). ``flip_sin_to_cos=False`` gives [sin, cos] and ``freq_shift=1`` the denominator half - 1:
    together the original DDPM code's ``get_timestep_embedding`` (Ho et al. 2020), which diffusers spells
    with the same two names.

    ``t`` has shape [B] (integer or real timesteps, all finite); returns [B, dim] float32.
    """
    return _timestep_embedding(t, dim, max_period, flip_sin_to_cos=flip_sin_to_cos, freq_shift=freq_shift,
                               check_finite=True)


def _timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0, *, flip_sin_to_cos: bool = True,
                        freq_shift: float = 0.0, check_finite: bool) -> torch.Tensor:
    """:func:`timestep_embedding`; ``check_finite=False`` skips the one host read, the finiteness of a real ``t``
    (a host-device synchronisation on CUDA), for the sampling chains' times built from a finite grid
    (docs/architecture.md "Host synchronisation and the non-finite-loss check")."""
    if not isinstance(t, torch.Tensor) or t.dim() != 1:
        raise ValueError(f"t must be a 1-D tensor of shape [B], got {getattr(t, 'shape', type(t))}")
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"t must hold integer or real timesteps, got {t.dtype}")
    if check_finite and t.is_floating_point() and not bool(torch.isfinite(t).all()):
        # cos/sin of NaN or inf is NaN: the row's embedding, and through the time MLP the network's output,
        # became NaN without a word
        bad = t[~torch.isfinite(t)]
        raise ValueError(f"t must hold finite timesteps; {bad.numel()} of {t.numel()} are NaN or infinite "
                         f"(first: {bad[0].item()})")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
        raise ValueError(f"dim must be an int >= 2, got {dim!r}")
    max_period = positive_float(max_period, "max_period")  # log(max_period) below
    freq_shift = non_negative_float(freq_shift, "freq_shift")
    half = dim // 2
    if half - freq_shift <= 0:
        raise ValueError(f"freq_shift={freq_shift} must be below dim // 2 = {half}")
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / (half - freq_shift))
    args = t.float()[:, None] * freqs[None]
    parts = [torch.cos(args), torch.sin(args)] if flip_sin_to_cos else [torch.sin(args), torch.cos(args)]
    emb = torch.cat(parts, dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class GroupNorm(nn.GroupNorm):
    """GroupNorm computed in at least float32 (ADM's GroupNorm32: half-precision activations are
    normalised in float32, float64 stays float64); ``bias=False`` drops the additive shift."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, bias: bool = True):
        positive_int(num_groups, "num_groups")  # 0 was ZeroDivisionError, True one group
        positive_int(num_channels, "num_channels")
        positive_float(eps, "eps")
        super().__init__(num_groups, num_channels, eps=eps)
        if not bias:
            self.bias = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        compute = torch.promote_types(x.dtype, torch.float32)
        weight = self.weight.to(compute) if self.weight is not None else None
        bias = self.bias.to(compute) if self.bias is not None else None
        return F.group_norm(x.to(compute), self.num_groups, weight, bias, self.eps).to(x.dtype)


def zero_module(m: nn.Module) -> nn.Module:
    for p in m.parameters():
        nn.init.zeros_(p)
    return m


def make_act(name: str, *, field: str = "name") -> nn.Module:
    """The activation module ``name``; ``field`` is the caller's argument, for the message."""
    acts = {"silu": nn.SiLU, "relu": nn.ReLU, "gelu": nn.GELU, "elu": nn.ELU}
    if not isinstance(name, str) or name not in acts:
        raise ValueError(f"{field} must be an activation name, one of {sorted(acts)}, got {name!r}")
    return acts[name]()


def _channels(channels, out_channels, who: str) -> int:
    """The output width: ``channels`` when ``out_channels`` is None (``or`` read 0 as "same")."""
    positive_int(channels, f"{who}: channels")
    return channels if out_channels is None else positive_int(out_channels, f"{who}: out_channels")


def feature_map(x, channels: int, who: str, name: str = "x") -> torch.Tensor:
    """``x`` when it is a floating feature map [B >= 1, channels, H, W]: a layer's own check, cheap (no
    NaN scan, which would cost a host synchronisation per block; the models scan their inputs)."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{who}: {name} must be a floating-point tensor [B, {channels}, H, W], got "
                        f"{getattr(x, 'dtype', type(x).__name__)}")
    if x.dim() != 4 or x.shape[0] < 1 or x.shape[1] != channels or x.shape[2] < 1 or x.shape[3] < 1:
        raise ValueError(f"{who}: {name} must have shape [B, {channels}, H, W], got {tuple(x.shape)}")
    return x


def row_vectors(v, width: int, batch: int, who: str, name: str) -> torch.Tensor:
    """``v`` when it is a floating tensor [batch, width] (a time embedding or a latent per example)."""
    if not isinstance(v, torch.Tensor) or not v.is_floating_point():
        raise TypeError(f"{who}: {name} must be a floating-point tensor [B, {width}], got "
                        f"{getattr(v, 'dtype', type(v).__name__)}")
    if v.shape != (batch, width):
        raise ValueError(f"{who}: {name} must have shape [B={batch}, {width}] (B from x), got {tuple(v.shape)}")
    return v


class Downsample(nn.Module):
    """Halve H and W: 3x3 stride-2 conv (``use_conv``) or 2x2 average pooling. ``padding=0`` pads only the
    right and bottom edge by one pixel before the conv (the original DDPM code's ``downsample``)."""

    def __init__(self, channels: int, use_conv: bool = True, out_channels: int | None = None, bias: bool = True,
                 padding: int = 1):
        super().__init__()
        if isinstance(padding, bool) or padding not in (0, 1):
            raise ValueError(f"Downsample: padding must be 0 or 1, got {padding!r}")
        out_channels = _channels(channels, out_channels, "Downsample")
        self.asymmetric = use_conv and padding == 0
        self.op = (nn.Conv2d(channels, out_channels, 3, stride=2, padding=padding, bias=bias) if use_conv
                   else nn.AvgPool2d(2))

    def forward(self, x):
        if self.asymmetric:
            x = F.pad(x, (0, 1, 0, 1))
        return self.op(x)


class Upsample(nn.Module):
    """Double H and W by nearest-neighbour interpolation, then an optional 3x3 conv."""

    def __init__(self, channels: int, use_conv: bool = True, out_channels: int | None = None, bias: bool = True):
        super().__init__()
        out_channels = _channels(channels, out_channels, "Upsample")
        self.conv = nn.Conv2d(channels, out_channels, 3, padding=1, bias=bias) if use_conv else None

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.conv(x) if self.conv is not None else x


class ResBlock(nn.Module):
    """ADM residual block with optional time embedding, latent AdaGN and up/down-sampling.

    ``emb_dim=0`` gives an unconditioned block (Half-U-Net, VQ autoencoder). ``use_scale_shift_norm``
    applies the time embedding as AdaGN; otherwise it is added after the first conv (DDPM, Ho et al. 2020).
    """

    def __init__(self, in_channels: int, out_channels: int, emb_dim: int = 0, *, dropout: float = 0.0,
                 use_scale_shift_norm: bool = True, latent_dim: int = 0, latent_cond: str = "adagn_eq12",
                 up: bool = False, down: bool = False, num_groups: int = 32, bias: bool = True, act: str = "silu",
                 zero_init: bool = True, eps: float = 1e-5):
        super().__init__()
        if up and down:
            raise ValueError("ResBlock: up and down are mutually exclusive")
        if latent_cond not in ("adagn_eq12", "infodiff", "diffae"):
            raise ValueError(f"latent_cond must be 'adagn_eq12', 'infodiff' or 'diffae', got {latent_cond!r}")
        positive_int(in_channels, "ResBlock: in_channels")
        positive_int(out_channels, "ResBlock: out_channels")
        non_negative_int(emb_dim, "ResBlock: emb_dim")
        non_negative_int(latent_dim, "ResBlock: latent_dim")
        if not 0 <= finite_float(dropout, "ResBlock: dropout") < 1:
            raise ValueError(f"ResBlock: dropout must lie in [0, 1), got {dropout!r}")
        self.in_channels, self.emb_dim, self.latent_dim = in_channels, emb_dim, latent_dim
        self.use_scale_shift_norm = use_scale_shift_norm and emb_dim > 0
        self.latent_cond = latent_cond
        self.in_norm = GroupNorm(num_groups, in_channels, eps=eps, bias=bias)
        self.act = make_act(act, field="ResBlock: act")
        self.in_conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias)
        self.updown = up or down
        if up:
            self.h_upd, self.x_upd = Upsample(in_channels, False), Upsample(in_channels, False)
        elif down:
            self.h_upd, self.x_upd = Downsample(in_channels, False), Downsample(in_channels, False)
        self.emb_layers = (nn.Sequential(make_act(act), nn.Linear(emb_dim, (2 if self.use_scale_shift_norm else 1) * out_channels, bias=bias))
                           if emb_dim > 0 else None)
        z_width = out_channels if latent_cond == "diffae" else 2 * out_channels  # DiffAE: a scale only
        self.z_layers = nn.Sequential(make_act(act), nn.Linear(latent_dim, z_width, bias=bias)) if latent_dim > 0 else None
        self.out_norm = GroupNorm(num_groups, out_channels, eps=eps, bias=bias)
        self.z_norm = GroupNorm(num_groups, out_channels, eps=eps, bias=bias) if latent_dim > 0 and latent_cond == "adagn_eq12" else None
        self.dropout = nn.Dropout(dropout)
        self.out_conv = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=bias)
        if zero_init:
            zero_module(self.out_conv)
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None, z: torch.Tensor | None = None) -> torch.Tensor:
        feature_map(x, self.in_channels, "ResBlock")
        if self.emb_layers is not None and emb is not None:
            row_vectors(emb, self.emb_dim, x.shape[0], "ResBlock", "emb")
        if self.z_layers is not None and z is not None:
            row_vectors(z, self.latent_dim, x.shape[0], "ResBlock", "z")
        h = self.act(self.in_norm(x))
        if self.updown:
            h, x = self.h_upd(h), self.x_upd(x)
        h = self.in_conv(h)
        e = None
        if self.emb_layers is not None:
            if emb is None:
                raise ValueError("ResBlock: this block is time-conditioned but emb is None")
            e = self.emb_layers(emb).type(h.dtype)[:, :, None, None]
        zs = zb = None
        if self.z_layers is not None:
            if z is None:
                raise ValueError("ResBlock: this block is latent-conditioned but z is None")
            zo = self.z_layers(z).type(h.dtype)[:, :, None, None]
            zs, zb = (zo, None) if self.latent_cond == "diffae" else zo.chunk(2, dim=1)
        if e is not None and not self.use_scale_shift_norm:
            h = h + e
        h = self.out_norm(h)
        if zs is not None and self.latent_cond == "adagn_eq12":
            h = self.z_norm(h * (1 + zs) + zb)
        if e is not None and self.use_scale_shift_norm:
            s, b = e.chunk(2, dim=1)
            h = h * (1 + s) + b
        if zs is not None and self.latent_cond == "infodiff":
            h = h * (1 + zs) + zb
        if zs is not None and self.latent_cond == "diffae":
            h = h * (1 + zs)  # DiffAE Eq. 7: z_s (t_s GN(h) + t_b), z_s = 1 + Affine(z_sem)
        h = self.out_conv(self.dropout(self.act(h)))
        return self.skip(x) + h


def _attend(q, k, v, heads):
    """q [B, Lq, H*d], k/v [B, Lk, H*d] -> [B, Lq, H*d] with per-head softmax(q k^T / sqrt(d)) v."""
    B, Lq, C = q.shape
    d = C // heads
    q, k, v = (u.reshape(B, u.shape[1], heads, d).transpose(1, 2) for u in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v)
    return out.transpose(1, 2).reshape(B, Lq, C)


class AttentionBlock(nn.Module):
    """Spatial self-attention with a residual connection (ADM ``AttentionBlock``; DDPM ``AttnBlock``)."""

    def __init__(self, channels: int, num_heads: int = 1, num_groups: int = 32, eps: float = 1e-5):
        super().__init__()
        if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1:
            raise ValueError(f"AttentionBlock: num_heads must be an int >= 1, got {num_heads!r}")
        positive_int(channels, "AttentionBlock: channels")
        if channels % num_heads:
            raise ValueError(f"AttentionBlock: channels {channels} not divisible by num_heads {num_heads}")
        self.num_heads, self.channels = num_heads, channels
        self.norm = GroupNorm(num_groups, channels, eps=eps)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = zero_module(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor, *_, **__) -> torch.Tensor:
        B, C, H, W = feature_map(x, self.channels, "AttentionBlock").shape
        qkv = self.qkv(self.norm(x).reshape(B, C, H * W)).transpose(1, 2)  # [B, L, 3C]
        q, k, v = qkv.chunk(3, dim=-1)
        h = _attend(q, k, v, self.num_heads).transpose(1, 2)
        return x + self.proj_out(h).reshape(B, C, H, W)


class _CrossAttention(nn.Module):
    def __init__(self, query_dim: int, context_dim: int | None, heads: int, dim_head: int, dropout: float = 0.0):
        super().__init__()
        inner = heads * dim_head
        context_dim = context_dim or query_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(dropout))

    def forward(self, x, context=None):
        context = x if context is None else context
        return self.to_out(_attend(self.to_q(x), self.to_k(context), self.to_v(context), self.heads))


class _GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x):
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class _TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int, dropout: float = 0.0):
        super().__init__()
        self.attn1 = _CrossAttention(dim, None, heads, dim_head, dropout)
        self.attn2 = _CrossAttention(dim, context_dim, heads, dim_head, dropout)
        self.ff = nn.Sequential(_GEGLU(dim, 4 * dim), nn.Dropout(dropout), nn.Linear(4 * dim, dim))
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x, context):
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), context)
        return x + self.ff(self.norm3(x))


class SpatialTransformer(nn.Module):
    """LDM cross-attention block on context tokens (EncDiff; the DyGA paper's Table 8): GN, 1x1 proj-in,
    ``depth`` x (self-attention, cross-attention to ``context`` [B, N, context_dim], GEGLU FF), 1x1 proj-out."""

    def __init__(self, channels: int, num_heads: int, dim_head: int, context_dim: int, depth: int = 1,
                 dropout: float = 0.0, num_groups: int = 32):
        super().__init__()
        for name, v in (("num_heads", num_heads), ("dim_head", dim_head), ("context_dim", context_dim), ("depth", depth)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:  # 0 built empty projections or no blocks
                raise ValueError(f"SpatialTransformer: {name} must be an int >= 1, got {v!r}")
        positive_int(channels, "SpatialTransformer: channels")
        inner = num_heads * dim_head
        self.context_dim, self.channels = context_dim, channels
        self.norm = GroupNorm(num_groups, channels, eps=1e-6)
        self.proj_in = nn.Conv2d(channels, inner, 1)
        self.blocks = nn.ModuleList(_TransformerBlock(inner, num_heads, dim_head, context_dim, dropout) for _ in range(depth))
        self.proj_out = zero_module(nn.Conv2d(inner, channels, 1))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        feature_map(x, self.channels, "SpatialTransformer")
        if context is None:
            raise ValueError("SpatialTransformer: context tokens are required (shape [B, N, context_dim])")
        if not isinstance(context, torch.Tensor) or not context.is_floating_point():
            raise TypeError(f"SpatialTransformer: context must be a floating-point tensor [B, N, {self.context_dim}], "
                            f"got {getattr(context, 'dtype', type(context).__name__)}")
        if context.dim() != 3 or context.shape[1] < 1 or context.shape[-1] != self.context_dim or context.shape[0] != x.shape[0]:
            raise ValueError(f"context must have shape [B={x.shape[0]}, N, {self.context_dim}] (B from x), got "
                             f"{tuple(context.shape)}")
        B, C, H, W = x.shape
        h = self.proj_in(self.norm(x))
        h = h.reshape(B, h.shape[1], H * W).transpose(1, 2)
        for blk in self.blocks:
            h = blk(h, context.to(h.dtype))
        h = h.transpose(1, 2).reshape(B, -1, H, W)
        return x + self.proj_out(h)
