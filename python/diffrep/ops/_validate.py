"""Input validation shared by the public ops: every check raises ValueError/TypeError naming the
argument, so no bad input reaches native code."""

from __future__ import annotations

import math

import torch

FLOAT_DTYPES = (torch.float32, torch.float64)


def tensor(name: str, v, *, allow_int: bool = False) -> torch.Tensor:
    if not isinstance(v, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(v).__name__}")
    if v.is_complex():
        raise TypeError(f"{name} must be real, got {v.dtype}")
    if not allow_int and not v.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {v.dtype}")
    return v


def float_dtype(**tensors) -> torch.dtype:
    """The common compute dtype: float32 or float64 (float16/bfloat16 are computed in float32)."""
    dtype = None
    for v in tensors.values():
        if isinstance(v, torch.Tensor) and v.is_floating_point():
            dtype = v.dtype if dtype is None else torch.promote_types(dtype, v.dtype)
    if dtype is None:
        return torch.get_default_dtype()
    return dtype if dtype in FLOAT_DTYPES else torch.float32


def same_device(**tensors) -> torch.device:
    devices = {k: v.device for k, v in tensors.items() if isinstance(v, torch.Tensor)}
    first = next(iter(devices.values()))
    for k, d in devices.items():
        if d != first:
            names = ", ".join(f"{n} on {dv}" for n, dv in devices.items())
            raise ValueError(f"all tensors must be on one device; got {names}")
    return first


def integer_classes(name: str, x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of integer classes, got {type(x).__name__}")
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class indices, got {x.dtype}")
    return x


def positive_scalar(name: str, v, *, upper: float | None = None, allow_zero: bool = False) -> float:
    if isinstance(v, torch.Tensor):
        if v.numel() != 1:
            raise TypeError(f"{name} must be a scalar, got a tensor of shape {tuple(v.shape)}")
        v = v.item()
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(v).__name__}")
    v = float(v)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'} and finite, got {v}")
    if upper is not None and not v < upper:
        raise ValueError(f"{name} must be < {upper}, got {v}")
    return v


def num_classes(name: str, k) -> int:
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"{name} must be an int, got {type(k).__name__}")
    if k < 2:
        raise ValueError(f"{name} must be >= 2, got {k}")
    return k


def nonempty(name: str, x: torch.Tensor) -> None:
    if x.dim() == 0:
        raise ValueError(f"{name} must have a batch dimension, got a 0-d tensor")
    if x.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")


def point_sets(a_name: str, a, b_name: str, b, rows: str) -> None:
    """Two sets of points a (n, d) and b (m, d): floating tensors, non-empty, the same d (``rows``: what a
    row is called in the message, e.g. "samples")."""
    for name, v in ((a_name, a), (b_name, b)):
        tensor(name, v)
        if v.dim() != 2:
            raise ValueError(f"{name} must have shape ({rows}, d), got {tuple(v.shape)}")
        if v.shape[0] == 0 or v.shape[1] == 0:
            raise ValueError(f"{name} is empty (shape {tuple(v.shape)})")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{a_name} has d={a.shape[1]} but {b_name} has d={b.shape[1]}")


def same_shape(name: str, v: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    if v.shape != ref.shape:
        raise ValueError(f"{name} has shape {tuple(v.shape)} but {ref_name} has shape {tuple(ref.shape)}")


def per_sample(name: str, v, like: torch.Tensor, dtype: torch.dtype):
    """A per-example (B,) or per-element (like's shape) quantity, or a scalar broadcast per example.

    Returns (contiguous tensor, per_row flag).
    """
    batch = like.shape[0]
    if not isinstance(v, torch.Tensor):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise TypeError(f"{name} must be a tensor or a number, got {type(v).__name__}")
        return torch.full((batch,), float(v), dtype=dtype, device=like.device), True
    tensor(name, v, allow_int=True)
    if v.device != like.device:
        raise ValueError(f"{name} is on {v.device} but the data is on {like.device}")
    if v.dim() == 0:
        return v.to(dtype).expand(batch).contiguous(), True
    if v.shape == like.shape:
        return v.to(dtype).contiguous(), False
    if v.dim() == 1 and v.shape[0] == batch:
        return v.to(dtype).contiguous(), True
    if v.numel() == batch and v.shape[0] == batch and all(s == 1 for s in v.shape[1:]):
        return v.reshape(batch).to(dtype).contiguous(), True
    raise ValueError(
        f"{name} must have shape ({batch},) (one per example) or {tuple(like.shape)} (one per element), "
        f"got {tuple(v.shape)}"
    )


def time_in_unit_interval(name: str, t: torch.Tensor) -> None:
    ok = (t >= 0) & (t <= 1)  # False for NaN
    if not bool(ok.all()):
        bad = t[~ok].flatten()[0].item()
        raise ValueError(f"{name} must lie in [0, 1] (and not be NaN); found {bad}")


def nonnegative(name: str, v, *, strict: bool = False) -> None:
    if not isinstance(v, torch.Tensor):  # a number: no tensor ops needed
        if not (math.isfinite(v) and (v > 0 if strict else v >= 0)):
            raise ValueError(f"{name} must be {'> 0' if strict else '>= 0'} and finite; found {v}")
        return
    ok = v > 0 if strict else v >= 0
    ok = ok & torch.isfinite(v)
    if not bool(ok.all()):
        bad = v[~ok].flatten()[0].item()
        raise ValueError(f"{name} must be {'> 0' if strict else '>= 0'} and finite; found {bad}")


def finite(name: str, v: torch.Tensor) -> None:
    if v.is_floating_point() and not bool(torch.isfinite(v).all()):
        raise ValueError(f"{name} contains NaN or infinite values")


DATA_RANGE_MESSAGE = "must lie in [-1, 1] (discretised data at its bin centres, the x of BFN Eq. 122); got values outside"


def in_data_range(name: str, v: torch.Tensor) -> None:
    """Discretised data: every value in [-1, 1] (the kernels flag it: OUTSIDE_DATA_RANGE). Data in
    [0, 255] or [0, 1] scale would otherwise give a finite loss far from the model's."""
    if not bool(((v >= -1) & (v <= 1)).all()):
        raise ValueError(f"{name} {DATA_RANGE_MESSAGE}")


def noise_tensor(name: str, noise, shape, device, dtype) -> torch.Tensor:
    tensor(name, noise)
    if tuple(noise.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {tuple(noise.shape)}")
    if noise.device != device:
        raise ValueError(f"{name} is on {noise.device} but the data is on {device}")
    finite(name, noise)  # injected noise only (tests, reproductions): the one host sync is its price
    return noise.to(dtype).contiguous()
