"""Pure-PyTorch twin of :mod:`diffrep.ops.mmd`: squared maximum mean discrepancy between two
sample sets with explicit kernel matrices (docs/kernels/mmd.md).

The kernel is a function of r^2 = |x - y|^2:

* RBF: k = exp(-r^2 / h). The InfoVAE convention (ShengjiaZhao/MMD-Variational-Autoencoder
  ``compute_kernel``: exp(-mean_d (x - y)^2 / d)) is h = d^2.
* IMQ (inverse multiquadric): k = C / (C + r^2). WAE (tolstikhin/wae ``mmd_penalty``) sums it
  over C = C_base * {0.1, 0.2, 0.5, 1, 2, 5, 10} with C_base = 2 d sigma_p^2.

A multi-scale kernel is sum_s w_s k_s over the given scales (h for RBF, C for IMQ).

Estimators: ``biased`` (the V-statistic, diagonals included, as InfoVAE) and ``unbiased``
(within-set sums over i != j divided by N(N - 1) and M(M - 1), as WAE and torch-two-sample;
it may be negative and is never clamped). The cross term is the same for both.

Squared distances come from ``torch.cdist`` without the matrix-product shortcut (no
cancellation), so the twin is exact enough to define the semantics in float64.
"""

from __future__ import annotations

import torch

from . import _args as A

KERNELS = ("rbf", "imq")
ESTIMATORS = ("biased", "unbiased")


def sq_dist(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a_i - b_j|^2 as an (N, M) matrix, computed from differences (not |a|^2 - 2ab + |b|^2)."""
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist").pow(2)


def kernel_from_sq_dist(r2: torch.Tensor, kernel: str, scales, weights) -> torch.Tensor:
    """sum_s w_s k_s(r2) for the RBF (k = exp(-r2/h)) or IMQ (k = C/(C + r2)) kernel."""
    out = torch.zeros_like(r2)
    for s, w in zip(scales, weights):
        s, w = float(s), float(w)
        out = out + w * (torch.exp(-r2 / s) if kernel == "rbf" else s / (s + r2))
    return out


def _samples(x, y):
    """x (N, d) and y (M, d), float32 or float64 (torch.cdist has no float16 on the CPU)."""
    for name, v in (("x", x), ("y", y)):
        A.floats(**{name: v})
        if v.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"{name} must be float32 or float64, got {v.dtype}")
        A.rows(name, v, 2)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x has d={x.shape[1]} but y has d={y.shape[1]}")


def _listed(name, v):
    if isinstance(v, (str, bytes)) or not hasattr(v, "__len__") or len(v) == 0:
        raise ValueError(f"{name} must be a non-empty sequence of numbers, got {v!r}")
    return list(v)


def mmd2(x: torch.Tensor, y: torch.Tensor, kernel: str = "rbf", scales=(1.0,), weights=None,
         estimator: str = "biased") -> torch.Tensor:
    """MMD^2 between samples x (N, d) and y (M, d) with explicit N x N, M x M, N x M Gram matrices.

    ``scales``: the h (RBF) or C (IMQ) values, resolved by the caller (no defaults here);
    ``weights``: one per scale, default all ones.
    """
    _samples(x, y)
    A.one_of("kernel", kernel, KERNELS)
    A.one_of("estimator", estimator, ESTIMATORS)
    if estimator == "unbiased" and min(x.shape[0], y.shape[0]) < 2:
        raise ValueError("the unbiased estimator needs at least 2 samples in x and in y")
    scales = [A.positive("scales", s) for s in _listed("scales", scales)]
    if weights is not None and len(_listed("weights", weights)) != len(scales):
        raise ValueError(f"weights must have one entry per scale ({len(scales)}), got {len(weights)}")
    weights = [1.0] * len(scales) if weights is None else list(weights)
    n, m = x.shape[0], y.shape[0]
    kxx = kernel_from_sq_dist(sq_dist(x, x), kernel, scales, weights)
    kyy = kernel_from_sq_dist(sq_dist(y, y), kernel, scales, weights)
    kxy = kernel_from_sq_dist(sq_dist(x, y), kernel, scales, weights)
    if estimator == "biased":
        sxx, syy = kxx.sum() / (n * n), kyy.sum() / (m * m)
    else:
        sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
        syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return sxx + syy - 2.0 * kxy.sum() / (n * m)


def median_sq_dist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The median heuristic: the median pairwise squared distance of the pooled samples
    (distinct pairs; ``torch.median``'s lower median), detached. Use it as ``bandwidth``. WAE's
    RBF width differs (docs/kernels/mmd.md)."""
    _samples(x, y)
    with torch.no_grad():
        z = torch.cat([x, y]).detach()
        r2 = sq_dist(z, z)
        iu = torch.triu_indices(z.shape[0], z.shape[0], 1, device=z.device)
        return r2[iu[0], iu[1]].median()
