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

from ._cuda_archs import CompiledArchs, Verdict, device_verdict, parse_architectures, parse_virtual_list

CPU_ISA_CAPS = ("v1", "v2", "v3", "v4")
# what the kernels' dispatchers run (the native cpu_isa_level: no v2 copy exists, v2 runs the baseline)
CPU_ISA_NAMES = {4: "x86-64-v4 (AVX-512)", 3: "x86-64-v3 (AVX2 + FMA)", 1: "baseline x86-64"}


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
    """The ``diffrep._cuda`` module when it is built *and* the current GPU can run it, else None."""
    return cuda_module_and_reason()[0]


@functools.lru_cache(maxsize=None)
def _cuda_runtime():
    """(module or None, reason): built, torch sees a GPU, the CUDA runtime counts a device."""
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


def _compiled_architectures(mod) -> CompiledArchs:
    """The cubins and PTX the built ``_cuda`` module holds (docs/build.md#cuda-architectures).
    ValueError when the build reports architectures diffrep cannot read."""
    virtual = parse_virtual_list(mod.virtual_architectures()) if hasattr(mod, "virtual_architectures") else ()
    return parse_architectures(mod.architectures(), virtual)


_verdicts: dict[int, Verdict] = {}


def _device_verdict(index: int) -> Verdict:
    """device_verdict for GPU ``index``, computed once per index (the capability does not change)."""
    verdict = _verdicts.get(index)
    if verdict is None:
        try:
            compiled = _compiled_architectures(_cuda_runtime()[0])
        except ValueError as exc:
            verdict = Verdict(False, None, f"the architectures of this build cannot be read: {exc}")
        else:
            verdict = device_verdict(compiled, tuple(torch.cuda.get_device_capability(index)))
        _verdicts[index] = verdict
    return verdict


def cuda_module_and_reason(device_index: int | None = None):
    """(``diffrep._cuda`` or None, the reason it cannot run on GPU ``device_index`` or None).

    ``device_index`` None: the current device. Usable needs the module built, a GPU torch and the CUDA
    runtime see, and a kernel image for the GPU's compute capability (diffrep._cuda_archs)."""
    if device_index is not None and type(device_index) is not int:  # bool is refused too
        raise TypeError(f"device_index must be an int or None, got {type(device_index).__name__}")
    mod, reason = _cuda_runtime()
    if mod is None:
        return None, reason
    if device_index is None:
        device_index = torch.cuda.current_device()
    verdict = _verdicts.get(device_index)
    if verdict is None:
        if not 0 <= device_index < torch.cuda.device_count():
            raise ValueError(f"device_index={device_index} is not a GPU here (torch sees {torch.cuda.device_count()})")
        verdict = _device_verdict(device_index)
    return (mod, None) if verdict.usable else (None, f"cuda:{device_index}: {verdict.reason}")


def cpu_available() -> bool:
    """True when the native CPU kernels can run."""
    return cpu_module() is not None


def cuda_available() -> bool:
    """True when ``diffrep._cuda`` is built, torch sees a GPU, the CUDA runtime sees it too and the build
    holds a kernel image for the current GPU's compute capability."""
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


def cuda_build_report(mod) -> dict:
    """What the built ``_cuda`` module was compiled for and, per GPU torch sees, whether it runs there:
    ``architectures`` (CMake's value), ``virtual_architectures`` (nvcc's), ``compiled`` (cubins and PTX,
    or why they cannot be read) and ``devices`` (index, name, capability, usable, image, reason)."""
    report = {"runtime_version": mod.runtime_version(), "architectures": mod.architectures(),
              "virtual_architectures": getattr(mod, "virtual_architectures", lambda: None)()}
    try:
        report["compiled"] = _compiled_architectures(mod).describe()
    except ValueError as exc:
        report["compiled"] = f"unreadable: {exc}"
    devices = []
    if _cuda_runtime()[0] is not None:
        for index in range(torch.cuda.device_count()):
            verdict = _device_verdict(index)
            major, minor = torch.cuda.get_device_capability(index)
            devices.append({"index": index, "name": torch.cuda.get_device_name(index),
                            "capability": f"{major}.{minor}", "usable": verdict.usable,
                            "image": verdict.image, "reason": verdict.reason})
    report["devices"] = devices
    return report


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
    if cpu_mod is not None and hasattr(cpu_mod, "cpu_isa_level"):
        modules["_cpu"]["isa"] = CPU_ISA_NAMES[cpu_mod.cpu_isa_level()]
    if cuda_built_mod is not None:
        modules["_cuda"].update(cuda_build_report(cuda_built_mod))
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
