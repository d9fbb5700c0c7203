"""Calling a native kernel on the chosen backend, and decoding its error flags."""

from __future__ import annotations

import threading

import numpy as np
import torch

from .. import _native

# Bits of the int32 error word the kernels OR together (csrc/common/errors.h, ErrorFlag).
NON_FINITE, CLASS_OUT_OF_RANGE, NON_POSITIVE, OUTSIDE_DATA_RANGE = 1, 2, 4, 8


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


def _host_flags_word() -> np.ndarray:
    """The CPU kernels' flags word: a zeroed numpy int32, reused per thread (numpy's element
    access costs ~0.1 us where a tensor's zero_() and item() cost ~1 us each)."""
    word = getattr(_local, "host_flags", None)
    if word is None:
        word = _local.host_flags = np.zeros(1, dtype=np.int32)
    else:
        word[0] = 0
    return word


def _host_array(v):
    """A CPU tensor as the numpy array sharing its memory (nanobind takes numpy arrays through the
    buffer protocol in ~0.5 us; a torch tensor goes through torch's Python-level __dlpack__, ~2 us
    per array). Other values pass through."""
    if isinstance(v, torch.Tensor):
        return v.detach().numpy()
    return v


def run(backend: str, name: str, device: torch.device, **kwargs) -> int:
    """Run kernel ``name`` on ``backend`` ('cpu' or 'cuda') with ``kwargs``; return its error flags.

    The keywords are the kernel's arguments as its family's declaration table names them
    (csrc/<family>/<family>_ops.h); the native functions take keywords only. CPU arrays travel as
    numpy views of the tensors (no copy; docs/kernels/bfn.md#performance). CUDA kernels run on
    torch's current stream of ``device``; their flags word lives on the device and is read back
    here (one synchronisation per call: the price of never returning silently wrong output).
    """
    if backend == "cpu":
        flags = _host_flags_word()
        getattr(_native.cpu_module(), name)(flags=flags, device=-1, stream=0,
                                             **{k: _host_array(v) for k, v in kwargs.items()})
        return int(flags[0])
    flags = _flags_word(device)
    # detached, as the CPU arrays are: torch's __dlpack__ refuses a tensor that requires grad (the
    # inputs of an autograd.Function's forward do), and nanobind then falls back to another export
    kwargs = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
    with torch.cuda.device(device):
        stream = torch.cuda.current_stream(device).cuda_stream
        getattr(_native.cuda_module(), name)(flags=flags, device=device.index, stream=stream, **kwargs)
    return int(flags.item())


def raise_flags(op: str, flags: int, messages: dict) -> None:
    """Raise ValueError for the first set bit that ``messages`` names."""
    for bit, message in messages.items():
        if flags & bit:
            raise ValueError(f"{op}: {message}")
