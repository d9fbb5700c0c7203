"""Pieces shared by the diffusion autoencoders (DiffAE, InfoDiffusion): the check of an encoder +
latent-conditioned U-Net pair in their configs, and the latent swap of their ``swap`` verbs."""

from __future__ import annotations

import torch

from ..config import ConfigError

__all__ = ["check_encoder_decoder", "swap_dims"]


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


def swap_dims(z: torch.Tensor, z_source: torch.Tensor, dims) -> torch.Tensor:
    """``z`` [B, d] with the dimensions ``dims`` taken from ``z_source`` [B, d] (a latent swap)."""
    if z_source.shape != z.shape:
        raise ValueError("x and source must have the same batch size")
    idx = torch.as_tensor(list(dims), dtype=torch.long, device=z.device)
    if idx.numel() == 0 or int(idx.min()) < 0 or int(idx.max()) >= z.shape[1]:
        raise ValueError(f"dims must be a non-empty list of indices in [0, {z.shape[1]})")
    out = z.clone()
    out[:, idx] = z_source[:, idx]
    return out
