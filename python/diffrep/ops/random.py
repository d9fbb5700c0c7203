"""Counter-based random numbers shared by every random op.

A call draws a 64-bit Philox key (seed) from a ``torch.Generator`` (the global one by default),
so results are reproducible under ``torch.manual_seed`` and identical for any thread count and
launch configuration. Normals for stream index e come from Philox4x32-10 block (e >> 2, offset)
and Box-Muller (see :mod:`diffrep.ops.reference.philox`). They are not bit-identical to
``torch.randn``; ops that draw noise also accept it injected, for exact parity with other code.
"""

from __future__ import annotations

import operator
import threading

import torch

from .. import _checks
from . import _validate
from ._dispatch import register, select
from ._native_call import run_unflagged
from .reference import philox


def check_generator(generator) -> None:
    """Raise TypeError unless ``generator`` is a torch.Generator or None."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")


_key_word = threading.local()


def philox_key(generator: torch.Generator | None = None) -> tuple[int, int]:
    """Draw (seed, offset) for one call from ``generator`` (default: torch's global CPU generator).

    The draw is ``torch.randint(-2**63, 2**63 - 1, (1,), dtype=torch.int64)``. On the CPU it is
    made into a reused per-thread int64 word read through a numpy view: ATen's randint is
    ``empty(size).random_(low, high, generator)``, so the value and the generator's advance are
    randint's (tests/ops/test_bfn_lean_path.py checks it), without the allocation and ``item()``
    (~3 us of every flow and sender update; docs/kernels/bfn.md#performance). A CUDA generator gives
    its key without reading the device (:func:`_device_generator_key`); a generator on another device
    draws the randint there and reads it back."""
    check_generator(generator)
    if generator is None or generator.device.type == "cpu":
        word = getattr(_key_word, "word", None)
        if word is None:
            with torch.inference_mode(False):  # a normal tensor, writable in and out of inference mode
                tensor = torch.empty(1, dtype=torch.int64)
            word = _key_word.word = (tensor, tensor.numpy())
        word[0].random_(-(2**63), 2**63 - 1, generator=generator)
        return int(word[1][0]) & ((1 << 64) - 1), 0
    if generator.device.type == "cuda":
        key = _device_generator_key(generator)
        if key is not None:
            return key
    device = generator.device
    seed = torch.randint(-(2**63), 2**63 - 1, (1,), generator=generator, dtype=torch.int64, device=device)
    return int(seed.item()) & ((1 << 64) - 1), 0


_MASK64 = (1 << 64) - 1


def _mix64(z: int) -> int:
    """SplitMix64's finaliser (Steele, Lea, Flood, "Fast splittable pseudorandom number generators",
    OOPSLA 2014): a bijection of 64-bit words that spreads neighbouring inputs over the whole range."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _device_generator_key(generator: torch.Generator):
    """The key of a call from a CUDA generator without reading the device (docs/kernels/random.md#key-and-counter):
    torch keeps a CUDA generator's Philox state (seed, offset) on the host, so the key hashes them and the
    generator moves on by one Philox block (offset + 4, as torch's own draws advance it). A randint drawn on the
    device and read back (the general path) waits for the GPU: a host-device synchronisation per random op. None
    where this torch cannot (no get_offset/set_offset, a refused offset, a CUDA graph capture) or the offset did
    not move: then the general path runs."""
    try:
        offset = generator.get_offset()
        generator.set_offset(offset + 4)
        moved = generator.get_offset() == offset + 4
        seed = generator.initial_seed()
    except (AttributeError, RuntimeError, TypeError, ValueError):
        return None
    if not moved:  # the same key twice would repeat a call's noise: never
        return None
    return _mix64((_mix64(seed & _MASK64) + offset) & _MASK64), 0


@register("random.normal")
def _choose(shape, dtype=torch.float32, device="cpu", generator=None):
    return select("random.normal", torch.device(device))


def _check_fill(out, seed, offset) -> tuple[int, int]:
    """out: a contiguous float32/float64 tensor; seed, offset: integers in [0, 2**64) (the uint64
    words of csrc/common/philox.h's key), returned as ints. Before, the native binding refused
    anything else with nanobind's list of signatures, and the twin took a negative seed modulo 2**64."""
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"out must be a torch.Tensor, got {type(out).__name__}")
    if out.dtype not in _validate.FLOAT_DTYPES:
        raise TypeError(f"out must be float32 or float64, got {out.dtype}")
    if not out.is_contiguous():
        raise ValueError("out must be contiguous (the normals fill its memory in order)")
    key = []
    for name, v in (("seed", seed), ("offset", offset)):
        if isinstance(v, bool) or not hasattr(v, "__index__"):
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
        v = operator.index(v)
        if not 0 <= v < 1 << 64:
            raise ValueError(f"{name} must lie in [0, 2**64), got {v}")
        key.append(v)
    return key[0], key[1]


def fill_normal(out: torch.Tensor, seed: int, offset: int) -> torch.Tensor:
    """Fill a contiguous float tensor with the Philox normals of (seed, offset)."""
    seed, offset = _check_fill(out, seed, offset)
    choice = select("random.normal", out.device)
    if choice.backend == "reference":
        out.copy_(philox.normals(out.numel(), seed, offset, out.dtype, out.device).reshape(out.shape))
    else:
        run_unflagged(choice.backend, "normal_fill", out.device, out=out, seed=seed, offset=offset)
    return out


def normal(shape, dtype=torch.float32, device="cpu", generator=None) -> torch.Tensor:
    """Standard normals of ``shape`` from the Philox stream keyed by a draw from ``generator``."""
    if dtype not in _validate.FLOAT_DTYPES:
        raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    shape, device = _checks.shape(shape), _checks.device(device)  # torch's RuntimeError / AssertionError before
    seed, offset = philox_key(generator)
    out = torch.empty(shape, dtype=dtype, device=device)
    return fill_normal(out, seed, offset)
