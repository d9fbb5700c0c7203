"""Pure-PyTorch twin of :mod:`diffrep.ops.guidance`: the log-density of the encoder's diagonal
Gaussian posterior q(z | x_t) = N(mu_t, diag(exp(logvar_t))) at samples z, averaged over the
samples (SAMI, Lyo et al., Eq. 9 and 11; docs/methods/sami.md#eq-9-and-11-guidance-score).

log q(z | x_t) = -1/2 sum_j [(z_j - mu_j)^2 / sigma_j^2 + log sigma_j^2 + log 2 pi]: the
Mahalanobis term plus the Gaussian log-determinant sum_j log sigma_j^2 (Algorithms 1-2 print
"log|sigma_t I|", an erratum, docs/methods/sami.md#eq-9-and-11-guidance-score). Autograd gives every derivative order.
"""

from __future__ import annotations

import math

import torch

from . import _args as A

LOG_2PI = math.log(2 * math.pi)


def log_posterior(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, constant: bool = True) -> torch.Tensor:
    """mean_s log N(z_s; mu, diag(exp(logvar))) per row: z (S, B, D), mu and logvar (B, D) -> (B,)."""
    A.floats(z=z, mu=mu, logvar=logvar)
    A.rows("mu", mu, 2)
    A.same_shape("logvar", logvar, "mu", mu)
    if z.dim() != 3 or tuple(z.shape[1:]) != tuple(mu.shape) or z.shape[0] == 0:
        raise ValueError(f"z must have shape (S, {mu.shape[0]}, {mu.shape[1]}) with S >= 1, got {tuple(z.shape)}")
    c = LOG_2PI if constant else 0.0
    ell = -0.5 * ((z - mu) ** 2 * torch.exp(-logvar) + logvar + c)
    return ell.sum(-1).mean(0)
