"""Shared preparation of the BFN kernel ops (:mod:`diffrep.ops.bfn`, :mod:`diffrep.ops.bfn_losses`):
argument checks, Philox draws and the explain() hook."""

from __future__ import annotations

import threading

import numpy as np
import torch

from .. import _native
from . import _native_call
from . import _validate as V
from ._dispatch import explaining, register
from ._native_call import NON_FINITE, raise_flags
from .random import check_generator, fill_normal, philox_key

_tls = threading.local()
_CPU_FNS: dict = {}


def call(backend: str, name: str, device: torch.device, fail, **kw) -> int:
    """Run BFN kernel ``name``; return its error flags, or 0 where nothing was read.

    ``fail(flags)`` raises the op's error for non-zero flags; the caller runs it on the flags
    returned. On CUDA inside :func:`diffrep.ops.deferred_checks` the kernel's flags go to a slot of
    the block instead, read with ``fail`` when the block ends, and 0 is returned (no host read).
    ``fail=None``: the kernel writes no flags (a backward pass); on CUDA nothing is read.

    The CPU path is :func:`diffrep.ops._native_call.run`'s, leaner (docs/kernels/bfn.md#performance):
    the kernel function is looked up once, the flags word is a per-thread numpy int32, and the
    tensors cross as numpy views (``.numpy()`` costs ~0.5 us, torch's DLPack export ~2 us). At
    1e5 elements a BFN kernel takes 20-200 us, so each microsecond here is 0.5-5% of the op."""
    if backend != "cpu":
        if fail is None:
            _native_call.run_unflagged(backend, name, device, **kw)
            return 0
        return _native_call.run_deferrable(backend, name, device, fail, **kw)
    fn = _CPU_FNS.get(name)
    if fn is None:
        fn = _CPU_FNS[name] = getattr(_native.cpu_module(), name)
    flags = getattr(_tls, "flags", None)
    if flags is None:
        flags = _tls.flags = np.zeros(1, dtype=np.int32)
    else:
        flags[0] = 0
    for k, v in kw.items():
        if isinstance(v, torch.Tensor):
            kw[k] = v.detach().numpy() if v.requires_grad else v.numpy()
    fn(flags=flags, device=-1, stream=0, **kw)
    return int(flags[0])


def fast_pair(a, b):
    """The common dtype of ``a`` and ``b`` when both are non-empty contiguous tensors of one float
    dtype (float32/float64), one shape and one device, else None (then the general checks run and
    raise the messages). ~1 us instead of the ~5 us of the general path."""
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
        return None
    dtype = a.dtype
    if (b.dtype is not dtype or dtype not in V.FLOAT_DTYPES or a.shape != b.shape or a.dim() == 0
            or a.device != b.device or not a.is_contiguous() or not b.is_contiguous() or a.numel() == 0):
        return None
    return dtype


def per_row(name, v, like, dtype):
    """:func:`diffrep.ops._validate.per_sample` with a fast path for a contiguous (B,) tensor of
    ``dtype`` on like's device (the samplers' case)."""
    if (isinstance(v, torch.Tensor) and v.dtype is dtype and v.dim() == 1 and v.shape[0] == like.shape[0]
            and v.device == like.device and v.is_contiguous() and like.dim() > 1):
        return v, True
    return V.per_sample(name, v, like, dtype)


def flag_raiser(op: str, messages: dict, t=None):
    """``fail(flags)`` of an op for :func:`call`: raise ValueError for the first set bit that
    ``messages`` names. A t-taking op passes its ``t``: the native kernels check t in [0, 1] (the
    CPU in one pass, CUDA per element) and report a bad t as NON_FINITE, which costs no Python
    tensor ops on the CPU (~6 us) and no host read on CUDA; the Python check then runs for its
    message. The reference backend checks t in Python before computing."""
    def fail(flags: int) -> None:
        if t is not None and flags & NON_FINITE:
            V.time_in_unit_interval("t", t)
        raise_flags(op, flags, messages)

    return fail


def row_len(x) -> int:
    """Elements per example of ``x`` (x[0].numel() without making the view)."""
    return x.numel() // x.shape[0]

def _sigma1(sigma1) -> float:
    return V.positive_scalar("sigma1", sigma1, upper=1.0)


def _grad(*tensors) -> bool:
    return torch.is_grad_enabled() and any(isinstance(v, torch.Tensor) and v.requires_grad for v in tensors)


def _batch_float(name: str, x) -> torch.Tensor:
    V.tensor(name, x)
    V.nonempty(name, x)
    return x


def _draw(p, name: str, noise, shape):
    """Attach injected noise, or a Philox key, to the prepared call ``p``."""
    if noise is not None:
        p.noise = V.noise_tensor(name, noise, shape, p.device, p.dtype)
        p.seed, p.offset = 0, 0
    elif explaining():  # explain() validates and reports only: no draw from the generator
        check_generator(p.generator)
        p.noise, p.seed, p.offset = None, None, None
    else:
        p.noise = None
        p.seed, p.offset = philox_key(p.generator)


def _reference_noise(p, shape):
    if p.noise is not None:
        return p.noise
    out = torch.empty(shape, dtype=p.dtype, device=p.device)
    return fill_normal(out, p.seed, p.offset)


def _explainer(name, prepare):
    register(name)(lambda *a, **k: prepare(*a, **k).choice)


def _check_classes(name, x, K):
    if bool(((x < 0) | (x >= K)).any()):
        raise ValueError(f"{name} holds a class outside [0, {K})")
