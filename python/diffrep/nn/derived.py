"""A value derived from tensors (a host copy of what a module's buffers hold, a table converted to another device),
computed again only when one of those tensors changed: how the library keeps a per-step host-device read off the
training path (docs/architecture.md "Host synchronisation and the non-finite-loss check") without a copy that goes
stale when someone writes the tensors.

At each computation :class:`DerivedValue` records, per source tensor, the tensor itself (its identity), its
version counter (``tensor._version``, which autograd bumps at every in-place write, under ``torch.no_grad()`` and
in inference mode too; a host-side counter, free to read) and its data pointer. It computes the value again when
any of them differs, which covers:

- a tensor replaced: ``module.buf = t``, ``load_state_dict(..., assign=True)``, ``module.to(device)``,
  ``module.double()`` and the other ``_apply`` conversions that copy;
- a write in place: ``fill_``, ``copy_`` (another model's buffer), ``+=``, indexing, ``load_state_dict``;
- new storage under the same Python object: ``buf.data = t``, ``buf.set_(t)``, ``torch.utils.swap_tensors``.

Not seen, because they bypass autograd's version counter: a write through ``buf.data`` (``buf.data.fill_(...)``:
``.data`` is a new tensor with a counter of its own), through a storage, NumPy or DLPack view of the tensor, and
DistributedDataParallel's per-step buffer broadcast (rank 0's buffers copied into the other ranks' with no version
bump); after such a write call :meth:`DerivedValue.invalidate` (DyGA: ``sync_host()``). An inference tensor has no
version counter: a value derived from one is computed at every call.

The record holds the source tensors themselves, so an identity cannot be confused with a later tensor's at the
same address (an ``id()`` can be reused): a replaced buffer stays alive until the next computation.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

__all__ = ["DerivedValue"]


def _stamp(t: torch.Tensor):
    # an inference tensor has no version counter (reading it raises): None never matches, so it is read again
    return t, (None if t.is_inference() else t._version), t.data_ptr()


def _sources(tensors: Sequence[torch.Tensor], who: str) -> tuple:
    tensors = tuple(tensors)
    if not all(isinstance(t, torch.Tensor) for t in tensors):
        raise TypeError(f"DerivedValue.{who}: tensors must be torch.Tensors, got {[type(t).__name__ for t in tensors]}")
    return tensors


class DerivedValue:
    """``get(tensors, compute)``: ``compute()``'s value, computed at the first call and again whenever one of
    ``tensors`` was replaced or written in place since (module docstring); ``put(tensors, value)`` records a
    value its writer knows without computing it; ``invalidate()`` forces the next ``get`` to compute."""

    def __init__(self):
        self._seen: tuple | None = None     # _stamp of each source at the last computation
        self._value = None

    def _fresh(self, tensors: Sequence[torch.Tensor]) -> bool:
        seen = self._seen
        if seen is None or len(seen) != len(tensors):
            return False
        for (old, version, ptr), t in zip(seen, tensors):
            if old is not t or t.is_inference() or t._version != version or t.data_ptr() != ptr:
                return False
        return True

    # under torch.compile the check runs eagerly (a graph break): traced, the data pointer comparison breaks the
    # graph anyway and the version counter is an unbacked symbol a guard cannot test
    @torch.compiler.disable
    def get(self, tensors: Sequence[torch.Tensor], compute: Callable[[], object]):
        tensors = _sources(tensors, "get")
        if not self._fresh(tensors):
            self._value = compute()
            self._seen = tuple(_stamp(t) for t in tensors)
        return self._value

    @torch.compiler.disable
    def put(self, tensors: Sequence[torch.Tensor], value) -> None:
        tensors = _sources(tensors, "put")
        self._value = value
        self._seen = tuple(_stamp(t) for t in tensors)

    def invalidate(self) -> None:
        self._seen, self._value = None, None
