"""Generation metrics on feature sets, features in and numbers out (docs/metrics.md, "Generation
metrics"): FID (Heusel et al. 2017), KID (Binkowski et al. 2018), improved precision and recall
(Kynkaanniemi et al. 2019) and density and coverage (Naeem et al. 2020).

- :func:`frechet_distance`: ||mu_1 - mu_2||^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2}) of two Gaussians;
- :func:`fid_from_features`: the same for the Gaussians fitted (float64) to two feature sets;
- :func:`kid_from_features`: the unbiased polynomial-kernel MMD^2 over random subsets (mean, std);
- :func:`prdc`: precision, recall, density and coverage through the tiled kNN kernel
  (:mod:`diffrep.ops.knn`; no N x M distance matrix).

The images-in side (Inception features of any source, :func:`~diffrep.metrics.generation.evaluate`
and the reference statistics cache) is :mod:`diffrep.metrics.generation`, which re-exports these.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .._checks import device as check_device
from . import _checks

__all__ = ["frechet_distance", "feature_statistics", "frechet_distance_from_features", "fid_from_features",
           "kid_from_features", "prdc", "KID_DEFAULTS"]

#: torch-fidelity's KID defaults (metric_kid.py): 100 subsets of 1000, polynomial degree 3,
#: gamma = 1 / feature dimension, coef0 = 1
KID_DEFAULTS = {"num_subsets": 100, "subset_size": 1000, "degree": 3, "gamma": None, "coef0": 1.0}


#: relative asymmetry max |S - S^T| / max |S| a covariance may carry (rounding is ~1e-16 relative; float32
#: covariances ~1e-7): more is refused by :func:`frechet_distance`
ASYMMETRY_TOLERANCE = 1e-5


def _device(device) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return check_device(device)


def _psd_sqrt(c: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((c + c.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def _frechet_terms(mu1, sigma1, mu2, sigma2) -> tuple[float, float]:
    m1, m2 = np.atleast_1d(_checks.real_array(mu1, "mu1")), np.atleast_1d(_checks.real_array(mu2, "mu2"))
    s1, s2 = np.atleast_2d(_checks.real_array(sigma1, "sigma1")), np.atleast_2d(_checks.real_array(sigma2, "sigma2"))
    k = m1.shape[0]
    if m1.ndim != 1 or k == 0:
        raise ValueError(f"mu1 must be a mean [k >= 1] (means [k] and covariances [k, k] with equal k), got shape "
                         f"{m1.shape}")
    for name, a, want in (("sigma1", s1, (k, k)), ("mu2", m2, (k,)), ("sigma2", s2, (k, k))):
        if a.shape != want:
            raise ValueError(f"{name} must have shape {want} (means [k] and covariances [k, k] with equal k; "
                             f"k = {k} from mu1), got {a.shape}")
    for name, a in (("mu1", m1), ("sigma1", s1), ("mu2", m2), ("sigma2", s2)):
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or inf (means and covariances must be finite)")
    for name, a in (("sigma1", s1), ("sigma2", s2)):
        # symmetrising absorbs rounding; a matrix far from symmetric is no covariance (features [N, k] passed
        # as one, a transposed product), and eigh would read one triangle of it without a word
        gap, scale = float(np.abs(a - a.T).max()), float(np.abs(a).max())
        if gap > ASYMMETRY_TOLERANCE * scale:
            raise ValueError(f"{name} is not a covariance: not symmetric (max |S - S^T| = {gap:.3g}, max |S| = "
                             f"{scale:.3g}); pass np.cov(features, rowvar=False) or feature_statistics(features)[1]")
    r1 = _psd_sqrt(s1)
    lam = np.linalg.eigvalsh(r1 @ s2 @ r1)
    cross = np.sqrt(np.clip(lam, 0, None)).sum()
    value = float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * cross)
    return value, float(lam.min())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu_1 - mu_2||^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2}) of N(mu_1, S_1) and N(mu_2, S_2)
    (Heusel et al. 2017, Eq. 6; Dowson and Landau 1982), in float64.

    The trace of the square root uses the symmetric form tr (S_1^{1/2} S_2 S_1^{1/2})^{1/2}, equal
    to tr (S_1 S_2)^{1/2} because the two products are similar, and computed by two symmetric
    eigendecompositions (``eigh``/``eigvalsh``), so it stays real. Covariances are symmetrised;
    negative eigenvalues (of S_1, and of S_1^{1/2} S_2 S_1^{1/2}) can only be rounding noise of a
    positive semi-definite matrix and are set to 0 before the square root. The result itself is
    never clamped: like every reference implementation, FID(X, X) may come out as a tiny negative
    number (docs/metrics.md, "Generation metrics")."""
    return _frechet_terms(mu1, sigma1, mu2, sigma2)[0]


