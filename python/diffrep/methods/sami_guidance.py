"""The posterior maths behind SAMI's guidance (docs/methods/sami.md#eq-9-and-11-guidance-score): log q_phi(z | x_t) and its S -> infinity limit.

:func:`log_posterior` is the fused op :func:`diffrep.ops.guidance.log_posterior` (mean over Monte
Carlo draws of log N(z_s; mu, diag exp(logvar)) per example, Eq. 9/11, with double backward);
:func:`expected_log_posterior` is its Rao-Blackwellised limit. :func:`log_q` restricts the
Mahalanobis term (and optionally the log-determinant) to a set of latent axes (the rigid/sloppy
variant, A.4) and :func:`check_axes` validates such a set.
"""

from __future__ import annotations

import math

import torch

from ..ops.guidance import log_posterior

__all__ = ["log_posterior", "expected_log_posterior", "log_q", "check_axes"]


def expected_log_posterior(mu0: torch.Tensor, logvar0: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """E_{z ~ N(mu0, exp(logvar0))} log N(z; mu, exp(logvar)) per example [B]: the S -> infinity limit
    of the Monte Carlo guidance (Rao-Blackwellised, docs/methods/sami.md#monte-carlo-placement); its gradient w.r.t. (mu, sigma) is
    u = (mu0 - mu)/sigma^2, w = ((mu0 - mu)^2 + sigma0^2)/sigma^3 - 1/sigma."""
    var = logvar.exp()
    sq = (mu0 - mu) ** 2 + logvar0.exp()
    return -0.5 * (sq / var + logvar + math.log(2 * math.pi)).sum(-1)


def log_q(z: torch.Tensor | None, mu: torch.Tensor, logvar: torch.Tensor, axes: tuple[int, ...] = (),
          analytic: tuple[torch.Tensor, torch.Tensor] | None = None, logdet: str = "all") -> torch.Tensor:
    """log q(z | x_t) per example for posterior (mu, logvar) at x_t: with ``z`` [B, d] or [S, B, d]
    (:func:`log_posterior`) or ``analytic = (mu0, logvar0)`` (:func:`expected_log_posterior`).

    ``axes`` (rigid/sloppy, A.4): only those latent axes enter the Mahalanobis term. ``logdet``
    says where the log-determinant runs: ``"all"`` (every axis; the paper's form, A.4 restricts only
    the Mahalanobis distance) or ``"axes"`` (masked like the Mahalanobis term). With no ``axes`` the
    two agree."""
    if logdet not in ("all", "axes"):
        raise ValueError(f"logdet must be 'all' or 'axes', got {logdet!r}")
    rest = None
    if axes:
        idx = torch.tensor(axes, device=mu.device)
        if logdet == "all":
            keep = torch.ones(mu.shape[-1], dtype=torch.bool, device=mu.device)
            keep[idx] = False
            rest = logvar[..., keep]
        mu, logvar = mu.index_select(-1, idx), logvar.index_select(-1, idx)
        z = z.index_select(-1, idx) if z is not None else None
        if analytic is not None:
            analytic = (analytic[0].index_select(-1, idx), analytic[1].index_select(-1, idx))
    if analytic is not None:
        out = expected_log_posterior(analytic[0], analytic[1], mu, logvar)
    else:
        out = log_posterior(z, mu, logvar)
    if rest is not None and rest.shape[-1]:
        # the unmasked axes' -1/2 (log sigma_j^2 + log 2 pi): the Gaussian's log-det over every axis
        out = out - 0.5 * (rest + math.log(2 * math.pi)).sum(-1)
    return out


def check_axes(axes, d: int, name: str, exc=ValueError) -> tuple[int, ...]:
    """``axes`` as a tuple of distinct latent indices in [0, d); else ``exc`` (ValueError or ConfigError)."""
    axes = tuple(axes)
    if any((not isinstance(a, int)) or isinstance(a, bool) or not 0 <= a < d for a in axes) or len(set(axes)) != len(axes):
        msg = f"must be distinct latent indices in [0, {d}), got {axes}"
        raise exc(f"{name} {msg}") if exc is ValueError else exc(name, msg)
    return axes
