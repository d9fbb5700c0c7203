"""The total correlation of the aggregate posterior, estimated on a minibatch (beta-TCVAE, Chen et al.
2018, Sec. 3 and App. C; docs/methods/vae.md#beta-tcvae).

For a batch {x_j} of size M drawn from a dataset of size N, with Gaussian posteriors q(z|x_j) =
N(mu_j, diag exp(logvar_j)) and one sample z_i ~ q(z|x_i) per example,
TC = E_q(z)[log q(z) - sum_k log q(z_k)] is estimated from the M x M x d matrix
log q(z_ik | x_j):

- ``"mws"``, minibatch-weighted sampling (App. C.1):
  log q(z_i) ~= logsumexp_j log q(z_i|x_j) - log(N M), and per dimension the same with log q(z_ik|x_j);
- ``"mss"``, minibatch-stratified sampling (App. C.2): log q(z_i) ~= logsumexp_j [log w_ij + log q(z_i|x_j)]
  with w_ii = 1/N, w_i,i+1 = (N - M + 1) / (N (M - 1)) (the next example, cyclically) and
  1/(M - 1) elsewhere; each row of w sums to 1;
- ``"dlib"``, disentanglement_lib's ``total_correlation`` (methods/unsupervised/vae.py): the
  ``"mws"`` sums without the log(N M) constants, i.e. ``"mws"`` minus (d - 1) log(N M). Same gradient
  as ``"mws"``; needs no dataset size.

The result is the mean over the batch of log q(z_i) - sum_k log q(z_ik) (a scalar).
"""

from __future__ import annotations

import math

import torch

from ..._checks import device as check_device
from ..._checks import one_of, positive_int

__all__ = ["total_correlation", "gaussian_log_density", "mss_log_weights", "TC_ESTIMATORS"]

TC_ESTIMATORS = ("mws", "mss", "dlib")
_LOG_2PI = math.log(2 * math.pi)


def gaussian_log_density(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Elementwise log N(z; mu, exp(logvar)) (broadcasting)."""
    for name, t in (("z", z), ("mu", mu), ("logvar", logvar)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"gaussian_log_density: {name} must be a floating-point tensor, got "
                            f"{getattr(t, 'dtype', type(t).__name__)}")
    try:
        torch.broadcast_shapes(z.shape, mu.shape, logvar.shape)
    except RuntimeError:
        raise ValueError(f"gaussian_log_density: z {tuple(z.shape)}, mu {tuple(mu.shape)} and logvar "
                         f"{tuple(logvar.shape)} do not broadcast to one shape") from None
    return -0.5 * (_LOG_2PI + logvar + (z - mu).pow(2) * torch.exp(-logvar))


def mss_log_weights(batch_size: int, dataset_size: int, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """log w [M, M] of minibatch-stratified sampling (Chen et al. 2018, App. C.2), M = ``batch_size``."""
    m = positive_int(batch_size, "batch_size")
    n = positive_int(dataset_size, "dataset_size")
    if m < 2:
        raise ValueError(f"the 'mss' estimator needs a batch of at least 2, got {m}")
    if n < m:
        raise ValueError(f"dataset_size ({n}) must be at least the batch size ({m})")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):  # log weights in an int dtype are garbage
        raise TypeError(f"mss_log_weights: dtype must be a floating torch dtype, got {dtype!r}")
    if device is not None:
        device = check_device(device)
    w = torch.full((m, m), 1.0 / (m - 1), dtype=torch.float64)
    idx = torch.arange(m)
    w[idx, idx] = 1.0 / n
    w[idx, (idx + 1) % m] = (n - m + 1) / (n * (m - 1))
    return w.log().to(dtype=dtype, device=device)


def _check(z, mu, logvar):
    for name, t in (("z", z), ("mu", mu), ("logvar", logvar)):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            raise TypeError(f"total_correlation: {name} must be a floating-point tensor, got {type(t).__name__}")
        if t.dim() != 2:
            raise ValueError(f"total_correlation: {name} must be [batch, latent_dim], got shape {tuple(t.shape)}")
    if not (z.shape == mu.shape == logvar.shape):
        raise ValueError(f"total_correlation: z {tuple(z.shape)}, mu {tuple(mu.shape)} and logvar "
                         f"{tuple(logvar.shape)} must have one shape")


def total_correlation(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, *, estimator: str = "mws",
                      dataset_size: int | None = None) -> torch.Tensor:
    """Minibatch estimate of TC(q(z)) (module docstring): ``z``, ``mu``, ``logvar`` [M, d]; ``estimator``
    ``"mws"`` / ``"mss"`` (need ``dataset_size`` N >= M) or ``"dlib"`` (no ``dataset_size``)."""
    _check(z, mu, logvar)
    one_of(estimator, TC_ESTIMATORS, "estimator")
    m = z.shape[0]
    if estimator == "dlib":
        if dataset_size is not None:
            raise ValueError("the 'dlib' estimator takes no dataset_size (it drops the log(N M) constants)")
    else:
        if dataset_size is None:
            raise ValueError(f"the {estimator!r} estimator needs dataset_size, the number of training examples N")
        dataset_size = positive_int(dataset_size, "dataset_size")
        if dataset_size < m:
            raise ValueError(f"dataset_size ({dataset_size}) must be at least the batch size ({m})")
    log_qzx = gaussian_log_density(z[:, None, :], mu[None, :, :], logvar[None, :, :])  # [i, j, k]
    if estimator == "mss":
        log_w = mss_log_weights(m, dataset_size, dtype=z.dtype, device=z.device)
        log_qz = torch.logsumexp(log_w + log_qzx.sum(2), dim=1)
        log_prod = torch.logsumexp(log_w[:, :, None] + log_qzx, dim=1).sum(1)
    else:
        log_qz = torch.logsumexp(log_qzx.sum(2), dim=1)
        log_prod = torch.logsumexp(log_qzx, dim=1).sum(1)
        if estimator == "mws":
            log_nm = math.log(dataset_size * m)
            log_qz = log_qz - log_nm
            log_prod = log_prod - z.shape[1] * log_nm
    return (log_qz - log_prod).mean()
