"""A fast gradient-boosted-trees classifier in PyTorch that follows sklearn's
``GradientBoostingClassifier()`` defaults, for DCI importances and the downstream task.

What it shares with sklearn (``sklearn/ensemble/_gb.py``, ``sklearn/tree/_splitter.pyx``,
``_criterion.pyx``): log-loss; prior initial raw score; 100 stages, learning rate 0.1, depth 3,
min_samples_split 2, min_samples_leaf 1; K > 2 classes fit K regression trees per stage on the
residuals y_k - p_k computed once per stage (batched here); binary fits one tree; features cast to
float32; candidate thresholds are midpoints of adjacent distinct float32 values; split gain is
friedman_mse's n_l n_r / n (mean_l - mean_r)^2, which is also the impurity decrease that
``feature_importances_`` sums (normalised by the root weight, averaged over non-trivial trees,
normalised to sum 1); leaf values (K-1)/K sum(r) / sum(p(1-p)) (multiclass) or
sum(r) / sum(p(1-p)) (binary), 0 when the denominator is below 1e-150; no split for nodes whose
residual variance is <= float64 eps.

Where it differs (choices, since the spec asks for speed): the split search is over at most
``max_bins`` candidate thresholds per feature (all distinct midpoints when a feature has at most
``max_bins`` distinct values -- then the candidates are exactly sklearn's; otherwise midpoints
chosen evenly in rank among the distinct values); between equally good features one is chosen
uniformly at random from a SEEDED generator (sklearn's random feature order does the same,
unseeded), so duplicated codes share importance as in the reference; within a feature the lowest
threshold wins (as sklearn's scan). Deterministic for a given seed.
As in sklearn's splitter, adjacent values closer than 1e-7 are never split apart, and a node with
impurity above float64 eps is split whenever a valid threshold exists, even when the best split
improves nothing (sklearn's ``min_impurity_decrease=0``).
"""

from __future__ import annotations

import threading
import warnings

import torch

_F64 = torch.float64
FEATURE_THRESHOLD = 1e-7  # sklearn/tree/_splitter.pyx: values closer than this are not split apart
# warnings.catch_warnings swaps the process-wide filter list on entry and puts its saved list back on exit: two
# threads inside it at once (dci.fit_factors fits the factors in a thread pool) could restore each other's
# "ignore" and leave UserWarnings silenced for the rest of the process (8 threads: every time). One at a time.
_WARNINGS_LOCK = threading.Lock()


def _bin_features(x32: torch.Tensor, max_bins: int):
    """Per-feature thresholds (float64, padded with +inf) and bin indices (#thresholds < x)."""
    n, d = x32.shape
    thr_list = []
    for j in range(d):
        u = torch.unique(x32[:, j])  # sorted float32
        if u.numel() < 2:
            thr_list.append(torch.empty(0, dtype=_F64, device=x32.device))
            continue
        lo64, hi64 = u[:-1].to(_F64), u[1:].to(_F64)
        mids = (lo64 / 2.0 + hi64 / 2.0)[hi64 > lo64 + FEATURE_THRESHOLD]
        if mids.numel() == 0:
            thr_list.append(mids)
            continue
        if mids.numel() > max_bins - 1:
            sel = torch.linspace(0, mids.numel() - 1, max_bins - 1, device=x32.device).round().long().unique()
            mids = mids[sel]
        thr_list.append(mids)
    nthr = max(1, max(t.numel() for t in thr_list))
    thr = torch.full((d, nthr), float("inf"), dtype=_F64, device=x32.device)
    for j, t in enumerate(thr_list):
        thr[j, : t.numel()] = t
    return thr


def _bins(x32: torch.Tensor, thr: torch.Tensor) -> torch.Tensor:
    return torch.searchsorted(thr, x32.to(_F64).T.contiguous(), right=False).T.contiguous()  # (n, d)


class GBTResult:
    """importances (d,), predictions per evaluation set, classes, trees kept, flags."""

    def __init__(self, importances, predictions, classes, relevant_trees):
        self.importances = importances
        self.predictions = predictions
        self.classes = classes
        self.relevant_trees = relevant_trees


def check_max_bins(max_bins) -> int:
    """``max_bins`` as an int >= 2 (one bin leaves no threshold to split on)."""
    if isinstance(max_bins, bool) or not isinstance(max_bins, int) or max_bins < 2:
        raise ValueError(f"max_bins must be an int >= 2, got {max_bins!r}")
    return max_bins


