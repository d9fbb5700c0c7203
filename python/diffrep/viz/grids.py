"""``make_grid`` with torchvision's behaviour (docs/architecture.md#figures) and Pillow-based saving."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from . import _checks

__all__ = ["make_grid", "save_image", "save_gif", "to_pil", "upscale", "legible_scale", "grid_image"]


def _as_batch(images) -> torch.Tensor:
    if isinstance(images, (list, tuple)):
        if not images:
            raise ValueError("make_grid: images is an empty list")
        if not all(isinstance(t, torch.Tensor) for t in images):
            raise TypeError("make_grid: images given as a list must contain only tensors")
        shapes = {tuple(t.shape) for t in images}
        if len(shapes) != 1:
            raise ValueError(f"make_grid: images in the list differ in shape: {sorted(shapes)}")
        images = torch.stack(list(images))
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"make_grid: images must be a tensor or a list of tensors, got {type(images).__name__}")
    if images.dim() == 2:
        images = images[None]
    if images.dim() == 3:
        images = images[None]
    if images.dim() != 4:
        raise ValueError(f"make_grid: images must be [B, C, H, W], [C, H, W] or [H, W], got {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError("make_grid: images is an empty batch")
    return _checks.images(images, "images", "make_grid")


def make_grid(images, nrow: int = 8, padding: int = 2, normalize: bool = False,
              value_range: tuple[float, float] | None = None, scale_each: bool = False,
              pad_value: float = 0.0) -> torch.Tensor:
    """Tile images into one [C, H', W'] canvas, ``min(nrow, B)`` per row (torchvision semantics).

    One-channel input is repeated to three channels; other channel counts are kept. With
    ``normalize``, values are clamped to ``value_range`` (default: the tensor's own min/max, per image
    if ``scale_each``) and mapped to [0, 1]. The input is never modified. A batch of one returns that
    image without padding.
    """
    if isinstance(nrow, bool) or not isinstance(nrow, int) or nrow < 1:
        raise ValueError(f"nrow must be a positive int, got {nrow!r}")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be a non-negative int, got {padding!r}")
    _checks.flag(normalize, "normalize")
    _checks.flag(scale_each, "scale_each")
    pad_value = _checks.pad_value(pad_value)
    x = _as_batch(images).clone()
    if not x.dtype.is_floating_point:
        x = x.float()
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    if normalize:
        if value_range is not None:
            value_range = _checks.value_range(value_range)

        def norm(t):
            lo, hi = value_range if value_range is not None else (float(t.min()), float(t.max()))
            return t.clamp(lo, hi).sub(lo).div(max(hi - lo, 1e-5))

        x = torch.stack([norm(t) for t in x]) if scale_each else norm(x)
    if x.shape[0] == 1:
        return x[0]
    B, C, H, W = x.shape
    xmaps = min(nrow, B)
    ymaps = math.ceil(B / xmaps)
    h, w = H + padding, W + padding
    grid = x.new_full((C, ymaps * h + padding, xmaps * w + padding), pad_value)
    for k in range(B):
        r, c = divmod(k, xmaps)
        grid[:, r * h + padding: r * h + padding + H, c * w + padding: c * w + padding + W] = x[k]
    return grid


def legible_scale(size: int, min_scale: int = 4, min_pixels: int = 128) -> int:
    """The nearest-neighbour enlargement for figures of ``size``-pixel images: at least ``min_scale`` and
    enough for ``min_pixels`` per image (32 px -> 4, 16 px -> 8, 64 px -> 4)."""
    _checks.positive_int(size, "size")  # int() truncated 2.5 and read True as 1
    _checks.positive_int(min_scale, "min_scale")
    _checks.positive_int(min_pixels, "min_pixels")
    return max(min_scale, -(-min_pixels // size))


def to_pil(image: torch.Tensor, value_range: tuple[float, float] = (0.0, 1.0)):
    """[C, H, W] (C in 1, 3, 4) or [H, W] float tensor -> PIL image, mapping ``value_range`` to 0..255."""
    from PIL import Image

    if not isinstance(image, torch.Tensor):
        raise TypeError(f"to_pil: image must be a tensor, got {type(image).__name__}")
    lo, hi = _checks.value_range(value_range)
    if image.is_complex() or image.dtype == torch.bool:
        raise TypeError(f"to_pil: image must hold real values, got {image.dtype}")
    x = image.detach().float().cpu()
    if x.dim() == 2:
        x = x[None]
    if x.dim() != 3 or x.shape[0] not in (1, 3, 4):
        raise ValueError(f"to_pil: image must be [C, H, W] with C in (1, 3, 4), got {tuple(image.shape)}")
    if not bool(torch.isfinite(x).all()):  # NaN became black pixels: a diverged model looked like a dark image
        raise ValueError("to_pil: the image contains NaN or infinite values")
    x = (x - lo) / (hi - lo)
    arr = x.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    if arr.shape[2] == 1:
        return Image.fromarray(arr[:, :, 0], mode="L")
    return Image.fromarray(np.ascontiguousarray(arr), mode="RGB" if arr.shape[2] == 3 else "RGBA")


def upscale(img, scale: int):
    """A PIL image enlarged ``scale`` times by nearest-neighbour (pixels stay sharp squares)."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive int, got {scale!r}")
    from PIL import Image

    if not isinstance(img, Image.Image):
        raise TypeError(f"upscale: img must be a PIL image, got {type(img).__name__}")
    if scale == 1:
        return img

    return img.resize((img.width * scale, img.height * scale), Image.NEAREST)


