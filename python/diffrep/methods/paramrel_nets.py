"""Networks of ParamReL / SepDiff: the self-encoder q_phi(z_t | theta_t, t) and its hyper-feature head.

* :class:`ParamRelEncoder`: a U-Net down-path over the BFN parameters theta_t (the network input of
  the flow: mu for continuous data, 2 theta - 1 for discrete data), global average pooling and
  Gaussian heads (mean, log sigma^2). ``time_conditioned=False`` is the vanilla encoder (ParamReL
  App. C.3, Fig. 8a); ``True`` is the progressive encoder, the same network with a time embedding
  applied by AdaGN in every residual block (Fig. 8b, ParamReL Eq. 11).
* :class:`HyperFeatureHead`: SepDiff Eq. 15-16, g = sum_l w_l B_l(h(x_t, u_{t+1,l})) + w_{L+1} B_{L+1}(theta_t)
  with u_{t+1,l} the decoder's l-th up-sampling feature map (SepDiff: at the previous, noisier step;
  diffrep reads it at the current step everywhere, docs/methods/paramrel.md#eq-15-16-self-encoder), up-sampled
  to the data size and reduced by a ResNet bottleneck B_l to the 2|z| Gaussian parameters. Readings of
  the under-specified equation (docs/methods/paramrel.md#eq-15-16-self-encoder): l runs over 1..L (features exist only there);
  h is the identity (a Bayesian update of a feature map is undefined); w is a softmax over L + 1
  logits (``mixing="softmax"``) or raw scalars (``"raw"``).
* :func:`decoder_unet`: the decoder U-Net config for a data configuration and a conditioning mode
  (AdaGN of the code, or SepDiff Eq. 1's cross-attention to z's tokens).
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..bfn.config import BFNDataConfig, unet_io
from ..config import Config, ConfigError, Ge, Lt
from ..nn.gaussian import gaussian_kl as _gaussian_kl
from ..nn.layers import Downsample, GroupNorm, ResBlock, _timestep_embedding, check_groups, check_levels
from ..nn.unet import UNetConfig

__all__ = ["ParamRelEncoderConfig", "ParamRelEncoder", "HyperFeatureHead", "decoder_unet", "xattn_resolutions"]


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Deprecated: :func:`diffrep.nn.gaussian_kl` with ``reduction="sum"`` (KL per example, summed over
    latent dimensions, shape [B]); this alias goes in the next release."""
    warnings.warn("diffrep.methods.paramrel_nets.gaussian_kl moved to diffrep.nn.gaussian_kl(mean, logvar, "
                  "reduction='sum'); the old name goes in the next release", DeprecationWarning, stacklevel=2)
    return _gaussian_kl(mean, logvar, reduction="sum")


@dataclasses.dataclass
class ParamRelEncoderConfig(Config):
    """The encoder's down-path; ``in_channels`` is the flow's network-input width (the data channels,
    or channels x K for discrete data with K > 2)."""

    image_size: int = 28  # height = width of the input images
    in_channels: Annotated[int, Ge(1)] = 1
    model_channels: Annotated[int, Ge(1)] = 32  # width of the first level
    channel_mult: tuple[int, ...] = (1, 2, 4)  # width multiplier of each resolution level
    num_res_blocks: Annotated[int, Ge(1)] = 1  # residual blocks per level
    num_groups: int = 8  # GroupNorm groups
    dropout: Annotated[float, Ge(0), Lt(1)] = 0.0  # dropout probability in the residual blocks
    pool: Literal["mean", "flatten"] = "mean"  # reduce the last feature map by global average (DiffAE) or flatten + linear (keeps positions)

    @property
    def final_size(self) -> int:
        """Side of the last feature map (one down-sampling between levels)."""
        return self.image_size >> (len(self.channel_mult) - 1)

    def validate(self) -> None:
        check_levels(self.image_size, self.channel_mult)
        check_groups([self.model_channels] + [self.model_channels * m for m in self.channel_mult], self.num_groups)


