"""Calling a native kernel on the chosen backend, and decoding its error flags."""

from __future__ import annotations

import threading

import torch

from .. import _native

# Bits of the int32 error word the kernels OR together (csrc/common/errors.h, ErrorFlag).
NON_FINITE, CLASS_OUT_OF_RANGE, NON_POSITIVE = 1, 2, 4


_local = threading.local()


def _flags_word(device: torch.device) -> torch.Tensor:
    """A zeroed int32 word on ``device``, reused per thread (allocating one per call costs more
    than the kernels of small ops)."""
    cache = getattr(_local, "flags", None)
    if cache is None:
        cache = _local.flags = {}
    word = cache.get(device)
    if word is None:
        word = cache[device] = torch.zeros(1, dtype=torch.int32, device=device)
    else:
        word.zero_()
    return word


def run(backend: str, name: str, device: torch.device, **kwargs) -> int:
    """Run kernel ``name`` on ``backend`` ('cpu' or 'cuda') with ``kwargs``; return its error flags.

    The keywords are the kernel's arguments as its family's declaration table names them
    (csrc/<family>/<family>_ops.h); the native functions take keywords only. CUDA kernels run on
    torch's current stream of ``device``; their flags word lives on the device and is read back
    here (one synchronisation per call: the price of never returning silently wrong output).
    """
    flags = _flags_word(device)
    if backend == "cpu":
        getattr(_native.cpu_module(), name)(flags=flags, device=-1, stream=0, **kwargs)
    else:
        with torch.cuda.device(device):
            stream = torch.cuda.current_stream(device).cuda_stream
            getattr(_native.cuda_module(), name)(flags=flags, device=device.index, stream=stream, **kwargs)
    return int(flags.item())


def raise_flags(op: str, flags: int, messages: dict) -> None:
    """Raise ValueError for the first set bit that ``messages`` names."""
    for bit, message in messages.items():
        if flags & bit:
            raise ValueError(f"{op}: {message}")
