"""Loading of the native extension modules and the report of what is usable here.

``_cpu`` is always built; ``_cuda`` is built when a CUDA toolkit was found at build time and is
imported lazily, so that a CPU-only machine imports diffrep without touching CUDA at all.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import platform

import torch


CPU_ISA_CAPS = ("v1", "v2", "v3", "v4")


def cpu_isa_cap() -> str | None:
    """The x86-64 level ``DIFFREP_CPU_ISA`` caps the CPU kernels at (``v3``: AVX2, no AVX-512; ``v1``: the
    baseline loops; docs/kernels/bfn.md#performance), None when unset. The native module reads it too and
    treats anything else as no cap, so a misspelt value is refused here instead of running uncapped."""
    value = os.environ.get("DIFFREP_CPU_ISA", "")
    if value and value not in CPU_ISA_CAPS:
        raise ValueError(f"DIFFREP_CPU_ISA={value!r} is not one of {', '.join(CPU_ISA_CAPS)} (or unset: no cap)")
    return value or None


@functools.lru_cache(maxsize=None)
def _load(name: str):
    """Import ``diffrep.<name>``; return (module or None, reason it is unusable or None). ``_cpu`` first checks
    ``DIFFREP_CPU_ISA`` (ValueError, not cached)."""
    if name == "_cpu":
        cpu_isa_cap()
    try:
        return importlib.import_module(f"diffrep.{name}"), None
    except ImportError as exc:  # not built, or a shared library is missing
        return None, f"diffrep.{name} could not be imported: {exc}"


def cpu_module():
    """The ``diffrep._cpu`` module, or None when it was not built."""
    return _load("_cpu")[0]


def cuda_module():
    """The ``diffrep._cuda`` module when it is built *and* a GPU is usable, else None."""
    return cuda_module_and_reason()[0]


@functools.lru_cache(maxsize=None)
def cuda_module_and_reason():
    mod, reason = _load("_cuda")
    if mod is None:
        return None, reason
    if not torch.cuda.is_available():
        return None, "torch.cuda.is_available() is False (no GPU or a CPU build of torch)"
    try:
        count = mod.device_count()
    except RuntimeError as exc:
        return None, f"the CUDA runtime reports an error: {exc}"
    if count <= 0:
        return None, "the CUDA runtime sees no device (driver missing or too old?)"
    return mod, None


def cpu_available() -> bool:
    """True when the native CPU kernels can run."""
    return cpu_module() is not None


def cuda_available() -> bool:
    """True when ``diffrep._cuda`` is built, torch sees a GPU and the CUDA runtime sees it too."""
    return cuda_module() is not None


def forced_backend() -> str | None:
    """The backend forced by ``DIFFREP_BACKEND`` (``reference``, ``cpu`` or ``cuda``), if any."""
    value = os.environ.get("DIFFREP_BACKEND", "").strip().lower()
    if value in ("", "auto"):
        return None
    if value not in ("reference", "cpu", "cuda"):
        raise ValueError(
            f"DIFFREP_BACKEND={value!r} is not one of 'auto', 'reference', 'cpu', 'cuda'"
        )
    return value


def info() -> dict:
    """What diffrep was built with and what is usable on this machine, and why not.

    Returns a dict with the versions, one entry per native module (``built``, ``usable``,
    ``reason``) and the backend forced by ``DIFFREP_BACKEND``.
    """
    from ._version import __version__

    try:
        cpu_mod, cpu_reason = _load("_cpu")
        cpu_built = cpu_mod is not None
    except ValueError as exc:  # DIFFREP_CPU_ISA misspelt: built, but refused
        cpu_mod, cpu_reason = None, str(exc)
        cpu_built = importlib.util.find_spec("diffrep._cpu") is not None
    cuda_built_mod, cuda_built_reason = _load("_cuda")
    cuda_mod, cuda_reason = cuda_module_and_reason()
    modules = {
        "_cpu": {
            "built": cpu_built,
            "usable": cpu_mod is not None,
            "reason": cpu_reason,
            "openmp_threads": torch.get_num_threads(),
        },
        "_cuda": {
            "built": cuda_built_mod is not None,
            "usable": cuda_mod is not None,
            "reason": cuda_built_reason if cuda_built_mod is None else cuda_reason,
        },
    }
    if cuda_built_mod is not None:
        modules["_cuda"]["runtime_version"] = cuda_built_mod.runtime_version()
        modules["_cuda"]["architectures"] = cuda_built_mod.architectures()
    try:
        forced = forced_backend()
    except ValueError as exc:
        forced = f"invalid: {exc}"
    return {
        "diffrep": __version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch_cuda": torch.version.cuda,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "modules": modules,
        "forced_backend": forced,
    }
