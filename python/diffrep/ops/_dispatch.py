"""Backend selection for the native ops, in the manner of xformers' dispatcher.

Every op has an ordered list of backends: ``cuda`` for CUDA tensors, ``cpu`` for CPU tensors,
then ``reference`` (the pure-PyTorch twin, which always works). Each backend can decline with
reasons ("_cuda not built", "autograd needs a backward the native kernel lacks", ...); the first
backend without reasons runs. :func:`explain` returns the choice and every skipped backend's
reasons, so a user can see why their call did not take the fast path.

The backend can be forced with the environment variable ``DIFFREP_BACKEND`` or with
:func:`use_backend`; with ``strict=True`` an unusable forced backend raises instead of falling
back to the reference.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import logging
import os
import warnings

import torch

from .. import _native

logger = logging.getLogger("diffrep.ops")

_CHOOSERS: dict = {}
_forced: contextvars.ContextVar = contextvars.ContextVar("diffrep_backend", default=None)
_explaining: contextvars.ContextVar = contextvars.ContextVar("diffrep_explaining", default=False)
_logged: set = set()


@dataclasses.dataclass
class Choice:
    """The backend an op runs on, and why every backend before it was skipped."""

    op: str
    backend: str
    skipped: dict

    def __str__(self) -> str:
        lines = [f"{self.op}: {self.backend}"]
        for name, reasons in self.skipped.items():
            lines.append(f"  {name} skipped: " + "; ".join(reasons))
        return "\n".join(lines)


def register(name: str):
    """Register ``chooser(*args, **kwargs) -> Choice`` for op ``name`` (used by :func:`explain`)."""

    def deco(chooser):
        _CHOOSERS[name] = chooser
        return chooser

    return deco


def explain(op: str, *args, **kwargs) -> Choice:
    """Which backend ``op`` would run on for these arguments, and why the others were skipped.

    Validates the arguments as the op would and reports, but draws no random numbers and changes
    no state (the global and given generators are left as they were).

    >>> explain("bfn.continuous_flow", x, t, sigma1=1e-3)  # doctest: +SKIP
    """
    if not isinstance(op, str):
        raise TypeError(f"op must be an op name such as 'mmd.mmd2' (a str), got {type(op).__name__}")
    if "discretized" in op and op.replace("discretized", "discretised") in _CHOOSERS:
        warnings.warn(f"op name {op!r} is spelled 'discretised' now; the old spelling goes in the next release",
                      DeprecationWarning, stacklevel=2)
        op = op.replace("discretized", "discretised")
    if op not in _CHOOSERS:  # an op registers when its module is imported: import them all, then look again
        _import_op_modules()
    if op not in _CHOOSERS:
        raise ValueError(f"unknown op {op!r}; known ops: {sorted(_CHOOSERS)}")
    token = _explaining.set(True)
    try:
        return _CHOOSERS[op](*args, **kwargs)
    finally:
        _explaining.reset(token)


# the modules of diffrep.ops that register ops (``explain("mmd.mmd2", ...)`` right after ``from diffrep.ops
# import explain`` found no op before its module had been imported by something else)
OP_MODULES = ("bfn", "bfn_losses", "guidance", "hddc", "knn", "metrics", "mmd", "random")


def _import_op_modules() -> None:
    import importlib

    for name in OP_MODULES:
        importlib.import_module(f"{__package__}.{name}")


def explaining() -> bool:
    """True inside :func:`explain`: an op's preparation then validates only (no random draws)."""
    return _explaining.get()


@contextlib.contextmanager
def use_backend(backend: str, strict: bool = False):
    """Force ``backend`` ('reference', 'cpu' or 'cuda') for ops called inside the block."""
    if backend not in ("reference", "cpu", "cuda"):
        raise ValueError(f"backend must be 'reference', 'cpu' or 'cuda', got {backend!r}")
    if not isinstance(strict, bool):
        raise TypeError(f"strict must be a bool, got {type(strict).__name__}")
    token = _forced.set((backend, strict))
    try:
        yield
    finally:
        _forced.reset(token)


def _forced_backend():
    ctx = _forced.get()
    if ctx is not None:
        return ctx
    env = _native.forced_backend()
    return (env, False) if env else (None, False)


# os.environ's own dict (bytes keys on POSIX): a lookup there costs ~0.05 us, os.environ.get
# ~0.3-1 us (key encoding, KeyError). Every write through os.environ (monkeypatch.setenv too)
# updates it; where it does not exist the public mapping is read.
_ENV_DATA = getattr(os.environ, "_data", None)
_ENV_KEY = os.environ.encodekey("DIFFREP_BACKEND") if _ENV_DATA is not None else None


def nothing_forced() -> bool:
    """True when neither :func:`use_backend` nor ``DIFFREP_BACKEND`` (set at all, even to 'auto')
    is in force: then :func:`select` for a CPU device, without autograd or op-specific reasons,
    returns the native CPU backend whenever the module is built. The BFN ops' lean CPU path
    (ops/_bfn_fast.py) runs only then; whenever anything is forced, select() decides."""
    if _forced.get() is not None:
        return False
    if _ENV_DATA is not None:
        return _ENV_KEY not in _ENV_DATA
    return "DIFFREP_BACKEND" not in os.environ


def select(
    op: str,
    device: torch.device,
    *,
    needs_grad: bool = False,
    native_grad: bool = False,
    native_reasons: list | None = None,
) -> Choice:
    """Choose the backend for one call.

    ``needs_grad``: an input requires grad; ``native_grad``: the native kernels have a backward;
    ``native_reasons``: op-specific reasons why the native kernels cannot take these arguments.
    """
    native_name = "cuda" if device.type == "cuda" else "cpu"
    reasons: list[str] = []
    if device.type not in ("cpu", "cuda"):
        reasons.append(f"no native kernel for device type {device.type!r}")
    elif native_name == "cuda":
        mod, why = _native.cuda_module_and_reason(device.index)
        if mod is None:
            reasons.append(why)
    elif not _native.cpu_available():
        reasons.append(_native._load("_cpu")[1] or "_cpu not built")
    if needs_grad and not native_grad:
        reasons.append("autograd through this op needs a backward the native kernel does not have")
    reasons.extend(native_reasons or [])

    forced, strict = _forced_backend()
    if forced == "reference":
        reasons = ["DIFFREP_BACKEND / use_backend forces the reference"] + reasons
    elif forced is not None and forced != native_name:
        msg = f"backend {forced!r} was forced but the tensors are on {device.type!r}"
        if strict:
            raise RuntimeError(f"{op}: {msg}")
        reasons.append(msg)
    elif forced is not None and strict and reasons:
        raise RuntimeError(f"{op}: forced backend {forced!r} cannot run: " + "; ".join(reasons))

    if reasons:
        for r in reasons:
            if not _explaining.get() and (op, r) not in _logged:
                _logged.add((op, r))
                logger.debug("%s: %s skipped: %s", op, native_name, r)
        return Choice(op, "reference", {native_name: reasons})
    return Choice(op, native_name, {})
