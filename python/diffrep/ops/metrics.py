"""Public metric kernels (shared/reference/kernels.md section 6): validation, dispatch, twin.

Each op validates shapes, dtypes and finiteness (raising ``ValueError``/``TypeError`` naming the
argument), asks the dispatcher for a backend (so ``diffrep.ops.explain(op, ...)`` reports why the
native kernels did not run) and runs the pure-PyTorch twin of :mod:`diffrep.ops.reference.metrics`.
Inputs may be NumPy arrays or torch tensors on any device; results are torch tensors on the input
device. None of these ops has autograd.
"""

from __future__ import annotations

import numpy as np
import torch

from ._dispatch import register, select
from .reference import metrics as _ref

_NO_NATIVE = ["no native kernel for this op yet"]
OPS = ("metrics.auroc_matrix", "metrics.auroc_grid", "metrics.hist_discretize", "metrics.mi_matrix",
       "metrics.knn_mi_cd", "metrics.factor_vae_votes")


def _tensor(x, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            raise TypeError(f"{name}: object arrays are not supported")
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


def _choose(op: str, device: torch.device):
    return select(op, device, native_reasons=list(_NO_NATIVE))


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
    _choose("metrics.auroc_matrix", s.device)
    auc, deg = _ref.auroc_matrix(s, y)
    if bool(deg.any()):
        if on_degenerate == "raise":
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
    if not (0 < stepsize <= 1):
        raise ValueError(f"stepsize must be in (0, 1], got {stepsize}")
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
    if not isinstance(num_bins, (int, np.integer)) or num_bins < 1:
        raise ValueError(f"num_bins must be a positive integer, got {num_bins!r}")
    x = _float(codes, "codes", 2)
    _choose("metrics.hist_discretize", x.device)
    return _ref.hist_discretize(x, int(num_bins))


def mi_matrix(labels, factors):
    """Plug-in MI (nats) of each discrete column of ``labels`` (n, J) with each of ``factors``
    (n, F), plus the factor entropies: ``(mi (J, F), h (F,))`` (sklearn ``mutual_info_score``)."""
    lab = _int(labels, "labels", 2)
    fac = _int(factors, "factors", 2)
    _same_n(lab, fac, "labels", "factors", 0, 0)
    _choose("metrics.mi_matrix", lab.device)
    return _ref.mi_matrix(lab, fac)


def knn_mi_cd(latents, factors, k: int = 10):
    """Ross kNN MI of each row of ``latents`` (J, n) with each row of ``factors`` (F, n): (J, F).

    Equal to sklearn ``_compute_mi_cd`` on the same values (no scaling, no noise: callers that
    reproduce ``mutual_info_classif`` add its preprocessing, see :func:`diffrep.metrics.infomec`).
    """
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    x = _float(latents, "latents", 2).to(torch.float64)
    f = _int(factors, "factors", 2)
    _same_n(x, f, "latents", "factors")
    _choose("metrics.knn_mi_cd", x.device)
    return _ref.knn_mi_cd(x, f, int(k))


def factor_vae_votes(batches, factor_index, global_var, active, num_factors: int,
                     compressed_index: bool = True):
    """FactorVAE vote matrix (num_factors, d) and per-batch argmins from T vote batches (T, B, d)."""
    b = _float(batches, "batches", 3)
    if b.shape[1] < 2:
        raise ValueError(f"batches: need at least 2 samples per batch for ddof=1 variances, got {b.shape[1]}")
    fi = _int(factor_index, "factor_index", 1)
    _same_n(b, fi, "batches", "factor_index", 0, 0)
    g = _tensor(global_var, "global_var").to(torch.float64)
    act = _tensor(active, "active").to(torch.bool)
    if g.shape != (b.shape[2],) or act.shape != (b.shape[2],):
        raise ValueError(f"global_var and active must have shape ({b.shape[2]},)")
    if not bool(act.any()):
        raise ValueError("active: no active code")
    if int(fi.min()) < 0 or int(fi.max()) >= num_factors:
        raise ValueError(f"factor_index: values must lie in [0, {num_factors})")
    _choose("metrics.factor_vae_votes", b.device)
    return _ref.factor_vae_votes(b, fi, g.to(b.device), act.to(b.device), int(num_factors), compressed_index)
