"""Generation metrics: the Frechet distance between two Gaussians and FID (Heusel et al. 2017).

FID compares the mean and covariance of features of real and generated images. diffrep bundles no
Inception weights and downloads nothing: the feature extractor is a callable images -> [B, k] or a
TorchScript file (:func:`load_feature_extractor`, e.g. a locally saved Inception-v3 pool3 network),
so scores are comparable to published FIDs only with the same extractor.

- :func:`frechet_distance`: ||mu_1 - mu_2||^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2}) of two Gaussians;
- :func:`feature_statistics` / :func:`frechet_distance_from_features`: the same from feature sets;
- :func:`image_features`: features of images produced in batches;
- :func:`fid`: FID of a tensor of images, or of a batch-producing callable, against real images.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .._checks import positive_int

__all__ = ["frechet_distance", "feature_statistics", "frechet_distance_from_features", "load_feature_extractor",
           "image_features", "fid"]


def _psd_sqrt(c: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((c + c.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu_1 - mu_2||^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2}) of N(mu_1, S_1) and N(mu_2, S_2).

    The matrix square root uses the symmetric form (S_1^{1/2} S_2 S_1^{1/2})^{1/2}, which has the
    same trace and stays real (covariances are symmetrised and their negative eigenvalues, rounding
    noise, clipped to 0)."""
    m1, m2 = np.atleast_1d(np.asarray(mu1, dtype=np.float64)), np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64)), np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    k = m1.shape[0]
    if m1.ndim != 1 or m2.shape != (k,) or s1.shape != (k, k) or s2.shape != (k, k):
        raise ValueError(f"means must be [k] and covariances [k, k] with equal k, got {m1.shape}, {s1.shape}, "
                         f"{m2.shape}, {s2.shape}")
    if not all(np.isfinite(a).all() for a in (m1, s1, m2, s2)):
        raise ValueError("means and covariances must be finite")
    r1 = _psd_sqrt(s1)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(r1 @ s2 @ r1), 0, None)).sum()
    return float(((m1 - m2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * cross)


def _features(feats, name: str) -> np.ndarray:
    a = np.asarray(feats, dtype=np.float64)
    if a.ndim != 2 or len(a) < 2:
        raise ValueError(f"{name} must be [N >= 2, k], got {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("features contain NaN or inf")
    return a


def feature_statistics(feats) -> tuple[np.ndarray, np.ndarray]:
    """Mean [k] and unbiased covariance [k, k] (float64) of a feature set [N >= 2, k]."""
    a = _features(feats, "features")
    return a.mean(0), np.atleast_2d(np.cov(a, rowvar=False))


def frechet_distance_from_features(feats_a, feats_b) -> float:
    """:func:`frechet_distance` of the Gaussians fitted to two feature sets [N, k] (equal k)."""
    a, b = np.asarray(feats_a, dtype=np.float64), np.asarray(feats_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"features must be [N >= 2, k] with equal k, got {a.shape} and {b.shape}")
    return frechet_distance(*feature_statistics(a), *feature_statistics(b))


def load_feature_extractor(path: str | os.PathLike | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """A TorchScript feature extractor from ``path`` (or ``$DIFFREP_FID_EXTRACTOR``), e.g. a locally
    saved Inception-v3 pool3 network. diffrep bundles no Inception weights and downloads nothing:
    without a file this raises FileNotFoundError saying how to provide one. The extractor is called
    on images in [-1, 1], [B, C, H, W] (1-channel images are repeated to 3) and must return [B, k]."""
    path = path or os.environ.get("DIFFREP_FID_EXTRACTOR")
    if not path:
        raise FileNotFoundError("FID needs a feature extractor: pass a TorchScript file (e.g. an Inception-v3 pool3 "
                                "network saved with torch.jit.save) or a callable; diffrep ships no Inception weights "
                                "and cannot download them. Set DIFFREP_FID_EXTRACTOR or use --fid-extractor.")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"FID feature extractor {p} does not exist")
    try:
        net = torch.jit.load(str(p), map_location="cpu").eval()
    except Exception as exc:
        raise ValueError(f"{p} is not a TorchScript module loadable with torch.jit.load: {exc}") from None

    def extract(x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        with torch.no_grad():
            return net(x.float().cpu()).reshape(x.shape[0], -1)

    return extract


def image_features(extractor: Callable, make: Callable[[int, int], torch.Tensor], num: int,
                   batch_size: int = 64) -> np.ndarray:
    """Features [num, k] (float64) of the images ``make(start, k)`` returns for consecutive batches
    of at most ``batch_size`` (``start`` is the index of the batch's first image)."""
    positive_int(num, "num_samples")
    positive_int(batch_size, "batch_size")
    out = []
    for s in range(0, num, batch_size):
        out.append(np.asarray(extractor(make(s, min(batch_size, num - s))).detach().cpu(), dtype=np.float64))
    return np.concatenate(out)


def fid(real_images, fake, extractor: Callable | str | os.PathLike | None = None, *, num_samples: int | None = None,
        batch_size: int = 64) -> float:
    """FID of ``fake`` against ``real_images`` [N, C, H, W] in [-1, 1].

    ``fake``: generated images [M, C, H, W], or a callable ``(start, k) -> k images`` called in
    batches for ``num_samples`` images (default: as many as the real ones). With a callable, the
    real features are taken over ``num_samples`` images too, cycling through ``real_images`` when
    it holds fewer. ``extractor``: a callable images -> [B, k] or a TorchScript path
    (:func:`load_feature_extractor`)."""
    fe = extractor if callable(extractor) else load_feature_extractor(extractor)
    real = torch.as_tensor(real_images)
    if real.dim() != 4 or real.shape[0] < 1:
        raise ValueError(f"real_images must be [N, C, H, W], got {tuple(real.shape)}")
    if callable(fake):
        n = real.shape[0] if num_samples is None else num_samples
        real_f = image_features(fe, lambda s, k: real[s % real.shape[0]:][:k], n, batch_size)
        return frechet_distance_from_features(real_f, image_features(fe, fake, n, batch_size))
    fake = torch.as_tensor(fake)
    if fake.dim() != 4:
        raise ValueError(f"fake must be images [M, C, H, W] or a callable, got {tuple(fake.shape)}")
    real_f = image_features(fe, lambda s, k: real[s:s + k], real.shape[0], batch_size)
    return frechet_distance_from_features(real_f, image_features(fe, lambda s, k: fake[s:s + k], fake.shape[0], batch_size))
