"""Tiled k-nearest-neighbour radii and ball counts for the precision/recall of Kynkaanniemi et al.
(2019, Sec. 3, Eq. 1-2) and the density/coverage of Naeem et al. (2020, Eq. 3-4); semantics of
the twin :mod:`diffrep.ops.reference.knn` and docs/kernels/knn.md.

Squared Euclidean distances of queries q (M, d) to points c (N, d) are computed in tiles from
differences (a duplicate point is at exactly 0) and reduced at once, so no M x N matrix exists:

* :func:`knn_scan`: the kk-th smallest squared distance of each query (ties counted with
  multiplicity) and/or how many balls {x : |x - c_j|^2 <= r2_j} hold it (``strict``: < r2_j);
* :func:`knn_radii`: the squared k-NN radius of each point of a set *including itself*
  (``np.partition(row, k)[k]`` of the official implementation: the point's own 0 is the 0-th);
* :func:`ball_count`: the number of balls holding each query.

CPU tensors run the OpenMP kernel, CUDA tensors the CUDA kernel, and otherwise (or forced) the
twin. Float16/bfloat16 inputs compute in float32; float64 stays float64. No autograd.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from .. import _native
from . import _validate as V
from ._dispatch import register, select
from ._native_call import NON_FINITE, raise_flags, run
from .reference import knn as ref

__all__ = ["knn_scan", "knn_radii", "ball_count", "MAX_K"]

#: the largest kk the kernels keep per row
MAX_K = 32


def _prep(q, c, kk=0, r2=None, strict=False, names=("q", "c")):
    """``names``: what the caller calls q and c (knn_radii's x, ball_count's centres), for the messages."""
    p = SimpleNamespace()
    qn, cn = names
    V.point_sets(qn, q, cn, c, "rows")
    if isinstance(kk, bool) or not isinstance(kk, int):
        raise TypeError(f"kk must be an int, got {type(kk).__name__}")
    if not 0 <= kk <= MAX_K:
        raise ValueError(f"kk must be in [0, {MAX_K}], got {kk}")
    if kk > c.shape[0]:
        raise ValueError(f"kk={kk} exceeds the number of points ({c.shape[0]})")
    if not isinstance(strict, bool):
        raise TypeError(f"strict must be a bool, got {type(strict).__name__}")
    if kk == 0 and r2 is None:
        raise ValueError("nothing to compute: give kk > 0 and/or r2")
    p.dtype = V.float_dtype(q=q, c=c)
    tensors = {qn: q, cn: c}
    if r2 is not None:
        V.tensor("r2", r2)
        if r2.shape != (c.shape[0],):
            raise ValueError(f"r2 must have shape ({c.shape[0]},) (one squared radius per point), got {tuple(r2.shape)}")
        tensors["r2"] = r2
    p.device = V.same_device(**tensors)
    p.q = q.detach().to(p.dtype).contiguous()
    p.c = c.detach().to(p.dtype).contiguous()
    p.r2 = None if r2 is None else r2.detach().to(p.dtype).contiguous()  # its finiteness: see _scan
    p.kk, p.strict, p.names = kk, strict, names
    p.choice = select("knn.knn_scan", p.device, native_reasons=_stale_build(p.device))
    return p


def _stale_build(device) -> list:
    """A native module built before this family existed has no ``knn_scan``: decline it (the twin
    runs) instead of failing."""
    mod = _native.cpu_module() if device.type == "cpu" else _native.cuda_module() if device.type == "cuda" else None
    if mod is not None and not hasattr(mod, "knn_scan"):
        return ["this build of the native module has no knn_scan (rebuild it: docs/build.md)"]
    return []


def knn_scan(q: torch.Tensor, c: torch.Tensor, *, kk: int = 0, r2: torch.Tensor | None = None,
             strict: bool = False):
    """``(kth, count)`` of queries ``q`` (M, d) against points ``c`` (N, d).

    ``kth`` (M,): the ``kk``-th smallest squared distance to the points (1-based; None when
    ``kk`` = 0). ``count`` (M,) int64: the number of points j with |q_i - c_j|^2 <= ``r2[j]``
    (< when ``strict``; None when ``r2`` is None). docs/kernels/knn.md."""
    return _scan(_prep(q, c, kk, r2, strict))


def _scan(p):
    kk, strict = p.kk, p.strict
    if p.choice.backend == "reference":
        if p.r2 is not None:
            V.finite("r2", p.r2)
        V.finite(p.names[0], p.q)
        V.finite(p.names[1], p.c)
        return ref.knn_scan(p.q, p.c, kk, p.r2, strict)
    m = p.q.shape[0]
    kth = torch.empty(m, dtype=p.dtype, device=p.device) if kk > 0 else None
    count = torch.empty(m, dtype=torch.int64, device=p.device) if p.r2 is not None else None
    flags = run(p.choice.backend, "knn_scan", p.device, d=p.q.shape[1], q=p.q, c=p.c, kk=kk, strict=strict, r2=p.r2,
                kth=kth, count=count)
    # One read of the flags word per call on CUDA, for the kernel's check of q, c and r2 together (before,
    # r2 was checked in Python first: two reads); the Python check of r2 runs for its message when the word
    # is set. An evaluation op whose results are read at once: no deferred_checks() path
    # (docs/kernels/knn.md#errors).
    if flags:
        if flags & NON_FINITE and p.r2 is not None:
            V.finite("r2", p.r2)
        which = p.names[0] if p.names[0] == p.names[1] else f"{p.names[0]} or {p.names[1]}"
        raise_flags("knn_scan", flags, {NON_FINITE: f"{which} contains NaN or infinite values"})
    return kth, count


def knn_radii(x: torch.Tensor, k: int = 3) -> torch.Tensor:
    """Squared distance of every row of ``x`` (N, d) to its k-th nearest neighbour in ``x``,
    counting the row itself as the 0-th (Kynkaanniemi et al. 2019, Eq. 1; needs N >= k + 1)."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    V.tensor("x", x)
    if x.dim() == 2 and x.shape[0] < k + 1:
        raise ValueError(f"x has {x.shape[0]} rows; k={k} nearest neighbours need at least k + 1 = {k + 1}")
    if k + 1 > MAX_K:
        raise ValueError(f"k must be <= {MAX_K - 1}, got {k}")
    return _scan(_prep(x, x, kk=k + 1, names=("x", "x")))[0]


def ball_count(q: torch.Tensor, centres: torch.Tensor, r2: torch.Tensor, *, strict: bool = False) -> torch.Tensor:
    """How many balls {x : |x - centres_j|^2 <= r2_j} (< when ``strict``) hold each row of ``q``."""
    if r2 is None:
        raise ValueError("r2 (one squared radius per centre) is required")
    return _scan(_prep(q, centres, r2=r2, strict=strict, names=("q", "centres")))[1]


register("knn.knn_scan")(lambda *a, **k: _prep(*a, **k).choice)
