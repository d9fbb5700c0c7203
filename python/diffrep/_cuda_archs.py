"""Which GPUs a build of ``diffrep._cuda`` can run on: the compiled architectures, parsed, and one pure
decision per device (docs/build.md#cuda-architectures).

A CUDA fat binary holds cubins (SASS, machine code for one ``sm_XY``) and PTX (``compute_XY``, virtual
code the driver JIT-compiles). CUDA's compatibility rules (CUDA C++ Programming Guide, "Binary
Compatibility" and "PTX Compatibility"):

- a cubin for ``sm_XY`` runs on a device of compute capability ``X.Z`` with ``Z >= Y`` (same major only);
- PTX for ``compute_XY`` JIT-compiles for any capability ``>= X.Y``;
- architecture-specific code (``sm_90a`` / ``compute_90a``) runs on exactly ``9.0``; family-specific
  code (``sm_100f`` / ``compute_100f``) on the same major with a minor at least its own;
- nothing else runs: the launch fails with "no kernel image is available for execution on the device".

Deciding this in Python, before any launch, lets the op fall back to its pure-PyTorch twin with the
reason stated (``diffrep info``, ``diffrep.ops.explain``) instead of raising at the first kernel.
"""

from __future__ import annotations

import re
from typing import NamedTuple


class Arch(NamedTuple):
    """One compiled architecture: compute capability ``major.minor`` and the variant suffix
    (``""``; ``"a"``: architecture-specific; ``"f"``: family-specific)."""

    major: int
    minor: int
    variant: str = ""

    @property
    def number(self) -> str:
        return f"{self.major}{self.minor}{self.variant}"


class CompiledArchs(NamedTuple):
    """What the fat binary holds: cubins (``sass``) and PTX (``ptx``), each sorted."""

    sass: tuple[Arch, ...]
    ptx: tuple[Arch, ...]

    def describe(self) -> str:
        """E.g. ``"SASS sm_80, sm_90; PTX compute_90"``."""
        sass = ", ".join(f"sm_{a.number}" for a in self.sass) or "none"
        ptx = ", ".join(f"compute_{a.number}" for a in self.ptx) or "none"
        return f"SASS {sass}; PTX {ptx}"


class Verdict(NamedTuple):
    """Whether a device can run the build: ``image`` names the code the driver will load (a cubin is
    preferred to JIT-compiled PTX), ``reason`` says why not when ``usable`` is False."""

    usable: bool
    image: str | None
    reason: str | None


_ENTRY = re.compile(r"^(\d{2,3})([af]?)(?:-(real|virtual))?$")
# CMake's special values, passed to nvcc as -arch=<value>; "native" is resolved by CMake itself into
# the build machine's GPUs with "-real" (cubins only).
_SPECIAL = ("all", "all-major", "native")


