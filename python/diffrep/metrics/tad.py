"""TAD, total AUROC difference (Yeats et al. 2022, NashAE), in its three published variants
(docs/metrics.md#tad). The three numbers are not comparable: the variant is in every result.

* ``"infodiffusion"`` -- isjakewong/InfoDiffusion ``eval_disentanglement.py`` ``TADMetric`` on
  ``KFold(5, shuffle=True, random_state=0)`` training splits, ``StandardScaler`` fit on each,
  latents cast to float32, exact sklearn AUROC max(AUC(z), AUC(-z)) stored in float32 as the
  reference's tensor (differences and their sum in float32 too); mean and std (ddof 0) over folds.
* ``"disdiff"`` -- ThomasMrY/DisDiff ``ae_utils_exp.py`` ``aurocs``/``calculate_auroc`` (also
  EncDiff ``celeba_tad.py``): 11-threshold right-endpoint sweep on the whole sample, latents with
  range <= 0.2 kept at 0.5.
* ``"nashae"`` -- ericyeats/nashae-beamsynthesis: the same sweep with 101 thresholds.
* ``"exact"`` -- diffrep's robust single-sample variant: exact AUROC on all points, no range
  filter (scale-invariant), no folds.

Common core: A_ij = best AUROC of latent j for attribute i; per attribute, the difference between
the largest and the second largest A_ij (the argmax zeroed, so 0 is the runner-up with one
latent); attribute i is captured iff max_j A_ij >= 0.75 and max_{k != i} MI(y_i, y_k) / H(y_i) <= 0.2
(binary MI in nats, float32 as the references); TAD = SUM of the differences over captured
attributes, ``tad_attributes_captured`` their count.
"""

from __future__ import annotations

import numpy as np
import torch

from ..ops import metrics as ops
from . import _checks
from .results import Result

VARIANTS = ("infodiffusion", "disdiff", "nashae", "exact")
AUROC_THRESHOLD = 0.75
ENT_RED_THRESHOLD = 0.2


def binary_mi_matrix(y: torch.Tensor) -> torch.Tensor:
    """MI (A, A) between binary label columns of y (n, A) from 2x2 joints, 0 log 0 = 0, float32.

    The references form each joint as ``(a.T @ b) / n`` in float32 for the four (state, state)
    pairs; here the four counts come from one product Y^T Y (n11) and the column counts (n10, n01,
    n00 follow exactly), so the float32 joints are the same numbers for n < 2^24.
    """
    n = y.shape[0]
    yd = y.to(torch.float64)
    n11 = yd.T @ yd  # exact integer counts
    c = torch.diagonal(n11)
    n10 = c.unsqueeze(1) - n11
    n01 = c.unsqueeze(0) - n11
    n00 = n - c.unsqueeze(1) - c.unsqueeze(0) + n11
    p1 = c.to(torch.float32) / n
    mi = torch.zeros(y.shape[1], y.shape[1], dtype=torch.float32, device=y.device)
    # the references' order (FF, FT, TF, TT), so the float32 sums are theirs to the last bit
    for cnt, pa, pb in ((n00, 1 - p1, 1 - p1), (n01, 1 - p1, p1), (n10, p1, 1 - p1), (n11, p1, p1)):
        jp = cnt.to(torch.float32) / n
        den = pa.unsqueeze(1) * pb.unsqueeze(0)
        term = jp * torch.log(jp / den)
        ok = (jp > 0) & (den > 0)
        mi = mi + torch.where(ok, term, torch.zeros_like(term))
    return mi


def tad_from_aurocs(auc: torch.Tensor, y: torch.Tensor, robust: bool, flags: list):
    """(tad, captured, per-attribute details) from the (A, d) AUROC matrix and labels (n, A).

    The differences and their sum are taken in the matrix's dtype (float32 for the InfoDiffusion
    variant, whose reference stores the AUROCs in a float32 tensor and sums them there)."""
    a, d = auc.shape
    mx, arg = auc.max(dim=1)
    nxt = auc.clone()
    nxt[torch.arange(a), arg] = 0.0
    diff = mx - nxt.max(dim=1).values
    mi = binary_mi_matrix(y)
    h = torch.diagonal(mi)
    off = (mi * (1 - torch.eye(a, dtype=mi.dtype, device=mi.device))).max(dim=1).values
    ent_red = 1.0 - (h - off) / h
    keep = (mx >= AUROC_THRESHOLD) & (ent_red <= ENT_RED_THRESHOLD)
    if robust:
        const = (h == 0) | torch.isnan(mx)
        if bool(const.any()):
            flags.append(f"attributes {torch.nonzero(const).flatten().tolist()} constant in the sample: skipped")
        keep = keep & ~const
    tad = float(diff[keep].sum())
    details = {"max_auroc": mx.tolist(), "runner_up": (mx - diff).tolist(), "ent_red_prop": ent_red.tolist(),
               "captured": keep.tolist()}
    return tad, int(keep.sum()), details


