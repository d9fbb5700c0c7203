"""Calling a native kernel on the chosen backend, and decoding its error flags."""

from __future__ import annotations

import threading

import numpy as np
import torch

from .. import _native
from . import _deferred

# Bits of the int32 error word the kernels OR together (csrc/common/errors.h, ErrorFlag).
NON_FINITE, CLASS_OUT_OF_RANGE, NON_POSITIVE, OUTSIDE_DATA_RANGE = 1, 2, 4, 8


_local = threading.local()


def _flags_word(device: torch.device, zero: bool = True) -> torch.Tensor:
    """A zeroed int32 word on ``device`` (not zeroed again with ``zero=False``, for a kernel that
    writes no flags), reused per thread (allocating one per call costs more than the kernels of
    small ops). Made outside inference mode: a word made by a first call under ``torch.inference_mode()``
    was an inference tensor, and every later call outside it failed to zero it ("Inplace update to
    inference tensor outside InferenceMode")."""
    cache = getattr(_local, "flags", None)
    if cache is None:
        cache = _local.flags = {}
    word = cache.get(device)
    if word is None:
        with torch.inference_mode(False):  # a normal tensor: zeroed in place in and out of inference mode
            word = cache[device] = torch.zeros(1, dtype=torch.int32, device=device)
    elif zero:
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


def launch_cuda(name: str, device: torch.device, flags: torch.Tensor, kwargs: dict) -> None:
    """Queue CUDA kernel ``name`` on torch's current stream of ``device``; its error flags are OR-ed
    into the int32 word ``flags`` on the device, unread here (no synchronisation)."""
    # detached, as the CPU arrays are: torch's __dlpack__ refuses a tensor that requires grad (the
    # inputs of an autograd.Function's forward do), and nanobind then falls back to another export
    kwargs = {k: v.detach() if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
    with torch.cuda.device(device):
        stream = torch.cuda.current_stream(device).cuda_stream
        getattr(_native.cuda_module(), name)(flags=flags, device=device.index, stream=stream, **kwargs)


def run(backend: str, name: str, device: torch.device, **kwargs) -> int:
    """Run kernel ``name`` on ``backend`` ('cpu' or 'cuda') with ``kwargs``; return its error flags.

    The keywords are the kernel's arguments as its family's declaration table names them
    (csrc/<family>/<family>_ops.h); the native functions take keywords only. CPU arrays travel as
    numpy views of the tensors (no copy; docs/kernels/bfn.md#performance). CUDA kernels run on
    torch's current stream of ``device``; their flags word lives on the device and is read back
    here (one synchronisation per call: the price of never returning silently wrong output; the
    BFN, guidance, MMD and HDDC E-step ops defer it inside :func:`diffrep.ops.deferred_checks`:
    :func:`run_deferrable`).
    """
    if backend == "cpu":
        flags = _host_flags_word()
        getattr(_native.cpu_module(), name)(flags=flags, device=-1, stream=0,
                                             **{k: _host_array(v) for k, v in kwargs.items()})
        return int(flags[0])
    flags = _flags_word(device)
    launch_cuda(name, device, flags, kwargs)
    return int(flags.item())


def run_deferrable(backend: str, name: str, device: torch.device, fail, **kwargs) -> int:
    """:func:`run`, except on CUDA inside :func:`diffrep.ops.deferred_checks`: there the kernel's flags go to a
    slot of the block, read with ``fail(flags)`` (which raises the op's error) when the block ends, and 0 is
    returned at once (no host read). The caller runs ``fail`` on non-zero flags returned."""
    if backend != "cpu":
        checks = _deferred.current()
        if checks is not None:
            launch_cuda(name, device, checks.slot(device, fail), kwargs)
            return 0
    return run(backend, name, device, **kwargs)


def run_unflagged(backend: str, name: str, device: torch.device, **kwargs) -> None:
    """:func:`run` for a kernel that sets no error flags (a Philox fill, a backward pass): on CUDA
    nothing is read back, so the call does not synchronise."""
    if backend == "cpu":
        run(backend, name, device, **kwargs)
    else:
        launch_cuda(name, device, _flags_word(device, zero=False), kwargs)


def raise_flags(op: str, flags: int, messages: dict) -> None:
    """Raise ValueError for the first set bit that ``messages`` names."""
    for bit, message in messages.items():
        if flags & bit:
            raise ValueError(f"{op}: {message}")