def _arch(number: int, variant: str = "") -> Arch:
    return Arch(number // 10, number % 10, variant)


def parse_virtual_list(text: str) -> tuple[int, ...]:
    """nvcc's ``__CUDA_ARCH_LIST__`` as the module reports it (``"800,900"``): the virtual architectures
    every .cu file was compiled for, as ``__CUDA_ARCH__`` values (``800`` is 8.0)."""
    if not isinstance(text, str):
        raise TypeError(f"the virtual architecture list must be a str, got {type(text).__name__}")
    values = []
    for item in text.split(","):
        item = item.strip()
        if not item.isdigit() or int(item) < 100 or int(item) % 10:
            raise ValueError(f"__CUDA_ARCH_LIST__ entry {item!r} is not a __CUDA_ARCH__ value such as 800 (in {text!r})")
        values.append(int(item) // 10)
    return tuple(sorted(set(values)))


def parse_architectures(spec: str, virtual: tuple[int, ...] = ()) -> CompiledArchs:
    """The cubins and PTX of a build from its CMake ``CUDA_ARCHITECTURES`` (``CUDAARCHS``) value.

    ``spec``: entries separated by ``;`` or ``,``: ``80`` (cubin sm_80 and PTX compute_80, CMake's
    meaning), ``80-real`` (cubin only), ``80-virtual`` (PTX only), with an optional ``a``/``f`` suffix
    (``90a``), or one of CMake's special values ``all``, ``all-major``, ``native``. Those name no
    architectures, so ``virtual`` (the compiler's ``__CUDA_ARCH_LIST__``, as numbers like 80) gives them:
    ``all`` and ``all-major`` embed a cubin for every listed architecture and PTX for the highest major
    one (nvcc's -arch=all; checked against nvcc 13.0's fatbinary command line), ``native`` cubins only.
    """
    if not isinstance(spec, str):
        raise TypeError(f"the CUDA architectures must be a str, got {type(spec).__name__}")
    if not isinstance(virtual, tuple) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 10
                                                 for v in virtual):
        raise TypeError(f"virtual must be a tuple of architecture numbers such as 80, got {virtual!r}")
    entries = [e.strip() for e in re.split(r"[;,]", spec) if e.strip()]
    if not entries:
        raise ValueError("the CUDA architectures are empty: the build names no sm_XY to compile for")
    sass: set[Arch] = set()
    ptx: set[Arch] = set()
    for entry in entries:
        if entry in _SPECIAL:
            if len(entries) > 1:
                raise ValueError(f"CUDA architectures {spec!r}: {entry!r} must be the only entry")
            if not virtual:
                raise ValueError(f"CUDA architectures {entry!r} name no architecture and the compiler's list is empty")
            sass.update(_arch(v) for v in virtual)
            majors = [v for v in virtual if v % 10 == 0]
            if entry != "native" and majors:
                ptx.add(_arch(max(majors)))
            continue
        m = _ENTRY.match(entry)
        if m is None:
            raise ValueError(f"CUDA architecture {entry!r} (in {spec!r}) is not NN, NN-real, NN-virtual (optionally "
                             f"with an a/f suffix: 90a) or one of {', '.join(_SPECIAL)}")
        arch = _arch(int(m.group(1)), m.group(2))
        if m.group(3) != "virtual":
            sass.add(arch)
        if m.group(3) != "real":
            ptx.add(arch)
    return CompiledArchs(tuple(sorted(sass)), tuple(sorted(ptx)))


def _cubin_runs(a: Arch, major: int, minor: int) -> bool:
    if a.variant == "a":
        return (a.major, a.minor) == (major, minor)
    return a.major == major and minor >= a.minor


def _ptx_runs(a: Arch, major: int, minor: int) -> bool:
    if a.variant == "a":
        return (a.major, a.minor) == (major, minor)
    if a.variant == "f":
        return a.major == major and minor >= a.minor
    return (major, minor) >= (a.major, a.minor)


def device_verdict(compiled: CompiledArchs, capability: tuple[int, int]) -> Verdict:
    """Whether a device of compute capability ``capability`` (``(major, minor)``, as
    ``torch.cuda.get_device_capability`` gives it) can run a build holding ``compiled``."""
    if not isinstance(compiled, CompiledArchs):
        raise TypeError(f"compiled must be a CompiledArchs (parse_architectures), got {type(compiled).__name__}")
    if (not isinstance(capability, tuple) or len(capability) != 2
            or not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in capability)):
        raise ValueError(f"capability must be a (major, minor) pair of non-negative ints, got {capability!r}")
    major, minor = capability
    # the driver prefers a cubin, the newest that runs; else it JIT-compiles the newest PTX that runs
    cubins = [a for a in compiled.sass if _cubin_runs(a, major, minor)]
    if cubins:
        return Verdict(True, f"sm_{max(cubins).number} cubin", None)
    ptx = [a for a in compiled.ptx if _ptx_runs(a, major, minor)]
    if ptx:
        return Verdict(True, f"compute_{max(ptx).number} PTX, JIT-compiled by the driver (slow first launch)", None)
    return Verdict(False, None,
                   f"the GPU's compute capability {major}.{minor} (sm_{major}{minor}) has no kernel image in this "
                   f"build ({compiled.describe()}): a cubin runs only on its own major version at an equal or "
                   f"higher minor, PTX only on its own capability or newer; rebuild with CUDAARCHS including "
                   f"{major}{minor} (docs/build.md#cuda-architectures)")
