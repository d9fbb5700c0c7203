"""Generation metrics: FID (Heusel et al. 2017), KID (Binkowski et al. 2018), improved precision
and recall (Kynkaanniemi et al. 2019) and density and coverage (Naeem et al. 2020), on the
pool_3 features of the standard FID Inception (docs/metrics.md, "Generation metrics").

Features in, numbers out (:func:`frechet_distance`, :func:`fid_from_features`,
:func:`kid_from_features`, :func:`prdc`) are :mod:`diffrep.metrics.generation_features`,
re-exported here.

Images in (tensors, numpy arrays, image folders, diffrep dataset names, a model or model
directory plus a sample count, a batch callable): :func:`inception_features`, :func:`evaluate`
(every metric and the protocol record), :func:`fid` and :func:`kid`, and the reference
statistics cache :func:`reference_statistics`. The Inception weights are read from a local file
only (:mod:`diffrep.metrics.inception`); the preprocessing protocols are in
:mod:`diffrep.metrics.fid_preprocess`.

The older user-extractor path stays: ``fid(real, fake, extractor)`` with a callable or a
TorchScript path (:func:`load_feature_extractor`) scores images in [-1, 1] at their native size
with that extractor; such numbers are not comparable with published FIDs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .._checks import non_negative_int, positive_int
from ..ops._full_precision import autocast_off
from . import _checks
from .generation_features import (KID_DEFAULTS, _device, _frechet_terms, _prdc_ks, feature_statistics,
                                  fid_from_features, frechet_distance, frechet_distance_from_features,
                                  kid_from_features, prdc)
from .image_sources import ImageSource, Progress, resolve_source

__all__ = ["frechet_distance", "feature_statistics", "frechet_distance_from_features", "fid_from_features",
           "kid_from_features", "prdc", "inception_features", "reference_statistics", "evaluate", "fid", "kid",
           "load_feature_extractor", "image_features", "FEATURE_DIM", "KID_DEFAULTS"]

FEATURE_DIM = 2048


# ----------------------------------------------------------------------------------------------
# Images in: sources, the Inception features, the reference statistics cache

_MODELS: dict = {}


def _inception(weights, device):
    from .inception import file_sha1, load_inception, weights_path

    path = weights_path(weights)
    key = (str(path), file_sha1(path), str(device))
    if key not in _MODELS:
        _MODELS.clear()
        _MODELS[key] = load_inception(weights, device=device)
    return _MODELS[key]


@autocast_off  # the Inception (and a model source's sampling) in float32 whatever the caller's autocast
def _extract(src: ImageSource, model, protocol: str, batch_size: int, device, progress: bool, label: str) -> np.ndarray:
    from .fid_preprocess import preprocess

    out = None
    bar = Progress(src.count, label, progress)
    i = 0
    cudnn_tf32, mm_tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        with torch.inference_mode():
            for batch in src.batches(batch_size):
                b = torch.as_tensor(batch)
                if b.dim() != 4:
                    raise ValueError(f"{label}: a batch of images must be [B, C, H, W], got {tuple(b.shape)}")
                if i + b.shape[0] > src.count:
                    raise ValueError(f"{label}: the source yielded more than its {src.count} images")
                x = preprocess(b.to(device, non_blocking=True), protocol)
                f = model(x).float().cpu().numpy()
                if out is None:
                    out = np.empty((src.count, f.shape[1]), dtype=np.float32)
                out[i:i + b.shape[0]] = f
                i += b.shape[0]
                bar.update(b.shape[0])
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = cudnn_tf32, mm_tf32
        bar.close()
    if i != src.count:
        raise ValueError(f"{label}: expected {src.count} images, got {i}")
    return out


def inception_features(source, *, protocol: str = "clean", weights=None, num_samples: int | None = None,
                       batch_size: int = 50, device=None, seed: int = 0, progress: bool = True) -> np.ndarray:
    """pool_3 features [N, 2048] (float32) of the FID Inception (:mod:`diffrep.metrics.inception`)
    for ``source``: images [N, C, H, W] (uint8, or float in [-1, 1]; a tensor or numpy array,
    numpy NHWC accepted), an image folder, a dataset name (``"dsprites"``, ``"celeba:test"``: a
    seeded random subset of ``num_samples``), a model with ``sample(n, generator=)`` or its
    ``save_pretrained`` directory, or a callable ``(start, k) -> images``, with ``num_samples``.
    Preprocessing ``protocol``: :mod:`diffrep.metrics.fid_preprocess`. Batched on ``device``
    (default CUDA when available), TF32 off, with a progress report on stderr."""
    positive_int(batch_size, "batch_size")
    non_negative_int(seed, "seed")
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be a bool, got {progress!r}")
    src = resolve_source(source, num_samples, seed, "source")
    dev = _device(device)
    return _extract(src, _inception(weights, dev), _protocol(protocol), batch_size, dev, progress, "features")


def _protocol(protocol: str) -> str:
    from .fid_preprocess import PROTOCOLS

    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    return protocol


def _canonical(identity: dict) -> str:
    return json.dumps(identity, sort_keys=True, default=str)


def reference_statistics(source, cache, *, protocol: str = "clean", weights=None, num_samples: int | None = None,
                         batch_size: int = 50, device=None, seed: int = 0, progress: bool = True,
                         keep_features: bool = False) -> dict:
    """Reference statistics of ``source`` (as :func:`inception_features`), read from or written to
    the ``.npz`` file ``cache``: ``mu`` [2048], ``sigma`` [2048, 2048] (float64), ``count``, the
    weights' sha1 (``extractor_sha1``), ``protocol`` and the ``dataset`` identity (JSON), plus the
    features [N, 2048] when ``keep_features`` (KID and PRDC need them).

    A cache that exists is used only when all of these match what is asked (and holds features
    when they are needed); any mismatch is a ValueError naming the fields, never a silent reuse
    or overwrite. Returns {mu, sigma, count, features (or None), identity, cached}."""
    from .inception import file_sha1, weights_path

    if not isinstance(cache, (str, os.PathLike)):
        raise TypeError(f"cache must be a .npz file path, got {type(cache).__name__}")
    positive_int(batch_size, "batch_size")
    non_negative_int(seed, "seed")
    for name, flag in (("progress", progress), ("keep_features", keep_features)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be a bool, got {flag!r}")
    path = Path(cache).expanduser()
    if path.suffix != ".npz":
        raise ValueError(f"cache must be a .npz file path, got {str(cache)!r}")
    protocol = _protocol(protocol)
    sha1 = file_sha1(weights_path(weights))
    src = resolve_source(source, num_samples, seed, "real")
    want = {"count": src.count, "extractor_sha1": sha1, "protocol": protocol, "dataset": _canonical(src.identity)}
    if path.exists():
        try:
            z = np.load(path, allow_pickle=False)
            got = {"count": int(z["count"]), "extractor_sha1": str(z["extractor_sha1"]), "protocol": str(z["protocol"]),
                   "dataset": str(z["dataset"])}
            mu, sigma = np.asarray(z["mu"], dtype=np.float64), np.asarray(z["sigma"], dtype=np.float64)
            feats = np.asarray(z["features"]) if "features" in z.files else None
        except (KeyError, ValueError, OSError) as exc:
            raise ValueError(f"{path} is not a diffrep reference-statistics cache: {exc}") from None
        bad = [k for k in want if got[k] != want[k]]
        if bad:
            detail = "; ".join(f"{k}: cached {got[k]!r}, asked {want[k]!r}" for k in bad)
            raise ValueError(f"reference statistics cache {path} does not match this evaluation ({detail}); delete it "
                             f"or point cache= at another file")
        if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
            raise ValueError(f"{path}: mu/sigma have shapes {mu.shape}/{sigma.shape}, expected (d,)/(d, d)")
        if keep_features and feats is None:
            raise ValueError(f"{path} holds statistics but no features, and KID/PRDC need the features: recompute it "
                             f"with keep_features=True (another cache file)")
        return {"mu": mu, "sigma": sigma, "count": got["count"], "features": feats, "identity": src.identity,
                "cached": True}
    path.parent.mkdir(parents=True, exist_ok=True)  # before the Inception runs: a folder it cannot make fails at once
    dev = _device(device)
    feats = _extract(src, _inception(weights, dev), protocol, batch_size, dev, progress, "real")
    mu, sigma = _statistics(feats, dev)
    extra = {"features": feats} if keep_features else {}
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, mu=mu, sigma=sigma, count=np.int64(src.count), extractor_sha1=np.str_(sha1),
             protocol=np.str_(protocol), dataset=np.str_(want["dataset"]), **extra)
    os.replace(tmp, path)
    return {"mu": mu, "sigma": sigma, "count": src.count, "features": feats if keep_features else None,
            "identity": src.identity, "cached": False}


def _statistics(feats: np.ndarray, device) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance (ddof 1) in float64, computed on ``device`` (a 50k x 2048
    covariance is 4e11 multiply-adds: the GPU's job when there is one)."""
    x = torch.from_numpy(np.ascontiguousarray(feats)).to(device=device, dtype=torch.float64)
    mu = x.mean(0)
    xc = x - mu
    sigma = (xc.T @ xc) / (x.shape[0] - 1)
    return mu.cpu().numpy(), sigma.cpu().numpy()


