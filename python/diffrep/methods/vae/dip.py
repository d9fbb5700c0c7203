"""The DIP-VAE regulariser (Kumar, Sattigeri & Balakrishnan 2018, Eqs. 5-7; docs/methods/vae.md#dip-vae).

Cov_q(z) of the aggregate posterior is matched to the identity of the prior:

- DIP-VAE-I penalises Cov_p(x)[mu(x)], the covariance of the posterior means over the batch;
- DIP-VAE-II penalises Cov_q(z) = E_p(x)[diag exp(logvar(x))] + Cov_p(x)[mu(x)];

penalty = lambda_od sum_{i != j} C_ij^2 + lambda_d sum_i (C_ii - 1)^2. The covariance of the means is
the biased (divide by M) batch estimate E[mu mu^T] - E[mu] E[mu]^T, as disentanglement_lib's
``compute_covariance_z_mean``. The paper's defaults for lambda_d: 10 lambda_od for DIP-VAE-I and
lambda_od for DIP-VAE-II (Sec. 5; disentanglement_lib's ``lambda_d_factor`` 10 and 1).
"""

from __future__ import annotations

import torch

from ..._checks import finite_float, one_of

__all__ = ["dip_regulariser", "dip_covariance", "DIP_KINDS", "default_lambda_d"]

DIP_KINDS = ("i", "ii")


def default_lambda_d(kind: str, lambda_od: float) -> float:
    """The paper's lambda_d for ``kind``: 10 lambda_od (DIP-VAE-I) or lambda_od (DIP-VAE-II)."""
    one_of(kind, DIP_KINDS, "kind")
    lambda_od = finite_float(lambda_od, "lambda_od")
    if lambda_od < 0:
        raise ValueError(f"lambda_od must be >= 0, got {lambda_od!r}")
    return (10.0 if kind == "i" else 1.0) * lambda_od


def dip_covariance(mu: torch.Tensor, logvar: torch.Tensor, *, kind: str = "i") -> torch.Tensor:
    """The covariance matrix [d, d] the DIP penalty reads (module docstring)."""
    one_of(kind, DIP_KINDS, "kind")
    for name, t in (("mu", mu), ("logvar", logvar)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"dip_regulariser: {name} must be a floating-point tensor, got {type(t).__name__}")
        if t.dim() != 2:
            raise ValueError(f"dip_regulariser: {name} must be [batch, latent_dim], got shape {tuple(t.shape)}")
    if mu.shape != logvar.shape:
        raise ValueError(f"dip_regulariser: mu {tuple(mu.shape)} and logvar {tuple(logvar.shape)} differ in shape")
    mean = mu.mean(0)
    cov = (mu.T @ mu) / mu.shape[0] - torch.outer(mean, mean)
    if kind == "ii":
        cov = cov + torch.diag(logvar.exp().mean(0))
    return cov


def dip_regulariser(mu: torch.Tensor, logvar: torch.Tensor, *, kind: str = "i", lambda_od: float = 10.0,
                    lambda_d: float | None = None) -> torch.Tensor:
    """lambda_od sum_{i!=j} C_ij^2 + lambda_d sum_i (C_ii - 1)^2 (Kumar et al. 2018, Eqs. 6-7), a scalar.
    ``lambda_d=None``: the paper's default for ``kind`` (:func:`default_lambda_d`)."""
    one_of(kind, DIP_KINDS, "kind")
    lambda_od = finite_float(lambda_od, "lambda_od")
    if lambda_od < 0:
        raise ValueError(f"lambda_od must be >= 0, got {lambda_od!r}")
    if lambda_d is None:
        lambda_d = default_lambda_d(kind, lambda_od)
    lambda_d = finite_float(lambda_d, "lambda_d")
    if lambda_d < 0:
        raise ValueError(f"lambda_d must be >= 0, got {lambda_d!r}")
    cov = dip_covariance(mu, logvar, kind=kind)
    diag = torch.diagonal(cov)
    off = cov - torch.diag(diag)
    return lambda_od * off.pow(2).sum() + lambda_d * (diag - 1).pow(2).sum()
