"""Public metric kernels (docs/kernels/metrics.md): validation, dispatch, kernels.

Each op validates shapes, dtypes and finiteness (raising ``ValueError``/``TypeError`` naming the
argument), asks the dispatcher for a backend and runs the native kernel of ``csrc/metrics`` (OpenMP
on CPU tensors, CUDA on CUDA tensors) or the pure-PyTorch twin of
:mod:`diffrep.ops.reference.metrics`, which defines the semantics; ``diffrep.ops.explain(op, ...)``
says which, and why. Inputs may be NumPy arrays or torch tensors on any device; results are torch
tensors on the input device. None of these ops has autograd.

The sorts are torch's (``torch.sort(stable=True)``, shared with the twin); the kernels do the
tie runs and rank-sum products, the histogram scatter and MI tables, the kNN windows and ball
counts, and the FactorVAE variance/argmin votes. ``auroc_grid`` (the DisDiff/NashAE threshold
sweep) has no native kernel and always runs the twin.
"""

from __future__ import annotations

import numpy as np
import torch

from .._checks import finite_float, non_negative_float, positive_int
from ._dispatch import register, select
from ._native_call import CLASS_OUT_OF_RANGE, raise_flags, run
from .reference import metrics as _ref

# op -> reasons its native kernel never runs (the op has none)
_NO_NATIVE = {"metrics.auroc_grid": ["no native kernel: the DisDiff/NashAE threshold sweep runs as the twin"]}
OPS = ("metrics.auroc_matrix", "metrics.auroc_grid", "metrics.hist_discretize", "metrics.mi_matrix",
       "metrics.knn_mi_cd", "metrics.factor_vae_votes")


def _tensor(x, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            raise TypeError(f"{name}: object arrays are not supported")
        if x.dtype.kind not in "biufc":  # strings, bytes, datetimes: torch.from_numpy's message names no argument
            raise TypeError(f"{name}: expected a numeric array, got dtype {x.dtype}")
        return torch.from_numpy(np.ascontiguousarray(x))
    raise TypeError(f"{name}: expected a numpy array or torch tensor, got {type(x).__name__}")


def _float(x, name: str, ndim: int) -> torch.Tensor:
    t = _tensor(x, name)
    if t.dim() != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {tuple(t.shape)}")
    if t.dtype == torch.bool or not (t.is_floating_point() or t.dtype in
                                     (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)):
        raise TypeError(f"{name}: expected a real numeric dtype, got {t.dtype}")
    if not t.is_floating_point():
        t = t.to(torch.float64)
    elif t.dtype in (torch.float16, torch.bfloat16):
        t = t.to(torch.float32)
    if t.numel() == 0:
        raise ValueError(f"{name}: empty input, shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name}: contains NaN or inf")
    return t.contiguous()


def _int(x, name: str, ndim: int) -> torch.Tensor:
    t = _tensor(x, name)
    if t.dim() != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"{name}: empty input, shape {tuple(t.shape)}")
    if t.is_floating_point():
        if not bool(torch.isfinite(t).all()) or not bool((t == torch.round(t)).all()):
            raise TypeError(f"{name}: expected integer class labels, got non-integer values ({t.dtype})")
        t = t.to(torch.int64)
    elif t.is_complex():
        raise TypeError(f"{name}: expected integer class labels, got {t.dtype}")
    return t.to(torch.int64).contiguous()


def _bool(x, name: str, ndim: int) -> torch.Tensor:
    t = _tensor(x, name)
    if t.dim() != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {tuple(t.shape)}")
    if t.is_complex():
        raise TypeError(f"{name}: binary labels must be real (0/1 or bool), got {t.dtype}")
    if t.numel() == 0:
        raise ValueError(f"{name}: empty input, shape {tuple(t.shape)}")
    if t.dtype != torch.bool:
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name}: contains NaN or inf")
        if not bool(((t == 0) | (t == 1)).all()):
            raise ValueError(f"{name}: binary labels must be 0/1 or bool")
        t = t != 0
    return t.contiguous()


def _same_n(a: torch.Tensor, b: torch.Tensor, na: str, nb: str, axis_a: int = -1, axis_b: int = -1):
    if a.shape[axis_a] != b.shape[axis_b]:
        raise ValueError(f"{na} and {nb} disagree on the number of samples: {a.shape[axis_a]} vs {b.shape[axis_b]}")
    if a.device != b.device:
        raise ValueError(f"{na} is on {a.device} but {nb} is on {b.device}")


def _choose(op: str, device: torch.device, reasons=()):
    return select(op, device, native_reasons=list(_NO_NATIVE.get(op, [])) + list(reasons))


