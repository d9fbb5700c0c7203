"""Measurements on a trained denoising multi-beta VAE (docs/methods/multibeta.md#recipes).

- :func:`information_curve`: how much each latent space Z_beta keeps of the data (Sec. 3.2: information
  falls with beta; Prop. 3.2: Z_B carries none), measured per beta by sigma_beta, the rate (the mean
  KL(q(z_beta | x) || N(0, I)), an upper bound on I(x; z_beta)), the direct-decode error
  ||x - g(f(x, beta), beta)||^2 and the share of the data's variance that the direct decode explains,
  relative to the beta = 0 code:

      r(beta) = (V - mse(beta)) / (V - mse(0)),   V = mean_x ||x - mean image||^2 / D

  (r(0) = 1; r -> 0 when the decode is the mean image, i.e. the code says nothing about x);
- :func:`informative_beta`: the default beta of the representation, the largest beta whose code still
  explains at least ``fraction`` of what the beta = 0 code explains (r(beta) >= fraction): the paper
  does not say which beta feeds its metrics (Tables 1-2), and a larger beta is more disentangled
  (Sec. 3.1), so this takes the most regularised code that is still informative;
- :func:`nearest_distance`: per image, the mean squared pixel distance to the nearest image of a
  reference set (the "closer to real images" criterion of Fig. 1a-b: a blurred direct decode is close
  to E[x | z_beta], which minimises the error to its own input, but far from every real image);
- :func:`spearman`: the rank correlation used for "increases with beta".
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from ..ops._full_precision import autocast_off
from ._arrays import real_tensor

__all__ = ["information_curve", "informative_beta", "nearest_distance", "spearman"]


def _betas(betas, beta_max: float) -> list[float]:
    if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) == 0:
        raise ValueError("betas must be a non-empty sequence of numbers in [0, B]")
    out = []
    for b in betas:
        if isinstance(b, bool) or not isinstance(b, (int, float, np.floating, np.integer)) or not math.isfinite(float(b)):
            raise ValueError(f"betas must be finite numbers, got {b!r}")
        if not 0 <= float(b) <= beta_max:
            raise ValueError(f"betas must lie in [0, B={beta_max:g}], got {b!r}")
        out.append(float(b))
    if any(b2 <= b1 for b1, b2 in zip(out, out[1:])):
        raise ValueError(f"betas must be strictly increasing, got {out}")
    return out


@torch.no_grad()
@autocast_off  # the encode/decode in the VAE's own precision, not the caller's autocast
def information_curve(vae, x: torch.Tensor, betas: Sequence[float], *, batch_size: int = 256) -> dict:
    """Per beta of ``betas`` (strictly increasing, in [0, B]): ``sigma`` (sigma_beta; with a per-unit posterior,
    ``posterior_scale="per_unit"``, the root mean square over units, and ``sigma_units`` lists every unit's), ``rate`` (mean
    KL(q(z_beta | x) || N(0, I)) in nats, Eq. 4's KL at the encoder mean), ``mse`` (mean squared error per
    pixel of the direct decode g(f(x, beta), beta)) and ``explained`` (r(beta) of the module docstring; needs
    0 in ``betas``, else NaN). ``vae`` is a :class:`diffrep.methods.multibeta.MultiBetaVAE` (or anything with
    ``encode(x, beta)``, ``decode(z, beta)``, ``sigma(beta)`` and ``config.beta_max``); ``x`` a batch of images
    [n, C, H, W] (n >= 2). Returns lists aligned with ``betas`` plus ``variance`` (V)."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[0] < 2:
        raise ValueError(f"x must be a batch of at least 2 images [n, C, H, W], got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if not all(callable(getattr(vae, k, None)) for k in ("encode", "decode", "sigma")) or \
            not hasattr(getattr(vae, "config", None), "beta_max"):
        raise TypeError(f"vae must be a MultiBetaVAE (encode, decode, sigma, config.beta_max), got {type(vae).__name__}")
    if not x.is_floating_point() or not bool(torch.isfinite(x).all()):
        raise ValueError(f"x must be finite floating-point images, got dtype {x.dtype} (or NaN/inf values)")
    bs = _betas(betas, float(vae.config.beta_max))
    xd = x.double()
    variance = float((xd - xd.mean(0, keepdim=True)).pow(2).mean())
    out = {"betas": bs, "sigma": [], "rate": [], "mse": [], "explained": [], "variance": variance}
    for b in bs:
        sq, kl = 0.0, 0.0
        s2 = vae.sigma(b).double().reshape(-1).pow(2)  # [1] isotropic, [d] per unit
        sig = math.sqrt(float(s2.mean()))
        for i in range(0, x.shape[0], batch_size):
            xb = x[i:i + batch_size]
            f = vae.encode(xb, b)
            rec = vae.decode(f, b)
            sq += float((rec.double() - xb.double()).pow(2).sum())
            d = f[0].numel()
            var_term = d * float((s2 - s2.log() - 1).mean())  # sum over the d units (equal terms when isotropic)
            kl += float(0.5 * (f.double().pow(2).flatten(1).sum(1) + var_term).sum())
        out["sigma"].append(sig)
        if s2.numel() > 1:
            out.setdefault("sigma_units", []).append(s2.sqrt().tolist())
        out["mse"].append(sq / x.numel())
        out["rate"].append(kl / x.shape[0])
    if bs[0] == 0.0 and variance > out["mse"][0]:
        span = variance - out["mse"][0]
        out["explained"] = [(variance - m) / span for m in out["mse"]]
    else:
        out["explained"] = [float("nan")] * len(bs)
    return out


def informative_beta(curve: dict, fraction: float = 0.5) -> float:
    """The largest beta of ``curve`` (:func:`information_curve`) whose code explains at least ``fraction``
    (in (0, 1]) of the variance the beta = 0 code explains (``explained >= fraction``)."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ValueError(f"fraction must be a number in (0, 1], got {fraction!r}")
    if not isinstance(curve, dict) or "betas" not in curve or "explained" not in curve:
        raise ValueError("curve must be the dict information_curve returns (keys 'betas', 'explained')")
    try:
        betas = [float(b) for b in curve["betas"]]
        explained = [float(r) for r in curve["explained"]]
    except (TypeError, ValueError):
        raise ValueError("curve['betas'] and curve['explained'] must be sequences of numbers "
                         "(the dict information_curve returns)") from None
    if len(betas) != len(explained):  # zip dropped the unmatched betas
        raise ValueError(f"curve has {len(betas)} betas but {len(explained)} explained values; they must pair up")
    curve = {"betas": betas, "explained": explained}
    ok = [b for b, r in zip(curve["betas"], curve["explained"]) if math.isfinite(r) and r >= fraction]
    if not ok:
        raise ValueError("no beta of the curve keeps the code informative (the curve needs beta = 0 and a "
                         "decoder that explains some variance at beta = 0)")
    return max(ok)


@torch.no_grad()
def nearest_distance(images: torch.Tensor, reference: torch.Tensor, *, chunk: int = 4096) -> torch.Tensor:
    """[n] mean squared pixel distance from each image to its nearest neighbour in ``reference`` [m, ...]
    (same trailing shape), computed exactly in float64 chunks of the reference."""
    if not isinstance(images, torch.Tensor) or not isinstance(reference, torch.Tensor):
        raise TypeError("images and reference must be tensors")
    if images.dim() < 2 or reference.dim() < 2 or images.shape[1:] != reference.shape[1:]:
        raise ValueError(f"images {tuple(images.shape)} and reference {tuple(reference.shape)} must be batches of "
                         "the same image shape")
    if images.shape[0] < 1 or reference.shape[0] < 1:
        raise ValueError("images and reference must be non-empty")
    for name, t in (("images", images), ("reference", reference)):
        if t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"{name} must hold real numbers, got dtype {t.dtype}")
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name} holds NaN or infinite values (a NaN distance is never the nearest)")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be an int >= 1, got {chunk!r}")
    a = images.flatten(1).double()
    best = torch.full((a.shape[0],), math.inf, dtype=torch.float64)
    a2 = a.pow(2).sum(1, keepdim=True)
    for i in range(0, reference.shape[0], chunk):
        r = reference[i:i + chunk].flatten(1).double().to(a.device)
        d = (a2 - 2 * a @ r.T + r.pow(2).sum(1)[None]).clamp_min(0)
        best = torch.minimum(best, d.min(1).values.cpu())
    return best / a.shape[1]


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation of two equal-length sequences (average ranks for ties)."""
    from scipy.stats import spearmanr

    a, b = (real_tensor(v, n).double().numpy() for v, n in ((a, "a"), (b, "b")))
    if a.shape != b.shape or a.ndim != 1 or a.size < 2:
        raise ValueError(f"a and b must be 1-D sequences of the same length >= 2, got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("a and b must be finite (a NaN makes the rank correlation NaN)")
    return float(spearmanr(a, b).statistic)