def grid_image(images, *, nrow: int = 8, padding: int = 2, value_range: tuple[float, float] = (0.0, 1.0),
               pad_value: float | None = None, scale: int | None = None):
    """A grid of ``images`` as a PIL image (a notebook displays it), enlarged by nearest-neighbour
    ``scale`` times; ``scale=None`` makes each image at least 128 px (:func:`legible_scale` without a
    minimum factor)."""
    lo, _ = _checks.value_range(value_range)
    if scale is not None:
        _checks.positive_int(scale, "scale")
    grid = make_grid(images, nrow=nrow, padding=padding, pad_value=lo if pad_value is None else pad_value)
    if scale is None:
        scale = legible_scale(_as_batch(images).shape[-1], min_scale=1)
    return upscale(to_pil(grid, value_range), scale)


def save_image(images, path: str | os.PathLike, *, nrow: int = 8, padding: int = 2,
               value_range: tuple[float, float] = (0.0, 1.0), pad_value: float | None = None,
               scale: int = 1) -> Path:
    """Save a grid of ``images`` (values in ``value_range``) as a PNG (or any format Pillow infers),
    enlarged ``scale`` times by nearest-neighbour (padding included)."""
    lo, hi = _checks.value_range(value_range)
    path = _checks.image_path(path)
    _checks.positive_int(scale, "scale")
    grid = make_grid(images, nrow=nrow, padding=padding, pad_value=lo if pad_value is None else pad_value)
    path.parent.mkdir(parents=True, exist_ok=True)
    upscale(to_pil(grid, value_range), scale).save(path)
    return path


def save_gif(frames: Sequence[torch.Tensor], path: str | os.PathLike, *, duration_ms: int = 100, loop: int = 0,
             value_range: tuple[float, float] = (0.0, 1.0)) -> Path:
    """Save frames ([C, H, W] each, e.g. grids) as an animated GIF that loops ``loop`` times (0 = forever)."""
    if not isinstance(frames, (list, tuple)) or not all(isinstance(f, torch.Tensor) for f in frames):
        raise TypeError(f"save_gif: frames must be a sequence of image tensors [C, H, W], got {type(frames).__name__}")
    if not frames:
        raise ValueError("save_gif: no frames")
    _checks.positive_int(duration_ms, "duration_ms")
    _checks.value_range(value_range)
    path = _checks.image_path(path)
    if isinstance(loop, bool) or not isinstance(loop, int) or not 0 <= loop <= 65535:
        raise ValueError(f"loop must be an int in [0, 65535] (0 = forever; the GIF field is 16 bits), got {loop!r}")
    shapes = {tuple(f.shape) for f in frames}
    if len(shapes) != 1:
        raise ValueError(f"save_gif: frames differ in shape: {sorted(shapes)}")
    pils = [to_pil(f, value_range).convert("RGB") for f in frames]
    path.parent.mkdir(parents=True, exist_ok=True)
    pils[0].save(path, save_all=True, append_images=pils[1:], duration=duration_ms, loop=loop)
    return path
