"""Finite scalar quantization (FSQ; Mentzer, Minnen, Agustsson & Tschannen 2023, "Finite Scalar
Quantization: VQ-VAE Made Simple", Sec. 3 and the code listing of App. A.1).

Each of the ``d = len(levels)`` channels of ``z`` is bounded to ``L_i`` values and rounded:

- bound (App. A.1): ``f(z) = tanh(z + shift) * h - offset`` with ``h = (L - 1)(1 - eps) / 2``,
  ``offset = 0.5`` for even ``L`` (0 for odd) and ``shift = tan(offset / h)`` as printed in the
  listing. ``shift="atanh"`` uses ``atanh(offset / h)`` instead, the value that makes ``f(0) = 0``
  exactly (the paper leaves this unremarked; the two differ by < 1e-3 for L >= 4);
- round with the straight-through estimator (Sec. 3, "round_ste"):
  ``round_ste(x) = x + sg(round(x) - x)``, i.e. forward rounds, backward is the identity;
- normalise to [-1, 1] by the half width ``L // 2`` (App. A.1 ``quantize``).

The implicit codebook is the product set, ``prod(L_i)`` codes; ``codes_to_indices`` and
``indices_to_codes`` map a code to its mixed-radix index (basis ``cumprod([1, L_1, ..., L_{d-1}])``,
first channel fastest) and back (App. A.1). Self-contained: only torch and the shared validators.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from .._checks import a_or_an, finite_float, one_of

__all__ = ["FSQ", "round_ste", "fsq_bound"]


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round to the nearest integer (ties to even, as ``torch.round``) with the straight-through
    gradient: forward ``round(x)``, backward identity (FSQ Sec. 3)."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"round_ste: x must be a floating-point tensor, got {type(x).__name__}")
    return x + (torch.round(x) - x).detach()


def _half_l_offset_shift(levels: torch.Tensor, eps: float, shift: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    half_l = (levels - 1) * (1 - eps) / 2
    offset = torch.where(levels % 2 == 1, torch.zeros_like(half_l), torch.full_like(half_l, 0.5))
    ratio = offset / half_l
    return half_l, offset, (torch.tan(ratio) if shift == "tan" else torch.atanh(ratio))


def fsq_bound(z: torch.Tensor, levels: Sequence[int], *, eps: float = 1e-3, shift: str = "tan") -> torch.Tensor:
    """The bounding function of FSQ App. A.1 on the last axis of ``z``: values in (-(L-1)/2 - offset,
    (L-1)/2 - offset) scaled by ``1 - eps``, so that rounding yields exactly ``L`` integers."""
    fsq = FSQ(levels, eps=eps, shift=shift)
    return fsq.bound(z)


class FSQ(nn.Module):
    """The FSQ quantizer over one axis (``dim``, default the last) of size ``len(levels)``.

    ``forward(z)`` returns the quantized codes in [-1, 1] with the straight-through gradient (the
    gradient of the bound flows to ``z``). ``indices(z)`` / ``codes_to_indices`` / ``indices_to_codes``
    give the integer index of each code in the implicit codebook of size ``prod(levels)``.

    Args:
        levels: L_i >= 2 per channel (the paper's recommended sets, Table 1: e.g. [8, 5, 5, 5] for
            2^10 codes; DyGA's Table 11 uses [8, 5, 5]).
        eps: the shrink of the bound, 1e-3 in App. A.1.
        shift: ``"tan"`` (the paper's listing) or ``"atanh"`` (exact centring of f(0) for even L).
        dim: the channel axis of the inputs.
    """

    def __init__(self, levels: Sequence[int], *, eps: float = 1e-3, shift: str = "tan", dim: int = -1):
        super().__init__()
        if isinstance(levels, (str, bytes)) or not hasattr(levels, "__iter__"):
            raise TypeError(f"levels must be a sequence of ints, got {type(levels).__name__}")
        levels = list(levels)
        if not levels:
            raise ValueError("levels must name at least one channel, got []")
        for i, level in enumerate(levels):
            if isinstance(level, bool) or not isinstance(level, int) or level < 2:
                raise ValueError(f"levels[{i}] must be an int >= 2, got {level!r}")
        eps = finite_float(eps, "eps")
        if not 0 <= eps < 1:
            raise ValueError(f"eps must lie in [0, 1), got {eps!r}")
        one_of(shift, ("tan", "atanh"), "shift")
        if isinstance(dim, bool) or not isinstance(dim, int):
            raise TypeError(f"dim must be an int, got {type(dim).__name__}")
        self.levels_list = levels
        self.eps, self.shift, self.dim = eps, shift, dim
        lv = torch.tensor(levels, dtype=torch.float64)
        half_l, offset, sh = _half_l_offset_shift(lv, eps, shift)
        basis = torch.tensor([math.prod(levels[:i]) for i in range(len(levels))], dtype=torch.int64)
        self.register_buffer("_levels", torch.tensor(levels, dtype=torch.int64), persistent=False)
        self.register_buffer("_half_l", half_l, persistent=False)
        self.register_buffer("_offset", offset, persistent=False)
        self.register_buffer("_shift", sh, persistent=False)
        self.register_buffer("_half_width", (lv // 2), persistent=False)
        self.register_buffer("_basis", basis, persistent=False)

    @property
    def num_channels(self) -> int:
        return len(self.levels_list)

    @property
    def codebook_size(self) -> int:
        return math.prod(self.levels_list)

    def extra_repr(self) -> str:
        return f"levels={self.levels_list}, eps={self.eps}, shift={self.shift!r}, dim={self.dim}"

    # -- helpers on the last axis ------------------------------------------------------------
    def _to_last(self, z: torch.Tensor, who: str) -> torch.Tensor:
        if not isinstance(z, torch.Tensor):
            raise TypeError(f"{who}: z must be a tensor, got {type(z).__name__}")
        if z.dim() == 0:
            raise ValueError(f"{who}: z must have at least one axis")
        if not -z.dim() <= self.dim < z.dim():
            raise ValueError(f"{who}: dim={self.dim} is out of range for {a_or_an(f'{z.dim()}-d')} input")
        if z.shape[self.dim] != self.num_channels:
            raise ValueError(f"{who}: z must have {self.num_channels} channels (len(levels)) on axis {self.dim}, "
                             f"got shape {tuple(z.shape)}")
        return z.movedim(self.dim, -1)

    def _from_last(self, z: torch.Tensor) -> torch.Tensor:
        return z.movedim(-1, self.dim)

    def _consts(self, dtype: torch.dtype):
        return self._half_l.to(dtype), self._offset.to(dtype), self._shift.to(dtype), self._half_width.to(dtype)

    def _check_float(self, z: torch.Tensor, who: str, name: str = "z") -> None:
        if not isinstance(z, torch.Tensor):
            raise TypeError(f"{who}: {name} must be a tensor, got {type(z).__name__}")
        if not z.is_floating_point():
            raise TypeError(f"{who}: {name} must be a floating-point tensor, got {z.dtype}")

    # -- the quantizer -----------------------------------------------------------------------
    def bound(self, z: torch.Tensor) -> torch.Tensor:
        """f(z) = tanh(z + shift) h - offset per channel (App. A.1 ``bound``)."""
        self._check_float(z, "FSQ.bound")
        zl = self._to_last(z, "FSQ.bound")
        half_l, offset, shift, _ = self._consts(zl.dtype)
        return self._from_last(torch.tanh(zl + shift) * half_l - offset)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Codes round_ste(f(z)) / (L // 2) in [-1, 1] (App. A.1 ``quantize``), same shape as ``z``."""
        self._check_float(z, "FSQ")
        self._to_last(z, "FSQ")  # the caller's name in the messages
        q = round_ste(self.bound(z))
        _, _, _, half_width = self._consts(q.dtype)
        return self._from_last(self._to_last(q, "FSQ") / half_width)

    def codes_to_indices(self, codes: torch.Tensor) -> torch.Tensor:
        """Integer indices (int64, the channel axis removed) of codes in the implicit codebook."""
        self._check_float(codes, "FSQ.codes_to_indices", "codes")
        cl = self._to_last(codes, "FSQ.codes_to_indices")
        _, _, _, half_width = self._consts(cl.dtype)
        digits = torch.round(cl * half_width + half_width).to(torch.int64)
        if bool(((digits < 0) | (digits >= self._levels)).any()):
            raise ValueError("FSQ.codes_to_indices: codes are not on the FSQ grid (a digit falls outside [0, L-1])")
        return (digits * self._basis).sum(dim=-1)

    def indices_to_codes(self, indices: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Codes (channel axis at ``dim``) of integer indices in [0, prod(levels))."""
        if not isinstance(indices, torch.Tensor) or indices.is_floating_point() or indices.is_complex() \
                or indices.dtype == torch.bool:
            raise TypeError("FSQ.indices_to_codes: indices must be an integer tensor")
        if bool(((indices < 0) | (indices >= self.codebook_size)).any()):
            raise ValueError(f"FSQ.indices_to_codes: indices must lie in [0, {self.codebook_size})")
        return self._from_last(self._codes_last(indices, dtype))

    def _codes_last(self, indices: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        digits = (indices.to(torch.int64).unsqueeze(-1) // self._basis) % self._levels
        _, _, _, half_width = self._consts(dtype)
        return (digits.to(dtype) - half_width) / half_width

    def indices(self, z: torch.Tensor) -> torch.Tensor:
        """The codebook index of each quantized vector of ``z``."""
        with torch.no_grad():
            return self.codes_to_indices(self.forward(z))

    def codebook(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """All ``prod(levels)`` codes, [prod(levels), d], row i = the code of index i."""
        if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):  # codes such as -0.5 truncate in an int dtype
            raise TypeError(f"FSQ.codebook: dtype must be a floating torch dtype, got {dtype!r}")
        return self._codes_last(torch.arange(self.codebook_size, device=self._levels.device), dtype)
