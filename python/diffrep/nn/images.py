"""Validation of image batches, shared by every model: one wording for one mistake.

A batch is an image tensor [B, C, H, W], or a tuple/list whose first entry is one (an
``(images, targets)`` pair from a dataset). :func:`check_images` checks the kind of tensor
(``TypeError``) and its shape and values (``ValueError``), and casts floating images to the model's
dtype (:func:`module_dtype`): images made from numpy arrays arrive as float64, and every model computes
in the precision of its own parameters (docs/architecture.md#inputs).

Clean images (a batch to train on, images to encode or reconstruct; not the noisy x_t, a chain's
starting noise or latents) are checked against their pixel range with ``value_range``
(:data:`IMAGE_RANGE`, docs/data.md#conventions): images on the 0..255 scale, or standardised ones,
would otherwise train and score silently wrong. Images in [0, 1] given to a [-1, 1] model cannot be
told apart by their range.
"""

from __future__ import annotations

import numpy as np
import torch

from .._checks import map_style_dataset

__all__ = ["batch_images", "dataset_images", "check_images", "module_dtype", "IMAGE_RANGE", "UNIT_RANGE",
           "RANGE_TOLERANCE"]

#: the pixel range every diffrep method reads: the datasets map an 8-bit pixel p to p / 127.5 - 1
IMAGE_RANGE = (-1.0, 1.0)
#: [0, 1]: the VAE family's ``input_range="01"``
UNIT_RANGE = (0.0, 1.0)
#: how far past either end of the range a value may lie: far above float round-off (p / 127.5 - 1 and
#: average pooling in float32 err by ~1e-7), well below one 8-bit level (2 / 255 = 7.8e-3)
RANGE_TOLERANCE = 1e-3


def batch_images(batch) -> torch.Tensor:
    """The image tensor of a batch: the tensor itself, or the first entry of an (images, targets) pair."""
    return batch[0] if isinstance(batch, (tuple, list)) and batch else batch


def dataset_images(dataset, idx) -> torch.Tensor:
    """The images [B, C, H, W] of the dataset indices ``idx`` (a non-empty sequence of ints): one batched
    ``dataset[array]`` where the dataset answers one (the procedural and in-memory sets: a refit of DyGA's
    anchors on the whole training set read item by item was Python-bound), else its items stacked."""
    map_style_dataset(dataset, what="of images")
    idx = list(idx)
    if not idx or not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in idx):
        raise ValueError(f"dataset_images: idx must be a non-empty sequence of ints, got {idx[:8]!r}")
    try:
        x = batch_images(dataset[np.asarray(idx)])
        if isinstance(x, torch.Tensor) and x.dim() == 4 and x.shape[0] == len(idx):
            return x
    except (TypeError, IndexError, KeyError, ValueError):  # no array indexing: item by item
        pass
    return torch.stack([batch_images(dataset[i]) for i in idx])


def module_dtype(module: torch.nn.Module) -> torch.dtype | None:
    """The dtype of ``module``'s first floating-point parameter (None when it has none)."""
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module_dtype: module must be an nn.Module, got {type(module).__name__}")
    return next((p.dtype for p in module.parameters() if p.dtype.is_floating_point), None)


def _is_count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _check_spec(channels, size, multiple_of) -> None:
    """The caller's requirements themselves (a str ``multiple_of`` was "not all arguments converted during
    string formatting", ``multiple_of=0`` a ZeroDivisionError, a float size "cannot unpack")."""
    if channels is not None and not _is_count(channels):
        raise ValueError(f"check_images: channels must be None or a positive int, got {channels!r}")
    if size is not None and not _is_count(size) and not (
            isinstance(size, (tuple, list)) and len(size) == 2 and all(_is_count(v) for v in size)):
        raise ValueError(f"check_images: size must be None, a positive int or (H, W), got {size!r}")
    if not _is_count(multiple_of):
        raise ValueError(f"check_images: multiple_of must be a positive int, got {multiple_of!r}")


