"""Argument checks shared by the figure builders: each raises ValueError/TypeError naming the argument
(a bad value otherwise surfaced as a torch, PIL or matplotlib error naming none, or as a silently
black or NaN picture)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .._checks import finite_float, non_negative_int, positive_float, positive_int

__all__ = ["images", "value_range", "flag", "pad_value", "decoder", "code", "image_path", "labels",
           "positive_int", "non_negative_int", "positive_float"]


def images(x, name: str, who: str, *, allow_int: bool = True) -> torch.Tensor:
    """``x`` when it is a real tensor of finite values (integer images allowed, as torchvision's
    make_grid takes uint8; complex and bool refused)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who}: {name} must be a tensor, got {type(x).__name__}")
    if x.is_complex() or x.dtype == torch.bool or (not allow_int and not x.is_floating_point()):
        raise TypeError(f"{who}: {name} must hold real {'' if allow_int else 'floating-point '}values, got {x.dtype}")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):  # NaN drew black pixels
        raise ValueError(f"{who}: {name} contains NaN or infinite values")
    return x


def value_range(v, name: str = "value_range") -> tuple[float, float]:
    """(low, high): two finite numbers with low < high."""
    if not isinstance(v, (tuple, list)) or len(v) != 2:
        raise ValueError(f"{name} must be (low, high) with low < high, got {v!r}")
    lo, hi = (finite_float(u, name) for u in v)
    if not lo < hi:
        raise ValueError(f"{name} must be (low, high) with low < high, got {v!r}")
    return lo, hi


def flag(v, name: str) -> bool:
    if not isinstance(v, bool):  # "no" was truthy
        raise TypeError(f"{name} must be True or False, got {v!r}")
    return v


def pad_value(v, name: str = "pad_value") -> float:
    return finite_float(v, name)


def decoder(decode) -> None:
    if not callable(decode):
        raise TypeError(f"decode must be a callable (codes -> images), got {type(decode).__name__}")


def code(z, name: str, who: str) -> torch.Tensor:
    """A code tensor of finite floating-point values."""
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"{who}: {name} must be a tensor, got {type(z).__name__}")
    if not z.is_floating_point():
        raise TypeError(f"{who}: {name} must be a floating-point tensor, got {z.dtype}")
    if z.numel() == 0 or not bool(torch.isfinite(z).all()):
        raise ValueError(f"{who}: {name} must be a non-empty tensor of finite values, got shape {tuple(z.shape)}")
    return z


def image_path(path, name: str = "path") -> Path:
    """A file path whose suffix Pillow can write (Pillow's own errors were a KeyError or "unknown file
    extension" naming neither the argument nor the path)."""
    from PIL import Image

    if not isinstance(path, (str, os.PathLike)) or str(path) == "":
        raise TypeError(f"{name} must be a file path, got {path!r}")
    path = Path(path)
    Image.init()
    if path.suffix.lower() not in Image.registered_extensions():
        raise ValueError(f"{name} {str(path)!r}: the suffix {path.suffix!r} is no image format Pillow writes "
                         f"(e.g. .png, .gif, .jpg)")
    return path


def labels(v, name: str) -> list:
    """A sequence of str labels (a str would be read letter by letter)."""
    if isinstance(v, (str, bytes)) or not isinstance(v, (list, tuple)) or not all(isinstance(u, str) for u in v):
        raise TypeError(f"{name} must be a sequence of str, got {v!r}")
    return list(v)
