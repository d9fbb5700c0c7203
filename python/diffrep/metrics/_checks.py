"""Input validation shared by the metric functions (codes (N, d) float, factors (N, F) int; the
feature sets [N, k] and images of the generation metrics).

Accepts NumPy arrays and torch tensors (any device). Raises ``ValueError``/``TypeError`` naming
the argument for: wrong rank, empty input, NaN/inf codes, non-integer factors, mismatched N.
"""

from __future__ import annotations

import numpy as np
import torch

from ..ops import metrics as _ops


def codes(x, name: str = "codes") -> torch.Tensor:
    """Validated float64 tensor (N, d) on the input's device."""
    t = _ops._float(x, name, 2)
    return t.to(torch.float64)


def factors(y, name: str = "factors", n: int | None = None, codes_name: str = "codes") -> torch.Tensor:
    """Validated int64 tensor (N, F); ``n`` checks the sample count against the codes."""
    t = _ops._int(y, name, 2)
    if n is not None and t.shape[0] != n:
        raise ValueError(f"{codes_name} and {name} disagree on the number of samples: {n} vs {t.shape[0]}")
    return t


def pair(c, f, cname: str = "codes", fname: str = "factors"):
    """Validate one (codes, factors) pair; returns float64 codes and int64 factors on one device."""
    ct = codes(c, cname)
    ft = factors(f, fname, ct.shape[0], cname)
    return ct, ft.to(ct.device)


def train_test(ctr, ftr, cte, fte):
    """Validate train and test pairs and check that they have the same code and factor widths."""
    a, b = pair(ctr, ftr, "codes_train", "factors_train")
    c, d = pair(cte, fte, "codes_test", "factors_test")
    if a.shape[1] != c.shape[1]:
        raise ValueError(f"codes_train has {a.shape[1]} codes but codes_test has {c.shape[1]}")
    if b.shape[1] != d.shape[1]:
        raise ValueError(f"factors_train has {b.shape[1]} factors but factors_test has {d.shape[1]}")
    return a, b, c.to(a.device), d.to(a.device)


def folds(n_splits, n: int, name: str = "codes") -> int:
    """``n_splits`` as an int >= 2 that ``n`` samples can fill: KFold's own errors name neither
    argument ("Cannot have number of splits n_splits=5 greater than the number of samples")."""
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) or n_splits < 2:
        raise ValueError(f"n_splits must be an int >= 2 (KFold needs a train and a test part), got {n_splits!r}")
    if n < n_splits:
        raise ValueError(f"{name}: {n} samples cannot fill n_splits={n_splits} folds")
    return int(n_splits)


def is_float32(x) -> bool:
    """Whether ``x`` (array or tensor, before validation) holds float32 (or half-precision) values:
    the references then compute in float32 where dtype-preserving NumPy/scikit-learn steps see them
    (``np.histogram`` edges, ``StandardScaler``), which diffrep reproduces (docs/metrics.md)."""
    return getattr(x, "dtype", None) in (np.float32, np.float16, torch.float32, torch.float16, torch.bfloat16)


def numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def mode(m: str, allowed=("robust", "parity")) -> str:
    if m not in allowed:
        raise ValueError(f"mode must be one of {allowed}, got {m!r}")
    return m


def lr_estimator(estimator, mode: str) -> str:
    """The logistic-regression estimator: ``"fast"`` (batched torch L-BFGS) or ``"sklearn"``;
    None picks ``"fast"`` in robust mode and ``"sklearn"`` (the reference) in parity mode."""
    if estimator is None:
        return "sklearn" if mode == "parity" else "fast"
    if estimator not in ("fast", "sklearn"):
        raise ValueError(f"estimator must be 'fast' or 'sklearn', got {estimator!r}")
    return estimator


def constant_codes(c: torch.Tensor) -> list:
    """Indices of codes whose values are all equal."""
    return torch.nonzero((c.max(dim=0).values - c.min(dim=0).values) == 0).flatten().tolist()


# ---- generation metrics: feature sets [N, k] and the images of the user-extractor FID


def real_array(v, name: str) -> np.ndarray:
    """``v`` as a float64 array; a str, None, complex or ragged value is a TypeError naming ``name``
    (np.asarray would say "could not convert string to float", or drop an imaginary part)."""
    if isinstance(v, torch.Tensor):
        v = v.detach().cpu()
        if v.is_complex():
            raise TypeError(f"{name} must be real, got {v.dtype}")
        v = v.double().numpy()
    if v is None or isinstance(v, (str, bytes)) or np.iscomplexobj(v):
        raise TypeError(f"{name} must be a real numeric array, got {type(v).__name__}")
    try:
        return np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real numeric array, got {type(v).__name__}") from None


def feature_array(feats, name: str) -> np.ndarray:
    """A feature set [N >= 2, k] as a finite float64 array (the FID statistics need two rows)."""
    a = real_array(feats, name)
    if a.ndim != 2 or len(a) < 2 or a.shape[1] < 1:
        raise ValueError(f"{name} must be features [N >= 2, k] (k >= 1), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or inf")
    return a


def count(v, name: str, lo: int) -> int:
    """An int >= ``lo`` (a bool is refused: True is no count)."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if v < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    return int(v)


def feature_tensor(x, name: str, device) -> torch.Tensor:
    """Features [N, d] as a finite tensor on ``device``: float32/float64 kept (the kNN distances are
    taken in the features' dtype), integers as float64, half precision as float32."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a tensor or numpy array of features [N, d], got {type(x).__name__}")
    if x.is_complex():
        raise TypeError(f"{name} must be real features, got {x.dtype}")
    if x.dim() != 2:
        raise ValueError(f"{name} must be [N, d] features, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        x = x.double()
    elif x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    x = x.to(device)
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf")
    return x


def float_image_range(t: torch.Tensor, name: str) -> torch.Tensor:
    """``t`` unchanged unless it holds floats beyond +-FLOAT_RANGE_LIMIT: images must be in [-1, 1], and
    the user-extractor path allows a sampler's overshoot as far as the Inception path does
    (:data:`diffrep.metrics.fid_preprocess.FLOAT_RANGE_LIMIT`); 0..255 floats would be scored silently."""
    from .fid_preprocess import FLOAT_RANGE_LIMIT

    if t.is_floating_point() and t.numel():
        lo, hi = torch.stack(torch.aminmax(t.detach())).tolist()
        if lo < -FLOAT_RANGE_LIMIT or hi > FLOAT_RANGE_LIMIT:
            raise ValueError(f"{name}: float images must lie in [-1, 1] (a sampler's overshoot up to "
                             f"+-{FLOAT_RANGE_LIMIT:g} is allowed), got min {lo:g} max {hi:g}: divide 0..255 "
                             f"pixels by 127.5 and subtract 1")
    return t


def images(x, name: str, min_count: int) -> torch.Tensor:
    """Images [N >= min_count, C, H, W] for the user-extractor FID: a tensor or numpy array, real
    and finite (a NaN image would surface as NaN features, named after neither set), floats in [-1, 1]
    (:func:`float_image_range`)."""
    if not isinstance(x, (torch.Tensor, np.ndarray)):
        raise TypeError(f"{name} must be images [N, C, H, W] (a tensor or numpy array), got {type(x).__name__}")
    t = torch.as_tensor(x)
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must hold real images, got {t.dtype}")
    if t.dim() != 4 or t.shape[0] < min_count:
        raise ValueError(f"{name} must be images [N >= {min_count}, C, H, W], got shape {tuple(t.shape)}")
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or inf")
    return float_image_range(t, name)
