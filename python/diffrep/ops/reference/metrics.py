"""Pure-PyTorch twins of the metric kernels (docs/kernels/metrics.md).

Every function here is vectorised torch, device-agnostic, and computes in float64 wherever
sklearn/NumPy do. They define the semantics the native kernels reproduce:

* :func:`auroc_matrix` -- tie-aware AUROC of every score row against every label row, from
  integer doubled mid-ranks and one matrix product (equal to sklearn ``roc_auc_score``).
* :func:`auroc_grid` -- the threshold-sweep "AUROC" of ThomasMrY/DisDiff ``ae_utils_exp.py``
  ``calculate_auroc``/``aurocs`` (11 thresholds) and of ericyeats/nashae-beamsynthesis (101).
* :func:`hist_discretize` and :func:`mi_matrix` -- disentanglement_lib
  ``evaluation/metrics/utils.py`` ``_histogram_discretize`` and sklearn ``mutual_info_score``.
* :func:`knn_mi_cd` -- sklearn ``feature_selection/_mutual_info.py`` ``_compute_mi_cd`` (Ross 2014).
* :func:`factor_vae_votes` -- the variance-ratio argmin votes of disentanglement_lib
  ``evaluation/metrics/factor_vae.py`` ``_generate_training_sample``, for many batches at once.

:mod:`diffrep.ops.metrics` validates values (finiteness, 0/1 labels) and then calls these; here only
the kind and shape of each argument are checked (:mod:`._args`), so that a wrong one is named.
"""

from __future__ import annotations

import torch

from . import _args as A

_F64 = torch.float64


def _samples(a_name, a, b_name, b, axis_a=-1, axis_b=-1):
    if a.shape[axis_a] != b.shape[axis_b]:
        raise ValueError(f"{a_name} and {b_name} disagree on the number of samples: {a.shape[axis_a]} vs "
                         f"{b.shape[axis_b]}")


# --------------------------------------------------------------------------------------- AUROC
def doubled_midranks(scores: torch.Tensor) -> torch.Tensor:
    """Twice the 1-based mid-rank of every entry of each row of ``scores`` (U, n), as int64.

    A tie run at sorted 0-based positions [s, e) has mid-rank (s + 1 + e) / 2, so its doubled
    mid-rank s + e + 1 is an integer and the rank sums below are exact.
    """
    u, n = scores.shape
    sorted_vals, order = torch.sort(scores, dim=1, stable=True)
    new_run = torch.ones(u, n, dtype=torch.bool, device=scores.device)
    new_run[:, 1:] = sorted_vals[:, 1:] != sorted_vals[:, :-1]
    run_id = torch.cumsum(new_run.to(torch.int64), dim=1) - 1  # 0-based run index per row
    flat = run_id + torch.arange(u, device=scores.device).unsqueeze(1) * n
    counts = torch.bincount(flat.reshape(-1), minlength=u * n).reshape(u, n)
    pos = torch.arange(n, device=scores.device).expand(u, n)
    start = torch.where(new_run, pos, torch.zeros_like(pos))
    start = torch.cummax(start, dim=1).values
    end = start + torch.gather(counts, 1, run_id)
    r2_sorted = start + end + 1
    r2 = torch.empty_like(r2_sorted)
    r2.scatter_(1, order, r2_sorted)
    return r2


def _auroc_args(scores, labels):
    A.reals(scores=scores, labels=labels)
    A.rows("scores", scores, 2)
    A.rows("labels", labels, 2)
    _samples("scores", scores, "labels", labels)


def auroc_matrix(scores: torch.Tensor, labels: torch.Tensor):
    """AUROC of each score row (U, n) for each boolean label row (A, n): (auc (A, U), degenerate (A,)).

    AUC = (2 R_+ - n_+ (n_+ + 1)) / (2 n_+ n_-) with 2 R_+ the sum of doubled mid-ranks of the
    positives, which is sklearn's trapezoid over distinct thresholds (ties count 1/2). Rows of
    ``labels`` with a single class are ``degenerate`` and get NaN.
    """
    _auroc_args(scores, labels)
    r2 = doubled_midranks(scores)
    n = scores.shape[1]
    lab = labels.to(_F64)
    if n * n < 2**53:
        two_rpos = lab @ r2.to(_F64).T  # exact: every partial sum is an integer below 2^53
    else:  # pragma: no cover - n > 9.5e7
        two_rpos = (labels.to(torch.int64) @ r2.T).to(_F64)
    n_pos = lab.sum(dim=1, keepdim=True)
    n_neg = n - n_pos
    degenerate = (n_pos.squeeze(1) == 0) | (n_neg.squeeze(1) == 0)
    auc = (two_rpos - n_pos * (n_pos + 1)) / (2 * n_pos * n_neg)
    auc = torch.where(degenerate.unsqueeze(1), torch.full_like(auc, float("nan")), auc)
    return auc, degenerate


