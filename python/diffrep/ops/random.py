"""Counter-based random numbers shared by every random op.

A call draws a 64-bit Philox key (seed) from a ``torch.Generator`` (the global one by default),
so results are reproducible under ``torch.manual_seed`` and identical for any thread count and
launch configuration. Normals for stream index e come from Philox4x32-10 block (e >> 2, offset)
and Box-Muller (see :mod:`diffrep.ops.reference.philox`). They are not bit-identical to
``torch.randn``; ops that draw noise also accept it injected, for exact parity with other code.
"""

from __future__ import annotations

import torch

from . import _validate
from ._dispatch import register, select
from ._native_call import run
from .reference import philox


def check_generator(generator) -> None:
    """Raise TypeError unless ``generator`` is a torch.Generator or None."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")


def philox_key(generator: torch.Generator | None = None) -> tuple[int, int]:
    """Draw (seed, offset) for one call from ``generator`` (default: torch's global CPU generator)."""
    check_generator(generator)
    device = generator.device if generator is not None else "cpu"
    seed = torch.randint(-(2**63), 2**63 - 1, (1,), generator=generator, dtype=torch.int64, device=device)
    return int(seed.item()) & ((1 << 64) - 1), 0


@register("random.normal")
def _choose(shape, dtype=torch.float32, device="cpu", generator=None):
    return select("random.normal", torch.device(device))


def fill_normal(out: torch.Tensor, seed: int, offset: int) -> torch.Tensor:
    """Fill a contiguous float tensor with the Philox normals of (seed, offset)."""
    choice = select("random.normal", out.device)
    if choice.backend == "reference":
        out.copy_(philox.normals(out.numel(), seed, offset, out.dtype, out.device).reshape(out.shape))
    else:
        run(choice.backend, "normal_fill", out.device, out=out, seed=seed, offset=offset)
    return out


def normal(shape, dtype=torch.float32, device="cpu", generator=None) -> torch.Tensor:
    """Standard normals of ``shape`` from the Philox stream keyed by a draw from ``generator``."""
    if dtype not in _validate.FLOAT_DTYPES:
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    seed, offset = philox_key(generator)
    out = torch.empty(tuple(shape), dtype=dtype, device=device)
    return fill_normal(out, seed, offset)
