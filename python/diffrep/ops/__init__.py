"""Public kernels. Each op validates its inputs, then runs the CUDA kernel (CUDA tensors), the
native CPU kernel, or its pure-PyTorch twin from :mod:`diffrep.ops.reference`.

``explain(op, ...)`` tells which backend an op would use for given arguments and why the others
were not chosen; ``DIFFREP_BACKEND=reference|cpu|cuda`` forces one. ``deferred_checks()`` lets the
BFN, guidance, MMD and HDDC E-step ops on CUDA report bad input at the end of a block instead of reading the
device per call;
``DeferredChecks`` is such a block for an owner that reads it at points of its own (``active()``, ``check()``).
"""

from ._deferred import DeferredChecks, deferred_checks
from ._dispatch import explain, use_backend

__all__ = ["DeferredChecks", "deferred_checks", "explain", "use_backend"]
