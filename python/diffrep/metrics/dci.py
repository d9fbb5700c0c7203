"""DCI: disentanglement, completeness, informativeness (Eastwood & Williams 2018) as computed by
disentanglement_lib ``evaluation/metrics/dci.py`` (docs/metrics.md#dci).

Informativeness is reported as ACCURACIES (``dci_informativeness_train``/``_test``), as the
library does (its variables are named ``train_err``/``test_err``); the paper's prediction error
with lasso/random forests was never what the study computed.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from .._checks import non_negative_int
from . import _checks, gbt
from .results import Result

ESTIMATORS = ("fast", "sklearn")


def disentanglement_from_importance(r) -> float:
    """sum_i rho_i (1 - H_F(P_i)), P_i = (R_i + 1e-11) normalised, rho_i = row sum / total
    (uniform when R sums to 0): disentanglement_lib ``disentanglement``."""
    r = np.asarray(r, dtype=np.float64)
    p = r + 1e-11
    p = p / p.sum(axis=1, keepdims=True)
    per = 1.0 - (-(p * np.log(p)).sum(axis=1) / np.log(r.shape[1])) if r.shape[1] > 1 else np.ones(r.shape[0])
    w = np.ones_like(r) if r.sum() == 0 else r
    return float((per * w.sum(axis=1) / w.sum()).sum())


def completeness_from_importance(r) -> float:
    """sum_j w_j (1 - H_d(P_.j)) with entropies over codes in base d: disentanglement_lib
    ``completeness``."""
    return disentanglement_from_importance(np.asarray(r, dtype=np.float64).T)


def _sklearn_gbt(xtr, ytr, xte, seed):
    from sklearn.ensemble import GradientBoostingClassifier

    model = GradientBoostingClassifier(random_state=seed).fit(xtr, ytr)
    return np.abs(model.feature_importances_), model.predict(xtr), model.predict(xte)


def fit_factors(xtr: torch.Tensor, ytr: torch.Tensor, xte: torch.Tensor, estimator: str = "fast",
                seed=None, n_jobs: int = 2, max_bins: int = 256):
    """Per factor: importances (d, F) and train/test predictions, fitted in parallel.

    ``estimator="sklearn"`` is ``GradientBoostingClassifier()`` with all defaults (``seed`` goes
    to its ``random_state``; None = unseeded, as the reference); ``"fast"`` is
    :func:`diffrep.metrics.gbt.fit_predict` (tie-breaking seeded with ``seed``, 0 when None). Factors with one class in the train split get a
    zero importance column and constant predictions (sklearn would raise).
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
    _checks.pair(xtr, ytr, "xtr", "ytr")
    if _checks.codes(xte, "xte").shape[1] != xtr.shape[1]:
        raise ValueError(f"xtr has {xtr.shape[1]} codes but xte has {xte.shape[1]}")
    if seed is not None:
        non_negative_int(seed, "seed")
    gbt.check_max_bins(max_bins)
    if n_jobs == -1:  # joblib's spelling of "every core"
        n_jobs = os.cpu_count() or 1
    elif isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs < 1:
        raise ValueError(f"n_jobs must be an int >= 1, or -1 for every core; got {n_jobs!r}")
    nf = ytr.shape[1]
    xtr_np, xte_np, ytr_np = _checks.numpy(xtr), _checks.numpy(xte), _checks.numpy(ytr)

    def one(j):
        if np.unique(ytr_np[:, j]).size < 2:
            c = ytr_np[0, j]
            return np.zeros(xtr.shape[1]), np.full(len(xtr_np), c), np.full(len(xte_np), c)
        if estimator == "sklearn":
            return _sklearn_gbt(xtr_np, ytr_np[:, j], xte_np, seed)
        res = gbt.fit_predict(xtr, ytr[:, j], [xte], max_bins=max_bins, seed=0 if seed is None else seed)
        return (_checks.numpy(res.importances), _checks.numpy(res.predictions[0]),
                _checks.numpy(res.predictions[1]))

    if n_jobs > 1 and nf > 1:
        if estimator == "sklearn":
            from joblib import Parallel, delayed

            out = Parallel(n_jobs=n_jobs)(delayed(one)(j) for j in range(nf))
        else:
            with ThreadPoolExecutor(n_jobs) as ex:
                out = list(ex.map(one, range(nf)))
    else:
        out = [one(j) for j in range(nf)]
    imp = np.stack([o[0] for o in out], axis=1)
    return imp, [o[1] for o in out], [o[2] for o in out]


