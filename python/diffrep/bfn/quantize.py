"""Quantisation of discretised data to the K bin centres (BFN §5; docs/kernels/bfn.md#quantisation).

K bins of width 2/K tile [-1, 1]; bin k = 1..K has centre k_c = (2k - 1)/K - 1. The BFN reference
feeds discretised data to the flow and the loss already snapped to these centres (its image transform
is ``quantize(2 x - 1, K)`` with x = pixel/255). :func:`quantize` does the same for any K.
"""

from __future__ import annotations

import torch

from .._checks import positive_int

__all__ = ["quantize", "bin_index"]


def _check(x, num_bins) -> int:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise ValueError(f"quantize: x must be a float tensor, got {getattr(x, 'dtype', type(x).__name__)}")
    K = positive_int(num_bins, "num_bins")
    if K < 2:
        raise ValueError(f"num_bins must be >= 2, got {K}")
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise ValueError("quantize: x must be finite")
    return K


# A value within TIE_TOL of a bin boundary counts as on it (and goes to the upper bin): 8-bit pixels
# on a boundary (K sharing a factor with 255, e.g. K = 5 or 100) reach here through float32 round-off
# (p/127.5 - 1 is off by up to ~1e-7), and must land where exact arithmetic puts them.
TIE_TOL = 4e-7


def bin_index(x: torch.Tensor, num_bins: int) -> torch.Tensor:
    """0-based bin of each value: clamp(floor((x + 1)/2 K), 0, K - 1) (the reference's float_to_idx),
    evaluated in float64 with boundaries moved down by ``TIE_TOL``; values outside [-1, 1] go to the
    edge bins."""
    return _bin_index(x, _check(x, num_bins))


def _bin_index(x: torch.Tensor, K: int) -> torch.Tensor:  # x and K checked: no second finiteness read
    return torch.floor((x.double() + 1.0 + TIE_TOL) * (K / 2.0)).clamp_(0, K - 1).long()


def quantize(x: torch.Tensor, num_bins: int) -> torch.Tensor:
    """Float data in [-1, 1] -> the nearest of the K bin centres (2k - 1)/K - 1, k = 1..K (a value
    on a bin boundary goes to the upper bin, as in the reference's floor). Same dtype and shape as x.
    8-bit pixels p mapped to p/127.5 - 1 land on bin floor(p K/255): for K = 256, pixel 0 -> -1 + 1/256
    and pixel 255 -> 1 - 1/256."""
    K = _check(x, num_bins)
    idx = _bin_index(x, K)
    return ((2 * idx + 1).double() / K - 1.0).to(x.dtype)
