"""What a latent traversal shows: which factor each latent predicts, where the rendered object moves.

The quickstart's traversal figure and its ``traversal`` block of metrics.json are built from these
pieces (docs/methods/paramrel.md#quickstart):

- :func:`latent_factor_scores`: the normalised mutual information NMI(z_d; v_j) = I(z_d; v_j) / H(v_j)
  of each latent with each ground-truth factor, with MIG's estimator (20-bin histograms of the
  encoder means, ``diffrep.metrics.mig.discretised_mi``); each latent's best factor and its score;
- :func:`order_latents`: latents by their best score (ties: by spread), so the rows a reader sees
  first are the ones that carry a factor;
- :func:`traversal_values`: the values a traversal visits, the ``(q, 1 - q)`` quantiles of the
  encoder means over the data (the range the data occupies, not a fixed [-3, 3]);
- :func:`spread_bases`: real examples whose factors are far apart (farthest-point sampling), so the
  traversals start from varied positions, shapes and sizes rather than one centred sprite;
- :func:`image_centroids`, :func:`centroid_shifts`: the intensity centroid (x, y) in pixels of each
  image and, for each latent, how far a traversal moves it (the end-to-end displacement, averaged
  over the bases);
- :func:`prior_decoder`: ParamReL's images as a function of z alone (deterministic decoding from the
  flow's prior state with z fixed at every step), so a traversal shows what z carries and nothing
  that a reverse-sampled subcode holds.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from .._checks import finite_float, positive_int
from ..ops._full_precision import autocast_off
from ._arrays import real_tensor

__all__ = ["latent_factor_scores", "order_latents", "traversal_values", "spread_bases", "image_centroids",
           "centroid_shifts", "prior_decoder", "row_label"]


def _matrix(x, name: str) -> torch.Tensor:
    t = real_tensor(x, name)
    if t.dim() != 2 or t.shape[0] < 2 or t.shape[1] < 1:
        raise ValueError(f"{name} must be a 2-d array (n >= 2, columns >= 1), got shape {tuple(t.shape)}")
    return t


def latent_factor_scores(codes, factors, factor_names: Sequence[str] | None = None, num_bins: int = 20) -> dict:
    """NMI of each latent with each factor: ``codes`` (n, d) float, ``factors`` (n, F) int.

    Returns ``{"nmi": (d, F) array, "best_factor": [name per latent], "best_index": [int],
    "best_score": [float], "factor_names": [...]}``. NMI = I / H(factor) as in MIG; a constant factor
    (H = 0) scores 0 for every latent.
    """
    from ..metrics.mig import discretised_mi

    c = _matrix(codes, "codes").double()
    f = _matrix(factors, "factors")
    if c.shape[0] != f.shape[0]:
        raise ValueError(f"codes and factors differ in length: {c.shape[0]} vs {f.shape[0]}")
    if f.dtype.is_floating_point:
        raise TypeError("factors must be integer classes")
    names = [f"factor {j}" for j in range(f.shape[1])] if factor_names is None else list(factor_names)
    if len(names) != f.shape[1]:
        raise ValueError(f"factor_names has {len(names)} entries for {f.shape[1]} factors")
    positive_int(num_bins, "num_bins")
    m, h = discretised_mi(c, f.long(), num_bins)
    m, h = m.double().cpu().numpy(), h.double().cpu().numpy()
    nmi = np.where(h[None] > 0, m / np.where(h[None] > 0, h[None], 1.0), 0.0)
    best = nmi.argmax(1)
    return {"nmi": nmi, "best_index": [int(b) for b in best], "best_factor": [names[b] for b in best],
            "best_score": [float(nmi[d, b]) for d, b in enumerate(best)], "factor_names": names}


def order_latents(best_score: Sequence[float], spread: Sequence[float] | None = None) -> list[int]:
    """Latent indices by best factor score, descending; ties (to 1e-12) by ``spread`` descending, then index."""
    s = real_tensor(best_score, "best_score").double().numpy()
    if s.ndim != 1 or s.size == 0 or not np.isfinite(s).all():
        raise ValueError(f"best_score must be a non-empty finite vector, got {best_score!r}")
    sp = np.zeros_like(s) if spread is None else np.asarray(spread, dtype=np.float64)
    if sp.shape != s.shape:
        raise ValueError(f"spread has shape {sp.shape}, best_score {s.shape}")
    return sorted(range(s.size), key=lambda d: (-round(s[d], 12), -sp[d], d))


def traversal_values(codes, num: int = 7, q: float = 0.02) -> torch.Tensor:
    """(d, num) values per latent: ``num`` points evenly spaced between the q and 1 - q quantiles of
    that latent over ``codes`` (n, d)."""
    c = _matrix(codes, "codes").double()
    if not torch.isfinite(c).all():
        raise ValueError("codes: contains NaN or inf (the quantiles, and so every traversal value, would be NaN)")
    if not isinstance(num, int) or num < 2:
        raise ValueError(f"num must be an int >= 2, got {num!r}")
    if not 0 <= finite_float(q, "q") < 0.5:
        raise ValueError(f"q must be in [0, 0.5), got {q}")
    lo = torch.quantile(c, q, dim=0)
    hi = torch.quantile(c, 1 - q, dim=0)
    w = torch.linspace(0, 1, num, dtype=torch.float64)
    return (lo[:, None] + (hi - lo)[:, None] * w[None]).float()


def spread_bases(factors, k: int, sizes: Sequence[int] | None = None, start: int = 0) -> list[int]:
    """Indices of ``k`` rows of ``factors`` (n, F) far apart: farthest-point sampling in factor space,
    each factor scaled by its number of classes (``sizes``; default the observed max + 1), from ``start``."""
    f = _matrix(factors, "factors").double().numpy()
    k = positive_int(k, "k")
    if k > f.shape[0]:
        raise ValueError(f"k={k} exceeds the {f.shape[0]} examples")
    s = f.max(0) + 1 if sizes is None else np.asarray(sizes, dtype=np.float64)
    if s.shape != (f.shape[1],) or (s <= 0).any():
        raise ValueError(f"sizes must be {f.shape[1]} positive numbers, got {sizes!r}")
    if not 0 <= start < f.shape[0]:
        raise ValueError(f"start must index a row, got {start}")
    g = f / np.maximum(s - 1, 1)
    chosen = [start]
    dist = ((g - g[start]) ** 2).sum(1)
    for _ in range(k - 1):
        nxt = int(dist.argmax())
        chosen.append(nxt)
        dist = np.minimum(dist, ((g - g[nxt]) ** 2).sum(1))
    return chosen


def image_centroids(images: torch.Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """Intensity centroid (x, y) in pixels (pixel centres at j + 0.5, y down) of each image [n, C, H, W]
    with values in ``value_range`` (low = background). Returns [n, 2] float64; NaN for an empty image."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        raise ValueError(f"images must be a tensor [n, C, H, W], got {tuple(getattr(images, 'shape', ()))}")
    if images.is_complex() or images.dtype == torch.bool or images.shape[0] < 1:
        raise ValueError(f"images must be a non-empty real tensor [n, C, H, W], got {images.dtype} {tuple(images.shape)}")
    lo, hi = value_range
    if not lo < hi:
        raise ValueError(f"value_range must be (low, high) with low < high, got {value_range!r}")
    if not torch.isfinite(images).all():
        raise ValueError("images contain NaN or inf (their centroid would read as NaN, the empty-image value)")
    w = ((images.detach().double() - lo) / (hi - lo)).clamp(0, 1).mean(1)  # [n, H, W]
    H, W = w.shape[-2:]
    ys = torch.arange(H, dtype=torch.float64) + 0.5
    xs = torch.arange(W, dtype=torch.float64) + 0.5
    mass = w.sum((1, 2))
    cx = (w.sum(1) * xs).sum(1) / mass
    cy = (w.sum(2) * ys).sum(1) / mass
    out = torch.stack([cx, cy], 1)
    out[mass <= 0] = float("nan")
    return out


