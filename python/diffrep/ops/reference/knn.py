"""Pure-PyTorch twin of :mod:`diffrep.ops.knn`: the k-th nearest-neighbour squared distance and
ball counts of queries against a point set (docs/kernels/knn.md).

Squared distances are sums of squared differences, sum_k (q_k - c_k)^2, never
|q|^2 - 2 q.c + |c|^2 (no cancellation: a duplicate point is at exactly 0), computed in blocks of
queries and points so that memory stays bounded; the k-th smallest value keeps ties with
multiplicity (a running ``torch.topk`` over the blocks).
"""

from __future__ import annotations

import torch

from . import _args as A

#: elements of one (queries x points x d) difference block
BLOCK_ELEMENTS = 1 << 24


def knn_scan(q: torch.Tensor, c: torch.Tensor, kk: int = 0, r2: torch.Tensor | None = None, strict: bool = False):
    """(kth, count): kth[i] is the kk-th smallest |q_i - c_j|^2 over j (1-based, None when
    kk = 0); count[i] is the number of j with |q_i - c_j|^2 <= r2[j] (< when ``strict``; None
    when r2 is None)."""
    A.floats(q=q, c=c)
    A.rows("q", q, 2)
    A.rows("c", c, 2)
    if q.shape[1] != c.shape[1]:
        raise ValueError(f"q has d={q.shape[1]} but c has d={c.shape[1]}")
    kk = A.count("kk", kk, 0)
    if kk > c.shape[0]:
        raise ValueError(f"kk={kk} exceeds the number of points ({c.shape[0]})")
    if r2 is not None:
        A.floats(r2=r2)
        if tuple(r2.shape) != (c.shape[0],):
            raise ValueError(f"r2 must have shape ({c.shape[0]},) (one squared radius per point), got {tuple(r2.shape)}")
    if kk == 0 and r2 is None:
        raise ValueError("nothing to compute: give kk > 0 and/or r2")
    m, d = q.shape
    n = c.shape[0]
    bc = max(1, min(n, BLOCK_ELEMENTS // max(1, d * 64)))
    bq = max(1, min(m, BLOCK_ELEMENTS // max(1, d * bc)))
    kth = torch.empty(m, dtype=q.dtype, device=q.device) if kk > 0 else None
    count = torch.zeros(m, dtype=torch.int64, device=q.device) if r2 is not None else None
    for i0 in range(0, m, bq):
        qb = q[i0:i0 + bq]
        best = None
        for j0 in range(0, n, bc):
            cb = c[j0:j0 + bc]
            d2 = (qb[:, None, :] - cb[None, :, :]).pow(2).sum(-1)
            if kk > 0:
                pool = d2 if best is None else torch.cat([best, d2], 1)
                best = torch.topk(pool, min(kk, pool.shape[1]), dim=1, largest=False).values
            if r2 is not None:
                rb = r2[j0:j0 + bc][None, :]
                count[i0:i0 + bq] += (d2 < rb if strict else d2 <= rb).sum(1)
        if kk > 0:
            kth[i0:i0 + bq] = best[:, kk - 1]
    return kth, count
