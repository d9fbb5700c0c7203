"""InfoMEC: InfoM, InfoC, InfoE (Hsu et al. 2023), as the standalone
kylehkhsu/latent_quantization ``disentangle/metrics/infomec.py`` (docs/metrics.md#infomec)."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from .._checks import non_negative_int, positive_int
from ..ops import metrics as ops
from . import _checks
from .linear import fit_logistic
from .results import Result


def mutual_info_classif_like(z: np.ndarray, s: np.ndarray, seed=None, k: int = 10) -> np.ndarray:
    """NMI numerators: ``mutual_info_classif(z[:, [j]], s[:, i], discrete_features=False,
    n_neighbors=k, random_state=seed)`` for every (latent j, source i), as a (d, F) array.

    Reproduces sklearn's preprocessing per column: ``scale(with_mean=False)`` (x / std, ddof 0),
    then ``1e-10 * max(1, mean|x|) * N(0, 1)`` noise from ``RandomState(seed)`` -- a fresh
    RandomState per call in sklearn, so the same noise vector for every source -- then the Ross
    estimator of :func:`diffrep.ops.metrics.knn_mi_cd`. ``seed=None`` draws from an unseeded
    RandomState, as the reference does.
    """
    n, d = z.shape
    cols = []
    for j in range(d):
        x = z[:, j].astype(np.float64).copy()
        std = np.nanstd(x)
        if std != 0:
            x /= std
        rng = np.random.RandomState(seed)
        x += 1e-10 * np.maximum(1, np.mean(np.abs(x))) * rng.standard_normal(size=n)
        cols.append(x)
    lat = torch.from_numpy(np.stack(cols))
    return _checks.numpy(ops.knn_mi_cd(lat, torch.from_numpy(s.T.copy()), k))


def _infoe(z_in: np.ndarray, s: np.ndarray, discrete_latents: bool, mode: str, estimator: str, flags: list):
    from sklearn.metrics import log_loss
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if discrete_latents:
        x = OneHotEncoder(sparse_output=False).fit_transform(z_in)
    else:
        x = StandardScaler().fit_transform(z_in)
    sources = []
    for i in range(s.shape[1]):
        if np.unique(s[:, i]).size < 2:
            if mode == "parity":
                raise ValueError(f"factors: source {i} holds a single class (sklearn raises)")
            flags.append(f"source {i} constant: left out of InfoE")
        else:
            sources.append(i)
    if not sources:  # robust only (parity raised above): nothing to explain, as sklearn cannot fit one class
        flags.append("no source with two classes: InfoE = 0")
        return 0.0
    if estimator == "fast":
        return _infoe_fast(x, s, sources, flags)
    vals = []
    for i in sources:
        y = s[:, i]
        k = np.unique(y).size
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            model = _unpenalized_lr()
            model.fit(x, y)
            ce_z = log_loss(y, model.predict_proba(x), labels=model.classes_)
            if mode == "parity":
                m0 = _unpenalized_lr().fit(np.zeros((len(y), 1)), y)
                ce_0 = log_loss(y, m0.predict_proba(np.zeros((len(y), 1))), labels=m0.classes_)
            else:
                ce_0 = float(np.log(k))
        if any("converge" in str(x_.message).lower() for x_ in w):
            flags.append(f"source {i}: lbfgs stopped at max_iter=100 (InfoE is where it stopped)")
        vals.append((ce_0 - ce_z) / ce_0)
    return float(np.mean(vals))


def _infoe_fast(x: np.ndarray, s: np.ndarray, sources: list, flags: list):
    """InfoE with every source's unpenalised balanced LR fitted at once (:mod:`.linear`);
    CE_0 = log K (the balanced intercept-only optimum is uniform)."""
    from sklearn.metrics import log_loss

    model = fit_logistic(x, [s[:, i] for i in sources], C=np.inf, class_weight="balanced")
    vals = []
    for j, (i, p) in enumerate(zip(sources, model.predict_proba(x))):
        if not model.converged[j]:
            flags.append(f"source {i}: fast L-BFGS stopped at {model.iterations} iterations "
                         "(InfoE is where it stopped)")
        k = len(model.classes[j])
        ce_z = log_loss(s[:, i], p, labels=model.classes[j])
        vals.append((np.log(k) - ce_z) / np.log(k))
    return float(np.mean(vals))


def _unpenalized_lr():
    from sklearn.linear_model import LogisticRegression

    # penalty=None: sklearn >= 1.8 spells it C=inf (``penalty`` is deprecated there)
    try:
        return LogisticRegression(C=np.inf, class_weight="balanced", solver="lbfgs", max_iter=100, tol=1e-4)
    except TypeError:  # pragma: no cover - very old sklearn
        return LogisticRegression(penalty="none", class_weight="balanced", solver="lbfgs", max_iter=100, tol=1e-4)


def infomec(codes, factors, discrete_latents: bool = False, mode: str = "robust", seed=0,
            n_neighbors: int = 10, estimator: str | None = None) -> Result:
    """InfoM (modularity), InfoC (compactness), InfoE (explicitness) of ``codes`` for ``factors``.

    Reference (``latent_quantization-standalone``): sources label-encoded; NMI_ij = I(s_i; z_j) /
    H(s_i) with the kNN estimator (k = 10) on StandardScaler'd latents (per latent, in the
    latents' dtype: float32 latents are standardised in float32 as the reference does), or the plug-in MI for
    discrete latents; active latents have range > max range / 20 (continuous) or > 0 (discrete);
    InfoM = (mean_{active j} max_i NMI_ij / sum_i NMI_ij - 1/F) / (1 - 1/F);
    InfoC = (mean_i max_{active j} NMI_ij / sum_{active j} NMI_ij - 1/d_act) / (1 - 1/d_act);
    InfoE = mean_i (CE_0 - CE_z) / CE_0 with unpenalised, class-balanced multinomial LR (lbfgs,
    100 iterations) on ALL latents, cross-entropy on the TRAINING data, CE_0 = log K.

    Modes:
      * ``"robust"`` (default): the kNN tie-breaking noise comes from ``RandomState(seed)`` (seed 0
        by default; recorded); active latents whose NMI column is all zero are left out of InfoM
        (flagged), and InfoM = 0 when no active latent is left (flagged); InfoC is NaN and flagged
        when d_act <= 1, InfoM likewise with a single source (both 0/0 in the reference); with no
        active latent InfoM = InfoC = 0 (flagged); CE_0 = log K exactly; constant sources are left
        out (flagged), and InfoE = 0 when none is left (flagged; sklearn cannot fit one class).
      * ``"parity"``: unseeded noise (``seed`` is ignored, as the reference passes none), the
        reference's 0/0 NaNs, and CE_0 from the LR fit on a zero input. Run-to-run spread is the
        noise's (1e-6 on continuous latents; larger for heavily tied latents).

    ``estimator`` for InfoE (recorded in the result): ``"sklearn"`` (the reference's
    ``LogisticRegression``, one per source) or ``"fast"`` (all sources at once with the batched
    L-BFGS of :mod:`diffrep.metrics.linear`, same stopping rule: gradient 1e-4 or 100 iterations; the
    unpenalised problem has no optimum on separable data, where both report where they stopped,
    flagged). Default: ``"fast"`` in robust mode, ``"sklearn"`` in parity mode.
    """
    _checks.mode(mode)
    estimator = _checks.lr_estimator(estimator, mode)
    positive_int(n_neighbors, "n_neighbors")  # the kNN estimator's message said "k"
    if seed is not None:
        non_negative_int(seed, "seed")
    if not isinstance(discrete_latents, (bool, np.bool_)):
        raise TypeError(f"discrete_latents must be True or False, got {discrete_latents!r}")
    c, f = _checks.pair(codes, factors)
    flags = []
    z = _checks.numpy(c)
    # float32 latents stay float32 where the reference's steps keep them so (StandardScaler, the
    # ranges); exact, as the float64 copy holds float32 values
    z_in = z.astype(np.float32) if _checks.is_float32(codes) else z
    s = np.stack([np.unique(col, return_inverse=True)[1] for col in _checks.numpy(f).T], axis=1)
    nf = s.shape[1]
    h = _checks.numpy(ops.mi_matrix(torch.from_numpy(s), torch.from_numpy(s))[1])
    if discrete_latents:
        zl = np.stack([np.unique(col, return_inverse=True)[1] for col in z.T], axis=1)
        mi = _checks.numpy(ops.mi_matrix(torch.from_numpy(zl), torch.from_numpy(s))[0])  # (d, F)
    else:
        from sklearn.preprocessing import StandardScaler

        # one StandardScaler per latent, in the latents' dtype, as the reference
        zs = np.concatenate([StandardScaler().fit_transform(z_in[:, [j]]) for j in range(z_in.shape[1])], axis=1)
        mi = mutual_info_classif_like(zs, s, seed=seed if mode == "robust" else None, k=n_neighbors)
    with np.errstate(divide="ignore", invalid="ignore"):
        nmi = (mi / h[None, :]).T  # (F, d)
    const_src = np.nonzero(h == 0)[0].tolist()
    if const_src:
        flags.append(f"sources {const_src} constant (H = 0)")
        if mode == "robust":
            nmi[const_src, :] = 0.0
    ranges = z_in.max(axis=0) - z_in.min(axis=0)
    active = ranges > 0 if discrete_latents else ranges > ranges.max() / 20
    d_act = int(active.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        na = nmi[:, active]
        if mode == "robust":
            keep = na.sum(axis=0) > 0
            if (~keep).any():
                flags.append(f"active latents {np.nonzero(active)[0][~keep].tolist()} have all-zero NMI: "
                             "left out of InfoM")
            if d_act == 0:
                flags.append("no active latent: InfoM = InfoC = 0")
                infom = infoc = 0.0
            else:
                nk = na[:, keep]
                if nf == 1:  # max / sum = 1 = 1/F for every latent: 0/0, as InfoC with one active latent
                    flags.append("1 source: InfoM undefined")
                    infom = float("nan")
                elif not nk.shape[1]:  # the reference's 0/0 per latent; as InfoC's all-zero case, 0
                    flags.append("no active latent has a non-zero NMI: InfoM = 0")
                    infom = 0.0
                else:
                    infom = (np.mean(nk.max(axis=0) / nk.sum(axis=0)) - 1 / nf) / (1 - 1 / nf)
                rows = na.sum(axis=1) > 0
                if (~rows).any() and d_act > 1:
                    flags.append(f"sources {np.nonzero(~rows)[0].tolist()} have all-zero NMI over the active "
                                 "latents: left out of InfoC")
                if d_act <= 1:
                    flags.append(f"{d_act} active latent: InfoC undefined")
                    infoc = float("nan")
                else:
                    infoc = ((np.mean(na[rows].max(axis=1) / na[rows].sum(axis=1)) - 1 / d_act) / (1 - 1 / d_act)
                             if rows.any() else 0.0)
        else:
            infom = (np.mean(na.max(axis=0) / na.sum(axis=0)) - 1 / nf) / (1 - 1 / nf)
            infoc = (np.mean(na.max(axis=1) / na.sum(axis=1)) - 1 / d_act) / (1 - 1 / d_act)
    infoe = _infoe(z_in, s, discrete_latents, mode, estimator, flags)
    return Result({"infom": float(infom), "infoc": float(infoc), "infoe": infoe}, "infomec",
                  f"latent_quantization-standalone/{mode}", estimator=estimator, discrete_latents=discrete_latents,
                  seed=seed if (mode == "robust" and not discrete_latents) else None, n_neighbors=n_neighbors,
                  num_points=int(z.shape[0]), num_active=d_act, nmi=nmi.tolist(), flags=flags)