def feature_statistics(feats) -> tuple[np.ndarray, np.ndarray]:
    """Mean [k] and unbiased covariance [k, k] (float64; ``np.cov(rowvar=False)``, ddof 1, as
    every FID reference) of a feature set [N >= 2, k]."""
    a = _checks.feature_array(feats, "feats")
    return a.mean(0), np.atleast_2d(np.cov(a, rowvar=False))


def frechet_distance_from_features(feats_a, feats_b) -> float:
    """:func:`frechet_distance` of the Gaussians fitted to two feature sets [N, k] (equal k)."""
    a, b = _checks.feature_array(feats_a, "feats_a"), _checks.feature_array(feats_b, "feats_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feats_a and feats_b must be features with equal k, got k = {a.shape[1]} and {b.shape[1]}")
    return frechet_distance(*feature_statistics(a), *feature_statistics(b))


def _pair(real, fake) -> tuple[np.ndarray, np.ndarray]:
    r, f = _checks.feature_array(real, "real"), _checks.feature_array(fake, "fake")
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"real and fake features must have the same dimension, got {r.shape[1]} and {f.shape[1]}")
    return r, f


def fid_from_features(real, fake, *, allow_singular: bool = False) -> float:
    """FID of two feature sets [N, d], [M, d]: :func:`frechet_distance` of their float64 means and
    unbiased covariances (Heusel et al. 2017, Eq. 6).

    Fewer samples than the feature dimension (N < d or M < d) make a covariance singular and the
    FID strongly biased (mseitzer/pytorch-fid #29): a ValueError unless ``allow_singular``."""
    if not isinstance(allow_singular, (bool, np.bool_)):  # "no" was truthy
        raise TypeError(f"allow_singular must be a bool, got {allow_singular!r}")
    r, f = _pair(real, fake)
    d = r.shape[1]
    if not allow_singular and min(len(r), len(f)) < d:
        raise ValueError(f"FID needs at least as many samples as feature dimensions (d = {d}) in each set for a "
                         f"non-singular covariance, got {len(r)} real and {len(f)} fake; pass allow_singular=True "
                         f"to compute it anyway (biased, not comparable with published values)")
    return frechet_distance(r.mean(0), np.atleast_2d(np.cov(r, rowvar=False)), f.mean(0),
                            np.atleast_2d(np.cov(f, rowvar=False)))


def _polynomial_mmd2(x: torch.Tensor, y: torch.Tensor, degree: int, gamma: float, coef0: float) -> float:
    """Unbiased MMD^2 with k(a, b) = (gamma a.b + coef0)^degree (Binkowski et al. 2018, Eq. 3):
    within-set sums exclude the diagonal and divide by m (m - 1); the cross sum divides by m^2."""
    m = x.shape[0]
    kxx = (gamma * (x @ x.T) + coef0) ** degree
    kyy = (gamma * (y @ y.T) + coef0) ** degree
    kxy = (gamma * (x @ y.T) + coef0) ** degree
    sxx = kxx.sum() - torch.diagonal(kxx).sum()
    syy = kyy.sum() - torch.diagonal(kyy).sum()
    return float((sxx + syy) / (m * (m - 1)) - 2 * kxy.sum() / (m * m))


def kid_from_features(real, fake, *, num_subsets: int = 100, subset_size: int = 1000, degree: int = 3,
                      gamma: float | None = None, coef0: float = 1.0, seed: int = 0,
                      device=None) -> tuple[float, float]:
    """KID (Binkowski et al. 2018, Sec. 3): the unbiased polynomial-kernel MMD^2 between random
    subsets of ``subset_size`` fake and real features, drawn without replacement
    ``num_subsets`` times; returns (mean, std) over the subsets (std with ddof 0).

    torch-fidelity's defaults and procedure (metric_kid.py): k(a, b) = (gamma a.b + coef0)^degree
    with gamma = 1 / d when None; per subset one ``RandomState(seed).choice(M, subset_size,
    replace=False)`` of the fake set, then one of the real set (torch-fidelity's seed is 2020:
    ``seed=2020`` with the same feature order reproduces its subsets). Float64 throughout, on
    ``device`` (default: CUDA when available)."""
    r, f = _pair(real, fake)
    num_subsets = _checks.count(num_subsets, "num_subsets", 1)
    subset_size = _checks.count(subset_size, "subset_size", 2)
    degree = _checks.count(degree, "degree", 1)
    seed = _checks.count(seed, "seed", 0)
    if subset_size > min(len(r), len(f)):
        raise ValueError(f"KID subset_size={subset_size} exceeds the smaller feature set ({len(r)} real, {len(f)} "
                         f"fake); pass subset_size <= {min(len(r), len(f))}")
    d = r.shape[1]
    if gamma is None:
        gamma = 1.0 / d
    if isinstance(gamma, bool) or not isinstance(gamma, (int, float)) or not (math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"gamma must be a positive finite number or None (1 / d), got {gamma!r}")
    if isinstance(coef0, bool) or not isinstance(coef0, (int, float)) or not math.isfinite(coef0):
        raise ValueError(f"coef0 must be a finite number, got {coef0!r}")
    dev = _device(device)
    rt = torch.from_numpy(r).to(dev)
    ft = torch.from_numpy(f).to(dev)
    rng = np.random.RandomState(seed)
    mmds = np.empty(num_subsets)
    for i in range(num_subsets):
        fi = torch.from_numpy(rng.choice(len(f), subset_size, replace=False)).to(dev)
        ri = torch.from_numpy(rng.choice(len(r), subset_size, replace=False)).to(dev)
        mmds[i] = _polynomial_mmd2(ft[fi], rt[ri], degree, float(gamma), float(coef0))
    return float(mmds.mean()), float(mmds.std())