def _native(choice, kernel: str, device: torch.device, **kwargs) -> None:
    """Run ``kernel`` on the chosen native backend; an out-of-range index flag raises ValueError."""
    flags = run(choice.backend, kernel, device, **kwargs)
    raise_flags(f"metrics.{kernel}", flags, {CLASS_OUT_OF_RANGE: "an index or label is out of range"})


for _op in OPS:
    register(_op)(lambda *a, _op=_op, **k: _choose(_op, _first_device(a)))


def _first_device(args) -> torch.device:
    for a in args:
        if isinstance(a, torch.Tensor):
            return a.device
    return torch.device("cpu")


# ----------------------------------------------------------------------------------------- ops
def auroc_matrix(scores, labels, on_degenerate: str = "nan"):
    """Tie-aware AUROC of every score row (U, n) against every binary label row (A, n).

    Returns ``(auc (A, U) float64, degenerate (A,) bool)``; equal to sklearn ``roc_auc_score``
    (ties count 1/2) to ~1e-16. ``on_degenerate`` for single-class label rows: ``"nan"``
    (sklearn >= 1.x warns and returns NaN), ``"raise"`` (old sklearn), ``"half"`` (FBGEMM's 0.5).
    """
    if on_degenerate not in ("nan", "raise", "half"):
        raise ValueError(f"on_degenerate must be 'nan', 'raise' or 'half', got {on_degenerate!r}")
    s = _float(scores, "scores", 2)
    y = _bool(labels, "labels", 2)
    _same_n(s, y, "scores", "labels")
    choice = _choose("metrics.auroc_matrix", s.device,
                     ["n >= 2^30 exceeds the kernel's int32 ranks"] if s.shape[1] >= 2**30 else [])
    if choice.backend == "reference":
        auc, deg = _ref.auroc_matrix(s, y)
    else:
        (u, n), a = s.shape, y.shape[0]
        npos = y.sum(dim=1)
        # CUDA takes torch's (segmented radix) argsort; the CPU kernel sorts each row itself
        order = torch.sort(s, dim=1).indices if choice.backend == "cuda" else None
        r2 = torch.empty((u, n), dtype=torch.int32, device=s.device)
        auc = torch.empty((a, u), dtype=torch.float64, device=s.device)
        labels_t = y.T.to(torch.uint8).contiguous()  # (n, A): the kernel adds across attributes
        _native(choice, "auroc_matrix", s.device, scores=s, order=order, labels=labels_t, npos=npos, U=u, A=a, n=n,
                r2=r2, auc=auc)
        deg = (npos == 0) | (npos == n)
    # only "raise" reads deg on the host (a synchronisation on CUDA); "half" replaces the rows where deg holds
    if on_degenerate == "raise" and bool(deg.any()):
        rows = torch.nonzero(deg).flatten().tolist()
        raise ValueError(f"labels: rows {rows} hold a single class; AUROC is undefined")
    if on_degenerate == "half":
        auc = torch.where(deg.unsqueeze(1), torch.full_like(auc, 0.5), auc)
    return auc, deg


def auroc_grid(scores, labels, stepsize: float = 0.1, min_range: float = 0.2):
    """DisDiff (stepsize 0.1, 11 thresholds) / NashAE (0.01, 101) threshold-sweep AUROC, (A, U).

    See :func:`diffrep.ops.reference.metrics.auroc_grid`. Scores keep their dtype for the
    thresholds (float32 reproduces the references); single-class label rows give NaN.
    """
    if not (0 < finite_float(stepsize, "stepsize") <= 1):
        raise ValueError(f"stepsize must be in (0, 1], got {stepsize}")
    # a score range <= min_range keeps 0.5; negative (or NaN) would evaluate every row
    min_range = non_negative_float(min_range, "min_range")
    s = _float(scores, "scores", 2)
    y = _bool(labels, "labels", 2)
    _same_n(s, y, "scores", "labels")
    _choose("metrics.auroc_grid", s.device)
    out = _ref.auroc_grid(s, y, stepsize=stepsize, min_range=min_range)
    npos = y.sum(dim=1)
    deg = (npos == 0) | (npos == y.shape[1])
    return torch.where(deg.unsqueeze(1), torch.full_like(out, float("nan")), out)


def hist_discretize(codes, num_bins: int = 20):
    """disentanglement_lib ``_histogram_discretize`` of each column of ``codes`` (n, J): labels 1..B."""
    positive_int(num_bins, "num_bins")
    x = _float(codes, "codes", 2)
    choice = _choose("metrics.hist_discretize", x.device)
    if choice.backend == "reference":
        return _ref.hist_discretize(x, int(num_bins))
    n, j = x.shape
    lohi = torch.empty(2 * j, dtype=x.dtype, device=x.device)
    out = torch.empty((n, j), dtype=torch.int64, device=x.device)
    _native(choice, "hist_discretize", x.device, codes=x, n=n, J=j, B=int(num_bins), lohi=lohi, labels=out)
    return out