@autocast_off  # decode (a user model) in its own precision, not the caller's autocast (docs/architecture.md#autocast)
def centroid_shifts(decode: Callable[[torch.Tensor], torch.Tensor], base_codes: torch.Tensor, dims: Sequence[int],
                    values: torch.Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> dict:
    """How far each latent's traversal moves the object: for latent d (one of ``dims``) and each base code
    (rows of ``base_codes`` [B, L]), set z_d to each of ``values[d]`` ([L, V] or [len(dims), V] indexed
    by position), decode (``decode``: codes [M, L] -> images [M, C, H, W]) and take the centroid.

    Per latent: ``dx``, ``dy`` = mean over bases of the signed end-to-end displacement
    centroid(values[-1]) - centroid(values[0]) (px; a base whose first or last image is empty counts 0:
    an object that vanishes did not move), ``range_x``, ``range_y`` = mean over bases of max - min of the
    centroid along the traversal (non-empty images; 0 when all are empty), and ``empty`` = the fraction of empty images. Returns ``{"per_latent": {d: {...}}, "best_x": d, "best_y": d,
    "max_abs_dx": float, "max_abs_dy": float, "images": [len(dims), B, V, C, H, W]}``.
    """
    if not isinstance(base_codes, torch.Tensor) or base_codes.dim() != 2:
        raise ValueError(f"base_codes must be [B, L], got {tuple(getattr(base_codes, 'shape', ()))}")
    if not base_codes.dtype.is_floating_point:  # the traversal values were truncated to the codes' integers
        raise TypeError(f"base_codes must be a floating-point tensor, got dtype {base_codes.dtype}")
    # at least float32: the traversal values are written into the codes, and bf16 codes rounded them (0.3 -> 0.30078)
    base_codes = base_codes.to(torch.promote_types(base_codes.dtype, torch.float32))
    B, L = base_codes.shape
    dims = [int(d) for d in dims]
    if not dims or any(not 0 <= d < L for d in dims):
        raise ValueError(f"dims must be a non-empty list in [0, {L}), got {dims}")
    values = torch.as_tensor(values, dtype=base_codes.dtype)
    if values.dim() != 2 or values.shape[1] < 2 or values.shape[0] not in (L, len(dims)):
        raise ValueError(f"values must be [L, V] or [len(dims), V] with V >= 2, got {tuple(values.shape)}")
    V = values.shape[1]
    per, imgs = {}, []
    for i, d in enumerate(dims):
        v = values[d] if values.shape[0] == L else values[i]
        codes = base_codes[:, None, :].repeat(1, V, 1)
        codes[:, :, d] = v.to(codes.device)
        out = decode(codes.reshape(B * V, L))
        if not isinstance(out, torch.Tensor) or out.dim() != 4 or out.shape[0] != B * V:
            raise ValueError(f"decode must return [{B * V}, C, H, W], got {tuple(getattr(out, 'shape', ()))}")
        imgs.append(out.reshape(B, V, *out.shape[1:]).cpu())
        c = image_centroids(out.cpu(), value_range).reshape(B, V, 2)
        end = c[:, -1] - c[:, 0]
        mean_end = torch.nan_to_num(end, nan=0.0).mean(0)  # an object that vanishes did not move
        empty = torch.isnan(c[..., 0])  # [B, V]
        big, small = c.masked_fill(empty[..., None], -np.inf).amax(1), c.masked_fill(empty[..., None], np.inf).amin(1)
        rng = torch.where(empty.all(1, keepdim=True), torch.zeros_like(big), big - small).mean(0)
        per[d] = {"dx": float(mean_end[0]), "dy": float(mean_end[1]), "range_x": float(rng[0]),
                  "range_y": float(rng[1]), "empty": float(empty.double().mean())}

    bx = max(dims, key=lambda d: abs(per[d]["dx"]))
    by = max(dims, key=lambda d: abs(per[d]["dy"]))
    return {"per_latent": per, "best_x": bx, "best_y": by, "max_abs_dx": abs(per[bx]["dx"]),
            "max_abs_dy": abs(per[by]["dy"]), "images": torch.stack(imgs)}


def row_label(d: int, factor: str, score: float) -> str:
    """The traversal figure's row label: latent, the factor it best predicts and its NMI."""
    return f"z{d}: {factor} {finite_float(score, 'score'):.2f}"


def prior_decoder(model, num_steps: int | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """codes [M, L] -> ParamReL images [M, C, H, W] in [-1, 1] from z alone: deterministic decoding
    (``ParamReL.decode``: y = E[y | x-hat], no sender noise) from the flow's prior state with z fixed at
    every step."""
    from ..bfn.model import model_dtypes
    from ..methods.paramrel import ReverseSample

    steps = positive_int(model.config.sample_steps if num_steps is None else num_steps, "num_steps")
    L, b = model.config.latent_dim, model.config.bfn

    @autocast_off  # the ParamReL decode in the model's own precision, not the caller's autocast
    def decode(codes: torch.Tensor) -> torch.Tensor:
        if not isinstance(codes, torch.Tensor) or codes.dim() != 2 or codes.shape[1] != L:
            raise ValueError(f"codes must be [M, {L}], got {tuple(getattr(codes, 'shape', ()))}")
        if not codes.dtype.is_floating_point:  # an integer tensor (indices, labels) is not a code: the cast took it
            raise TypeError(f"codes must be a floating-point tensor, got dtype {codes.dtype}")
        dev = next(model.parameters()).device
        flow_dtype = model_dtypes(model)[1]  # float64 for a float64 model (docs/kernels/bfn.md#precision)
        z = codes.to(dev, flow_dtype)[None].expand(steps + 1, -1, -1)
        prior = model.flow.prior((codes.shape[0], b.channels, b.image_size, b.image_size), dev, dtype=flow_dtype)
        with torch.no_grad():
            return model.decode(ReverseSample(z, prior))

    return decode