def auroc_grid(scores: torch.Tensor, labels: torch.Tensor, stepsize: float = 0.1,
               min_range: float = 0.2, chunk: int = 8):
    """Threshold-sweep AUROC of DisDiff/NashAE (``calculate_auroc`` + ``aurocs``): (A, U) float64.

    For latent u with batch min m and max M, thresholds are ``m + t (M - m)`` for
    ``t in torch.arange(0, 1.0001, stepsize)`` computed in the scores' dtype (the reference works
    in float32). For both detectors ``z >= thr`` and ``z < thr`` the (FPR, TPR) pairs are
    collected, each column is sorted independently, and the right-endpoint sum
    ``sum_k TPR_k (FPR_k - FPR_{k-1})`` is taken; the better direction is kept. Latents with
    ``M - m <= min_range`` keep 0.5 (not evaluated). The rates and the sum are float64 here
    (float32 in the reference: agreement to about 1e-6).
    """
    _auroc_args(scores, labels)
    A.floats(scores=scores)  # the thresholds are computed in the scores' dtype
    if not 0 < A.number("stepsize", stepsize) <= 1:
        raise ValueError(f"stepsize must be in (0, 1], got {stepsize}")
    if A.number("min_range", min_range) < 0:
        raise ValueError(f"min_range must be >= 0, got {min_range}")
    A.count("chunk", chunk)
    u, n = scores.shape
    a = labels.shape[0]
    dev = scores.device
    t = torch.arange(0.0, 1.0001, step=stepsize, dtype=scores.dtype, device=dev)
    ma = scores.max(dim=1).values
    mi = scores.min(dim=1).values
    thr = t.unsqueeze(0) * (ma - mi).unsqueeze(1) + mi.unsqueeze(1)  # (U, T), scores' dtype
    lab = labels.to(torch.int64)
    n_pos = lab.sum(dim=1).to(_F64)  # (A,)
    n_neg = n - n_pos
    out = torch.full((a, u), 0.5, dtype=_F64, device=dev)
    evaluated = (ma - mi) > min_range
    for c0 in range(0, u, chunk):
        sl = slice(c0, min(u, c0 + chunk))
        sv, order = torch.sort(scores[sl], dim=1)
        idx = torch.searchsorted(sv.contiguous(), thr[sl].contiguous(), right=False)  # first >= thr
        # cumulative positives in sorted order, with a leading 0: (A, Uc, n + 1)
        lab_sorted = lab[:, order]  # (A, Uc, n)
        cum = torch.nn.functional.pad(torch.cumsum(lab_sorted, dim=2), (1, 0))
        pos_below = torch.gather(cum, 2, idx.unsqueeze(0).expand(a, -1, -1))  # positives with z < thr
        tot_below = idx.unsqueeze(0).to(torch.int64)
        neg_below = tot_below - pos_below
        npos = n_pos.view(a, 1, 1)
        nneg = n_neg.view(a, 1, 1)
        tp_ge = npos - pos_below
        fp_ge = nneg - neg_below
        areas = []
        for tp, fp in ((tp_ge, fp_ge), (pos_below.to(_F64), neg_below.to(_F64))):
            tpr = torch.sort(tp / npos, dim=2).values
            fpr = torch.sort(fp / nneg, dim=2).values
            areas.append((tpr[..., 1:] * (fpr[..., 1:] - fpr[..., :-1])).sum(dim=2))
        best = torch.maximum(areas[0], areas[1])
        out[:, sl] = torch.where(evaluated[sl].unsqueeze(0), best, out[:, sl])
    return out