class ParamRelEncoder(nn.Module):
    """theta-input [B, C_in, H, W] (+ network time [B]) -> (mean, logvar) [B, latent_dim]."""

    def __init__(self, cfg: ParamRelEncoderConfig, latent_dim: int, time_conditioned: bool):
        super().__init__()
        self.cfg, self.latent_dim, self.time_conditioned = cfg, latent_dim, time_conditioned
        mc = cfg.model_channels
        emb_dim = 4 * mc if time_conditioned else 0
        self.time_embed = (nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
                           if time_conditioned else None)
        self.conv_in = nn.Conv2d(cfg.in_channels, mc, 3, padding=1)
        blocks, ch = [], mc
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResBlock(ch, mult * mc, emb_dim, dropout=cfg.dropout, num_groups=cfg.num_groups,
                                       zero_init=False))
                ch = mult * mc
            if level != len(cfg.channel_mult) - 1:
                blocks.append(Downsample(ch))
        self.blocks = nn.ModuleList(blocks)
        self.out = nn.Sequential(GroupNorm(cfg.num_groups, ch), nn.SiLU())
        self.width = ch * (cfg.final_size ** 2 if cfg.pool == "flatten" else 1)
        self.head = nn.Linear(self.width, 2 * latent_dim)

    def features(self, theta_in: torch.Tensor, t_net: torch.Tensor | None = None) -> torch.Tensor:
        return self._features(theta_in, t_net, check_time=True)

    def _features(self, theta_in: torch.Tensor, t_net: torch.Tensor | None, *, check_time: bool) -> torch.Tensor:
        """``check_time=False``: t_net's finiteness is not read back (a sampling chain's own grid times)."""
        cfg = self.cfg
        if theta_in.dim() != 4 or tuple(theta_in.shape[1:]) != (cfg.in_channels, cfg.image_size, cfg.image_size):
            raise ValueError(f"ParamRelEncoder: input must be [B, {cfg.in_channels}, {cfg.image_size}, "
                             f"{cfg.image_size}], got {tuple(theta_in.shape)}")
        emb = None
        if self.time_embed is not None:
            if t_net is None or t_net.shape != (theta_in.shape[0],):
                raise ValueError("the progressive encoder needs t of shape [B]")
            emb = self.time_embed(_timestep_embedding(t_net, cfg.model_channels, check_finite=check_time).to(theta_in.dtype))
        h = self.conv_in(theta_in)
        for blk in self.blocks:
            h = blk(h, emb) if isinstance(blk, ResBlock) else blk(h)
        h = self.out(h)
        return h.flatten(1) if self.cfg.pool == "flatten" else h.mean(dim=(2, 3))

    def gaussian_params(self, theta_in: torch.Tensor, t_net: torch.Tensor | None = None) -> torch.Tensor:
        """The raw 2|z| head output [B, 2 latent_dim] = (mean, logvar) concatenated."""
        return self.head(self.features(theta_in, t_net))

    def _gaussian_params_grid(self, theta_in: torch.Tensor, t_net: torch.Tensor | None) -> torch.Tensor:
        """:meth:`gaussian_params` at a sampling chain's own (finite) grid times: no host read of t_net."""
        return self.head(self._features(theta_in, t_net, check_time=False))

    def forward(self, theta_in: torch.Tensor, t_net: torch.Tensor | None = None):
        return self.gaussian_params(theta_in, t_net).chunk(2, dim=1)


class _Bottleneck(nn.Module):
    """B_l: up-sample to the data size, 1x1 reduce, 3x3, global pool, linear to 2|z|."""

    def __init__(self, in_channels: int, width: int, out_dim: int, size: int, num_groups: int):
        super().__init__()
        self.size = size
        self.net = nn.Sequential(nn.Conv2d(in_channels, width, 1), GroupNorm(num_groups, width), nn.SiLU(),
                                 nn.Conv2d(width, width, 3, padding=1), GroupNorm(num_groups, width), nn.SiLU())
        self.fc = nn.Linear(width, out_dim)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        if u.shape[-1] != self.size:
            u = F.interpolate(u, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return self.fc(self.net(u).mean(dim=(2, 3)))


class HyperFeatureHead(nn.Module):
    """Mixes bottlenecked decoder features with the theta branch (SepDiff Eq. 16)."""

    def __init__(self, feature_channels: list[int], width: int, latent_dim: int, size: int, num_groups: int,
                 mixing: str = "softmax"):
        super().__init__()
        if mixing not in ("softmax", "raw"):
            raise ValueError(f"mixing must be 'softmax' or 'raw', got {mixing!r}")
        self.mixing = mixing
        self.bottlenecks = nn.ModuleList(_Bottleneck(c, width, 2 * latent_dim, size, num_groups)
                                         for c in feature_channels)
        n = len(feature_channels) + 1
        self.omega = nn.Parameter(torch.zeros(n) if mixing == "softmax" else torch.full((n,), 1.0 / n))

    def forward(self, features: list[torch.Tensor], theta_term: torch.Tensor):
        if len(features) != len(self.bottlenecks):
            raise ValueError(f"expected {len(self.bottlenecks)} decoder feature maps, got {len(features)}")
        w = torch.softmax(self.omega, 0) if self.mixing == "softmax" else self.omega
        g = w[-1] * theta_term
        for wl, b, u in zip(w[:-1], self.bottlenecks, features):
            g = g + wl * b(u.to(theta_term.dtype))
        return g.chunk(2, dim=1)


def xattn_resolutions(image_size: int, channel_mult) -> tuple[int, ...]:
    """Every level's resolution (px): where ``xattn_levels="all"`` places cross-attention."""
    return tuple(image_size >> i for i in range(len(channel_mult)))


def decoder_unet(bfn: BFNDataConfig, latent_dim: int, cond: str = "adagn_eq12", xattn_tokens: int = 4,
                 xattn_levels: str = "all", **fields) -> UNetConfig:
    """The decoder U-Net config for a data configuration and a conditioning mode (channels filled in).
    With ``cond="xattn"`` the attention layers become cross-attention to z's tokens: at every
    resolution level, down and up, plus the bottleneck (``xattn_levels="all"``, SepDiff Eq. 1), or at
    the bottleneck only (``"bottleneck"``); the ``attention_resolutions`` / ``middle_attention`` in
    ``fields`` are replaced accordingly."""
    io = unet_io(bfn)
    if cond == "xattn":
        if latent_dim % xattn_tokens:
            raise ConfigError("xattn_tokens", f"{xattn_tokens} does not divide latent_dim={latent_dim}")
        if xattn_levels not in ("all", "bottleneck"):
            raise ConfigError("xattn_levels", f"must be 'all' or 'bottleneck', got {xattn_levels!r}")
        base = UNetConfig(**{**fields, **io})
        att = xattn_resolutions(base.image_size, base.channel_mult) if xattn_levels == "all" else ()
        return UNetConfig(**{**fields, **io, "latent_dim": 0, "context_dim": latent_dim // xattn_tokens,
                             "attention_resolutions": att, "middle_attention": True})
    return UNetConfig(**{**fields, **io, "latent_dim": latent_dim, "latent_cond": cond, "context_dim": 0})
