"""The BFN accuracy schedules (Graves et al., "Bayesian Flow Networks", arXiv 2308.07037).

Continuous and discretised data (BFN §4-5): the flow's precision rho(t) = 1 + beta(t) = sigma1^(-2t),
gamma(t) = beta(t) / (1 + beta(t)) = 1 - sigma1^(2t) and the n-step accuracies
alpha_i = rho(i/n) - rho((i-1)/n). Discrete data (BFN §6): beta(t) = beta1 t^2 and
alpha_i = beta(i/n) - beta((i-1)/n). ``sigma1`` is sigma_1 (the reference's ``min_variance`` is
sigma1**2); ``beta1`` is beta(1) (the reference's ``max_sqrt_beta`` is sqrt(beta1)).

Continuous-time functions take ``t`` as a number or a tensor and return float64 tensors.
"""

from __future__ import annotations

import math
import numbers

import torch

from .._checks import positive_int
from ..ops import _validate as V

__all__ = ["gamma", "continuous_precision", "continuous_alpha", "discrete_beta", "discrete_alpha"]


def _log_s1sq(sigma1) -> float:
    """2 ln sigma1, with sigma1 checked to lie in (0, 1]."""
    return 2.0 * math.log(V.positive_scalar("sigma1", sigma1, upper=1.0))


def _step_index(i, n_steps) -> int:
    """Check the step count n (a positive int: 0 divided by zero) and a plain-number step i in 1..n (i = 0
    gave a negative discrete alpha); tensor i (the losses' t n + 1) is left to the caller's grid."""
    n = positive_int(n_steps, "n_steps")
    if not isinstance(i, torch.Tensor):
        if isinstance(i, bool) or not isinstance(i, (int, float)) or not 1 <= i <= n:
            raise ValueError(f"step i must be a number in [1, n_steps={n}], got {i!r}")
    return n


def as_times(t, name: str = "t", device=None) -> torch.Tensor:
    """``t`` (a number or a real tensor) as a float64 tensor; anything else is a TypeError naming it."""
    if isinstance(t, torch.Tensor):
        if t.is_complex():
            raise TypeError(f"{name} must be real, got {t.dtype}")
    elif isinstance(t, bool) or not isinstance(t, numbers.Real):
        raise TypeError(f"{name} must be a number or a real tensor, got {type(t).__name__}")
    return torch.as_tensor(t, dtype=torch.float64, device=device)


def gamma(t, sigma1: float):
    """gamma(t) = 1 - sigma1^(2t) (BFN Eq. 80, beta of Eq. 72), computed with expm1 (exact near t = 0)."""
    return -torch.expm1(as_times(t) * _log_s1sq(sigma1))


def continuous_precision(t, sigma1: float):
    """rho(t) = 1 + beta(t) = sigma1^(-2t) (BFN Eq. 71-72): the flow's precision at time t."""
    return torch.exp(-as_times(t) * _log_s1sq(sigma1))


def continuous_alpha(i, n_steps: int, sigma1: float):
    """alpha_i = sigma1^(-2i/n) (1 - sigma1^(2/n)) = rho(i/n) - rho((i-1)/n) (BFN Eq. 95)."""
    n_steps = _step_index(i, n_steps)
    s = V.positive_scalar("sigma1", sigma1, upper=1.0)
    return s ** (-2 * i / n_steps) * (1 - s ** (2 / n_steps))


def discrete_beta(t, beta1: float):
    """beta(t) = beta1 t^2 (BFN Eq. 182)."""
    return V.positive_scalar("beta1", beta1) * as_times(t) ** 2


def discrete_alpha(i, n_steps: int, beta1: float):
    """alpha_i = beta1 (2i - 1) / n^2 = beta(i/n) - beta((i-1)/n) (beta of BFN Eq. 182; used by L^n, Eq. 189-190)."""
    n_steps = _step_index(i, n_steps)
    return V.positive_scalar("beta1", beta1) * (2 * i - 1) / n_steps**2