# ------------------------------------------------------------------------------- histogram MI
def hist_discretize(codes: torch.Tensor, num_bins: int = 20) -> torch.Tensor:
    """Per column of ``codes`` (n, J): ``np.digitize(x, np.histogram(x, num_bins)[1][:-1])``.

    Edges are ``linspace(min, max, num_bins + 1)`` computed as NumPy does (``k * step + start`` in
    the input dtype); a constant column uses the range (c - 0.5, c + 0.5). Labels are 1..num_bins,
    the maximum lands in bin num_bins.
    """
    A.reals(codes=codes)
    A.rows("codes", codes, 2)
    A.count("num_bins", num_bins)
    x = codes if codes.is_floating_point() else codes.to(_F64)
    lo = x.min(dim=0).values
    hi = x.max(dim=0).values
    const = lo == hi
    lo = torch.where(const, lo - 0.5, lo)
    hi = torch.where(const, hi + 0.5, hi)
    # NumPy's step = delta / div, a true division: torch on CUDA divides by a Python number as a
    # product with its rounded reciprocal, an ulp off for num_bins = 3 or 20, which moves values
    # lying on an edge (the native kernels divide); a tensor divisor keeps the division
    step = (hi - lo) / torch.full_like(hi, num_bins)
    k = torch.arange(num_bins, dtype=x.dtype, device=x.device)
    edges = k.unsqueeze(0) * step.unsqueeze(1) + lo.unsqueeze(1)  # (J, B): edges[:-1] only
    lab = torch.searchsorted(edges.contiguous(), x.T.contiguous(), right=True)
    return lab.T.contiguous()


def _remap(labels: torch.Tensor):
    """Per column, map values to 0..V_j-1 in sorted order (``np.unique`` order): (codes, sizes)."""
    n, j = labels.shape
    out = torch.empty_like(labels)
    sizes = []
    for c in range(j):
        uniq, inv = torch.unique(labels[:, c], sorted=True, return_inverse=True)
        out[:, c] = inv
        sizes.append(int(uniq.numel()))
    return out, sizes


def mi_from_counts(counts: torch.Tensor) -> torch.Tensor:
    """sklearn ``mutual_info_score`` of contingency tables ``counts`` (..., B, V) in nats.

    Over non-zero cells: (n_bv/N)(log n_bv - log N) + (n_bv/N)(log sum(a) + log sum(b) - log(a_b c_v)),
    terms with |.| < float64 eps zeroed, sum clipped at 0; 0 when either labelling has one value.
    """
    c = counts.to(_F64)
    total = c.sum(dim=(-2, -1), keepdim=True)
    a = c.sum(dim=-1, keepdim=True)
    b = c.sum(dim=-2, keepdim=True)
    nz = counts > 0
    safe = torch.where(nz, c, torch.ones_like(c))
    outer = torch.where(nz, (counts.sum(dim=-1, keepdim=True) * counts.sum(dim=-2, keepdim=True)).to(_F64),
                        torch.ones_like(c))
    p = safe / total
    log_outer = -torch.log(outer) + torch.log(a.sum(dim=-2, keepdim=True)) + torch.log(b.sum(dim=-1, keepdim=True))
    term = p * (torch.log(safe) - torch.log(total)) + p * log_outer
    eps = torch.finfo(_F64).eps
    term = torch.where(nz & (term.abs() >= eps), term, torch.zeros_like(term))
    mi = term.sum(dim=(-2, -1)).clamp_min(0.0)
    one_a = (a.squeeze(-1) > 0).sum(dim=-1) <= 1
    one_b = (b.squeeze(-2) > 0).sum(dim=-1) <= 1
    return torch.where(one_a | one_b, torch.zeros_like(mi), mi)


