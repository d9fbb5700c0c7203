"""Latent classification AUROC: 5-fold logistic regression, as isjakewong/InfoDiffusion
``eval_disentanglement.py`` ``PredMetric("Linear")`` (the ParamReL/SepDiff tables; docs/metrics.md#latent-auroc)."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ..ops import metrics as ops
from . import _checks
from .results import Result


def latent_auroc(codes, attributes, n_splits: int = 5, seed: int = 0, mode: str = "robust") -> Result:
    """Mean over attributes of the test AUROC of ``LogisticRegression()`` (all defaults) per fold.

    Folds: ``KFold(n_splits, shuffle=True, random_state=seed)``; per fold ``StandardScaler`` fit on
    the train split and applied to both; score = ``roc_auc_score(y_test, predict_proba[:, 1])``
    (computed with the exact ranks kernel, equal to sklearn). Reports the mean and std (ddof 0) over
    folds (``latent_auroc``, ``latent_auroc_std``) and per-attribute means in ``meta``.

    ``mode="robust"``: an attribute with one class in a fold's train or test split is left out of
    that fold's mean (flagged); with no attribute left in any fold the score is 0.5 (chance, std 0,
    flagged) where sklearn raises; lbfgs convergence warnings are recorded. ``"parity"``: such a fold
    raises ``ValueError`` as sklearn does.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold
    from sklearn.preprocessing import StandardScaler

    _checks.mode(mode)
    z = _checks.numpy(_checks.codes(codes))
    # float32 latents are standardised in float32, as the reference's StandardScaler keeps them
    z = z.astype(np.float32) if _checks.is_float32(codes) else z
    y = _checks.numpy(_checks.factors(attributes, "attributes", z.shape[0]))
    if not np.isin(y, (0, 1)).all():
        raise ValueError("attributes: expected binary 0/1 labels")
    n_splits = _checks.folds(n_splits, z.shape[0])
    flags, fold_means, per_attr = [], [], [[] for _ in range(y.shape[1])]
    for f, (tr, te) in enumerate(KFold(n_splits=n_splits, shuffle=True, random_state=seed).split(z)):
        sc = StandardScaler().fit(z[tr])
        xtr, xte = sc.transform(z[tr]), sc.transform(z[te])
        probs, used = [], []
        for a in range(y.shape[1]):
            if np.unique(y[tr, a]).size < 2 or np.unique(y[te, a]).size < 2:
                if mode == "parity":
                    raise ValueError(f"attributes: attribute {a} has a single class in fold {f}")
                flags.append(f"fold {f}: attribute {a} single-class, left out")
                continue
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                clf = LogisticRegression().fit(xtr, y[tr, a])
            if any("converge" in str(m.message).lower() for m in w):
                flags.append(f"fold {f}: attribute {a}: lbfgs did not converge in 100 iterations")
            probs.append(clf.predict_proba(xte)[:, 1])
            used.append(a)
        if not used:
            continue
        auc, _ = ops.auroc_matrix(torch.from_numpy(np.stack(probs)), torch.from_numpy(y[te][:, used].T.copy()))
        vals = torch.diagonal(auc).tolist()
        fold_means.append(float(np.mean(vals)))
        for a, v in zip(used, vals):
            per_attr[a].append(v)
    if not fold_means:  # sklearn raises here; robust scores chance, as for a code that carries nothing
        flags.append("no attribute has both classes in any fold: latent_auroc = 0.5 (chance)")
    return Result({"latent_auroc": float(np.mean(fold_means)) if fold_means else 0.5,
                   "latent_auroc_std": float(np.std(fold_means)) if fold_means else 0.0},
                  "latent_auroc", f"infodiffusion-PredMetric-Linear/{mode}", n_splits=n_splits, seed=seed,
                  num_points=int(z.shape[0]), fold_means=fold_means,
                  per_attribute_mean=[float(np.mean(v)) if v else None for v in per_attr], flags=flags)
