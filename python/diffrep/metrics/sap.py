"""SAP, separated attribute predictability (Kumar et al. 2018), as disentanglement_lib
``evaluation/metrics/sap_score.py`` (docs/metrics.md#sap)."""

from __future__ import annotations

import numpy as np
import torch

from . import _checks
from .results import Result

VAR_GUARD = 1e-12  # the reference's continuous-mode guard on var(code)


def sap_from_matrix(s) -> float:
    """mean_j (largest S_.j - second largest S_.j) for a (codes, factors) score matrix."""
    s = np.sort(np.asarray(s, dtype=np.float64), axis=0)
    return float(np.mean(s[-1, :] - s[-2, :]))


def continuous_score_matrix(ctr: torch.Tensor, ftr: torch.Tensor) -> np.ndarray:
    """S_ij = cov(mu_i, y_j)^2 / (var mu_i var y_j), ddof 1, 0 where var mu_i <= 1e-12
    (``_compute_score_matrix`` with ``continuous_factors=True``), vectorised."""
    x = ctr - ctr.mean(dim=0)
    y = ftr.to(torch.float64)
    y = y - y.mean(dim=0)
    n = x.shape[0]
    cov = x.T @ y / (n - 1)
    vx = (x * x).sum(dim=0) / (n - 1)
    vy = (y * y).sum(dim=0) / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = cov ** 2 / (vx.unsqueeze(1) * vy.unsqueeze(0))
    s = torch.where(vx.unsqueeze(1) > VAR_GUARD, s, torch.zeros_like(s))
    return _checks.numpy(s)


def _svc_accuracy(args):
    from sklearn.svm import LinearSVC

    xtr, ytr, xte, yte, dual, seed = args
    clf = LinearSVC(C=0.01, class_weight="balanced", dual=dual, random_state=seed)
    clf.fit(xtr[:, None], ytr)
    return float(np.mean(clf.predict(xte[:, None]) == yte))


def sap(codes_train, factors_train, codes_test, factors_test, continuous_factors: bool = False,
        mode: str = "robust", dual="auto", seed=0, n_jobs: int = 1) -> Result:
    """SAP score.

    Discrete mode (the study's ``sap_score.gin``): S_ij = plain test accuracy of
    ``LinearSVC(C=0.01, class_weight="balanced")`` fit on the single train feature mu_i to predict
    y_j. Continuous mode: the squared correlation matrix on the train split (deterministic; the test
    split is unused, as in the reference). SAP = mean_j of the gap between the two largest S_.j.

    ``dual`` is passed explicitly (True reproduces sklearn < 1.5, ``"auto"`` 1.5+) and recorded.
    ``seed`` seeds LinearSVC (robust default 0; ``None`` = unseeded like the reference).
    ``mode="robust"`` applies the 1e-12 variance guard in discrete mode too (S = 0, flagged), skips
    factors constant in the train split (flagged; S = 0); ``"parity"`` adds the key ``SAP_score``.
    Fewer than two codes raise ``ValueError``.
    """
    _checks.mode(mode)
    ctr, ftr, cte, fte = _checks.train_test(codes_train, factors_train, codes_test, factors_test)
    if ctr.shape[1] < 2:
        raise ValueError(f"codes_train: SAP needs at least two codes, got {ctr.shape[1]}")
    flags = []
    if continuous_factors:
        s = continuous_score_matrix(ctr, ftr)
    else:
        xtr, xte = _checks.numpy(ctr), _checks.numpy(cte)
        ytr, yte = _checks.numpy(ftr), _checks.numpy(fte)
        d, nf = xtr.shape[1], ytr.shape[1]
        s = np.zeros((d, nf))
        var = xtr.var(axis=0, ddof=1)
        jobs, where = [], []
        for i in range(d):
            if mode == "robust" and var[i] <= VAR_GUARD:
                flags.append(f"code {i}: variance <= 1e-12, S = 0")
                continue
            for j in range(nf):
                if mode == "robust" and np.unique(ytr[:, j]).size < 2:
                    continue
                jobs.append((xtr[:, i], ytr[:, j], xte[:, i], yte[:, j], dual, seed))
                where.append((i, j))
        if mode == "robust":
            const = [j for j in range(nf) if np.unique(ytr[:, j]).size < 2]
            if const:
                flags.append(f"factors {const} constant in the train split: S = 0")
        if n_jobs and n_jobs > 1:
            from joblib import Parallel, delayed

            accs = Parallel(n_jobs=n_jobs)(delayed(_svc_accuracy)(a) for a in jobs)
        else:
            accs = [_svc_accuracy(a) for a in jobs]
        for (i, j), a in zip(where, accs):
            s[i, j] = a
    score = sap_from_matrix(s)
    scores = {"sap": score}
    if mode == "parity":
        scores["SAP_score"] = score
    return Result(scores, "sap", f"disentanglement_lib/{'continuous' if continuous_factors else 'discrete'}/{mode}",
                  dual=None if continuous_factors else dual, seed=None if continuous_factors else seed,
                  num_train=int(ctr.shape[0]), num_test=int(cte.shape[0]), score_matrix=s.tolist(), flags=flags)
