"""Downstream tasks and statistical efficiency (disentanglement_lib
``evaluation/metrics/downstream_task.py``; Locatello et al. 2019 Sec. 7; docs/metrics.md#downstream-tasks)."""

from __future__ import annotations

import numpy as np

from .._checks import positive_int
from . import _checks
from .dci import fit_factors
from .results import Result

SIZES = (10, 100, 1000, 10000)


def _lr_cv_predict(xtr, ytr, xte):
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import KFold

    m = LogisticRegressionCV(Cs=10, cv=KFold(n_splits=5)).fit(xtr, ytr)
    return m.predict(xtr), m.predict(xte)


def size_scores(ctr, ftr, cte, fte, size, predictor: str, seed, n_jobs: int, flags: list) -> dict:
    """Keys ``"{size}:mean_test_accuracy"`` etc. for one train size (one model per factor, unscaled codes).

    Robust choice: a factor whose train set has one class is predicted as that class (GBT) and
    flagged; a factor whose LR-CV fit fails is left out of the means and flagged.
    """
    ytr, yte = _checks.numpy(ftr), _checks.numpy(fte)
    nf = ytr.shape[1]
    tr_acc, te_acc = [None] * nf, [None] * nf
    if predictor in ("fast", "sklearn"):
        _, ptr, pte = fit_factors(ctr, ftr, cte, predictor, seed, n_jobs)
        for j in range(nf):
            if np.unique(ytr[:, j]).size < 2:
                flags.append(f"size {size}: factor {j} has one class in the train set")
            tr_acc[j] = float(np.mean(ptr[j] == ytr[:, j]))
            te_acc[j] = float(np.mean(pte[j] == yte[:, j]))
    elif predictor == "logistic_regression_cv":
        xtr, xte = _checks.numpy(ctr), _checks.numpy(cte)
        for j in range(nf):
            try:
                ptr, pte = _lr_cv_predict(xtr, ytr[:, j], xte)
            except ValueError as e:
                flags.append(f"size {size}: factor {j}: LogisticRegressionCV failed ({e}); left out")
                continue
            tr_acc[j] = float(np.mean(ptr == ytr[:, j]))
            te_acc[j] = float(np.mean(pte == yte[:, j]))
    else:
        raise ValueError(f"predictor must be 'fast', 'sklearn' or 'logistic_regression_cv', got {predictor!r}")
    out = {}
    for name, acc in (("train", tr_acc), ("test", te_acc)):
        ok = [a for a in acc if a is not None]
        out[f"{size}:mean_{name}_accuracy"] = float(np.mean(ok)) if ok else float("nan")
        out[f"{size}:min_{name}_accuracy"] = float(np.min(ok)) if ok else float("nan")
        for j, a in enumerate(acc):
            if a is not None:
                out[f"{size}:{name}_accuracy_factor_{j}"] = a
    return out


def check_sizes(sizes) -> tuple[int, ...]:
    """The train sizes: a non-empty sequence of positive ints (int() truncated 2.5 to 2 and read True
    as 1; None or a str failed with "not iterable" / "invalid literal for int()")."""
    if sizes is None or isinstance(sizes, (str, bytes, int, float)):
        raise ValueError(f"sizes must be a non-empty sequence of positive ints, got {sizes!r}")
    try:
        sizes = tuple(sizes)
    except TypeError:
        raise ValueError(f"sizes must be a non-empty sequence of positive ints, got {sizes!r}") from None
    if not sizes:
        raise ValueError(f"sizes must be a non-empty sequence of positive ints, got {sizes!r}")
    return tuple(positive_int(s, f"sizes[{i}]") for i, s in enumerate(sizes))


def efficiency(scores: dict, sizes=SIZES) -> dict:
    """Statistical efficiency Acc100/Acc and Acc1000/Acc, Acc = the largest size's mean test accuracy."""
    full = scores.get(f"{max(sizes)}:mean_test_accuracy", float("nan"))
    out = {}
    for s in (100, 1000):
        if s in sizes and s != max(sizes):
            out[f"efficiency_{s}"] = scores[f"{s}:mean_test_accuracy"] / full if full else float("nan")
    return out


def downstream_efficiency(codes_train, factors_train, codes_test, factors_test, sizes=SIZES,
                          predictor: str = "fast", seed=None, n_jobs: int = 2) -> Result:
    """Array-level downstream task: for each size s, fit on the FIRST s training rows, test on the
    whole test set; plus ``efficiency_100`` = Acc100/Acc and ``efficiency_1000`` = Acc1000/Acc.

    disentanglement_lib samples a fresh train AND test set per size (RNG-stream parity is in
    :func:`diffrep.metrics.protocols.downstream_task_score`); with fixed arrays this function uses
    nested prefixes of one train set and one test set (the choice for array inputs). ``predictor``:
    ``"fast"`` (PyTorch GBT), ``"sklearn"`` (GradientBoostingClassifier, parity) or
    ``"logistic_regression_cv"`` (``LogisticRegressionCV(Cs=10, cv=KFold(5))``).
    """
    ctr, ftr, cte, fte = _checks.train_test(codes_train, factors_train, codes_test, factors_test)
    sizes = check_sizes(sizes)
    if max(sizes) > ctr.shape[0]:
        raise ValueError(f"codes_train: {ctr.shape[0]} rows is fewer than the largest size {max(sizes)}")
    flags: list = []
    scores: dict = {}
    for s in sizes:
        scores.update(size_scores(ctr[:s], ftr[:s], cte, fte, s, predictor, seed, n_jobs, flags))
    scores.update(efficiency(scores, sizes))
    return Result(scores, "downstream", f"disentanglement_lib-prefix/{predictor}", sizes=list(sizes),
                  num_test=int(cte.shape[0]), seed=seed, flags=flags)
