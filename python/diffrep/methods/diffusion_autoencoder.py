"""Pieces shared by the diffusion autoencoders (DiffAE, InfoDiffusion, DisDiff): the check of an encoder +
latent-conditioned U-Net pair in their configs, the checks of the codes and noise their verbs take, and the
latent swap of their ``swap`` verbs."""

from __future__ import annotations

import torch

from .._checks import indices
from ..config import ConfigError
from ..nn.images import check_images

__all__ = ["check_encoder_decoder", "check_code", "check_latent", "check_noise", "swap_dims"]


def check_encoder_decoder(encoder, unet, latent_dim: int, latent_cond: str, maker: str) -> None:
    """ConfigError unless ``unet`` is an epsilon-predicting decoder conditioned on a ``latent_dim`` code
    by ``latent_cond`` after the time scale-shift, reading the images ``encoder`` reads."""
    u = unet
    if u.latent_dim != latent_dim or u.latent_cond != latent_cond or u.context_dim or not u.use_scale_shift_norm:
        raise ConfigError("unet.latent_dim", f"the decoder needs unet.latent_dim={latent_dim}, latent_cond='{latent_cond}', "
                          f"use_scale_shift_norm=True, context_dim=0 (use {maker}())")
    if u.in_channels != u.out_channels or u.num_outputs != 1:
        raise ConfigError("unet.out_channels", "epsilon prediction needs out_channels == in_channels and one output")
    if (encoder.image_size, encoder.in_channels) != (u.image_size, u.in_channels):
        raise ConfigError("encoder.image_size", "the encoder and the U-Net must read the same image size and channels")


def check_code(z: torch.Tensor, name: str) -> torch.Tensor:
    """``z``, a code tensor whose shape the caller has checked, when it is floating point, holds at least one
    code and is finite (a NaN code decodes to NaN images)."""
    if not z.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {z.dtype}")
    if z.shape[0] < 1:
        raise ValueError(f"{name} is empty (shape {tuple(z.shape)})")
    if not bool(torch.isfinite(z).all()):
        raise ValueError(f"{name} holds NaN or infinite values")
    return z


def check_latent(z, latent_dim: int, name: str, batch: int | None = None) -> torch.Tensor:
    """``z``, a [B, latent_dim] code (B = ``batch`` when given) that :func:`check_code` accepts: the code
    DiffAE and InfoDiffusion condition their decoder on."""
    if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != latent_dim or (batch is not None and z.shape[0] != batch):
        raise ValueError(f"{name} must be a [{batch or 'B'}, {latent_dim}] tensor, got {getattr(z, 'shape', type(z))}")
    return check_code(z, name)


def check_noise(x_T, shape: tuple, dtype: torch.dtype, who: str, name: str = "x_T") -> torch.Tensor:
    """The starting noise ``x_T`` of a DDIM chain: a finite floating tensor of ``shape``, cast to ``dtype``."""
    x_T = check_images(x_T, name=name, who=who, dtype=dtype)
    if tuple(x_T.shape) != tuple(shape):
        raise ValueError(f"{who}: {name} must have shape {tuple(shape)}, got {tuple(x_T.shape)}")
    return x_T


def swap_dims(z: torch.Tensor, z_source: torch.Tensor, dims) -> torch.Tensor:
    """``z`` [B, d] with the dimensions ``dims`` taken from ``z_source`` [B, d] (a latent swap)."""
    if z_source.shape != z.shape:
        raise ValueError("x and source must have the same batch size")
    idx = torch.as_tensor(indices(dims, z.shape[1], "dims"), dtype=torch.long, device=z.device)
    out = z.clone()
    out[:, idx] = z_source[:, idx]
    return out
