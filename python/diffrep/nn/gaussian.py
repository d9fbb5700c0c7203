"""Closed forms for diagonal Gaussians shared by the latent-variable methods."""

from __future__ import annotations

from typing import Literal

import torch

__all__ = ["gaussian_kl"]


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor, *,
                reduction: Literal["none", "sum", "mean"] = "none") -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)) = (mu^2 + sigma^2 - log sigma^2 - 1) / 2 per dimension.

    ``reduction``: ``"none"`` keeps the shape of ``mu`` (one term per latent dimension); ``"sum"``
    sums over the last (latent) dimension, the KL of each example [...]; ``"mean"`` averages every
    term to a scalar.
    """
    for name, v in (("mu", mu), ("logvar", logvar)):
        if not isinstance(v, torch.Tensor) or not v.is_floating_point():
            raise TypeError(f"gaussian_kl: {name} must be a floating-point tensor, got "
                            f"{getattr(v, 'dtype', type(v).__name__)}")
    if reduction not in ("none", "sum", "mean"):
        raise ValueError(f"reduction must be 'none', 'sum' or 'mean', got {reduction!r}")
    if mu.shape != logvar.shape:
        raise ValueError(f"gaussian_kl: mu {tuple(mu.shape)} and logvar {tuple(logvar.shape)} differ in shape")
    kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0)
    if reduction == "none":
        return kl
    if reduction == "sum":
        return kl.sum(-1)
    if reduction == "mean":
        return kl.mean()
    raise ValueError(f"reduction must be 'none', 'sum' or 'mean', got {reduction!r}")
