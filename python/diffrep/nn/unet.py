"""ADM-style U-Net (Dhariwal & Nichol 2021; Ho et al. 2020) with the options the four methods need.

- time conditioning by sinusoidal embedding + MLP, applied by AdaGN (``use_scale_shift_norm``) or
  added (DDPM);
- optional latent vector z through a second AdaGN (ParamReL Eq. 12, or InfoDiffusion's order), or
  DiffAE's scale after the time scale-shift (``latent_cond="diffae"``, DiffAE Eq. 7);
- ``forward_down`` / ``forward_up`` split the network at the bottleneck (DisDiff's shift decoder
  reads a frozen U-Net's skips, docs/methods/disdiff.md);
- optional cross-attention transformer blocks on context tokens [B, N, context_dim] at the
  attention resolutions (EncDiff / LDM ``SpatialTransformer``; the DyGA paper's Table 8);
- Skip Dropout on the decoder's skip connections (DyGA Eq. 7; DyGA Sec. 3.3 and the authors' code);
- an optional second output head (``num_outputs=2``): the last conv emits twice the channels,
  split in two (multi-beta's (eps, Delta), the multi-beta VAE paper; BFN's (mean, log-sigma)).

``attention_resolutions`` are given in pixels of the feature map (16 means the 16x16 level), not
downsample factors; ``UNET_PRESETS`` holds the published configurations with their sources.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

import torch
from torch import nn

from ..config import Config, ConfigError, Ge, Gt, Lt
from .layers import (AttentionBlock, Downsample, GroupNorm, ResBlock, SpatialTransformer, Upsample, check_groups, check_levels,
                     _timestep_embedding, zero_module)
from .pretrained import PretrainedMixin

__all__ = ["UNetConfig", "UNet", "SkipDropout", "UNET_PRESETS", "unet_preset"]


@dataclasses.dataclass
class UNetConfig(Config):
    image_size: int = 32  # input height = width in pixels
    in_channels: Annotated[int, Ge(1)] = 3  # channels of the input x_t
    out_channels: Annotated[int, Ge(1)] = 3  # channels of each output
    model_channels: Annotated[int, Ge(1)] = 128  # base width; level l has model_channels x channel_mult[l]
    channel_mult: tuple[int, ...] = (1, 2, 2, 2)  # width multiplier per resolution level (one downsampling between levels)
    num_res_blocks: Annotated[int, Ge(1)] = 2  # residual blocks per level going down (one more going up)
    attention_resolutions: tuple[int, ...] = (16,)  # feature-map sizes in pixels with self-attention after each block
    middle_attention: bool = True  # self-attention between the two middle residual blocks
    num_heads: int = 1  # attention heads (unless num_head_channels > 0)
    num_head_channels: int = -1  # > 0: heads = channels // num_head_channels (overrides num_heads)
    dropout: Annotated[float, Ge(0), Lt(1)] = 0.0  # dropout inside each residual block
    use_scale_shift_norm: bool = True  # time embedding as AdaGN scale/shift (ADM); False: added (DDPM)
    resblock_updown: bool = False  # down/upsample with residual blocks (BigGAN-style) instead of convs
    conv_resample: bool = True  # learned 3x3 convs when resampling; False: pooling / plain nearest upsampling
    num_groups: Annotated[int, Ge(1)] = 32  # GroupNorm groups
    time_embed_dim: Annotated[int, Ge(0)] = 0  # 0: 4 * model_channels (ADM)
    latent_dim: Annotated[int, Ge(0)] = 0  # > 0: second AdaGN on a latent vector z [B, latent_dim]
    latent_cond: Literal["adagn_eq12", "infodiff", "diffae"] = "adagn_eq12"  # how z enters each block (ParamReL Eq. 12, InfoDiffusion, DiffAE Eq. 7)
    context_dim: Annotated[int, Ge(0)] = 0  # > 0: attention blocks become cross-attention transformers on context tokens
    transformer_depth: Annotated[int, Ge(1)] = 1  # transformer layers per cross-attention block (context_dim > 0)
    skip_dropout: Annotated[float, Ge(0), Lt(1)] = 0.0  # rate 1 - p of DyGA Eq. 7; 0 disables
    skip_dropout_placement: Literal["paper", "reference_code", "all", "explicit"] = "paper"  # which skips get skip_dropout
    skip_dropout_resolutions: tuple[int, ...] = ()  # used with placement="explicit"
    skip_dropout_rescale: bool = True  # inverted dropout x 1/(1-rate), as DyGA's code; False: Eq. 7 as printed
    num_outputs: Literal[1, 2] = 1  # 2: the output split in two (e.g. mean and log-sigma)
    norm_eps: Annotated[float, Gt(0)] = 1e-5  # GroupNorm epsilon (ADM 1e-5; the original DDPM code 1e-6)
    time_embed_flip_sin_to_cos: bool = True  # timestep embedding [cos, sin] (ADM); False: [sin, cos] (DDPM code)
    time_embed_freq_shift: Annotated[float, Ge(0)] = 0.0  # frequencies 10000^(-i/(half - shift)); DDPM code: 1
    downsample_padding: Literal[0, 1] = 1  # 1: symmetric (ADM); 0: pad right/bottom only (DDPM code)

    @property
    def resolutions(self) -> list[int]:
        return [self.image_size // 2**i for i in range(len(self.channel_mult))]

    def validate(self) -> None:
        res = check_levels(self.image_size, self.channel_mult, self.attention_resolutions)
        chans = [self.model_channels * m for m in self.channel_mult]
        check_groups([self.model_channels] + chans, self.num_groups)
        att_chans = [c for c, r in zip(chans, res) if r in self.attention_resolutions] + ([chans[-1]] if self.middle_attention else [])
        for c in att_chans:
            if self.num_head_channels > 0:
                if c % self.num_head_channels:
                    raise ConfigError("num_head_channels", f"{self.num_head_channels} does not divide attention width {c}")
            elif self.num_heads < 1 or c % self.num_heads:
                raise ConfigError("num_heads", f"{self.num_heads} heads do not divide attention width {c}")
        for r in self.skip_dropout_resolutions:
            if r not in res:
                raise ConfigError("skip_dropout_resolutions", f"resolution {r} does not exist in this U-Net ({res} px)")
        if self.skip_dropout_resolutions and self.skip_dropout_placement != "explicit":
            raise ConfigError("skip_dropout_resolutions", f"is used only with skip_dropout_placement='explicit' "
                              f"(placement is {self.skip_dropout_placement!r}, which chooses the levels itself)")
        if self.skip_dropout > 0 and self.skip_dropout_placement == "explicit" and not self.skip_dropout_resolutions:
            raise ConfigError("skip_dropout_resolutions", f"is empty with skip_dropout_placement='explicit': "
                              f"skip_dropout={self.skip_dropout} would apply nowhere")
        if self.transformer_depth != 1 and self.context_dim == 0:
            raise ConfigError("transformer_depth", f"{self.transformer_depth} has no effect without cross-attention "
                              "(context_dim=0)")
        half = self.model_channels // 2  # timestep_embedding's frequencies: 10000^(-i/(half - shift))
        if half - self.time_embed_freq_shift <= 0:
            raise ConfigError("time_embed_freq_shift", f"{self.time_embed_freq_shift} must be below model_channels // 2 "
                              f"= {half} (the sinusoidal embedding's denominator)")

    def skip_dropout_levels(self) -> set[int]:
        """Decoder resolutions (px) whose skip connections get Skip Dropout (DyGA Sec. 3.3 and the authors' code).

        ``paper``: levels where the condition is not injected by cross-attention (all levels when the
        U-Net has no cross-attention); ``reference_code``: the DyGA code's test
        ``width not in attention downsample factors``; ``all``; ``explicit``: ``skip_dropout_resolutions``.
        """
        if self.skip_dropout == 0:
            return set()
        res = self.resolutions
        if self.skip_dropout_placement == "all":
            return set(res)
        if self.skip_dropout_placement == "explicit":
            return set(self.skip_dropout_resolutions)
        if self.skip_dropout_placement == "paper":
            if self.context_dim == 0:
                return set(res)
            return {r for r in res if r not in self.attention_resolutions}
        factors = {self.image_size // r for r in self.attention_resolutions}
        return {r for r in res if r not in factors}


class SkipDropout(nn.Module):
    """Channel dropout on a skip feature (DyGA Eq. 7): s~ = s * m, m_c ~ Bernoulli(1 - rate) per
    (sample, channel), broadcast over H x W. Identity in eval mode (the issue's contract, and the
    authors' code). ``rescale`` (default, the authors' code): inverted dropout, the kept channels
    divided by 1 - rate in training, so the eval network sees the skip at its training mean.
    ``rescale=False`` is Eq. 7 as printed: no division, so eval skips are 1 / (1 - rate) larger than
    their training mean; kept for comparison only (docs/methods/dyga.md#skip-dropout-eq-7)."""

    def __init__(self, rate: float, rescale: bool = True):
        super().__init__()
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(f"SkipDropout rate must be in [0, 1), got {rate!r}")
        if not isinstance(rescale, bool):
            raise TypeError(f"SkipDropout rescale must be a bool, got {rescale!r}")
        self.rate, self.rescale = rate, rescale

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0:
            return s
        keep = 1.0 - self.rate
        m = torch.bernoulli(torch.full((s.shape[0], s.shape[1], 1, 1), keep, device=s.device, dtype=s.dtype))
        return s * m / keep if self.rescale else s * m

    def extra_repr(self) -> str:
        return f"rate={self.rate}, rescale={self.rescale}"


class _Block(nn.ModuleList):
    """A sequence of layers called with whatever conditioning each layer takes."""

    def forward(self, h, emb, z, context):
        for layer in self:
            if isinstance(layer, ResBlock):
                h = layer(h, emb, z)
            elif isinstance(layer, SpatialTransformer):
                h = layer(h, context)
            else:
                h = layer(h)
        return h


class UNet(PretrainedMixin, nn.Module):
    """``forward(x, t, z=None, context=None)`` -> output [B, out_channels, H, W] or a pair of them."""

    config_class = UNetConfig

    def __init__(self, config: UNetConfig):
        super().__init__()
        cfg = self._init_config(config)
        mc = cfg.model_channels
        emb_dim = cfg.time_embed_dim or 4 * mc
        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

        def res(cin, cout, **kw):
            return ResBlock(cin, cout, emb_dim, dropout=cfg.dropout, use_scale_shift_norm=cfg.use_scale_shift_norm,
                            latent_dim=cfg.latent_dim, latent_cond=cfg.latent_cond, num_groups=cfg.num_groups,
                            eps=cfg.norm_eps, **kw)

        def attn(ch):
            heads = ch // cfg.num_head_channels if cfg.num_head_channels > 0 else cfg.num_heads
            if cfg.context_dim > 0:
                return SpatialTransformer(ch, heads, ch // heads, cfg.context_dim, cfg.transformer_depth, num_groups=cfg.num_groups)
            return AttentionBlock(ch, heads, cfg.num_groups, eps=cfg.norm_eps)

        self.input_blocks = nn.ModuleList([_Block([nn.Conv2d(cfg.in_channels, mc, 3, padding=1)])])
        skip_chans, ch, r = [mc], mc, cfg.image_size
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers = [res(ch, mult * mc)]
                ch = mult * mc
                if r in cfg.attention_resolutions:
                    layers.append(attn(ch))
                self.input_blocks.append(_Block(layers))
                skip_chans.append(ch)
            if level != len(cfg.channel_mult) - 1:
                down = res(ch, ch, down=True) if cfg.resblock_updown else Downsample(ch, cfg.conv_resample, padding=cfg.downsample_padding)
                self.input_blocks.append(_Block([down]))
                skip_chans.append(ch)
                r //= 2
        self.middle_block = _Block([res(ch, ch)] + ([attn(ch)] if cfg.middle_attention else []) + [res(ch, ch)])

        drop_levels = cfg.skip_dropout_levels()
        self.output_blocks = nn.ModuleList()
        self.skip_dropouts = nn.ModuleList()
        for level, mult in list(enumerate(cfg.channel_mult))[::-1]:
            for i in range(cfg.num_res_blocks + 1):
                sc = skip_chans.pop()
                layers = [res(ch + sc, mc * mult)]
                ch = mc * mult
                if r in cfg.attention_resolutions:
                    layers.append(attn(ch))
                if level and i == cfg.num_res_blocks:
                    layers.append(res(ch, ch, up=True) if cfg.resblock_updown else Upsample(ch, cfg.conv_resample))
                self.skip_dropouts.append(SkipDropout(cfg.skip_dropout, cfg.skip_dropout_rescale) if r in drop_levels else nn.Identity())
                self.output_blocks.append(_Block(layers))
                if level and i == cfg.num_res_blocks:
                    r *= 2
        self.out = nn.Sequential(GroupNorm(cfg.num_groups, ch, eps=cfg.norm_eps), nn.SiLU(),
                                 zero_module(nn.Conv2d(mc, cfg.out_channels * cfg.num_outputs, 3, padding=1)))

    def _check_inputs(self, x, t, z, context) -> None:
        cfg = self.config
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[0] < 1:
            raise ValueError(f"x must be a [B, C, H, W] tensor, got {getattr(x, 'shape', type(x))}")
        if not x.is_floating_point():  # an int tensor failed in the first conv ("mat1 and mat2 ... dtype")
            raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
        B, C, H, W = x.shape
        if C != cfg.in_channels or H % 2 ** (len(cfg.channel_mult) - 1) or W % 2 ** (len(cfg.channel_mult) - 1):
            raise ValueError(f"x has shape {tuple(x.shape)}; expected {cfg.in_channels} channels and H, W divisible "
                             f"by {2 ** (len(cfg.channel_mult) - 1)}")
        if not isinstance(t, torch.Tensor) or t.shape != (B,):
            raise ValueError(f"t must have shape [B={B}] (B from x), got {getattr(t, 'shape', type(t))}")
        if t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"t must hold integer or real timesteps, got {t.dtype}")
        if cfg.latent_dim:
            if not isinstance(z, torch.Tensor) or z.shape != (B, cfg.latent_dim):
                raise ValueError(f"z must have shape [B={B}, latent_dim={cfg.latent_dim}], got {getattr(z, 'shape', z)!r}")
            if not z.is_floating_point():
                raise TypeError(f"z must be a floating-point tensor, got {z.dtype}")
        elif z is not None:
            raise ValueError("z was given but this U-Net has latent_dim=0")
        if cfg.context_dim == 0 and context is not None:
            raise ValueError("context was given but this U-Net has context_dim=0")

    def _time_embedding(self, t: torch.Tensor, dtype: torch.dtype, *, check_finite: bool = True) -> torch.Tensor:
        cfg = self.config
        return self.time_embed(_timestep_embedding(t, cfg.model_channels, flip_sin_to_cos=cfg.time_embed_flip_sin_to_cos,
                                                   freq_shift=cfg.time_embed_freq_shift,
                                                   check_finite=check_finite).to(dtype))

    def forward(self, x: torch.Tensor, t: torch.Tensor, z: torch.Tensor | None = None,
                context: torch.Tensor | None = None):
        hs, emb = self.forward_down(x, t, z, context)
        return self.forward_up(hs[-1], hs, emb, z, context)

    def forward_down(self, x: torch.Tensor, t: torch.Tensor, z: torch.Tensor | None = None,
                     context: torch.Tensor | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The down path: (skip features hs, time embedding emb); ``forward_up(hs[-1], hs, emb, ...)``
        with the same arguments finishes ``forward``."""
        self._check_inputs(x, t, z, context)
        return self._down(x, self._time_embedding(t, x.dtype), z, context)

    def _forward_grid(self, x: torch.Tensor, t: torch.Tensor, z: torch.Tensor | None = None,
                      context: torch.Tensor | None = None):
        """:meth:`forward` at times built from a finite grid (a sampling chain's own timesteps): t's finiteness is
        not read back, so a chain makes no host read per step (docs/architecture.md "Host synchronisation and
        the non-finite-loss check")."""
        self._check_inputs(x, t, z, context)
        hs, emb = self._down(x, self._time_embedding(t, x.dtype, check_finite=False), z, context)
        return self.forward_up(hs[-1], hs, emb, z, context)

    def _down(self, x, emb, z, context) -> tuple[list[torch.Tensor], torch.Tensor]:
        hs, h = [], x
        for blk in self.input_blocks:
            h = blk(h, emb, z, context)
            hs.append(h)
        return hs, emb

    def forward_up(self, h: torch.Tensor, hs: list[torch.Tensor], emb: torch.Tensor, z: torch.Tensor | None = None,
                   context: torch.Tensor | None = None):
        """The middle block and the up path from the bottleneck feature ``h`` and the skips ``hs``
        (a list, not consumed) under the embedding ``emb`` (any [B, time_embed_dim] tensor)."""
        cfg = self.config
        if not isinstance(hs, (list, tuple)) or not all(isinstance(s, torch.Tensor) for s in hs):
            raise TypeError(f"UNet.forward_up: hs must be a list of the down path's skip features (tensors), got "
                            f"{type(hs).__name__}")
        if len(hs) != len(self.output_blocks):
            raise ValueError(f"UNet.forward_up: hs must hold {len(self.output_blocks)} skip features, got {len(hs)}")
        if cfg.latent_dim and (z is None or z.shape != (h.shape[0], cfg.latent_dim)):
            raise ValueError(f"z must have shape [B={h.shape[0]}, latent_dim={cfg.latent_dim}], got {getattr(z, 'shape', None)}")
        hs = list(hs)
        h = self.middle_block(h, emb, z, context)
        for blk, sd in zip(self.output_blocks, self.skip_dropouts):
            h = blk(torch.cat([h, sd(hs.pop())], dim=1), emb, z, context)
        out = self.out(h)
        return tuple(out.chunk(2, dim=1)) if cfg.num_outputs == 2 else out


UNET_PRESETS: dict[str, tuple[dict, str]] = {
    "ddpm-cifar10": (dict(image_size=32, model_channels=128, channel_mult=(1, 2, 2, 2), num_res_blocks=2,
                          attention_resolutions=(16,), dropout=0.1, use_scale_shift_norm=False),
                     "Ho et al. 2020 App. B: CIFAR-10 model, 35.7M parameters"),
    "ddpm-celebahq256": (dict(image_size=256, model_channels=128, channel_mult=(1, 1, 2, 2, 4, 4), num_res_blocks=2,
                              attention_resolutions=(16,), dropout=0.0, use_scale_shift_norm=False),
                         "Ho et al. 2020 App. B: CelebA-HQ/LSUN 256 models, 114M parameters; SAMI Table A.5 CelebA-HQ denoiser"),
    "sami-celeba64": (dict(image_size=64, model_channels=128, channel_mult=(1, 1, 1, 1, 1, 1), num_res_blocks=2,
                           attention_resolutions=(), middle_attention=False, use_scale_shift_norm=False),
                      "SAMI Table A.5 CelebA64 denoiser: Ho et al. U-Net without attention, 128 ch, [1,1,1,1,1,1]"),
    "paramrel-celeba64": (dict(image_size=64, model_channels=64, channel_mult=(1, 2, 2, 2), num_res_blocks=2,
                               attention_resolutions=(), middle_attention=True, latent_dim=64),
                          "ParamReL Table 5 CelebA: base 64, mult [1,2,2,2], z in R^64; attention at the bottleneck only (App. C.2)"),
    "dyga-table8": (dict(image_size=16, model_channels=64, channel_mult=(1, 2, 4, 4), num_res_blocks=2,
                         attention_resolutions=(16, 8, 4), num_heads=8, resblock_updown=True, context_dim=32,
                         dropout=0.1, skip_dropout=0.2),
                    "DyGA Table 8 latent U-Net (the DyGA paper's Table 8): 16x16x3 VQ latent, cross-attention to 32-d tokens"),
}


def unet_preset(name: str, **overrides) -> UNetConfig:
    """A published U-Net configuration by name (see ``UNET_PRESETS``), with field overrides."""
    if not isinstance(name, str) or name not in UNET_PRESETS:
        raise ValueError(f"name: unknown U-Net preset {name!r}; known: {', '.join(UNET_PRESETS)}")
    return UNetConfig(**{**UNET_PRESETS[name][0], **overrides})