def dci(codes_train, factors_train, codes_test, factors_test, estimator: str = "fast", mode: str = "robust",
        seed=None, n_jobs: int = 2, max_bins: int = 256) -> Result:
    """DCI of codes for integer factors, from per-factor gradient-boosted-tree importances.

    Reference: disentanglement_lib ``_compute_dci``: R[:, j] = |feature_importances_| of
    ``GradientBoostingClassifier()`` fit on (codes_train, factor j); informativeness = mean train
    and test accuracies; D and C from R as in :func:`disentanglement_from_importance`.

    ``estimator``: ``"sklearn"`` (parity: the reference classifier, factors fitted in parallel
    with joblib; unseeded unless ``seed`` is given, so D/C/I vary at ~1e-3 through sklearn's random
    tie-breaking) or ``"fast"`` (default: the deterministic PyTorch GBT of
    :mod:`diffrep.metrics.gbt`, same algorithm; agrees with sklearn within that tie noise when
    codes have <= ``max_bins`` distinct values, slightly more otherwise). The result records which.

    ``mode="robust"`` flags factors constant in the train split (zero importance column,
    "no information"; constant prediction) and all-zero importance columns;
    ``mode="parity"`` also returns the reference keys ``disentanglement``, ``completeness``,
    ``informativeness_train``, ``informativeness_test``; a constant factor raises, as sklearn does.
    """
    _checks.mode(mode)
    ctr, ftr, cte, fte = _checks.train_test(codes_train, factors_train, codes_test, factors_test)
    flags = []
    consts = [j for j in range(ftr.shape[1]) if torch.unique(ftr[:, j]).numel() < 2]
    if consts:
        if mode == "parity":
            raise ValueError(f"factors_train: factors {consts} hold a single class (sklearn raises)")
        flags.append(f"factors {consts} constant in the train split: zero importance column")
    imp, ptr, pte = fit_factors(ctr, ftr, cte, estimator, seed, n_jobs, max_bins)
    zero_cols = [j for j in range(imp.shape[1]) if imp[:, j].sum() == 0 and j not in consts]
    if zero_cols:
        flags.append(f"factors {zero_cols}: all-zero importances (no informative split)")
    ytr, yte = _checks.numpy(ftr), _checks.numpy(fte)
    acc_tr = [float(np.mean(ptr[j] == ytr[:, j])) for j in range(ytr.shape[1])]
    acc_te = [float(np.mean(pte[j] == yte[:, j])) for j in range(yte.shape[1])]
    scores = {"dci_disentanglement": disentanglement_from_importance(imp),
              "dci_completeness": completeness_from_importance(imp),
              "dci_informativeness_train": float(np.mean(acc_tr)),
              "dci_informativeness_test": float(np.mean(acc_te))}
    if mode == "parity":
        scores.update({k[4:]: v for k, v in list(scores.items())})
    return Result(scores, "dci", f"disentanglement_lib/{mode}", estimator=estimator, seed=seed,
                  seeded=seed is not None or estimator == "fast", max_bins=max_bins if estimator == "fast" else None,
                  num_train=int(ctr.shape[0]), num_test=int(cte.shape[0]), importance_matrix=imp.tolist(),
                  accuracy_train=acc_tr, accuracy_test=acc_te, flags=flags)
