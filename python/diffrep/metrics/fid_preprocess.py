"""Named preprocessing protocols of the FID Inception input (docs/metrics.md, "Generation
metrics"): how images become [B, 3, 299, 299] network inputs. The protocol, not the Frechet
maths, drives most cross-library FID differences (Parmar et al. 2022, "On Aliased Resizing and
Surprising Subtleties in GAN Evaluation", Sec. 3-4), so every result records it.

Every protocol first quantises to uint8 values (images are saved as PNG before being scored in
all reference pipelines): float images in [-1, 1] map to floor((x + 1) * 127.5 + 0.5) clamped to
[0, 255] (stylegan2-ada-pytorch's ``x * 127.5 + 128`` then truncation); uint8 images pass as they
are. One-channel images are repeated to three.

* ``"clean"`` (clean-fid's default mode): PIL's bicubic resize to 299 x 299 done in float32 per
  channel (no re-quantisation), clipped to [0, 255], then (x - 128) / 128.
* ``"legacy_tf"`` (the TF graph's own resize, as in the original TTUR code, stylegan2-ada and
  torch-fidelity): TF 1.x ``resize_bilinear`` with ``align_corners=False`` and no half-pixel
  centres (source coordinate = i * in / out, the last pixel repeated), then (x - 128) / 128.
* ``"legacy_pytorch"`` (pytorch-fid): ``torch.nn.functional.interpolate`` bilinear with
  ``align_corners=False`` on [0, 1] values, then 2x - 1.

All resizes are separable linear maps, applied as two matrix products on the images' device
(so a 50k-image FID runs on the GPU; PIL's kernel is rebuilt here from its definition:
support 2 * max(in/out, 1), a = -0.5 cubic, weights normalised per output pixel).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from .._checks import positive_int

__all__ = ["PROTOCOLS", "INPUT_SIZE", "FLOAT_RANGE_LIMIT", "to_uint8_values", "pil_bicubic_matrix",
           "tf1_bilinear_matrix", "preprocess"]

PROTOCOLS = ("clean", "legacy_tf", "legacy_pytorch")
INPUT_SIZE = 299
#: float images beyond +-2 cannot be [-1, 1] images with a sampler's overshoot: they are refused
#: (floats on the [0, 255] scale, clean-fid's generator convention, would all clip to 255)
FLOAT_RANGE_LIMIT = 2.0


def to_uint8_values(images) -> torch.Tensor:
    """Images [B, C, H, W] (C = 1 or 3) as float32 uint8 values in [0, 255], three channels.

    uint8 tensors are taken as they are; float tensors must lie in [-1, 1] (diffrep's image
    convention) and are quantised as floor((x + 1) * 127.5 + 0.5), clamped (stylegan2-ada's
    rounding). Floats beyond +-``FLOAT_RANGE_LIMIT`` (e.g. on clean-fid's [0, 255] scale) are a
    ValueError; floats in [0, 1] (torchvision's ``ToTensor``, pytorch-fid's loader) cannot be told
    apart from [-1, 1] images and must be mapped by 2x - 1 first (docs/metrics.md)."""
    try:
        x = torch.as_tensor(images)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"images must be a tensor or array [B, C, H, W], got {type(images).__name__}") from None
    if x.dim() != 4:
        raise ValueError(f"images must be [B, C, H, W], got shape {tuple(x.shape)}")
    if x.shape[1] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels (the FID Inception sees RGB), got {x.shape[1]} channels "
                         f"in shape {tuple(x.shape)}")
    if x.shape[0] < 1 or x.shape[2] < 1 or x.shape[3] < 1:
        raise ValueError(f"images are empty: shape {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        v = x.float()
    elif x.is_floating_point():
        if not torch.isfinite(x).all():
            raise ValueError("images contain NaN or infinite values")
        lo, hi = float(x.min()), float(x.max())
        if lo < -FLOAT_RANGE_LIMIT or hi > FLOAT_RANGE_LIMIT:
            raise ValueError(f"float images must lie in [-1, 1] (diffrep's convention; a sampler's overshoot up to "
                             f"+-{FLOAT_RANGE_LIMIT:g} is clipped), got values in [{lo:g}, {hi:g}]: images on the "
                             f"[0, 255] scale must be passed as uint8 (or mapped by x / 127.5 - 1)")
        v = torch.floor((x.float() + 1) * 127.5 + 0.5).clamp_(0, 255)
    else:
        raise TypeError(f"images must be uint8 or floating point in [-1, 1], got {x.dtype}")
    if v.shape[1] == 1:
        v = v.expand(-1, 3, -1, -1)
    return v


def _pil_bicubic(x: float) -> float:
    a = -0.5
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    if x < 2.0:
        return (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return 0.0


# The matrices are cached per process and shared by every call: the public functions return copies, so a
# caller that edits its matrix in place changes no later preprocessing (the cache once handed out its own array).
@lru_cache(maxsize=32)
def _pil_bicubic_np(n_in: int, n_out: int) -> np.ndarray:
    scale = n_in / n_out
    fscale = max(scale, 1.0)
    support = 2.0 * fscale
    w = np.zeros((n_out, n_in), dtype=np.float64)
    for i in range(n_out):
        centre = (i + 0.5) * scale
        lo = max(int(centre - support + 0.5), 0)
        hi = min(int(centre + support + 0.5), n_in)
        ks = [_pil_bicubic((j - centre + 0.5) / fscale) for j in range(lo, hi)]
        tot = sum(ks)
        for j, kv in zip(range(lo, hi), ks):
            w[i, j] = kv / tot if tot != 0 else kv
    return w


def pil_bicubic_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """[n_out, n_in] float64 matrix of PIL's bicubic resample along one axis (Resample.c
    ``precompute_coeffs``: antialiasing support 2 * max(n_in / n_out, 1), cubic a = -0.5)."""
    return torch.from_numpy(_pil_bicubic_np(positive_int(n_in, "n_in"), positive_int(n_out, "n_out")).copy())


@lru_cache(maxsize=32)
def _tf1_bilinear_np(n_in: int, n_out: int) -> np.ndarray:
    w = np.zeros((n_out, n_in), dtype=np.float64)
    scale = n_in / n_out
    for i in range(n_out):
        s = i * scale
        j0 = min(int(math.floor(s)), n_in - 1)
        j1 = min(j0 + 1, n_in - 1)
        f = s - j0
        w[i, j0] += 1.0 - f
        w[i, j1] += f
    return w


def tf1_bilinear_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """[n_out, n_in] float64 matrix of TF 1.x ``resize_bilinear(align_corners=False)`` (legacy,
    no half-pixel centres): output i samples the source at i * n_in / n_out."""
    return torch.from_numpy(_tf1_bilinear_np(positive_int(n_in, "n_in"), positive_int(n_out, "n_out")).copy())


def _separable(v: torch.Tensor, wh: torch.Tensor, ww: torch.Tensor) -> torch.Tensor:
    # rows first then columns: out[b, c] = Wh @ v[b, c] @ Ww^T
    wh = wh.to(device=v.device, dtype=v.dtype)
    ww = ww.to(device=v.device, dtype=v.dtype)
    return torch.matmul(torch.matmul(wh, v), ww.transpose(0, 1))


def preprocess(images, protocol: str = "clean", *, size: int = INPUT_SIZE) -> torch.Tensor:
    """Images [B, C, H, W] (uint8, or float in [-1, 1]; C = 1 or 3) as the FID Inception's
    normalised float32 input [B, 3, size, size] under ``protocol`` (module docstring). The work
    runs on the images' device."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    size = positive_int(size, "size")
    v = to_uint8_values(images)
    h, w = v.shape[2], v.shape[3]
    if protocol == "clean":
        if (h, w) != (size, size):
            v = _separable(v, pil_bicubic_matrix(h, size), pil_bicubic_matrix(w, size)).clamp_(0, 255)
        return (v - 128.0) / 128.0
    if protocol == "legacy_tf":
        if (h, w) != (size, size):
            v = _separable(v, tf1_bilinear_matrix(h, size), tf1_bilinear_matrix(w, size))
        return (v - 128.0) / 128.0
    x = v / 255.0
    if (h, w) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return 2.0 * x - 1.0
