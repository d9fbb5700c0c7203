"""VQ autoencoder for latent diffusion (taming VQ-GAN layout; DyGA Table 7, dyga-encdiff.md 1.1).

Default: f = 4 (64x64x3 -> 16x16x3), first conv 32 channels, multipliers [1, 2, 4], 2 residual blocks
per level, no attention at any level, codebook 2048 x 3. The taming encoder/decoder always have an
attention layer in the middle block; ``mid_attention`` keeps it (default) or drops it.

Losses: reconstruction (L1 by default) plus the VQ-VAE codebook and commitment terms
(van den Oord et al. 2017, Eq. 3): ||sg[z_e] - e||^2 + beta ||z_e - sg[e]||^2, straight-through
gradient. The LPIPS + patch-discriminator part of ``VQLPIPSWithDiscriminator`` is provided as
:class:`PatchDiscriminator` and :func:`hinge_d_loss`; LPIPS needs pretrained weights and is not included.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config, ConfigError
from .layers import AttentionBlock, Downsample, GroupNorm, ResBlock, Upsample, check_groups, check_levels
from .pretrained import PretrainedMixin, register_model

__all__ = ["VQAutoencoderConfig", "VQAutoencoder", "VectorQuantizer", "PatchDiscriminator", "hinge_d_loss"]


@dataclasses.dataclass
class VQAutoencoderConfig(Config):
    image_size: int = 64
    in_channels: int = 3
    ch: int = 32
    ch_mult: tuple[int, ...] = (1, 2, 4)
    num_res_blocks: int = 2
    z_channels: int = 3
    embed_dim: int = 3
    n_embed: int = 2048
    beta: float = 0.25  # commitment weight (van den Oord et al. 2017)
    codebook_weight: float = 1.0
    rec_loss: Literal["l1", "l2"] = "l1"
    mid_attention: bool = True
    dropout: float = 0.0
    num_groups: int = 32

    def validate(self) -> None:
        check_levels(self.image_size, self.ch_mult, field="ch_mult")
        check_groups([self.ch * m for m in self.ch_mult], self.num_groups)
        if self.n_embed < 2 or self.embed_dim < 1:
            raise ConfigError("n_embed", "need n_embed >= 2 and embed_dim >= 1")

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)


class VectorQuantizer(nn.Module):
    """Nearest-codebook quantisation with a straight-through estimator."""

    def __init__(self, n_embed: int, embed_dim: int, beta: float = 0.25):
        super().__init__()
        self.embedding = nn.Embedding(n_embed, embed_dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / n_embed, 1.0 / n_embed)
        self.beta = beta

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z [B, D, H, W] -> (z_q straight-through, codebook+commitment loss, indices [B, H, W])."""
        B, D, H, W = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, D)
        e = self.embedding.weight
        d = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ e.t() + e.pow(2).sum(1)[None]
        idx = d.argmin(dim=1)
        zq = e[idx].reshape(B, H, W, D).permute(0, 3, 1, 2)
        loss = F.mse_loss(zq, z.detach()) + self.beta * F.mse_loss(z, zq.detach())
        return z + (zq - z).detach(), loss, idx.reshape(B, H, W)


class _Coder(nn.Module):
    def __init__(self, cfg: VQAutoencoderConfig, decoder: bool):
        super().__init__()

        def res(a, b):
            return ResBlock(a, b, 0, dropout=cfg.dropout, num_groups=cfg.num_groups, zero_init=False)

        top = cfg.ch * cfg.ch_mult[-1]
        mid = [res(top, top)] + ([AttentionBlock(top, 1, cfg.num_groups)] if cfg.mid_attention else []) + [res(top, top)]
        layers: list[nn.Module] = []
        if not decoder:
            layers.append(nn.Conv2d(cfg.in_channels, cfg.ch, 3, padding=1))
            ch = cfg.ch
            for level, m in enumerate(cfg.ch_mult):
                for _ in range(cfg.num_res_blocks):
                    layers.append(res(ch, cfg.ch * m))
                    ch = cfg.ch * m
                if level != len(cfg.ch_mult) - 1:
                    layers.append(Downsample(ch))
            layers += mid + [GroupNorm(cfg.num_groups, ch), nn.SiLU(), nn.Conv2d(ch, cfg.z_channels, 3, padding=1)]
        else:
            layers += [nn.Conv2d(cfg.z_channels, top, 3, padding=1)] + mid
            ch = top
            for level, m in list(enumerate(cfg.ch_mult))[::-1]:
                for _ in range(cfg.num_res_blocks + 1):
                    layers.append(res(ch, cfg.ch * m))
                    ch = cfg.ch * m
                if level:
                    layers.append(Upsample(ch))
            layers += [GroupNorm(cfg.num_groups, ch), nn.SiLU(), nn.Conv2d(ch, cfg.in_channels, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


@register_model
class VQAutoencoder(PretrainedMixin, nn.Module):
    """``encode(x)`` -> continuous latent [B, embed_dim, H/f, W/f]; ``decode(z)`` quantises then decodes."""

    config_class = VQAutoencoderConfig

    def __init__(self, config: VQAutoencoderConfig):
        super().__init__()
        cfg = self._init_config(config)
        self.encoder = _Coder(cfg, decoder=False)
        self.decoder = _Coder(cfg, decoder=True)
        self.quant_conv = nn.Conv2d(cfg.z_channels, cfg.embed_dim, 1)
        self.post_quant_conv = nn.Conv2d(cfg.embed_dim, cfg.z_channels, 1)
        self.quantizer = VectorQuantizer(cfg.n_embed, cfg.embed_dim, cfg.beta)

    def _check(self, x):
        c = self.config
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != c.in_channels or x.shape[-1] % c.downsample_factor or x.shape[-2] % c.downsample_factor:
            raise ValueError(f"VQAutoencoder: expected [B, {c.in_channels}, H, W] with H, W divisible by "
                             f"{c.downsample_factor}, got {tuple(getattr(x, 'shape', ()))}")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        return self.quant_conv(self.encoder(x))

    def quantize(self, z: torch.Tensor):
        return self.quantizer(z)

    def decode(self, z: torch.Tensor, *, quantize: bool = True) -> torch.Tensor:
        if quantize:
            z = self.quantizer(z)[0]
        return self.decoder(self.post_quant_conv(z))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zq, qloss, _ = self.quantizer(self.encode(x))
        return self.decoder(self.post_quant_conv(zq)), qloss

    def loss(self, batch) -> dict:
        """rec + codebook_weight * (codebook + beta commitment); batch is x or (x, ...)."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        rec, qloss = self(x)
        rec_loss = (rec - x).abs().mean() if self.config.rec_loss == "l1" else F.mse_loss(rec, x)
        return {"loss": rec_loss + self.config.codebook_weight * qloss, "rec": rec_loss.detach(), "vq": qloss.detach()}


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator (Isola et al. 2017) as in the taming/LDM autoencoder loss (3 layers, 64 ch)."""

    def __init__(self, in_channels: int = 3, ch: int = 64, n_layers: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ch, 4, 2, 1), nn.LeakyReLU(0.2)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ch * prev, ch * mult, 4, stride, 1, bias=False), nn.BatchNorm2d(ch * mult), nn.LeakyReLU(0.2)]
        layers.append(nn.Conv2d(ch * mult, 1, 4, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss 0.5 (E relu(1 - D(x)) + E relu(1 + D(x^)))."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())
