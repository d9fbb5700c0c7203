"""Modularity and explicitness (Ridgeway & Mozer 2018) as in disentanglement_lib
``evaluation/metrics/modularity_explicitness.py`` (docs/metrics.md#modularity-and-explicitness)."""

from __future__ import annotations

import numpy as np
import torch

from ..ops import metrics as ops
from . import _checks
from .linear import fit_logistic
from .mig import bin_dtype, discretised_mi
from .results import Result


def modularity_from_mi(mi) -> float:
    """disentanglement_lib ``modularity(mutual_information)`` on a (codes, factors) MI matrix.

    delta_i = (sum_j m_ij^2 - max_j m_ij^2) / (max_j m_ij^2 (F - 1)), modularity_i = 1 - delta_i,
    0 for a code with max m_ij^2 = 0; the mean is over ALL codes (dead codes pull it down).
    With F = 1 the reference divides by zero; here such codes score 1 (nothing to confuse).
    """
    m = torch.as_tensor(np.asarray(mi) if not isinstance(mi, torch.Tensor) else mi, dtype=torch.float64)
    sq = m ** 2
    mx = sq.max(dim=1).values
    f = m.shape[1]
    if f == 1:
        per = (mx > 0).to(torch.float64)
    else:
        delta = (sq.sum(dim=1) - mx) / (mx * (f - 1))
        per = torch.where(mx == 0, torch.zeros_like(mx), 1.0 - delta)
    return float(per.mean())


def _standardize(xtr: np.ndarray, xte: np.ndarray, robust: bool):
    mean = xtr.mean(axis=0)
    std = xtr.std(axis=0)
    if robust:
        std = np.where(std == 0, 1.0, std)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (xtr - mean) / std, (xte - mean) / std


