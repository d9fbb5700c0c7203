"""Squared MMD per stratum, averaged over the strata: ParamReL's time-stratified MMD
(``mmd_time_strata``, docs/methods/paramrel.md "Mixed times"; Gretton et al., JMLR 2012, for MMD^2).

Paired samples x_i, y_i (the encoder's code and its prior draw) carry a stratum s_i in [0, G). For each
stratum g with n_g >= 2 members the MMD^2 of x and y restricted to g is that of
:func:`diffrep.ops.mmd.mmd2` on the rows of g (same kernel, bandwidth and estimator); the result is the
mean over those strata, and 0 (``x.sum() * 0``, which keeps x's graph and its NaN) when there is none.

Why not ``mmd2(x[s == g], y[s == g])`` per stratum: a boolean-mask index has a data-dependent shape, and
on CUDA each one reads the mask's count back to the host (a synchronisation per stratum and per training
step), as does the ``>= 2`` test. Here every stratum's kernel sums come from the full (N, N) Gram
matrices of the twin (:mod:`diffrep.ops.reference.mmd`) through one-hot stratum indicators O (N, G):
sum_{i, j in g} k_ij = (O^T K O)_gg. Every shape is fixed by N and G, so nothing is read back
(docs/architecture.md "Host synchronisation and the non-finite-loss check"). Its cost is O(N^2 d) time
and O(N^2) memory, a batch of codes (N a few hundred, d <= 64 in ParamReL).
"""

from __future__ import annotations

import torch

from .._checks import positive_int
from ..ops import _validate as V
from ..ops._full_precision import autocast_off
from ..ops.mmd import _resolve_scales
from ..ops.reference import mmd as ref

__all__ = ["stratified_mmd2"]

MIN_COUNT = 2  # a stratum enters the mean with at least two pairs (the unbiased estimator's minimum)


def _group_sums(k: torch.Tensor, onehot: torch.Tensor) -> torch.Tensor:
    """sum_{i, j in g} k_ij for every stratum g: diag(O^T K O) as ((K O) * O) summed over the rows."""
    return ((k @ onehot) * onehot).sum(0)


@autocast_off  # the Gram sums in the codes' precision: under bf16 autocast the products K O ran in bf16
def _stratified_mmd2(x, y, strata, num_strata, kernel="rbf", bandwidth=None, estimator="biased"):
    """:func:`stratified_mmd2` without a host read: x, y, strata and num_strata are not checked (ParamReL computes
    them itself, the strata from its drawn times); the kernel, bandwidth and estimator are (in Python)."""
    if estimator not in ref.ESTIMATORS:
        raise ValueError(f"estimator must be one of {ref.ESTIMATORS}, got {estimator!r}")
    scales, weights = _resolve_scales(kernel, bandwidth, None, None, x.shape[1])
    onehot = torch.nn.functional.one_hot(strata, num_strata).to(x.dtype)  # num_classes given: no host read
    n = onehot.sum(0)
    kxx = ref.kernel_from_sq_dist(ref.sq_dist(x, x), kernel, scales, weights)
    kyy = ref.kernel_from_sq_dist(ref.sq_dist(y, y), kernel, scales, weights)
    kxy = ref.kernel_from_sq_dist(ref.sq_dist(x, y), kernel, scales, weights)
    sxx, syy, sxy = _group_sums(kxx, onehot), _group_sums(kyy, onehot), _group_sums(kxy, onehot)
    valid = n >= MIN_COUNT
    # the strata left out divide by 2, not by 0: a 0/0 there would give NaN gradients through torch.where
    m = torch.where(valid, n, torch.full_like(n, MIN_COUNT))
    if estimator == "biased":
        within = (sxx + syy) / (m * m)
    else:  # the i = j terms out of the within-set sums (the twin's sum minus its diagonal)
        sxx = sxx - (kxx.diagonal()[:, None] * onehot).sum(0)
        syy = syy - (kyy.diagonal()[:, None] * onehot).sum(0)
        within = (sxx + syy) / (m * (m - 1))
    per = torch.where(valid, within - 2.0 * sxy / (m * m), torch.zeros_like(within))
    count = valid.sum()
    return torch.where(count > 0, per.sum() / count.clamp_min(1), x.sum() * 0)


def stratified_mmd2(x: torch.Tensor, y: torch.Tensor, strata: torch.Tensor, num_strata: int, kernel: str = "rbf",
                    bandwidth=None, estimator: str = "biased") -> torch.Tensor:
    """The mean over the strata g with at least two pairs of MMD^2(x[strata == g], y[strata == g]) (0 when no
    stratum has two), a 0-d tensor differentiable w.r.t. x and y (module docstring).

    ``x``, ``y``: paired samples (N, d), float32 or float64; ``strata``: (N,) integers in [0, num_strata);
    ``kernel``, ``bandwidth``, ``estimator``: as :func:`diffrep.ops.mmd.mmd2` (bandwidth None: h = d^2 for
    ``"rbf"``, C = 2 d for ``"imq"``). The checks read the device twice (the finiteness of x and y, the
    strata's range); the computation itself never does."""
    V.point_sets("x", x, "y", y, "samples")
    if x.shape != y.shape:
        raise ValueError(f"x and y must be paired samples of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.dtype not in (torch.float32, torch.float64) or y.dtype != x.dtype:
        raise TypeError(f"x and y must both be float32 or both float64, got {x.dtype} and {y.dtype}")
    num_strata = positive_int(num_strata, "num_strata")
    if not isinstance(strata, torch.Tensor) or strata.dtype not in (torch.int32, torch.int64):
        got = strata.dtype if isinstance(strata, torch.Tensor) else type(strata).__name__
        raise TypeError(f"strata must be an int32 or int64 tensor, got {got}")
    if tuple(strata.shape) != (x.shape[0],):
        raise ValueError(f"strata must have shape ({x.shape[0]},) (one stratum per pair), got {tuple(strata.shape)}")
    V.same_device(x=x, y=y, strata=strata)
    if not bool(torch.isfinite(x).all() & torch.isfinite(y).all()):
        raise ValueError("x or y contains NaN or infinite values")
    lo, hi = strata.aminmax()
    lo, hi = torch.stack([lo, hi]).tolist()
    if lo < 0 or hi >= num_strata:
        raise ValueError(f"strata must lie in [0, {num_strata - 1}], got range [{lo}, {hi}]")
    return _stratified_mmd2(x, y, strata.long(), num_strata, kernel, bandwidth, estimator)
