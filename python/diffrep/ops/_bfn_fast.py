"""The lean CPU call path of the BFN flows and updates (docs/kernels/bfn.md#performance).

At training sizes (~1e5 elements) a BFN update's kernel takes 20-100 us, and the general call
path (argument normalisation, :func:`diffrep.ops._dispatch.select`, numpy views, keyword
binding) cost 12-18 us per call on top. For the common case -- contiguous CPU tensors of one
float dtype that do not require grad, per-example ``(B,)`` or per-element parameters, no
injected noise, no backend forced -- the ops in :mod:`diffrep.ops.bfn` call the CPU module's
address bindings (``<op>_addr``, csrc/common/bind_ptr.h) directly: each array crosses as
(data address, element count, dtype code) read from the tensor itself, and C++ checks every
count and dtype code of the op's declaration table before the launch, as the keyword binding
does. Anything else returns ``None`` from these helpers and the op takes its general path,
which raises the same messages as before; the kernels' error flags are decoded by the same
code on both paths.

Safety rests on one rule: an array's address and dtype code are read from the tensor itself,
a contiguous, strided CPU tensor without a negative bit, kept referenced by the caller during
the call; its count too, or the count of a tensor whose shape Python has checked equal to it
(``y`` and ``out`` of ``mu``'s shape pass ``mu.numel()``). C++ then checks every count and
dtype code against the declaration table.
"""

from __future__ import annotations

import torch

from .. import _native
from ._dispatch import nothing_forced

ABI = 1  # kAddrAbi of csrc/common/bind_ptr.h: the argument layout of the address bindings
DT = {torch.float32: 0, torch.float64: 1}  # kDtF32, kDtF64
DT_I64 = 2  # kDtI64

_Tensor = torch.Tensor
_strided = torch.strided
_kernels: dict = {}  # name -> (module, its <name>_addr or None)


def kernel(name: str):
    """The CPU module's ``<name>_addr`` when the lean path may run, else None.

    None when a backend is forced (``use_backend``, ``DIFFREP_BACKEND``: then
    :func:`~diffrep.ops._dispatch.select` decides) or the module (or its address bindings) is
    missing. Without forcing, select() picks the CPU kernel for CPU tensors that need no grad,
    which are the only ones the lean path takes."""
    if not nothing_forced():
        return None
    mod = _native.cpu_module()
    hit = _kernels.get(name)
    if hit is None or hit[0] is not mod:
        hit = _kernels[name] = (mod, getattr(mod, name + "_addr", None))
    return hit[1]


def _plain(v) -> bool:
    """v is a contiguous, strided CPU tensor without a negative bit that does not require grad."""
    return (isinstance(v, _Tensor) and v.is_cpu and not v.requires_grad and v.layout is _strided
            and v.is_contiguous() and not v.is_neg())


def pair(a, b):
    """The dtype code of ``a`` and ``b`` when both are plain (see :func:`_plain`), non-empty
    float32/float64 tensors of one dtype and one shape with a batch dimension, else None."""
    if not (_plain(a) and _plain(b)):
        return None
    dtype, shape = a.dtype, a.shape
    if b.dtype is not dtype or shape != b.shape or not shape or a.numel() == 0:
        return None
    return DT.get(dtype)


def per_row(v, dtype, shape):
    """True for a plain ``(B,)`` tensor of ``dtype`` (one value per example of data of ``shape``,
    non-empty), False for one of that shape (per element), else None. The order of the tests is
    that of :func:`diffrep.ops._validate.per_sample` (the data's shape first)."""
    if not _plain(v) or v.dtype is not dtype:
        return None
    s = v.shape
    if s == shape:
        return False
    if len(s) == 1 and s[0] == shape[0]:
        return True
    return None
