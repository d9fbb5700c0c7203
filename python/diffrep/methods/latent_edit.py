"""Edits of a code shared by the diffusion autoencoders' swap verbs (DiffAE, InfoDiffusion)."""

from __future__ import annotations

import torch

__all__ = ["swap_dims"]


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
