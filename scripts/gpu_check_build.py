"""The build of scripts/gpu_check.py: its own build folder, the reset of a failed build's CMake cache, and the
build report step (which diffrep the steps import, and whether its CUDA backend can run)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from gpu_check_steps import ROOT, STOP_RC

#: the build folder of the build step (per Python version: the extension is built for one), apart from the
#: project's default build/{wheel_tag}
BUILD_DIR = ROOT / "build" / f"gpu_check-cp{sys.version_info[0]}{sys.version_info[1]}"
#: written into BUILD_DIR after a build that passed
BUILT_MARK = ".gpu_check_built"


def reset_failed_build(build_dir: Path) -> bool:
    """Before the build step: where the last build in ``build_dir`` did not pass (no ``BUILT_MARK``), remove its
    CMake cache and CMakeFiles, so that a rerun after a fix configures afresh: CMake keeps the compiler it found
    (or failed to identify) in its cache, and a rerun with the cause fixed would fail the same way. After a build
    that passed, everything is kept (a rebuild after a kernel fix recompiles what changed). True if it reset."""
    cache = build_dir / "CMakeCache.txt"
    if not cache.exists() or (build_dir / BUILT_MARK).exists():
        return False
    cache.unlink()
    shutil.rmtree(build_dir / "CMakeFiles", ignore_errors=True)
    return True


def build_report(need_cuda: bool) -> int:
    """The build report step (run in its own process, scripts/ on its path): ``diffrep info``, then which diffrep
    the steps import and whether its CUDA backend is usable. On the GPU (``need_cuda``) a diffrep whose CUDA backend
    cannot run fails here with the reason (a diffrep without the built _cuda module on the path, e.g. PYTHONPATH
    pointing at the source tree; a build without an image for this GPU), where every CUDA test would just skip.
    A diffrep that does not import at all returns ``STOP_RC``."""
    try:
        import diffrep
        from diffrep.cli import main as cli
    except Exception as e:  # noqa: BLE001 - any import failure is the same verdict: nothing can run
        print(f"gpu_check: error: diffrep does not import ({type(e).__name__}: {e}): the build failed (see its step), "
              "or --no-build on a machine where diffrep was never installed", flush=True)
        return STOP_RC
    cli(["info"])
    ok = diffrep.cuda_available()
    why = diffrep.info()["modules"]["_cuda"].get("reason")
    print(f"gpu_check: diffrep from {diffrep.__file__}: CUDA backend " + ("usable" if ok else f"not usable: {why}"))
    return 1 if need_cuda and not ok else 0