def mi_matrix(labels: torch.Tensor, factors: torch.Tensor):
    """Plug-in MI of every label column (n, J) with every factor column (n, F): (mi (J, F), h (F,)).

    Both labellings are remapped in ``np.unique`` order; all joint counts come from one integer
    scatter-add into (J, F, B, V); ``h[f] = mutual_info_score(f, f)`` (disentanglement_lib
    ``discrete_entropy``).
    """
    for name, v in (("labels", labels), ("factors", factors)):
        A.classes(name, v)
        A.rows(name, v, 2)
    _samples("labels", labels, "factors", factors, 0, 0)
    n, j = labels.shape
    f = factors.shape[1]
    lab, bsz = _remap(labels)
    fac, vsz = _remap(factors)
    b_max, v_max = max(bsz), max(vsz)
    jj = torch.arange(j, device=labels.device).view(1, j, 1)
    ff = torch.arange(f, device=labels.device).view(1, 1, f)
    idx = ((jj * f + ff) * b_max + lab.unsqueeze(2)) * v_max + fac.unsqueeze(1)  # (n, J, F)
    counts = torch.zeros(j * f * b_max * v_max, dtype=torch.int64, device=labels.device)
    counts.scatter_add_(0, idx.reshape(-1), torch.ones(idx.numel(), dtype=torch.int64, device=labels.device))
    mi = mi_from_counts(counts.view(j, f, b_max, v_max))
    diag = torch.zeros(f, v_max * v_max, dtype=torch.int64, device=labels.device)
    didx = fac * (v_max + 1)  # (n, F): cell (v, v)
    diag.scatter_add_(1, didx.T.contiguous(), torch.ones(f, n, dtype=torch.int64, device=labels.device))
    h = mi_from_counts(diag.view(f, v_max, v_max))
    return mi, h


# ----------------------------------------------------------------------------- 1-D kNN MI (Ross)
def _search(sorted_vals: torch.Tensor, pred, shape, hi_init: int) -> torch.Tensor:
    """Vectorised binary search: the first index i in [0, hi_init] with pred(sorted_vals[..., i], i)
    true, for a predicate that is false...false true...true along the last axis."""
    lo = torch.zeros(shape, dtype=torch.int64, device=sorted_vals.device)
    hi = torch.full(shape, hi_init, dtype=torch.int64, device=sorted_vals.device)
    n = sorted_vals.shape[-1]
    while True:
        active = lo < hi
        if not bool(active.any()):
            return lo
        mid = (lo + hi) // 2
        ok = pred(torch.gather(sorted_vals, -1, mid.clamp_max(n - 1)))
        hi = torch.where(active & ok, mid, hi)
        lo = torch.where(active & ~ok, mid + 1, lo)


