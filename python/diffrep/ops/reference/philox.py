"""Counter-based Philox4x32-10 normals, bit-compatible with ``csrc/common/philox.h``.

Random123's Philox4x32-10 (Salmon et al., SC'11) keyed by a 64-bit seed. The normal with stream
index ``e`` comes from the Philox block with counter ``(e >> 2, offset)``: its four 32-bit words
give two Box-Muller pairs, and lane ``e & 3`` picks cos/sin of the first or second pair. Uniforms
are ``((r >> 9) + 0.5) * 2**-23``, exactly representable in float32 and float64 and never 0 or 1.
Because every element's draw depends only on (seed, offset, index), results do not depend on the
thread count, the launch configuration or the device.

uint32 arithmetic is emulated in int64 with 16-bit splits so no product overflows.
"""

from __future__ import annotations

import math
import numbers

import torch

from ..._checks import non_negative_int

_M0, _M1 = 0xD2511F53, 0xCD9E8D57
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
_MASK = 0xFFFFFFFF


def _mulhilo(a: int, b: torch.Tensor):
    """(hi, lo) 32-bit words of the 64-bit product of the constant ``a`` and uint32 tensor ``b``."""
    b_lo = b & 0xFFFF
    b_hi = b >> 16
    lo_part = b_lo * a  # < 2**48
    hi_part = b_hi * a  # < 2**48
    mid = lo_part + ((hi_part & 0xFFFF) << 16)  # < 2**49
    lo = mid & _MASK
    hi = ((hi_part >> 16) + (mid >> 32)) & _MASK
    return hi, lo


def philox4x32_10(counter, key):
    """Philox4x32-10 on int64 tensors holding uint32 words. ``counter``: 4 tensors; ``key``: 2 ints."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for r in range(10):
        if r > 0:
            k0 = (k0 + _W0) & _MASK
            k1 = (k1 + _W1) & _MASK
        hi0, lo0 = _mulhilo(_M0, c0)
        hi1, lo1 = _mulhilo(_M1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


def uniforms(r: torch.Tensor, dtype=torch.float64) -> torch.Tensor:
    """Map uint32 words to uniforms in (0, 1): ``((r >> 9) + 0.5) * 2**-23``."""
    return ((r >> 9).to(dtype) + 0.5) * (2.0**-23)


def key_word(value, name: str) -> int:
    """A Philox seed or offset: an int that fits 64 bits (a negative one is taken mod 2^64)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not -(2**63) <= value < 2**64:
        raise ValueError(f"{name} must be an int in [-2^63, 2^64) (taken mod 2^64), got {value!r}")
    return int(value)


def normals(numel: int, seed: int, offset: int, dtype=torch.float64, device="cpu") -> torch.Tensor:
    """Standard normals for stream indices ``0 .. numel-1`` under (seed, offset)."""
    numel = non_negative_int(numel, "numel")
    seed, offset = key_word(seed, "seed"), key_word(offset, "offset")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")
    if numel == 0:
        return torch.empty(0, dtype=dtype, device=device)
    seed &= (1 << 64) - 1
    offset &= (1 << 64) - 1
    groups = (numel + 3) // 4
    g = torch.arange(groups, dtype=torch.int64, device=device)
    zeros = torch.zeros_like(g)
    counter = (g & _MASK, (g >> 32) & _MASK, zeros + (offset & _MASK), zeros + (offset >> 32))
    r0, r1, r2, r3 = philox4x32_10(counter, (seed & _MASK, seed >> 32))
    out = torch.empty(groups, 4, dtype=dtype, device=device)
    for lane, (ra, rb) in ((0, (r0, r1)), (2, (r2, r3))):
        # Box-Muller in the output dtype, as the kernels do.
        radius = torch.sqrt(-2.0 * torch.log(uniforms(ra, dtype)))
        angle = (2.0 * math.pi) * uniforms(rb, dtype)
        out[:, lane] = radius * torch.cos(angle)
        out[:, lane + 1] = radius * torch.sin(angle)
    return out.reshape(-1)[:numel]