def _prdc_ks(k, dc_k) -> tuple[int, int]:
    """(k, dc_k) of :func:`prdc`, checked: counts >= 1 (dc_k None: k) whose k-th neighbour (the point itself
    is the 0-th) the kNN kernel keeps."""
    from ..ops.knn import MAX_K

    k = _checks.count(k, "k", 1)
    dc_k = k if dc_k is None else _checks.count(dc_k, "dc_k", 1)
    for name, v in (("k", k), ("dc_k", dc_k)):
        if v + 1 > MAX_K:
            raise ValueError(f"{name} must be <= {MAX_K - 1}, got {v}")
    return k, dc_k


def prdc(real, fake, *, k: int = 3, dc_k: int | None = None, strict: bool = False, device=None) -> dict:
    """Precision and recall (Kynkaanniemi et al. 2019, Eq. 1-2) and density and coverage (Naeem et
    al. 2020, Eq. 3-4) with k-NN balls of ``k`` = 3 neighbours: one k for all four, as the clovaai
    ``prdc`` package's ``nearest_k`` (Naeem et al.'s reference code). ``dc_k`` gives density and
    coverage their own k: Naeem et al. choose k = 5 (Sec. 4), so that the coverage of two samples
    of one distribution is about 1 - 2^-5 = 0.97 (about 0.875 with k = 3).

    With r_i^2(k) the squared distance of real point i to its k-th nearest real neighbour (itself
    counted as the 0-th, i.e. the k-th neighbour excluding the point) and likewise s_j^2(k) for
    the fake points:

    - precision = fraction of fake points inside at least one real ball |f_j - x_i|^2 <= r_i^2(k);
    - recall = fraction of real points inside at least one fake ball of radius s_j(k);
    - density = (1 / (dc_k M)) sum_j #{i : |f_j - x_i|^2 <= r_i^2(dc_k)};
    - coverage = fraction of real points whose nearest fake point lies inside their own ball of
      radius r_i(dc_k).

    Membership is ``<=`` (the official Kynkaanniemi implementation); ``strict=True`` uses ``<``
    everywhere, as the clovaai ``prdc`` package. Distances are taken in the features' dtype
    (float32 features stay float32) by the tiled kNN kernel :func:`diffrep.ops.knn.knn_scan` on
    ``device`` (default: CUDA when available); no N x M matrix is formed."""
    from ..ops.knn import knn_scan

    k, dc_k = _prdc_ks(k, dc_k)
    if not isinstance(strict, bool):
        raise TypeError(f"strict must be a bool, got {type(strict).__name__}")
    dev = _device(device)
    r = _checks.feature_tensor(real, "real", dev)
    f = _checks.feature_tensor(fake, "fake", dev)
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"real and fake features must have the same dimension, got {r.shape[1]} and {f.shape[1]}")
    for name, x, kmin in (("real", r, max(k, dc_k)), ("fake", f, k)):
        if x.shape[0] < kmin + 1:
            raise ValueError(f"{name} has {x.shape[0]} samples; k = {kmin} nearest neighbours need at least k + 1 = "
                             f"{kmin + 1}")
    dtype = torch.promote_types(r.dtype, f.dtype)
    r, f = r.to(dtype), f.to(dtype)
    r2_real = knn_scan(r, r, kk=k + 1)[0]
    r2_fake = knn_scan(f, f, kk=k + 1)[0]
    in_real_balls = knn_scan(f, r, r2=r2_real, strict=strict)[1]
    nearest_fake, in_fake_balls = knn_scan(r, f, kk=1, r2=r2_fake, strict=strict)
    if dc_k == k:
        r2_dc, in_dc_balls = r2_real, in_real_balls
    else:
        r2_dc = knn_scan(r, r, kk=dc_k + 1)[0]
        in_dc_balls = knn_scan(f, r, r2=r2_dc, strict=strict)[1]
    covered = nearest_fake < r2_dc if strict else nearest_fake <= r2_dc
    m = f.shape[0]
    return {"precision": float((in_real_balls > 0).double().mean()),
            "recall": float((in_fake_balls > 0).double().mean()),
            "density": float(in_dc_balls.double().sum() / (dc_k * m)),
            "coverage": float(covered.double().mean())}