def _pixel_map(value_range: tuple[float, float]) -> str:
    """How 8-bit pixels p map onto ``value_range`` (the fix a range error names)."""
    lo, hi = value_range
    if value_range == IMAGE_RANGE:
        return "divide 0..255 pixels by 127.5 and subtract 1"
    if value_range == UNIT_RANGE:
        return "divide 0..255 pixels by 255"
    return f"map 0..255 pixels p to {lo:g} + p * {(hi - lo) / 255:g}"


def _check_spec_range(value_range) -> tuple[float, float] | None:
    if value_range is None:
        return None
    if (not isinstance(value_range, tuple) or len(value_range) != 2
            or not all(isinstance(v, float) and np.isfinite(v) for v in value_range)
            or not value_range[0] < value_range[1]):
        raise ValueError(f"check_images: value_range must be None or (low, high) floats with low < high, "
                         f"got {value_range!r}")
    return value_range


def check_images(x, *, channels: int | None = None, size: int | tuple[int, int] | None = None,
                 multiple_of: int = 1, floating: bool = True, finite: bool = True, name: str = "x",
                 who: str = "", dtype: torch.dtype | None = None,
                 value_range: tuple[float, float] | None = None) -> torch.Tensor:
    """``x`` when it is an image batch [B, C, H, W] with B >= 1; cast to ``dtype`` when that is given and
    ``x`` is floating point (integer class maps, allowed by ``floating=False``, keep their dtype).

    ``channels``: the required C; ``size``: the required H = W (an int) or (H, W); ``multiple_of``: H and
    W must be multiples of it (e.g. an autoencoder's down-sampling factor); ``floating``: the dtype must
    be floating point (integer class maps are refused); ``finite``: no NaN or infinity (floating dtypes
    only; one reduction over the batch). ``value_range`` (low, high), e.g. :data:`IMAGE_RANGE`: floating
    values must lie in [low - RANGE_TOLERANCE, high + RANGE_TOLERANCE] (the message names the min and max
    found and the fix); with ``finite`` the one ``aminmax`` of the batch checks both, no second pass.
    Messages start with ``who`` (e.g. ``"SAMI.loss: "``) and ``name``.
    """
    lead = f"{who}: {name}" if who else name
    _check_spec(channels, size, multiple_of)
    value_range = _check_spec_range(value_range)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{lead} must be an image tensor [B, C, H, W], got {type(x).__name__}")
    if floating and not x.dtype.is_floating_point:
        raise TypeError(f"{lead} must be a floating-point image tensor [B, C, H, W], got dtype {x.dtype}")
    h, w = (size, size) if isinstance(size, int) else (size or (None, None))
    want = [str(d) if d is not None else n for d, n in ((channels, "C"), (h, "H"), (w, "W"))]
    ok = x.dim() == 4 and x.shape[0] >= 1
    if ok:
        got = (x.shape[1], x.shape[2], x.shape[3])
        ok = all(d is None or d == g for d, g in zip((channels, h, w), got))
        ok = ok and got[1] % multiple_of == 0 and got[2] % multiple_of == 0
    if not ok:
        extra = f" with H, W divisible by {multiple_of}" if multiple_of > 1 else ""
        raise ValueError(f"{lead} must have shape [B, {', '.join(want)}]{extra}, got {tuple(x.shape)}")
    if value_range is not None and x.dtype.is_floating_point and x.numel():
        lo, hi = torch.stack(torch.aminmax(x.detach())).tolist()  # one reduction, one transfer
        if finite and not (np.isfinite(lo) and np.isfinite(hi)):  # aminmax propagates NaN
            raise ValueError(f"{lead} holds NaN or infinite values")
        if lo < value_range[0] - RANGE_TOLERANCE or hi > value_range[1] + RANGE_TOLERANCE:
            raise ValueError(f"{lead}: images must lie in [{value_range[0]:g}, {value_range[1]:g}] "
                             f"(docs/data.md#conventions; {RANGE_TOLERANCE:g} of round-off allowed), got min "
                             f"{lo:g} max {hi:g}: {_pixel_map(value_range)}")
    elif finite and x.dtype.is_floating_point and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{lead} holds NaN or infinite values")
    return x.to(dtype) if dtype is not None and x.dtype.is_floating_point else x
