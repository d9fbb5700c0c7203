"""Argument checks of the twins' entry points: the kind and shape of each argument, so that a wrong
one is a ValueError/TypeError naming it instead of an AttributeError or a broadcasting error deep
in torch. Values are not checked: a twin propagates NaN and inf as its maths does (the public ops
refuse them before they call a twin), and these checks cost no device synchronisation."""

from __future__ import annotations

from ..._checks import finite_float
from .. import _validate as V


def floats(**named) -> None:
    """Each argument a real floating-point tensor."""
    for name, v in named.items():
        V.tensor(name, v)


def reals(**named) -> None:
    """Each argument a real tensor (integer dtypes allowed)."""
    for name, v in named.items():
        V.tensor(name, v, allow_int=True)


def classes(name: str, x, num_classes: int | None = None) -> None:
    """Integer class indices (in [0, num_classes) when given: one_hot's error names no argument)."""
    V.integer_classes(name, x)
    if num_classes is not None and x.numel() and bool(((x < 0) | (x >= num_classes)).any()):
        raise ValueError(f"{name} holds a class outside [0, {num_classes})")


def batch(name: str, v) -> None:
    """A tensor with a non-empty batch dimension."""
    V.nonempty(name, v)


def rows(name: str, v, ndim: int) -> None:
    """A non-empty tensor of ``ndim`` dimensions."""
    if v.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(v.shape)}")
    if v.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(v.shape)})")


def same_shape(name: str, v, ref_name: str, ref) -> None:
    V.same_shape(name, v, ref_name, ref)


def per_example(name: str, v, like) -> None:
    """A quantity per example ((B,), (B, 1, ...) or 0-d) or per element (like's shape), as
    :func:`diffrep.ops.reference.bfn.per_element` broadcasts it."""
    reals(**{name: v})
    if v.dim() == 0 or v.shape == like.shape:
        return
    if like.dim() >= 1 and v.shape[0] == like.shape[0] and v.numel() == like.shape[0]:
        return
    raise ValueError(f"{name} must have shape ({like.shape[0] if like.dim() else 1},) (one per example) or "
                     f"{tuple(like.shape)} (one per element), got {tuple(v.shape)}")


def count(name: str, v, lo: int = 1) -> int:
    """An int >= lo (bools refused)."""
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if v < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    return v


def positive(name: str, v, *, upper: float | None = None) -> float:
    """A finite number > 0 (and < upper)."""
    return V.positive_scalar(name, v, upper=upper)


def number(name: str, v) -> float:
    """A finite number (bools refused)."""
    return finite_float(v, name)


def one_of(name: str, v, choices) -> None:
    if not isinstance(v, str) or v not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {v!r}")


__all__ = ["floats", "reals", "classes", "batch", "rows", "same_shape", "per_example", "count", "positive", "number", "one_of"]