def _exceeds_product(v: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``v > a * b`` with the product taken exactly (Dekker's two-product, Veltkamp splitting),
    for positive doubles with a * b within a factor 2 of v (so v - fl(a * b) is exact)."""
    def split(t):
        big = 134217729.0 * t  # 2^27 + 1
        hi = big - (big - t)
        return hi, t - hi

    p = a * b
    ah, al = split(a)
    bh, bl = split(b)
    err = ((ah * bh - p) + ah * bl + al * bh) + al * bl  # a * b = p + err exactly
    return (v - p) > err


def _sqrt_rn(v: torch.Tensor) -> torch.Tensor:
    """Correctly rounded sqrt of float64 ``v`` >= 0, as libm's (and NumPy's) ``sqrt``.

    torch's CPU sqrt is only faithful (about 1% of float64 results are one ulp off), and an ulp
    of the radius changes m_i. Tuckerman's test fixes it up: s is the rounded root unless
    v > s * s_up (round up) or v <= s * s_down (round down), the products taken exactly. Tiny
    inputs are scaled by 2^200 first so that the exact products do not underflow."""
    tiny = v < 2.0 ** -900
    v = torch.where(tiny, v * 2.0 ** 200, v)
    s = torch.sqrt(v)
    ok = (v > 0) & torch.isfinite(v)
    for _ in range(2):  # one step corrects a faithful root; the second is a no-op guard
        up = torch.nextafter(s, torch.full_like(s, float("inf")))
        dn = torch.nextafter(s, torch.zeros_like(s))
        s = torch.where(ok & _exceeds_product(v, s, up), up, s)
        s = torch.where(ok & ~_exceeds_product(v, s, dn), dn, s)
    return torch.where(tiny, s * 2.0 ** -100, s)


def _kth_neighbour_distance(c: torch.Tensor, g0: torch.Tensor, p: torch.Tensor, nl: torch.Tensor,
                            kk: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from every value of ``c`` (J, n; values grouped by label, sorted within a group;
    the group of the point at q starts at ``g0`` and holds ``nl`` points, q at position ``p`` in it)
    to its ``kk``-th same-label neighbour, self excluded, measured as sklearn's NearestNeighbors
    measures it.

    With ``kk >= nl // 2`` NearestNeighbors(algorithm="auto") is brute force: the squared distance
    is the expansion x^2 + (-2 x y) + y^2 clamped at 0 (ArgKmin), whose rounding can reorder
    near-equal neighbours, so every member of the group (nl <= 2 kk + 1) is a candidate. Otherwise
    it is a KD tree with the squared distance (x - y)^2, and the kk nearest lie within kk positions
    of p in the sorted group. Either way: the correctly rounded sqrt of the kk-th smallest
    candidate (sqrt is monotone). Points with kk = 0 get +inf (callers drop them)."""
    jn, n = c.shape
    brute = kk >= nl // 2
    first = torch.where(brute, g0, g0 + p - kk)  # first candidate position, (J, n)
    pos = first.unsqueeze(-1) + torch.arange(2 * k + 1, device=c.device)  # (J, n, 2k + 1)
    valid = (pos >= g0.unsqueeze(-1)) & (pos < (g0 + nl).unsqueeze(-1)) & (pos != (g0 + p).unsqueeze(-1))
    y = torch.gather(c, 1, pos.clamp(0, n - 1).view(jn, -1)).view(pos.shape)
    x = c.unsqueeze(-1)
    expanded = torch.clamp_min((x * x + (-2.0 * (x * y))) + y * y, 0.0)
    sq = torch.where(brute.unsqueeze(-1), expanded, (x - y) * (x - y))
    sq = torch.where(valid, sq, torch.full_like(sq, float("inf"))).sort(dim=-1).values
    return _sqrt_rn(torch.gather(sq, -1, (kk - 1).clamp_min(0).unsqueeze(-1)).squeeze(-1))


def knn_mi_cd(latents: torch.Tensor, factors: torch.Tensor, k: int = 10) -> torch.Tensor:
    """Ross (2014) kNN MI between each continuous row of ``latents`` (J, n) and each discrete row
    of ``factors`` (F, n), equal to sklearn ``_compute_mi_cd(c, d, k)``: (J, F) float64 in nats.

    Per label with N_l > 1 points: k_l = min(k, N_l - 1) and r_i the distance to the k_l-th
    same-label neighbour (self excluded, see :func:`_kth_neighbour_distance` for how sklearn
    measures it), nudged down one ulp (``nextafter(r, 0)``). Points of singleton labels are
    dropped and n recounted. m_i counts the kept points (self included) with
    ``(c_j - c_i)^2 <= r_i^2``: sklearn's ``KDTree.query_radius`` compares squared distances, which
    is what makes this equal to the reference when the squares of r and r - 1 ulp round together.
    MI = psi(n) + mean psi(k_i) - mean psi(N_l) - mean psi(m_i), clipped at 0. The counts come from
    an exact binary search on the sorted kept values.
    """
    A.reals(latents=latents)
    A.rows("latents", latents, 2)
    A.classes("factors", factors)
    A.rows("factors", factors, 2)
    _samples("latents", latents, "factors", factors)
    A.count("k", k)
    jn, n = latents.shape
    fn = factors.shape[0]
    dev = latents.device
    x = latents.to(_F64)
    fac, _ = _remap(factors.T.contiguous())
    fac = fac.T.contiguous()  # (F, n) in 0..V-1
    out = torch.zeros(jn, fn, dtype=_F64, device=dev)
    vorder = torch.sort(x, dim=1, stable=True).indices  # shared by the F factors
    for fi in range(fn):
        lab = fac[fi]
        counts = torch.bincount(lab)
        n_l = counts[lab]  # (n,)
        keep = n_l > 1
        n_kept = int(keep.sum())
        if n_kept == 0:
            continue
        k_l = torch.clamp(n_l - 1, max=k)  # per point
        # sort each latent by (label, value): the value sort, then a stable label sort
        lab_by_v = lab[vorder]  # (J, n)
        lorder = torch.sort(lab_by_v, dim=1, stable=True).indices
        order = torch.gather(vorder, 1, lorder)  # (J, n) point ids grouped by label, values sorted
        c = torch.gather(x, 1, order)
        lab_o = lab[order]
        starts = torch.cumsum(counts, 0) - counts  # group start per label
        g0 = starts[lab_o]  # (J, n)
        p = torch.arange(n, device=dev).expand(jn, n) - g0  # position within its label group
        nl = n_l[order]
        kk = k_l[order]
        r = _kth_neighbour_distance(c, g0, p, nl, kk, k)
        r = torch.nextafter(r, torch.zeros_like(r))
        kept_o = keep[order]
        # global sorted kept values (dropped points -> +inf at the end)
        g = torch.where(keep.unsqueeze(0), x, torch.full_like(x, float("inf")))
        gs = torch.sort(g, dim=1).values
        r2 = r * r
        ci = c

        def left(v):  # true from the left edge of the ball onwards
            d = ci - v
            return (v >= ci) | (d * d <= r2)

        def right(v):  # true once the value is past the ball on the right
            d = v - ci
            return (v > ci) & ~(d * d <= r2)

        lo = _search(gs, left, (jn, n), n_kept)
        hi = _search(gs, right, (jn, n), n_kept)
        m = (hi - lo).to(_F64)
        dg = torch.special.digamma
        w = kept_o.to(_F64)
        mean = lambda v: (v * w).sum(dim=1) / n_kept  # noqa: E731
        mi = (dg(torch.tensor(float(n_kept), dtype=_F64, device=dev)) + mean(dg(kk.to(_F64).clamp_min(1)))
              - mean(dg(nl.to(_F64))) - mean(dg(m.clamp_min(1))))
        out[:, fi] = mi.clamp_min(0.0)
    return out


# ------------------------------------------------------------------------------- FactorVAE votes
def factor_vae_votes(batches: torch.Tensor, factor_index: torch.Tensor, global_var: torch.Tensor,
                     active: torch.Tensor, num_factors: int, compressed_index: bool = True):
    """Votes V (num_factors, d) int64 and the per-batch argmins (T,) for FactorVAE.

    ``batches`` (T, B, d): the representations of T vote batches; ``factor_index`` (T,): the fixed
    factor of each. Local variances use ddof=1; d* = argmin over active codes of l_d / g_d with the
    first index winning ties and NumPy's rule that a NaN ratio wins (np.argmin returns the first
    NaN). With ``compressed_index`` d* indexes the active subset (the reference's quirk); else the
    full code axis.
    """
    A.reals(batches=batches, global_var=global_var)
    A.rows("batches", batches, 3)
    A.classes("factor_index", factor_index, A.count("num_factors", num_factors))
    A.rows("factor_index", factor_index, 1)
    _samples("batches", batches, "factor_index", factor_index, 0, 0)
    if not isinstance(active, torch.Tensor) or active.dtype != torch.bool:
        raise TypeError(f"active must be a bool tensor, got {getattr(active, 'dtype', type(active).__name__)}")
    for name, v in (("global_var", global_var), ("active", active)):
        if tuple(v.shape) != (batches.shape[2],):
            raise ValueError(f"{name} must have shape ({batches.shape[2]},), got {tuple(v.shape)}")
    t, b, d = batches.shape
    lv = batches.to(_F64).var(dim=1, unbiased=True)  # (T, d)
    act_idx = torch.nonzero(active, as_tuple=False).squeeze(1)
    ratio = lv[:, act_idx] / global_var.to(_F64)[act_idx].unsqueeze(0)
    na = ratio.shape[1]
    pos = torch.arange(na, device=batches.device).expand(t, na)
    isnan = torch.isnan(ratio)
    big = torch.full_like(pos, na)
    first_nan = torch.where(isnan, pos, big).min(dim=1).values
    filled = torch.where(isnan, torch.full_like(ratio, float("inf")), ratio)
    mn = filled.min(dim=1, keepdim=True).values
    first_min = torch.where(filled == mn, pos, big).min(dim=1).values
    arg = torch.where(first_nan < na, first_nan, first_min)
    if not compressed_index:
        arg = act_idx[arg]
    votes = torch.zeros(num_factors * d, dtype=torch.int64, device=batches.device)
    votes.scatter_add_(0, factor_index.to(torch.int64) * d + arg, torch.ones_like(arg))
    return votes.view(num_factors, d), arg