METRICS = ("fid", "kid", "prdc")


def evaluate(real, fake, *, metrics=("fid",), protocol: str = "clean", weights=None, num_samples: int | None = None,
             num_real: int | None = None, batch_size: int = 50, device=None, seed: int = 0, cache=None,
             k: int = 3, dc_k: int | None = None, strict: bool = False, kid_subsets: int = 100, kid_subset_size: int = 1000,
             allow_singular: bool = False, progress: bool = True) -> dict:
    """Generation metrics of ``fake`` against ``real`` on FID Inception features, with the record of
    how they were measured (docs/metrics.md, "Generation metrics").

    ``real``/``fake``: any source of :func:`inception_features`; ``num_samples`` is the fake count
    (needed for models and callables), ``num_real`` the real count (default: all, or
    ``num_samples`` for a dataset). ``metrics``: any of ``"fid"``, ``"kid"``, ``"prdc"``.
    ``cache``: a ``.npz`` path for the real statistics (:func:`reference_statistics`).
    Returns a dict with ``fid``; ``kid_mean``, ``kid_std``; ``precision``, ``recall``,
    ``density``, ``coverage`` (as asked), and ``protocol`` (preprocessing, weights, counts, kNN
    and KID settings), ``real`` and ``fake`` (source identities). A set smaller than
    ``kid_subset_size`` is refused, as torch-fidelity refuses it: pass the smaller size explicitly."""
    from .fid_preprocess import INPUT_SIZE
    from .inception import file_sha1, weights_path

    if isinstance(metrics, str):
        metrics = (metrics,)
    if not isinstance(metrics, (list, tuple)):
        raise TypeError(f"metrics must be a metric name or a sequence of names, got {type(metrics).__name__}")
    metrics = tuple(metrics)
    for m in metrics:
        if m not in METRICS:
            raise ValueError(f"metrics: unknown metric {m!r}; choose from {METRICS}")
    if not metrics:
        raise ValueError("metrics is empty")
    protocol = _protocol(protocol)
    positive_int(batch_size, "batch_size")
    # every setting is checked before any image is scored (a 50k-image extraction takes minutes)
    k, dc_k = _prdc_ks(k, dc_k)
    non_negative_int(seed, "seed")
    kid_subsets = _checks.count(kid_subsets, "kid_subsets", 1)
    kid_subset_size = _checks.count(kid_subset_size, "kid_subset_size", 2)
    for name, flag in (("strict", strict), ("allow_singular", allow_singular), ("progress", progress)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be a bool, got {type(flag).__name__}")
    dev = _device(device)
    wpath = weights_path(weights)
    need_feats = "kid" in metrics or "prdc" in metrics
    if num_real is None and isinstance(real, str) and not Path(real).expanduser().exists():
        num_real = num_samples
    fake_src = resolve_source(fake, num_samples, seed + 1, "fake")
    real_src = None if cache is not None else resolve_source(real, num_real, seed, "real")
    model = _inception(weights, dev)
    feature_dim = getattr(model, "feature_dim", None)

    def check_count(n: int, which: str) -> None:
        if "fid" in metrics and not allow_singular and feature_dim is not None and n < feature_dim:
            raise ValueError(f"FID needs at least {feature_dim} images per set for a non-singular covariance, got "
                             f"{n} {which}; pass allow_singular=True (--allow-singular) to compute it anyway "
                             f"(biased, not comparable with published values)")
        kmax = max(k, dc_k) if which == "real" else k
        if "prdc" in metrics and n < kmax + 1:
            raise ValueError(f"precision/recall/density/coverage with k = {kmax} nearest neighbours need at least "
                             f"k + 1 = {kmax + 1} {which} images, got {n}")
        if "kid" in metrics and n < 2:
            raise ValueError(f"KID needs at least 2 {which} images, got {n}")

    def check_kid_subsets(n_real: int | None, n_fake: int) -> None:
        # refused, as torch-fidelity refuses it, rather than shrunk to the smaller set: published KIDs use
        # subsets of 1000, and smaller subsets give a std (and a noisier mean) that does not compare
        n = min(n_fake, n_fake if n_real is None else n_real)
        if "kid" in metrics and n < kid_subset_size:
            have = f"{n_fake} fake" if n_real is None else f"{n_real} real and {n_fake} fake"
            raise ValueError(f"KID subsets of kid_subset_size={kid_subset_size} images need at least that many images "
                             f"per set, got {have}; pass kid_subset_size={n} (--kid-subset-size {n}) to score subsets "
                             f"of {n} (published KIDs use subsets of 1000; docs/metrics.md, \"KID\")")

    check_count(fake_src.count, "fake")
    if real_src is not None:
        check_count(real_src.count, "real")
    check_kid_subsets(None if real_src is None else real_src.count, fake_src.count)
    if cache is not None:
        ref = reference_statistics(real, cache, protocol=protocol, weights=weights, num_samples=num_real,
                                   batch_size=batch_size, device=dev, seed=seed, progress=progress,
                                   keep_features=need_feats)
        real_f, mu_r, sigma_r, real_id, n_real = ref["features"], ref["mu"], ref["sigma"], ref["identity"], ref["count"]
        check_count(n_real, "real")
        check_kid_subsets(n_real, fake_src.count)
    else:
        real_f = _extract(real_src, model, protocol, batch_size, dev, progress, "real")
        mu_r, sigma_r = _statistics(real_f, dev)
        real_id, n_real = real_src.identity, real_src.count
    fake_f = _extract(fake_src, model, protocol, batch_size, dev, progress, "fake")
    out: dict = {}
    if "fid" in metrics:
        dim = mu_r.shape[0]
        if not allow_singular and min(n_real, fake_src.count) < dim:
            raise ValueError(f"FID needs at least {dim} images per set for a non-singular covariance, got "
                             f"{n_real} real and {fake_src.count} fake; pass allow_singular=True (--allow-singular) to "
                             f"compute it anyway (biased, not comparable with published values)")
        value, lam_min = _frechet_terms(mu_r, sigma_r, *_statistics(fake_f, dev))
        out["fid"] = value
        out["fid_min_eigenvalue"] = lam_min
    if "kid" in metrics:
        out["kid_mean"], out["kid_std"] = kid_from_features(real_f, fake_f, num_subsets=kid_subsets,
                                                            subset_size=kid_subset_size, seed=seed, device=dev)
    if "prdc" in metrics:
        out.update(prdc(real_f, fake_f, k=k, dc_k=dc_k, strict=strict, device=dev))
    resize = {"clean": "PIL bicubic (float32 per channel), clipped to [0, 255]",
              "legacy_tf": "TF1 resize_bilinear(align_corners=False)",
              "legacy_pytorch": "torch bilinear, align_corners=False"}[protocol]
    norm = "(x - 127.5) / 127.5" if protocol == "legacy_pytorch" else "(x - 128) / 128"
    out["protocol"] = {
        "preprocessing": protocol, "quantisation": "uint8: floor((x + 1) * 127.5 + 0.5) for float images in [-1, 1]",
        "resize": f"{resize} to {INPUT_SIZE} x {INPUT_SIZE}", "normalisation": f"{norm} on the [0, 255] scale",
        "network": "Inception-v3 TF graph 2015-12-05, pool_3 (2048-d), float32, TF32 off",
        "weights_file": wpath.name, "weights_sha1": file_sha1(wpath), "num_real": int(n_real),
        "num_fake": int(fake_src.count), "metrics": list(metrics), "device": str(dev),
        "fid_sqrt": "symmetric eigendecomposition, negative eigenvalues set to 0, result not clamped",
    }
    if "kid" in metrics:
        out["protocol"]["kid"] = {"num_subsets": kid_subsets, "subset_size": kid_subset_size,
                                  "degree": 3, "gamma": f"1/{fake_f.shape[1]}", "coef0": 1.0, "seed": seed}
    if "prdc" in metrics:
        out["protocol"]["prdc"] = {"k": k, "dc_k": dc_k, "membership": "<" if strict else "<="}
    out["real"], out["fake"] = real_id, fake_src.identity
    return out


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
    from .inception import _jit_load

    try:
        net = _jit_load(p).eval()
    except Exception as exc:
        raise ValueError(f"{p} is not a TorchScript module loadable with torch.jit.load: {exc}") from None

    def extract(x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        with torch.no_grad():
            return net(x.float().cpu()).reshape(x.shape[0], -1)

    return extract


@autocast_off  # the extractor's features in its own precision, not the caller's autocast
def image_features(extractor: Callable, make: Callable[[int, int], torch.Tensor], num: int,
                   batch_size: int = 64) -> np.ndarray:
    """Features [num, k] (float64) of the images ``make(start, k)`` returns for consecutive batches
    of at most ``batch_size`` (``start`` is the index of the batch's first image); float images must
    lie in [-1, 1], a sampler's overshoot up to +-2 allowed (:func:`diffrep.metrics._checks.float_image_range`)."""
    for name, f in (("extractor", extractor), ("make", make)):
        if not callable(f):
            raise TypeError(f"{name} must be a callable, got {type(f).__name__}")
    positive_int(num, "num")
    positive_int(batch_size, "batch_size")
    out = []
    for s in range(0, num, batch_size):
        k = min(batch_size, num - s)
        x = make(s, k)
        if isinstance(x, torch.Tensor) or (isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating)):
            _checks.float_image_range(torch.as_tensor(x), f"images {s}..{s + k - 1}")
        f = extractor(x)
        f = _checks.real_array(f.detach() if isinstance(f, torch.Tensor) else f, "extractor output")
        if f.ndim != 2 or f.shape[0] != k:
            raise ValueError(f"extractor output must be features [B, k] for a batch of B = {k} images, got shape "
                             f"{f.shape}")
        if not np.isfinite(f).all():
            raise ValueError("extractor output contains NaN or inf")
        out.append(f)
    return np.concatenate(out)


def _fid_with_extractor(real_images, fake, extractor, num_samples, batch_size) -> float:
    if num_samples is not None:
        positive_int(num_samples, "num_samples")
    positive_int(batch_size, "batch_size")
    fe = extractor if callable(extractor) else load_feature_extractor(extractor)
    real = _checks.images(real_images, "real", 1 if callable(fake) else 2)
    if callable(fake):
        n = real.shape[0] if num_samples is None else num_samples
        # the real images cycle: image j of the stream is real[j mod N] (a slice real[s % N:][:k] gave
        # fewer than k images when a batch wrapped around, so fewer real features than asked)
        real_f = image_features(fe, lambda s, k: real[torch.arange(s, s + k) % real.shape[0]], n, batch_size)
        return frechet_distance_from_features(real_f, image_features(fe, fake, n, batch_size))
    if num_samples is not None:  # it was ignored: every fake image was scored
        raise ValueError(f"num_samples={num_samples} applies to a callable fake; fake images [M, C, H, W] are "
                         f"all scored (pass fake[:n] for fewer)")
    fake = _checks.images(fake, "fake", 2)
    real_f = image_features(fe, lambda s, k: real[s:s + k], real.shape[0], batch_size)
    return frechet_distance_from_features(real_f, image_features(fe, lambda s, k: fake[s:s + k], fake.shape[0], batch_size))


def fid(real, fake, extractor: Callable | str | os.PathLike | None = None, *, num_samples: int | None = None,
        batch_size: int = 50, **kwargs) -> float:
    """FID of ``fake`` against ``real``.

    Without ``extractor`` (the default): on the FID Inception's pool_3 features, through
    :func:`evaluate` (any source of :func:`inception_features`; ``kwargs``: ``protocol``,
    ``weights``, ``num_real``, ``device``, ``seed``, ``cache``, ``allow_singular``, ``progress``).

    With ``extractor`` (a callable images -> [B, k] or a TorchScript path,
    :func:`load_feature_extractor`): the older user-extractor path, on images [N, C, H, W] in
    [-1, 1] at their native size; ``fake`` may be a callable ``(start, k) -> k images`` called in
    batches for ``num_samples`` images (default: as many as the real ones; the real features then
    cycle through ``real``). Such values are not comparable with published FIDs."""
    if extractor is not None:
        if kwargs:
            raise TypeError(f"fid with a user extractor takes no {sorted(kwargs)}")
        return _fid_with_extractor(real, fake, extractor, num_samples, batch_size)
    return evaluate(real, fake, metrics=("fid",), num_samples=num_samples, batch_size=batch_size, **kwargs)["fid"]


def kid(real, fake, *, num_samples: int | None = None, batch_size: int = 50, **kwargs) -> tuple[float, float]:
    """KID (mean, std) of ``fake`` against ``real`` on FID Inception features, through
    :func:`evaluate` (``kid_subsets``, ``kid_subset_size`` and the other keywords as there)."""
    r = evaluate(real, fake, metrics=("kid",), num_samples=num_samples, batch_size=batch_size, **kwargs)
    return r["kid_mean"], r["kid_std"]
