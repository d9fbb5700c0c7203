"""k-means initialisation of the HDDC fits: per-unit k-means++ (or random-point) seeding and
Lloyd steps, batched over U units with one generator per unit (DyGA Alg. 2 starts from k-means)."""

from __future__ import annotations

import torch

from .._checks import non_negative_int, one_of, positive_int
from ..ops import _validate as V
from ..ops._full_precision import autocast_off

__all__ = ["kmeans_labels", "nearest_centre"]


def _points(x, name: str = "x") -> None:
    """x (U, n, d): float32/float64, non-empty (the Lloyd sums scatter in x's dtype)."""
    V.tensor(name, x)
    if x.dtype not in V.FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {x.dtype}")
    if x.dim() != 3 or x.numel() == 0:
        raise ValueError(f"{name} must have shape (units, n, d) with sizes >= 1, got {tuple(x.shape)}")


@autocast_off  # |x|^2 - 2 x.c + |c|^2 by a matmul: bf16 under autocast flipped labels
def kmeans_labels(x, w, K, seeds, *, init="kmeans++", iters=10):
    """Per-unit labels (U, n) from k-means++ (or random points) seeding + ``iters`` Lloyd steps,
    each unit with its own generator seeded by ``seeds[u]`` (so a unit's result does not depend
    on the batch). Points with w = 0 are never chosen as seeds."""
    _points(x)
    V.finite("x", x)  # a NaN point wins no argmin: every label would silently be 0
    V.tensor("w", w)
    V.same_device(x=x, w=w)
    if tuple(w.shape) != tuple(x.shape[:2]):
        raise ValueError(f"w must have shape {tuple(x.shape[:2])} (one weight per point), got {tuple(w.shape)}")
    V.finite("w", w)
    if not bool(((w >= 0) & (w.sum(1, keepdim=True) > 0)).all()):
        raise ValueError("w must be >= 0 with a positive total per unit")
    K = positive_int(K, "K")
    if K > x.shape[1]:
        raise ValueError(f"K={K} exceeds the {x.shape[1]} points per unit")
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__len__") or len(seeds) != x.shape[0]:
        raise ValueError(f"seeds must give one int per unit ({x.shape[0]}), got {seeds!r}")
    seeds = [non_negative_int(int(s) if isinstance(s, torch.Tensor) else s, "seeds") for s in seeds]
    one_of(init, ("kmeans++", "random"), "init")
    iters = non_negative_int(iters, "iters")
    U, n, d = x.shape
    cents = torch.empty(U, K, d, dtype=x.dtype, device=x.device)
    for u in range(U):
        g = torch.Generator(device="cpu").manual_seed(int(seeds[u]))
        xu, wu = x[u], w[u].double().cpu()
        if init == "random":
            idx = torch.multinomial(wu / wu.sum(), K, replacement=int((wu > 0).sum()) < K, generator=g)
            cents[u] = xu[idx.to(x.device)]
            continue
        first = torch.multinomial(wu / wu.sum(), 1, generator=g)
        cents[u, 0] = xu[first.to(x.device)]
        xx = (xu * xu).sum(-1)

        def dist2(c):  # |x - c|^2 by a mat-vec; clamped, it only weights the next draw
            return (xx - 2 * (xu @ c) + c @ c).clamp_min(0)

        d2 = dist2(cents[u, 0])
        for k in range(1, K):
            prob = d2.double().cpu() * wu
            total = prob.sum()
            idx = torch.multinomial(prob / total, 1, generator=g) if total > 0 else first
            cents[u, k] = xu[idx.to(x.device)]
            d2 = torch.minimum(d2, dist2(cents[u, k]))
    w = w.to(x.dtype)  # the Lloyd sums scatter in x's dtype
    xw = x * w[..., None]
    for _ in range(iters):
        lab = nearest_centre(x, cents)
        cnt = torch.zeros(U, K, dtype=x.dtype, device=x.device).scatter_add_(1, lab, w)
        new = torch.zeros_like(cents).scatter_add_(1, lab[..., None].expand(-1, -1, d), xw)
        # the weighted mean sum w x / sum w; weights are in [0, 1], so a cluster's total can be below 1
        # (clamping it at 1 shrank such centres towards the origin); an empty cluster keeps its centre
        cents = torch.where(cnt[..., None] > 0, new / cnt.clamp_min(torch.finfo(x.dtype).tiny)[..., None], cents)
    return nearest_centre(x, cents)


@autocast_off
def nearest_centre(x, cents):
    """argmin_k |x - c_k|^2 as argmin_k (|c_k|^2 - 2 x.c_k), one batched GEMM: |x|^2 is the same for
    every k, and dropping it avoids cancelling it against the cross term."""
    _points(x)
    _points(cents, "cents")
    if cents.shape[0] != x.shape[0] or cents.shape[2] != x.shape[2] or cents.dtype != x.dtype:
        raise ValueError(f"cents must have shape ({x.shape[0]}, K, {x.shape[2]}) and x's dtype {x.dtype}, got "
                         f"{tuple(cents.shape)} {cents.dtype}")
    score = torch.baddbmm((cents * cents).sum(-1)[:, None], x, cents.transpose(1, 2), alpha=-2)  # (U, n, K)
    return score.argmin(-1)
