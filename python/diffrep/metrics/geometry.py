"""SAMI's representation-geometry analyses (docs/methods/sami.md#analyses)."""

from __future__ import annotations

import numpy as np
import torch

from .._checks import non_negative_float
from ..ops import metrics as ops
from . import _checks
from .results import Result


def straightness(trajectories, eps: float = 0.0) -> Result:
    """Discrete straightness of trajectories (T frames, d) or (B, T, d) (Henaff et al. 2019; SAMI Sec. 3).

    d_t = f_{t+1} - f_t; s_t = d_t . d_{t+1} / (|d_t| |d_{t+1}|): 1 for collinear equally directed
    steps, -1 for back-and-forth. ``straightness`` is the mean of s_t per trajectory, then across
    trajectories (the paper leaves the averaging unspecified: this is the choice);
    ``curvature_deg`` is the mean angle arccos(s_t) in degrees. Zero-length steps (repeated
    frames) make s_t undefined: they are left out and counted in ``meta['zero_steps']``.
    """
    eps = non_negative_float(eps, "eps")  # a negative eps let zero-length steps in as 0/0
    t = ops._float(trajectories, "trajectories", 3 if getattr(trajectories, "ndim", 0) == 3 else 2).to(torch.float64)
    if t.dim() == 2:
        t = t.unsqueeze(0)
    if t.shape[1] < 3:
        raise ValueError(f"trajectories: need at least 3 frames, got {t.shape[1]}")
    d = t[:, 1:] - t[:, :-1]
    nrm = d.norm(dim=2)
    num = (d[:, :-1] * d[:, 1:]).sum(dim=2)
    den = nrm[:, :-1] * nrm[:, 1:]
    ok = den > eps
    s = torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(den)).clamp(-1, 1)
    per = (s * ok).sum(dim=1) / ok.sum(dim=1).clamp_min(1)
    ang = torch.rad2deg(torch.arccos(s))
    per_ang = (ang * ok).sum(dim=1) / ok.sum(dim=1).clamp_min(1)
    valid = ok.any(dim=1)
    return Result({"straightness": float(per[valid].mean()) if bool(valid.any()) else float("nan"),
                   "curvature_deg": float(per_ang[valid].mean()) if bool(valid.any()) else float("nan")},
                  "straightness", "henaff2019-cosine", num_trajectories=int(t.shape[0]), num_frames=int(t.shape[1]),
                  per_trajectory=per.tolist(), zero_steps=int((~ok).sum()))


def participation_ratio(weights) -> Result:
    """Normalised participation ratio PR = ||w||_2^2 / ||w||_4^2 of weight vectors (d,) or (A, d).

    1 when a single axis carries the weight, sqrt(d) when all axes carry it equally (SAMI Fig. 3H
    endpoints; docs/methods/sami.md#analyses fixes this definition). Reports the mean over rows; an all-zero row is
    an error (PR undefined).
    """
    w = ops._float(weights, "weights", 2 if getattr(weights, "ndim", 1) == 2 else 1).to(torch.float64)
    if w.dim() == 1:
        w = w.unsqueeze(0)
    l2 = (w ** 2).sum(dim=1)
    l4 = torch.sqrt((w ** 4).sum(dim=1))
    if bool((l2 == 0).any()):
        raise ValueError("weights: an all-zero weight vector has no participation ratio")
    pr = l2 / l4
    return Result({"participation_ratio": float(pr.mean())}, "participation_ratio", "l2sq_over_l4sq",
                  per_row=pr.tolist(), dim=int(w.shape[1]))


def lr_participation_ratio(codes, attributes) -> Result:
    """SAMI Fig. 3H: z-score each latent, fit ``LogisticRegression()`` (L2, C=1, lbfgs) per binary
    attribute, and report the mean normalised participation ratio of the weight vectors (the
    standardisation and regulariser are diffrep's choices, docs/methods/sami.md#analyses)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    z = _checks.numpy(_checks.codes(codes))
    y = _checks.numpy(_checks.factors(attributes, "attributes", z.shape[0]))
    if not np.isin(y, (0, 1)).all():  # a multi-class column silently gave the first class's weights
        raise ValueError(f"attributes must be binary (0/1), got values {np.unique(y)[:8].tolist()}")
    x = StandardScaler().fit_transform(z)
    ws = [LogisticRegression().fit(x, y[:, a]).coef_[0] for a in range(y.shape[1]) if np.unique(y[:, a]).size > 1]
    return participation_ratio(np.stack(ws))
