"""Which tests the CUDA test step of scripts/gpu_check.py runs: the test files that can hold a CUDA test, and the
pytest hook that keeps only the CUDA tests of them. pytest loads the hook from ``gpu_check`` (``-p gpu_check``, with
scripts/ on PYTHONPATH), which imports it from here."""

from __future__ import annotations

import os
import re

from gpu_check_steps import ROOT

#: test files that test this script itself: they run no CUDA code, and the dry run in them would recurse
_SELF_TESTS = re.compile(r"\bgpu_check\b")
#: a function that takes the conftest ``device`` fixture (parametrised over every usable device, CUDA included)
_TAKES_DEVICE = re.compile(r"^\s*def \w+\([^)]*\bdevice\b", re.M)

#: set by the real run's CUDA test step: there, a diffrep whose CUDA backend cannot run fails the step
NEED_CUDA_ENV = "DIFFREP_GPU_CHECK_NEED_CUDA"


def cuda_test_files() -> list[str]:
    """The test files that can hold a CUDA test, relative to the repository: every ``tests/**/test_*.py`` that names
    CUDA (a skip without a GPU, the ``cuda`` marker, a ``"cuda"`` device, a ``*_cuda`` file) or has a function
    taking a ``device`` argument (the conftest fixture runs each such test on every usable device). Generous on
    purpose: the ``-p gpu_check`` hook below keeps only the CUDA tests of these files, so a file too many costs
    its import, a file too few loses its CUDA tests."""
    out = []
    for p in sorted((ROOT / "tests").rglob("test_*.py")):
        text = p.read_text(encoding="utf-8")
        if _SELF_TESTS.search(text):
            continue
        if "cuda" in text.lower() or _TAKES_DEVICE.search(text):
            out.append(p.relative_to(ROOT).as_posix())
    return out


#: the host builds of the CUDA sources (``tests/**/test_*_host.py``: g++ builds of the .cu launchers and element
#: bodies, compared with the CPU kernels): they need no GPU and run in the CPU suite; on the GPU machine they would
#: spend the CUDA test step's limit compiling (the launchers' build alone takes seconds of every core)
_HOST_BUILDS = re.compile(r"_host\.py$")


def is_cuda_test(item) -> bool:
    """A collected pytest item that exercises CUDA: 'cuda' in its node id (a ``*_cuda.py`` file, a test named
    for CUDA, a ``[cuda]`` device parameter), the ``cuda`` marker, or a skipif whose reason names CUDA or a GPU
    (a test that needs no GPU is kept too and skips on the GPU machine: cheap, and never a CUDA test lost); not
    the host builds of the CUDA sources (``*_host.py``), which run no device code."""
    if _HOST_BUILDS.search(item.nodeid.split("::")[0]):
        return False
    if "cuda" in item.nodeid.lower() or item.get_closest_marker("cuda") is not None:
        return True
    return any(re.search(r"cuda|gpu", str(m.kwargs.get("reason", "")), re.I) for m in item.iter_markers("skipif"))


def pytest_collection_modifyitems(config, items):
    """pytest hook, active only where pytest loads ``gpu_check`` as a plugin (``-p gpu_check``, with scripts/ on
    PYTHONPATH: the CUDA test step): keep the CUDA tests of the collected files, deselect the rest, so the GPU
    machine runs every CUDA test and none of the CPU suite. In the real run (``NEED_CUDA_ENV`` set) a diffrep
    whose CUDA backend is unusable (a failed build, a build without an image for this GPU, a source tree on
    PYTHONPATH) ends the session with that reason: every CUDA test would skip, and the step read "pass"."""
    if os.environ.get(NEED_CUDA_ENV) == "1":
        import pytest

        import diffrep

        if not diffrep.cuda_available():
            why = diffrep.info()["modules"]["_cuda"].get("reason")
            pytest.exit(f"gpu_check: error: the CUDA backend of diffrep ({diffrep.__file__}) is not usable, so "
                        f"every CUDA test would skip: {why}", returncode=3)
    keep, dropped = [], []
    for it in items:
        (keep if is_cuda_test(it) else dropped).append(it)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


#: how much of a failed test's report is printed the moment it fails (its short traceback's end: the assertion)
_FAILURE_NOW_CHARS = 2000
_config = None


def pytest_configure(config):
    """pytest hook (``-p gpu_check``): keeps the config, whose terminal writer ``pytest_runtest_logreport`` uses."""
    global _config
    _config = config


def pytest_runtest_logreport(report):
    """pytest hook (``-p gpu_check``): a failed CUDA test is printed the moment it fails, as a ``FAILED <test>: ...``
    line (the step's first error) and the end of its short traceback. pytest itself prints failures only at the end
    of the session, so a CUDA test step killed at its limit (a slow or hung test later on) would keep dots and
    nothing of what had already failed."""
    if not report.failed or _config is None:
        return
    tr = _config.pluginmanager.get_plugin("terminalreporter")
    if tr is None:
        return
    text = report.longreprtext.rstrip()
    # the error's own line: the first "E   " line of the traceback (what pytest's summary shows), else the last line
    said = [x[1:].strip() for x in text.splitlines() if x.startswith("E ")] or [x.strip() for x in reversed(text.splitlines())]
    last = next((x for x in said if x), "(no message)")
    tr.write_line("")
    tr.write_line(f"FAILED {report.nodeid} ({report.when}): {last[:300]}")
    tr.write_line(text[-_FAILURE_NOW_CHARS:])