def mi_matrix(labels, factors):
    """Plug-in MI (nats) of each discrete column of ``labels`` (n, J) with each of ``factors``
    (n, F), plus the factor entropies: ``(mi (J, F), h (F,))`` (sklearn ``mutual_info_score``)."""
    lab = _int(labels, "labels", 2)
    fac = _int(factors, "factors", 2)
    _same_n(lab, fac, "labels", "factors", 0, 0)
    choice = _choose("metrics.mi_matrix", lab.device)
    if choice.backend == "reference":
        return _ref.mi_matrix(lab, fac)
    (n, j), f = lab.shape, fac.shape[1]
    lab, bsz = _ref._remap(lab)
    fac, vsz = _ref._remap(fac)
    b, v = max(bsz), max(vsz)
    scratch = torch.zeros(j * f * b * v + j * b + f * v, dtype=torch.int64, device=lab.device)
    mi = torch.empty((j, f), dtype=torch.float64, device=lab.device)
    h = torch.empty(f, dtype=torch.float64, device=lab.device)
    _native(choice, "mi_matrix", lab.device, labels=lab, factors=fac, n=n, J=j, F=f, B=b, V=v, scratch=scratch,
            mi=mi, h=h)
    return mi, h


def knn_mi_cd(latents, factors, k: int = 10):
    """Ross kNN MI of each row of ``latents`` (J, n) with each row of ``factors`` (F, n): (J, F).

    Equal to sklearn ``_compute_mi_cd`` on the same values (no scaling, no noise: callers that
    reproduce ``mutual_info_classif`` add its preprocessing, see :func:`diffrep.metrics.infomec`).
    """
    positive_int(k, "k")
    x = _float(latents, "latents", 2).to(torch.float64)
    f = _int(factors, "factors", 2)
    _same_n(x, f, "latents", "factors")
    choice = _choose("metrics.knn_mi_cd", x.device)
    if choice.backend == "reference":
        return _ref.knn_mi_cd(x, f, int(k))
    (j, n), nf = x.shape, f.shape[0]
    fac, vsz = _ref._remap(f.T.contiguous())
    v = max(vsz)
    sx, vorder = torch.sort(x, dim=1, stable=True)
    dscratch = torch.empty(4 * j * n, dtype=torch.float64, device=x.device)
    iscratch = torch.empty(2 * nf * v + j * (n + 1) + j * v, dtype=torch.int64, device=x.device)
    mi = torch.empty((j, nf), dtype=torch.float64, device=x.device)
    _native(choice, "knn_mi_cd", x.device, sx=sx.contiguous(), vorder=vorder.contiguous(),
            labels=fac.T.contiguous(), J=j, F=nf, n=n, V=v, k=int(k), dscratch=dscratch, iscratch=iscratch, mi=mi)
    return mi


def factor_vae_votes(batches, factor_index, global_var, active, num_factors: int,
                     compressed_index: bool = True):
    """FactorVAE vote matrix (num_factors, d) and per-batch argmins from T vote batches (T, B, d)."""
    num_factors = positive_int(num_factors, "num_factors")
    b = _float(batches, "batches", 3)
    if b.shape[1] < 2:
        raise ValueError(f"batches: need at least 2 samples per batch for ddof=1 variances, got {b.shape[1]}")
    fi = _int(factor_index, "factor_index", 1)
    _same_n(b, fi, "batches", "factor_index", 0, 0)
    g = _float(global_var, "global_var", 1).to(torch.float64)
    act = _bool(active, "active", 1)
    if g.shape != (b.shape[2],) or act.shape != (b.shape[2],):
        raise ValueError(f"global_var and active must have shape ({b.shape[2]},)")
    # one host read for the three values (three synchronisations on CUDA before)
    any_active, lo, hi = torch.stack([act.any().to(fi.device, torch.int64), fi.min(), fi.max()]).tolist()
    if not any_active:
        raise ValueError("active: no active code")
    if lo < 0 or hi >= num_factors:
        raise ValueError(f"factor_index: values must lie in [0, {num_factors})")
    choice = _choose("metrics.factor_vae_votes", b.device)
    g, act = g.to(b.device), act.to(b.device)
    if choice.backend == "reference":
        return _ref.factor_vae_votes(b, fi, g, act, int(num_factors), compressed_index)
    t, bs, d = b.shape
    votes = torch.zeros((int(num_factors), d), dtype=torch.int64, device=b.device)
    arg = torch.empty(t, dtype=torch.int64, device=b.device)
    active_idx = torch.nonzero(act).flatten().contiguous()
    _native(choice, "factor_vae_votes", b.device, batches=b, factor_index=fi, global_var=g.contiguous(),
            active=active_idx, nt=t, B=bs, d=d, F=int(num_factors), compressed=bool(compressed_index), votes=votes,
            arg=arg)
    return votes, arg