def fit_predict(x_train: torch.Tensor, y_train: torch.Tensor, x_evals=(), n_estimators: int = 100,
                learning_rate: float = 0.1, max_depth: int = 3, max_bins: int = 256, seed: int = 0) -> GBTResult:
    """Fit on (x_train (N, d), y_train (N,) int) and predict classes for x_train and each x_eval.

    ``seed`` seeds the tie-breaking between equally good features (a CPU ``torch.Generator``)."""
    from .._checks import non_negative_int, positive_float, positive_int
    from ..ops import metrics as ops

    check_max_bins(max_bins)
    ops._float(x_train, "x_train", 2)  # checked only: the values fitted are x_train's own
    y = ops._int(y_train, "y_train", 1)
    if y.shape[0] != x_train.shape[0]:
        raise ValueError(f"x_train and y_train disagree on the number of samples: {x_train.shape[0]} vs {y.shape[0]}")
    if isinstance(x_evals, (str, bytes, torch.Tensor)) or not isinstance(x_evals, (list, tuple)):
        raise TypeError(f"x_evals must be a sequence of (M, d) tensors, got {type(x_evals).__name__}")
    for i, e in enumerate(x_evals):
        if not isinstance(e, torch.Tensor) or e.dim() != 2 or e.shape[1] != x_train.shape[1]:
            raise ValueError(f"x_evals[{i}] must be a (M, d = {x_train.shape[1]}) tensor, got "
                             f"{getattr(e, 'shape', type(e).__name__)}")
        if e.numel():
            ops._float(e, f"x_evals[{i}]", 2)
    positive_int(n_estimators, "n_estimators")  # 0 or -1 trees fitted nothing and predicted the prior
    positive_float(learning_rate, "learning_rate")
    positive_int(max_depth, "max_depth")
    non_negative_int(seed, "seed")
    gen = torch.Generator().manual_seed(int(seed))
    dev = x_train.device
    n, d = x_train.shape
    classes, y = torch.unique(y_train, sorted=True, return_inverse=True)
    k = classes.numel()
    evals = [x_train] + list(x_evals)
    if k == 1:
        return GBTResult(torch.zeros(d, dtype=_F64, device=dev),
                         [classes.expand(e.shape[0]).clone() for e in evals], classes, 0)
    x32 = x_train.to(torch.float32)
    thr = _bin_features(x32, max_bins)
    nb = thr.shape[1] + 1
    b_train = _bins(x32, thr)
    b_evals = [_bins(e.to(torch.float32), thr) for e in evals]
    # constant one-hot (d * nb, N) of every sample's bin per feature, as a CSR matrix
    rows = (torch.arange(d, device=dev) * nb).unsqueeze(0) + b_train  # (N, d)
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        onehot = torch.sparse_coo_tensor(
            torch.stack([rows.reshape(-1), torch.arange(n, device=dev).repeat_interleave(d)]),
            torch.ones(n * d, dtype=_F64, device=dev), (d * nb, n)).coalesce()
        if dev.type == "cpu":
            onehot = onehot.to_sparse_csr()
    t_trees = 1 if k == 2 else k
    counts = torch.bincount(y, minlength=k).to(_F64)
    prior = counts / n
    if k == 2:
        raw = torch.full((1, n), float(torch.log(prior[1] / prior[0])), dtype=_F64, device=dev)
        target = (y == 1).to(_F64).unsqueeze(0)
    else:
        raw = torch.log(prior).unsqueeze(1).expand(k, n).clone()
        target = torch.nn.functional.one_hot(y, k).T.to(_F64)
    raw_e = [raw[:, :1].expand(t_trees, e.shape[0]).clone() for e in evals]
    imp_sum = torch.zeros(t_trees, d, dtype=_F64, device=dev)
    relevant = torch.zeros(t_trees, dtype=torch.int64, device=dev)
    eps = torch.finfo(_F64).eps
    tt = torch.arange(t_trees, device=dev).view(t_trees, 1)
    leaves = 2 ** max_depth
    for _stage in range(n_estimators):
        p = torch.sigmoid(raw) if k == 2 else torch.softmax(raw, dim=0)
        r = target - p
        hess = p * (1 - p)
        node = torch.zeros(t_trees, n, dtype=torch.int64, device=dev)
        node_e = [torch.zeros(t_trees, e.shape[0], dtype=torch.int64, device=dev) for e in evals]
        imp_tree = torch.zeros(t_trees, d, dtype=_F64, device=dev)
        for depth in range(max_depth):
            nn = 2 ** depth
            tn = tt * nn + node  # (T, N): column of each (tree, sample) in the level's tables
            size = t_trees * nn
            # R (N, 2 * size): residual-weighted and count indicators of each sample's node
            rmat = torch.zeros(n, 2 * size, dtype=_F64, device=dev)
            rmat.scatter_(1, tn.T, r.T)
            rmat.scatter_(1, tn.T + size, torch.ones_like(r.T))
            hist = (onehot @ rmat).view(d, nb, 2, size).permute(2, 3, 0, 1)  # (2, size, d, nb)
            hs, hc = hist[0], hist[1]
            s_node = hs[:, 0, :].sum(dim=1)
            c_node = hc[:, 0, :].sum(dim=1)
            q_node = torch.bincount(tn.reshape(-1), weights=(r * r).reshape(-1), minlength=size)
            sl = torch.cumsum(hs, dim=2)[:, :, :-1]
            cl = torch.cumsum(hc, dim=2)[:, :, :-1]
            ct = c_node.view(size, 1, 1)
            st = s_node.view(size, 1, 1)
            cr, sr = ct - cl, st - sl
            valid = (cl > 0) & (cr > 0)
            gain = torch.where(valid, (sl * cr - sr * cl) ** 2 / (ct * cl * cr).clamp_min(1), torch.full_like(sl, -1.0))
            fgain, fbin = gain.max(dim=2)  # per feature: the first (lowest) best threshold
            best_gain = fgain.max(dim=1).values
            # equally good features: uniform random choice (sklearn visits features in random order)
            prio = torch.rand(size, d, generator=gen, dtype=_F64).to(dev)
            prio = torch.where(fgain == best_gain.unsqueeze(1), prio, torch.full_like(prio, -1.0))
            bj = prio.argmax(dim=1)
            bb = torch.gather(fbin, 1, bj.unsqueeze(1)).squeeze(1)
            impurity = q_node / c_node.clamp_min(1) - (s_node / c_node.clamp_min(1)) ** 2
            # sklearn splits whenever a valid threshold exists, even at zero improvement (its
            # min_impurity_decrease is 0): an XOR-like node gains nothing at depth 1 and everything below
            split = (c_node >= 2) & (impurity > eps) & (best_gain >= 0)
            if depth == 0:
                relevant += split.view(t_trees, nn)[:, 0].to(torch.int64)
            contrib = torch.where(split, best_gain, torch.zeros_like(best_gain)) / n
            imp_tree.view(-1).index_add_(0, (torch.arange(size, device=dev) // nn) * d + bj, contrib)
            sp, fj, fb = split.view(t_trees, nn), bj.view(t_trees, nn), bb.view(t_trees, nn)

            def route(nd, bins):
                s_ = torch.gather(sp, 1, nd)
                f_ = torch.gather(fj, 1, nd)
                b_ = torch.gather(fb, 1, nd)
                val = torch.gather(bins.T.unsqueeze(0).expand(t_trees, d, bins.shape[0]), 1, f_.unsqueeze(1)).squeeze(1)
                return 2 * nd + (s_ & (val > b_)).to(torch.int64)

            node = route(node, b_train)
            node_e = [route(ne, be) for ne, be in zip(node_e, b_evals)]
        tl = (tt * leaves + node).reshape(-1)
        num = torch.bincount(tl, weights=r.reshape(-1), minlength=t_trees * leaves)
        den = torch.bincount(tl, weights=hess.reshape(-1), minlength=t_trees * leaves)
        if k > 2:
            num = num * ((k - 1) / k)
        val = torch.where(den.abs() < 1e-150, torch.zeros_like(num), num / torch.where(den == 0, 1.0, den))
        val = val.view(t_trees, leaves)
        raw = raw + learning_rate * torch.gather(val, 1, node)
        raw_e = [re + learning_rate * torch.gather(val, 1, ne) for re, ne in zip(raw_e, node_e)]
        imp_sum += imp_tree
    n_rel = int(relevant.sum())
    if n_rel == 0:
        imp = torch.zeros(d, dtype=_F64, device=dev)
    else:
        avg = imp_sum.sum(dim=0) / n_rel
        tot = avg.sum()
        imp = avg / tot if float(tot) > 0 else torch.zeros_like(avg)
    preds = []
    for re in raw_e:
        # binary: class 1 at raw >= 0, as sklearn >= 1.x ``predict`` (0.20's argmax of [1 - p, p] gave
        # class 0 at raw = 0); multiclass: the first largest, as np.argmax
        ci = (re[0] >= 0).to(torch.int64) if k == 2 else re.argmax(dim=0)
        preds.append(classes[ci])
    return GBTResult(imp, preds, classes, n_rel)