def logistic_regression(solver: str, random_state=None):
    """The explicitness / BetaVAE classifier of the chosen sklearn generation.

    ``"lbfgs"``: ``LogisticRegression()`` defaults since sklearn 0.22 (L2, C=1, lbfgs, multinomial,
    100 iterations). ``"liblinear-ovr"``: the 0.20/0.21 default (liblinear, one-vs-rest), built with
    ``OneVsRestClassifier`` because ``multi_class`` is deprecated (its probabilities are the
    normalised per-class sigmoids, as the old ``predict_proba`` for OvR).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    if solver == "lbfgs":
        return LogisticRegression(random_state=random_state)
    if solver == "liblinear-ovr":
        return OneVsRestClassifier(LogisticRegression(solver="liblinear", random_state=random_state))
    raise ValueError(f"solver must be 'lbfgs' or 'liblinear-ovr', got {solver!r}")


def _macro_auroc(onehot: np.ndarray, proba: np.ndarray):
    """Macro AUROC over the classes present on both sides (robust), via the ranks kernel; None
    when no class is (a split holding one class has no one-vs-rest AUROC)."""
    present = (onehot.sum(0) > 0) & (onehot.sum(0) < onehot.shape[0])
    if not present.any():
        return None, np.nonzero(~present)[0].tolist()
    auc, _ = ops.auroc_matrix(torch.from_numpy(proba[:, present].T.copy()),
                              torch.from_numpy(onehot[:, present].T.copy()))
    return float(torch.diagonal(auc).mean()), np.nonzero(~present)[0].tolist()


def _fit_predict(xtr, xte, ytr, fitted, estimator, solver, flags) -> dict:
    """factor -> (train probabilities, test probabilities, classes) from the chosen estimator."""
    if not fitted:
        return {}
    if estimator == "fast":
        model = fit_logistic(xtr, [ytr[:, j] for j in fitted])
        for j, ok in zip(fitted, model.converged):
            if not ok:
                flags.append(f"factor {j}: fast L-BFGS stopped at {model.iterations} iterations before tolerance")
        ptr, pte = model.predict_proba(xtr), model.predict_proba(xte)
        return {j: (ptr[i], pte[i], model.classes[i]) for i, j in enumerate(fitted)}
    out = {}
    for j in fitted:
        clf = logistic_regression(solver).fit(xtr, ytr[:, j])
        out[j] = (clf.predict_proba(xtr), clf.predict_proba(xte), clf.classes_)
    return out


def modularity_explicitness(codes_train, factors_train, codes_test, factors_test, num_bins: int = 20,
                            mode: str = "robust", solver: str = "lbfgs", estimator: str | None = None) -> Result:
    """Modularity (train codes, histogram MI) and explicitness (per-factor LR macro AUROC).

    Reference: disentanglement_lib ``compute_modularity_explicitness``: codes standardised with the
    train mean/std (ddof 0), one ``LogisticRegression`` per factor (``solver`` picks the sklearn
    generation, see :func:`logistic_regression`), ``roc_auc_score`` of ``MultiLabelBinarizer``
    one-hot labels against ``predict_proba`` (macro), mean over factors.

    Modes:
      * ``"robust"``: a constant code is divided by 1 instead of 0 (flagged); the one-hot columns
        come from the classifier's classes so train and test align; classes absent from a split
        are left out of that split's macro AUROC (flagged); a factor constant in the train split
        gets no classifier and is left out of explicitness (flagged), as is a factor with one class
        in a split (flagged); with no factor left, that split's explicitness is 0.5, chance (flagged).
      * ``"parity"``: the reference's arithmetic (a constant code gives NaN features, on which
        sklearn raises), the binarizer refit on each split, and the reference keys
        ``modularity_score``, ``explicitness_score_train``, ``explicitness_score_test``.

    ``estimator`` (recorded in the result): ``"sklearn"`` fits the reference classifier per factor;
    ``"fast"`` fits every factor's multinomial LR at once with the batched L-BFGS of
    :mod:`diffrep.metrics.linear` (same objective, same stopping rule: gradient 1e-4 or 100
    iterations; only with ``solver="lbfgs"``). Default: ``"fast"`` in robust
    mode, ``"sklearn"`` in parity mode.
    """
    _checks.mode(mode)
    estimator = _checks.lr_estimator(estimator, mode)
    if estimator == "fast" and solver != "lbfgs":
        raise ValueError(f"estimator='fast' fits the lbfgs (multinomial) model only; got solver={solver!r}")
    ctr, ftr, cte, fte = _checks.train_test(codes_train, factors_train, codes_test, factors_test)
    m, _ = discretised_mi(ctr.to(bin_dtype(codes_train)), ftr, num_bins)  # float32 edges for float32 codes
    mod = modularity_from_mi(m)
    flags = []
    robust = mode == "robust"
    const = _checks.constant_codes(ctr)
    if const:
        flags.append(f"constant codes {const}" + (" standardised with std 1" if robust else ""))
    xtr, xte = _standardize(_checks.numpy(ctr), _checks.numpy(cte), robust)
    ytr, yte = _checks.numpy(ftr), _checks.numpy(fte)
    train_s, test_s = [], []
    fitted = [j for j in range(ytr.shape[1]) if not (robust and np.unique(ytr[:, j]).size < 2)]
    for j in sorted(set(range(ytr.shape[1])) - set(fitted)):
        flags.append(f"factor {j} constant in the train split: left out of explicitness")
    probas = _fit_predict(xtr, xte, ytr, fitted, estimator, solver, flags)
    for j in fitted:
        ptr, pte, classes = probas[j]
        if robust:
            for name, y, p, acc in (("train", ytr[:, j], ptr, train_s), ("test", yte[:, j], pte, test_s)):
                onehot = (y[:, None] == classes[None, :]).astype(np.int64)
                score, missing = _macro_auroc(onehot, p)
                if score is None:
                    flags.append(f"factor {j}: one class in the {name} split, left out of explicitness_{name}")
                    continue
                if missing:
                    flags.append(f"factor {j}: classes {classes[missing].tolist()} absent from {name} split")
                acc.append(score)
        else:
            from sklearn.metrics import roc_auc_score
            from sklearn.preprocessing import MultiLabelBinarizer

            mlb = MultiLabelBinarizer()
            train_s.append(roc_auc_score(mlb.fit_transform(np.expand_dims(ytr[:, j], 1)), ptr))
            test_s.append(roc_auc_score(mlb.fit_transform(np.expand_dims(yte[:, j], 1)), pte))
    # robust: with no factor left to score, chance (0.5, what constant codes score) where sklearn raises
    empty = 0.5 if robust else float("nan")
    for name, acc in (("train", train_s), ("test", test_s)):
        if robust and not acc:
            flags.append(f"no factor scorable in the {name} split: explicitness_{name} = 0.5 (chance)")
    scores = {"modularity": mod,
              "explicitness_train": float(np.mean(train_s)) if train_s else empty,
              "explicitness_test": float(np.mean(test_s)) if test_s else empty}
    if not robust:
        scores.update(modularity_score=scores["modularity"], explicitness_score_train=scores["explicitness_train"],
                      explicitness_score_test=scores["explicitness_test"])
    return Result(scores, "modularity_explicitness", f"disentanglement_lib/{mode}", solver=solver,
                  estimator=estimator, num_bins=num_bins, num_train=int(ctr.shape[0]), num_test=int(cte.shape[0]), flags=flags)