def _auroc_exact(z: torch.Tensor, y: torch.Tensor, robust: bool):
    auc, deg = ops.auroc_matrix(z.T, y.T, on_degenerate="nan" if robust else "raise")
    return torch.maximum(auc, 1.0 - auc)  # AUC(-z) = 1 - AUC(z) exactly


def tad(codes, attributes, variant: str = "infodiffusion", mode: str = "robust", n_splits: int = 5,
        seed: int = 0) -> Result:
    """TAD and attributes captured of ``codes`` (N, d) for binary ``attributes`` (N, A) (0/1 or bool).

    ``variant`` picks the reference (module docstring). ``mode="robust"`` skips and flags
    attributes constant in the evaluated sample (or fold); ``"parity"`` reproduces the reference
    behaviour there (the exact-AUROC variants raise like sklearn; the sweeps give NaN and the
    attribute is never captured). Scores: ``tad``, ``tad_attributes_captured`` (fold means for
    ``infodiffusion``, with ``tad_std``/``tad_attributes_captured_std``).
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    _checks.mode(mode)
    z = _checks.codes(codes)
    y = _checks.factors(attributes, "attributes", z.shape[0]).to(z.device)
    if not bool(((y == 0) | (y == 1)).all()):
        raise ValueError("attributes: expected binary 0/1 labels")
    y = y.to(torch.bool)
    robust = mode == "robust"
    flags: list = []
    if variant == "infodiffusion":
        from sklearn.model_selection import KFold
        from sklearn.preprocessing import StandardScaler

        n_splits = _checks.folds(n_splits, z.shape[0])
        zn = _checks.numpy(z)
        # the reference's StandardScaler keeps float32 latents in float32 (then torch.FloatTensor)
        zn = zn.astype(np.float32) if _checks.is_float32(codes) else zn
        tads, caps, folds = [], [], []
        for tr, _te in KFold(n_splits=n_splits, shuffle=True, random_state=seed).split(zn):
            ztr = StandardScaler().fit(zn[tr]).transform(zn[tr]).astype(np.float32)
            zt = torch.from_numpy(ztr).to(z.device)
            ytr = y[torch.from_numpy(tr).to(z.device)]
            # InfoDiffusion stores each AUROC in a float32 tensor (aurocs_all = torch.ones(...))
            t, c, det = tad_from_aurocs(_auroc_exact(zt, ytr, robust).to(torch.float32), ytr, robust, flags)
            tads.append(t)
            caps.append(c)
            folds.append(det)
        scores = {"tad": float(np.mean(tads)), "tad_attributes_captured": float(np.mean(caps)),
                  "tad_std": float(np.std(tads)), "tad_attributes_captured_std": float(np.std(caps))}
        return Result(scores, "tad", f"infodiffusion/{mode}", n_splits=n_splits, seed=seed,
                      num_points=int(z.shape[0]), fold_tad=tads, fold_captured=caps, folds=folds, flags=flags)
    if variant == "exact":
        auc = _auroc_exact(z, y, robust)
    else:
        step = 0.1 if variant == "disdiff" else 0.01
        auc = ops.auroc_grid(z.T.to(torch.float32), y.T, stepsize=step, min_range=0.2)
    t, c, det = tad_from_aurocs(auc, y, robust, flags)
    return Result({"tad": t, "tad_attributes_captured": float(c)}, "tad", f"{variant}/{mode}",
                  num_points=int(z.shape[0]), thresholds={"disdiff": 11, "nashae": 101}.get(variant),
                  auroc_matrix=auc.tolist(), flags=flags, **det)
