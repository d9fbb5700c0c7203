"""The GPU check: build, CUDA tests, GPU benches and method step times, in one command, one report.

A GPU is lent to a session for minutes, not hours, so this script is the whole plan, ready before
the machine is. On a machine with a GPU and no network:

    python3 scripts/gpu_check.py                 # builds for the local architecture, then runs it all
    python3 scripts/gpu_check.py --deadline 560 --out OUT   # ... all of it within 560 s (a 600 s command)
    python3 scripts/gpu_check.py --no-build      # diffrep already installed
    python3 scripts/gpu_check.py --dry-run       # the same plan on the CPU backends at tiny sizes
    python3 scripts/gpu_check.py --dry-run --jobs 2   # ... two steps at a time (dry run only)
    python3 scripts/gpu_check.py --no-build --only 'CUDA tests,bench BFN'   # a rerun of some steps after a fix
    python3 scripts/gpu_check.py --only 'build,CUDA tests'; python3 scripts/gpu_check.py --no-build
                                                 # the same run in two commands, on one machine (a fresh
                                                 # one has no diffrep installed: the second stops at once)

A preflight (in a child process) first asks torch for the GPU and runs a tiny op on it: without a GPU, or with a
torch that has no kernels for it, the run stops there, and the report says why. Each step runs in its own process
under a time limit (one hang cannot eat the budget; ``--deadline`` cuts the limits to the time left and skips what
no longer fits), echoes its output as it comes, and records pass/fail with the first error line; a build report
that finds no diffrep to import stops the steps after it. The step and target tables are printed again at the end.
The report is Markdown under ``benches/results/`` named with the GPU model and the date; it holds every step's output (the bench
tables carry the native/eager ratios and the bandwidth against a copy measured in the same run).
On a machine whose files do not come back (a lent GPU machine), point ``--out`` at the folder that does.
The plan and each step's limit and expected time: docs/build.md#gpu-check. The CUDA test step runs
the CUDA tests of every test file that can hold one (``cuda_test_files``), the other tests of those
files deselected by this file's pytest hook (``-p gpu_check``). Every bench of benches/ runs with
``--device cuda``, except the ones ``EXCLUDED_BENCHES`` lists with the reason (a test checks that no
bench is in neither). The steps after the build fit in 8 minutes on an H100: their limits add up to
at most ``PLAN_LIMIT_S`` = 480 s (a test checks the sum). The build has its own limit (300 s); where the
CUDA module can be built beforehand (nvcc needs no GPU: ``CUDAARCHS=90 pip install ...``), run
``--no-build`` on the GPU machine. ``--budget`` scales every step's limit; the dry run multiplies
them by ``DRY_RUN_SLACK`` (a shared CPU box imports torch more slowly than a GPU machine runs a step).
``--jobs N`` runs up to N steps at once in the dry run (each still in its own process under its own
limit; the report keeps the plan's order): the dry run checks the script, not speeds. A real run
always runs one step at a time, since the benches time themselves.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MIN_LIMIT_S = 5.0  # no step gets less, whatever --budget says (a Python start with torch takes ~2-3 s)
#: the steps after the build must fit in 8 minutes on an H100 (issue 24): the sum of their limits
PLAN_LIMIT_S = 480
#: the dry run's limits are the GPU limits times this (tiny sizes, but a loaded CPU machine)
DRY_RUN_SLACK = 3.0
#: a CUDA test running longer than this has its stack dumped (it names the test a hang is in)
HANG_DUMP_S = 30


@dataclasses.dataclass
class Step:
    name: str
    argv: list[str]
    limit_s: float
    target: str = ""  # what the step's numbers are held against (docs/kernels/*.md)
    estimate_s: float = 0.0  # the expected time on an H100 (a guess until a GPU has run it; 0: not estimated)
    env: dict = dataclasses.field(default_factory=dict)  # added to the environment; PYTHONPATH is prepended


def _py(*args: str) -> list[str]:
    return [sys.executable, *args]


#: benches/*.py left out of the plan, each with why: a GPU adds nothing to it, or another step's rows hold its
#: GPU numbers (tests/scripts/test_gpu_check.py fails on a bench that is neither planned nor listed here)
EXCLUDED_BENCHES = {
    "bench_data.py": "data loading on the CPU (batched loader, DataLoader workers, procedural dSprites): it has no "
                     "device code path, and the loader's host-to-device copy is timed by bench_train_step.py",
    "bench_paramrel_celeba64.py": "a 300-step ParamReL CelebA-64 run (loss trend, JSON under benches/results/): its "
                                  "bf16 step time at the recipe's batch is the paramrel/celeba64 row of "
                                  "bench_method_step.py",
    "fid_dsprites.py": "FID/KID/PRDC of two dSprites splits through the FID Inception: needs the Inception weights "
                       "(not on a machine without network) and appends a result record; the Inception throughput "
                       "on the GPU is a row of bench_generation.py, the PRDC kernel too",
}

#: test files that test this script itself: they run no CUDA code, and the dry run in them would recurse
_SELF_TESTS = re.compile(r"\bgpu_check\b")
#: a function that takes the conftest ``device`` fixture (parametrised over every usable device, CUDA included)
_TAKES_DEVICE = re.compile(r"^\s*def \w+\([^)]*\bdevice\b", re.M)


def cuda_test_files(root: Path = ROOT) -> list[str]:
    """The test files that can hold a CUDA test, relative to ``root``: every ``tests/**/test_*.py`` that names
    CUDA (a skip without a GPU, the ``cuda`` marker, a ``"cuda"`` device, a ``*_cuda`` file) or has a function
    taking a ``device`` argument (the conftest fixture runs each such test on every usable device). Generous on
    purpose: the ``-p gpu_check`` hook below keeps only the CUDA tests of these files, so a file too many costs
    its import, a file too few loses its CUDA tests."""
    out = []
    for p in sorted((root / "tests").rglob("test_*.py")):
        text = p.read_text(encoding="utf-8")
        if _SELF_TESTS.search(text):
            continue
        if "cuda" in text.lower() or _TAKES_DEVICE.search(text):
            out.append(p.relative_to(root).as_posix())
    return out


def is_cuda_test(item) -> bool:
    """A collected pytest item that exercises CUDA: 'cuda' in its node id (a ``*_cuda.py`` file, a test named
    for CUDA, a ``[cuda]`` device parameter), the ``cuda`` marker, or a skipif whose reason names CUDA or a GPU
    (a test that needs no GPU is kept too and skips on the GPU machine: cheap, and never a CUDA test lost)."""
    if "cuda" in item.nodeid.lower() or item.get_closest_marker("cuda") is not None:
        return True
    return any(re.search(r"cuda|gpu", str(m.kwargs.get("reason", "")), re.I) for m in item.iter_markers("skipif"))


#: set by the real run's CUDA test step: there, a diffrep whose CUDA backend cannot run fails the step
NEED_CUDA_ENV = "DIFFREP_GPU_CHECK_NEED_CUDA"


def pytest_collection_modifyitems(config, items):
    """pytest hook, active only where pytest loads this file as a plugin (``-p gpu_check``, with scripts/ on
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


#: the build folder of the build step (per Python version: the extension is built for one), apart from the
#: project's default build/{wheel_tag}
BUILD_DIR = ROOT / "build" / f"gpu_check-cp{sys.version_info[0]}{sys.version_info[1]}"
#: written into BUILD_DIR after a build that passed
BUILT_MARK = ".gpu_check_built"


def reset_failed_build(build_dir: Path | None = None) -> bool:
    """Before the build step: where the last build in ``build_dir`` did not pass (no ``BUILT_MARK``), remove its
    CMake cache and CMakeFiles, so that a rerun after a fix configures afresh: CMake keeps the compiler it found
    (or failed to identify) in its cache, and a rerun with the cause fixed would fail the same way. After a build
    that passed, everything is kept (a rebuild after a kernel fix recompiles what changed). True if it reset."""
    build_dir = build_dir or BUILD_DIR
    cache = build_dir / "CMakeCache.txt"
    if not cache.exists() or (build_dir / BUILT_MARK).exists():
        return False
    cache.unlink()
    shutil.rmtree(build_dir / "CMakeFiles", ignore_errors=True)
    return True


#: a step that exits with this code says nothing after it can run (diffrep does not import: a failed build, or
#: --no-build on a machine where it was never installed): the rest of the plan is reported as not run, not failed
#: one by one at a torch import each
STOP_RC = 4


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


# The steps after the build, in order of value: the CUDA tests first (a failing one is a bug to fix before any
# timing), then the benches of the issue's named GPU targets (issue 24), then the method step times, then the
# other benches. Each limit is about twice the step's estimated time on an H100 (estimate_s: a guess from the
# sizes until a GPU has run it; a fresh machine's first torch import is slow, hence the build report's 20 s);
# the limits add up to PLAN_LIMIT_S = 480 s. A limit under 1.5x its estimate is reported as short.
def plan(dry_run: bool, arch: str | None, build: bool) -> list[Step]:
    """The steps, in order. ``dry_run`` swaps CUDA for the CPU backends and sizes for tiny ones."""
    dev = "cpu" if dry_run else "cuda"
    tiny = dry_run
    steps: list[Step] = []
    if build:
        env_arch = [f"CUDAARCHS={arch}"] if arch else []
        # every core for nvcc: CMake's Makefile generator builds one file at a time unless told (ninja needs no hint)
        jobs = [] if os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") else [f"CMAKE_BUILD_PARALLEL_LEVEL={os.cpu_count() or 1}"]
        # no network: pip must never wait on an index (its version check, a lookup); -v streams CMake's and nvcc's
        # lines (the step's progress, and the compiler's own error in the report when the build fails). Its own
        # build folder (BUILD_DIR, reset after a failed build by reset_failed_build) and the architecture as a
        # CMake definition: CUDAARCHS only seeds a fresh CMake cache, a -D also replaces a cached value
        define_arch = [f"-Ccmake.define.CMAKE_CUDA_ARCHITECTURES={arch}"] if arch else []
        steps.append(Step("build", ["env", *env_arch, *jobs, "DIFFREP_CUDA=" + ("OFF" if dry_run else "ON"),
                                    "PIP_DISABLE_PIP_VERSION_CHECK=1", "PIP_NO_INDEX=1",
                                    *_py("-m", "pip", "install", "--no-build-isolation", "--no-deps", "-v",
                                         f"-Cbuild-dir={BUILD_DIR}", *define_arch, str(ROOT))],
                          300, estimate_s=120))  # its longest file, csrc/bfn/bfn_cpu.cpp, took 87 s of one CPU core
    steps.append(Step("build report", _py("-c", f"import sys, gpu_check; sys.exit(gpu_check.build_report({not dry_run}))"),
                      20, "" if dry_run else "the CUDA backend is usable: the built module has an image for this GPU", 6,
                      env={"PYTHONPATH": str(ROOT / "scripts")}))
    # every CUDA test (the default run's: `slow` stays out), the CPU tests of the same files deselected; -rfEs
    # lists each failure, error and skip at the end (the report keeps the output's tail); a file that fails to
    # import (a package missing on the GPU machine) costs its own tests only, and fails the step; a test still
    # running after HANG_DUMP_S has every thread's stack dumped (pytest's faulthandler), so a hang the step's limit
    # then kills is named in the report (-q prints no test names)
    steps.append(Step("CUDA tests" if not dry_run else "CUDA tests (collected; they skip without a GPU)",
                      _py("-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "gpu_check", "--tb=short", "-rfEs",
                          "--continue-on-collection-errors", "-o", f"faulthandler_timeout={HANG_DUMP_S}",
                          *cuda_test_files()),
                      85, "every CUDA test passes", estimate_s=45,
                      env={"PYTHONPATH": str(ROOT / "scripts"), **({} if dry_run else {NEED_CUDA_ENV: "1"})}))
    steps += [
        Step("bench BFN", _py("benches/bench_bfn.py", "--device", dev, "--repeat", "2" if tiny else "10",
                              *(["--sizes", "1e4"] if tiny else ["--sizes", "1e6", "1.6e7", "6.4e7"])), 45,
             "elementwise ops >= 70% of copy bandwidth at >= 16M elements; discretised loss >= 10x eager", 25),
        Step("bench guidance", _py("benches/bench_guidance.py", "--device", dev,
                                   *(["--B", "16", "--D", "8", "--repeat", "2"] if tiny else [])), 15,
             "fused vs autograd at B = 512, D = 256, S = 1 and 8", 6),
        Step("bench MMD", _py("benches/bench_mmd.py", "--device", dev,
                              *(["--sizes", "64", "--repeat", "1"] if tiny else ["--sizes", "1024,4096"])), 15,
             ">= 5x eager at N = M = 4096, d = 32", 6),
        # the target's model only: the full-covariance model's fits at n = 100k would double an unknown time
        Step("bench HDDC", _py("benches/bench_hddc.py", "--device", dev, "--skip-sklearn", "--models", "AkjBkQkDk",
                               *(["--U", "2", "--n", "200", "--d", "4", "--K", "2", "--Kmax", "4", "--iters", "2"]
                                 if tiny else ["--U", "20", "--n", "100000", "--d", "32", "--K", "8", "--Kmax", "32"])),
             25, "U = 20, n = 100k, d = 32, K 8 -> 32 within 1 s", 8),
        Step("bench metric kernels", _py("benches/bench_metrics.py", "--device", dev,
                                         "--skip", "fast,parity,reference,tad", *(["--scale", "0.02"] if tiny else [])),
             25, "metric kernels faster than on the CPU", 12),
        Step("bench generation", _py("benches/bench_generation.py", "--device", dev,
                                     *(["--n", "300", "--d", "32", "--twin-n", "100", "--prdc-n", "200",
                                        "--skip", "strict,fid", "--images", "2"] if tiny else
                                       ["--n", "20000", "--twin-n", "5000", "--prdc-n", "5000", "--skip", "strict",
                                        "--images", "500"])), 40,
             "kNN radii/counts (PRDC) vs the eager twin and the prdc package, d = 2048; Inception images/s", 20),
        Step("bench SAMI step", _py("benches/bench_sami_step.py", "--device", dev, "--models", "disks-cpu", "halfunet64",
                                    *(["--reps", "3", "--warmup", "1", "--batch", "2", "--samples", "1"] if tiny
                                      else [])), 20,
             "SAMI training step with and without the fused guidance op", 10),
        Step("method step times (bf16)", _py("benches/bench_method_step.py", "--device", dev,
                                             *(["--recipes", "paramrel/digits", "sami/disks-cpu", "bfn/digits",
                                                "vq/toy-cpu", "vae/beta-vae-cpu", "diffae/shapes3d-cpu",
                                                "infodiffusion/shapes3d-cpu", "disdiff/shapes3d-cpu",
                                                "encdiff/shapes3d-cpu", "--batch", "2", "--steps", "1", "--warmup", "0"]
                                               if tiny else ["--steps", "5", "--warmup", "2"])), 60,
             "one training step of each method's paper recipe: ms/step, images/s, peak memory", 40),
        Step("multibeta phase step times", _py("benches/bench_multibeta.py", "--device", dev,
                                               *(["--recipes", "multibeta/dsprites-cpu", "--batch", "2", "--repeat", "1",
                                                  "--budget", "1"] if tiny else
                                                 ["--recipes", "multibeta/dsprites-cpu", "multibeta/shapes3d",
                                                  "multibeta/celeba64", "multibeta/celebahq256", "--batch", "16",
                                                  "--repeat", "3", "--budget", "4"])), 30,
             "multi-beta VAE: phase-1 vs phase-2 vs beta-VAE step, side by side", 18),
        # issue 19's sizes on a GPU (batch 512, 100k points per unit); float32: the bench has no autocast
        Step("bench EncDiff + DyGA", _py("benches/bench_encdiff.py", "--device", dev,
                                         *(["--batch", "2", "--units", "2", "--n", "200", "--sample-batch", "1",
                                            "--ddim-steps", "2", "--repeat", "1"] if tiny else
                                           ["--batch", "512", "--n", "100000", "--repeat", "1"])), 40,
             "EncDiff step with vs without DyGA + Skip Dropout; DyGA refresh; DDIM-100", 28),
        Step("diffusion baselines vs bare U-Net (bf16)",
             _py("benches/bench_diffusion_baselines.py", "--device", dev, "--rounds", "3",
                 *(["--batch", "2", "--budget", "1", "--recipes", "diffae/shapes3d-cpu", "infodiffusion/shapes3d-cpu",
                    "disdiff/shapes3d-cpu"] if tiny else
                   ["--budget", "3", "--recipes", "diffae/celeba64", "infodiffusion/celeba64", "disdiff/shapes3d",
                    "disdiff/shapes3d-dyga"])), 30,
             "DiffAE, InfoDiffusion, DisDiff (and DyGA) step vs a bare DDPM step of the same U-Net", 20),
        Step("VAE baselines step times", _py("benches/bench_vae.py", "--device", dev, "--rounds", "3",
                                             *(["--batch", "2", "--budget", "1"] if tiny else
                                               ["--batch", "64", "--budget", "4"])), 15,
             "every VAE-family baseline's step, side by side (float32)", 8),
        Step("trainer step breakdown", _py("benches/bench_train_step.py", "--device", dev,
                                           *(["--workers", "0", "2", "--steps", "1", "--warmup", "1", "--batch", "2",
                                              "--image", "16"] if tiny else
                                             ["--workers", "0", "4", "--steps", "20", "--warmup", "5"])), 15,
             "Trainer loop on the device: data, forward, backward, optimizer ms/step", 8),
    ]
    return steps


def short_limits(steps: list[Step]) -> list[Step]:
    """The steps whose limit is under 1.5x their estimated time: the ones a slow GPU machine may cut off."""
    return [s for s in steps if s.estimate_s and s.limit_s < 1.5 * s.estimate_s]


def plan_limit_s(steps: list[Step]) -> float:
    """The sum of the limits of the steps after the build (at most ``PLAN_LIMIT_S``)."""
    return sum(s.limit_s for s in steps if s.name != "build")


# a line that names an error: an exception, a failed test, a failed bench row ('recipe FAILED: ...'), a compiler's or
# CMake's error, a usage error
_ERROR_LINE = re.compile(r"\s*(E\s+)?[\w.]*(Error|Exception)\b.*:|\s*FAILED |.*\bFAILED: |.*\berror: |\s*CMake Error\b"
                         r"|.*\bnvcc fatal\b|.*\bfatal error\b")
# pip's own wrapper lines around a failed build: they say that the build failed, never why
_PIP_WRAPPER = re.compile(r"\s*(error: (subprocess-exited-with-error|metadata-generation-failed|"
                          r"failed-wheel-build-for-install)|ERROR: Failed (to build|building wheel))")
# pytest's faulthandler dump (-o faulthandler_timeout) and a frame of a test file in it
_HANG_DUMP = re.compile(r"^Timeout \((?P<after>[\d:.]+)\)!", re.M)
_TEST_FRAME = re.compile(r'File "(?P<file>[^"]*\btest_\w+\.py)", line (?P<line>\d+) in (?P<fn>test\w*)')


def _hang_site(text: str) -> str:
    """Where a hang was, from pytest's faulthandler dump in ``text``: the innermost test function's file, line and
    name (most recent call first: the first one listed); "" without a dump."""
    dump = _HANG_DUMP.search(text)
    frame = _TEST_FRAME.search(text, dump.end()) if dump else None
    if frame is None:
        return ""
    where = frame["file"].removeprefix(str(ROOT) + os.sep)
    return f"still running after {dump['after']} in {where}:{frame['line']} {frame['fn']} (stack dump in the output)"


def _first_error(text: str, timed_out: bool = False) -> str:
    """For a step killed at its limit, where it hung (``_hang_site``) if a dump says; else the first line that names
    an error (pip's wrapper lines only where nothing else does; CMake's 'CMake Error at ...:' with the lines that
    say what); else the last line of output."""
    hang = _hang_site(text) if timed_out else ""
    if hang:
        return hang
    lines = text.splitlines()
    hits = [i for i, line in enumerate(lines) if _ERROR_LINE.match(line)]
    own = [i for i in hits if not _PIP_WRAPPER.match(lines[i])]
    if own or hits:
        i = (own or hits)[0]
        first = lines[i].strip()
        if first.startswith("CMake Error"):  # its message is on the next lines, up to a blank line
            more = []
            for x in lines[i + 1:i + 4]:
                if not x.strip() or x.strip().startswith(("CMake Error", "-- ", "Call Stack")):
                    break
                more.append(x.strip())
            first = " ".join([first, *more])
        return first[:300]
    return text.strip().splitlines()[-1][:300] if text.strip() else "(no output)"


def not_run(step: Step, why: str) -> dict:
    """The result of a step the run did not start (the deadline came, or a step before it said nothing can run)."""
    return {"step": step, "status": "not run", "seconds": 0.0, "limit_s": step.limit_s, "output": "",
            "first_error": why}


def run_step(step: Step, scale: float, env: dict, deadline: float | None = None, echo: bool = False) -> dict:
    """One step in its own process group under its limit (``step.limit_s * scale``, at least ``MIN_LIMIT_S``, cut
    to what is left before ``deadline``, a ``time.monotonic()`` value). ``echo`` prints each line of its output
    as it comes (the progress of a long build or test step), indented under the step's own line."""
    limit = max(MIN_LIMIT_S, step.limit_s * scale)
    cut = ""
    if deadline is not None:
        left = deadline - time.monotonic()
        if left < MIN_LIMIT_S:
            print(f"[gpu_check] {step.name}: not run (the --deadline is {max(left, 0):.0f} s away)", flush=True)
            return not_run(step, "not run: too little time left before the --deadline")
        if left < limit:
            limit, cut = left, " (cut to fit the --deadline)"
    print(f"[gpu_check] {step.name} (limit {limit:.0f} s{cut}): {' '.join(step.argv)}", flush=True)
    env = dict(env)
    for k, v in step.env.items():
        env[k] = v + os.pathsep + env[k] if k == "PYTHONPATH" and env.get(k) else v
    t0 = time.perf_counter()
    # its own process group, so that a step over its limit is killed with its children (pytest workers,
    # DataLoader workers) and none of them keeps the GPU; stderr joins stdout in order; a thread reads the
    # output line by line, so that what a step printed before a kill is kept, even where a child that left the
    # group still holds the pipe
    try:
        proc = subprocess.Popen(step.argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", start_new_session=True)
    except OSError as e:  # the program itself is missing or cannot run
        print(f"[gpu_check]   {step.name}: fail (did not start: {e})", flush=True)
        return {"step": step, "status": "fail (did not start)", "seconds": 0.0, "limit_s": limit, "output": str(e),
                "first_error": f"{type(e).__name__}: {e}"}
    lines: list[str] = []

    def pump():
        for line in proc.stdout:
            lines.append(line)
            if echo:
                print("    " + line, end="", flush=True)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=limit)
        status = "pass" if proc.returncode == 0 else f"fail (exit {proc.returncode})"
        try:  # what the step left running in its group (a worker, a daemon) would hold the GPU and the pipe
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        try:  # a process stuck in the driver may outlive SIGKILL for a while: the run goes on without it
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            lines.append("\n(the step's process did not end within 30 s of SIGKILL: left behind)\n")
        status = f"fail (over its {limit:.0f} s limit{cut})"
        timed_out = True
    except BaseException:  # Ctrl-C: the step's group is not in the terminal's, so end it here
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    reader.join(timeout=10)
    out = "".join(list(lines))
    if reader.is_alive():
        out += "\n(a process the step started outlived it and still holds its output: the output ends here)\n"
    secs = time.perf_counter() - t0
    print(f"[gpu_check]   {step.name}: {status} in {secs:.1f} s", flush=True)
    result = {"step": step, "status": status, "seconds": secs, "limit_s": limit, "output": out,
              "first_error": "" if status == "pass" else _first_error(out, timed_out)}
    if proc.returncode == STOP_RC and status != "pass":
        result["stop"] = True
    return result


def gpu_facts() -> dict:
    """What torch sees of the GPU, and whether it can run on it: run in its own process by ``preflight`` (so a hung
    driver costs a time limit, and the parent never holds a CUDA context). ``problem`` is None when a tiny op on the
    GPU gave the right answer; else why nothing of the plan can run (no GPU visible, torch without kernels for this
    GPU's architecture, a driver older than torch's CUDA)."""
    facts = {"gpu": None, "capability": None, "torch": None, "torch_cuda": None, "arch_list": [], "problem": None}
    try:
        import torch
    except Exception as e:  # noqa: BLE001
        facts["problem"] = f"torch does not import: {type(e).__name__}: {e}"
        return facts
    facts["torch"], facts["torch_cuda"] = torch.__version__, torch.version.cuda
    try:
        if not torch.cuda.is_available():
            facts["problem"] = (f"no CUDA device is visible to torch {torch.__version__} (its CUDA: "
                                f"{torch.version.cuda or 'none, a CPU build'}; CUDA_VISIBLE_DEVICES="
                                f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}; nvidia-smi -L: {_smi()})")
            return facts
        facts["gpu"] = torch.cuda.get_device_name(0)
        facts["capability"] = list(torch.cuda.get_device_capability(0))
        facts["arch_list"] = list(torch.cuda.get_arch_list())
        n = 1024
        got = float((torch.arange(n, device="cuda", dtype=torch.float32) * 2).sum().item())
        if got != n * (n - 1):
            facts["problem"] = f"a tiny torch op on the GPU gave {got}, not {n * (n - 1)}"
    except Exception as e:  # noqa: BLE001 - whatever stops torch on this GPU, the report says it
        msg = (str(e).strip().splitlines() or [""])[0]
        cap = "sm_{}{}".format(*facts["capability"]) if facts["capability"] else "unknown architecture"
        facts["problem"] = (f"torch {torch.__version__} cannot run on this GPU ({facts['gpu'] or '?'}, {cap}; torch's "
                            f"kernels are built for {', '.join(facts['arch_list']) or '?'}): {type(e).__name__}: {msg}")
    return facts


def _smi() -> str:
    """What ``nvidia-smi -L`` says (the driver's own list of GPUs): tells a GPU torch cannot see from no GPU."""
    try:
        done = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, errors="replace", timeout=20)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"did not run ({type(e).__name__})"
    said = " / ".join(x.strip() for x in (done.stdout + done.stderr).splitlines() if x.strip())
    return f"{said[:200] or '(nothing)'}" + (f" (exit {done.returncode})" if done.returncode else "")


PREFLIGHT_LIMIT_S = 120


def gpu_name() -> str:
    """The GPU's name for the dry run's report (in this process: the dry run touches no GPU); "no GPU" without one."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001 - the report still gets written without torch
        pass
    return "no GPU"


def preflight(env: dict) -> dict:
    """``gpu_facts`` in a child process under ``PREFLIGHT_LIMIT_S``: a hang or a crash is a ``problem`` too."""
    code = (f"import json, sys; sys.path.insert(0, {str(ROOT / 'scripts')!r}); import gpu_check; "
            "print('GPU_FACTS ' + json.dumps(gpu_check.gpu_facts()))")
    try:
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                              errors="replace", timeout=PREFLIGHT_LIMIT_S)
    except subprocess.TimeoutExpired:
        return {"gpu": None, "problem": f"asking torch for the GPU hung for {PREFLIGHT_LIMIT_S} s (the driver?)"}
    for line in done.stdout.splitlines():
        if line.startswith("GPU_FACTS "):
            return json.loads(line[len("GPU_FACTS "):])
    return {"gpu": None, "problem": f"asking torch for the GPU failed (exit {done.returncode}): "
                                    + _first_error(done.stdout + done.stderr)}


_BFN_ROW = re.compile(r"^(?P<op>[a-z_]+(?: log| fwd\+bwd)?)\s+(?P<K>\S+)\s+(?P<n>[\d.e+]+)\s+(?P<backend>\w+)\s+[\d.]+\s+[\d.]+"
                      r"\s+(?P<speedup>[\d.]+)x\s+(?:[\d.]+x\s+)?[\d.]+\s+(?P<copy>\d+)%", re.M)
_MMD_ROW = re.compile(r"^(?P<kernel>rbf|imq)\s+(?P<est>\w+)\s+(?P<n>\d+)\s+\d+\s+\w+\s+[\d.]+\s+[\d.]+\s+(?P<speedup>[\d.]+)x",
                      re.M)
_HDDC_ROW = re.compile(r"^AkjBkQkDk\s+fit\+split/filter\s+(?P<s>[\d.]+) s", re.M)
_KERNEL_ROW = re.compile(r"^kernel (?P<name>\S+ .*?)\s+cpu\s+[\d.]+ ms\s+cuda\s+[\d.]+ ms\s+vs cpu x\s*(?P<ratio>[\d.]+)",
                         re.M)
_GUIDANCE_ROW = re.compile(r"^\s*(?P<S>\d+)\s+(?P<B>\d+)\s+(?P<D>\d+)\s+(?P<dtype>float\d+)\s+(?P<backend>\w+)\s+[\d.]+\s+"
                           r"[\d.]+\s+(?P<speedup>[\d.]+)x\s*$", re.M)
# the ratio is the median of interleaved rounds' reference / fused; [lo,hi] their range (older tables lack it)
_SAMI_ROW = re.compile(r"^(?P<model>[\w-]+)\s+(?P<B>\d+)\s+(?P<S>\d+)\s+(?P<fused>[\d.]+)ms\s+(?P<ref>[\d.]+)ms\s+"
                       r"(?P<ratio>[\d.]+)\s+(?:\[(?P<lo>[\d.]+),(?P<hi>[\d.]+)\]\s)?", re.M)
_GEN_KERNEL = re.compile(r"^\(N = M = (?P<n>\d+)\) diffrep kNN kernel\s+[\d.]+\s+[\d.]+x\s+(?P<vals>P=.*)$", re.M)
_GEN_TWIN = re.compile(r"^\(N = M = (?P<n>\d+)\) eager twin\s+[\d.]+\s+(?P<ratio>[\d.]+)x\s+(?P<vals>P=.*)$", re.M)


#: the bench tables the targets are read from: step name -> the row pattern
TABLES = {"bench BFN": _BFN_ROW, "bench MMD": _MMD_ROW, "bench HDDC": _HDDC_ROW, "bench guidance": _GUIDANCE_ROW,
          "bench SAMI step": _SAMI_ROW, "bench metric kernels": _KERNEL_ROW, "bench generation": _GEN_TWIN}


def table_rows(outputs: dict[str, str]) -> dict[str, int]:
    """How many rows of each bench table the target patterns read, at any size (the dry run checks them against
    the benches' own output: a table whose layout drifted would read 0 rows, and its targets 'not measured')."""
    return {name: len(pattern.findall(outputs.get(name, ""))) for name, pattern in TABLES.items()}


def targets(outputs: dict[str, str]) -> list[tuple[str, str, str]]:
    """(target, measured, verdict) for the GPU targets of issue 24 that the bench tables carry.
    ``outputs``: step name -> its output. A row the output lacks is 'not measured', never 'met'."""
    rows = []
    bfn = [m.groupdict() for m in _BFN_ROW.finditer(outputs.get("bench BFN", ""))]
    big = [r for r in bfn if float(r["n"]) >= 1.6e7 and "loss" not in r["op"] and r["K"] in ("-", "2")]
    if big:
        worst = min(big, key=lambda r: int(r["copy"]))
        rows.append((">= 70% of copy bandwidth, BFN elementwise ops at >= 16M elements",
                     f"lowest {worst['copy']}% ({worst['op']}, K={worst['K']})", "met" if int(worst["copy"]) >= 70 else "missed"))
    loss = [r for r in bfn if r["op"].startswith("discretised_cts_loss") and float(r["n"]) >= 1e6]
    if loss:
        worst = min(loss, key=lambda r: float(r["speedup"]))
        rows.append((">= 10x eager, discretised loss", f"lowest {worst['speedup']}x (K={worst['K']}, {worst['n']})",
                     "met" if float(worst["speedup"]) >= 10 else "missed"))
    mmd = [m.groupdict() for m in _MMD_ROW.finditer(outputs.get("bench MMD", "")) if m["n"] == "4096"]
    if mmd:
        worst = min(mmd, key=lambda r: float(r["speedup"]))
        rows.append((">= 5x eager, MMD at N = M = 4096", f"lowest {worst['speedup']}x ({worst['kernel']} {worst['est']})",
                     "met" if float(worst["speedup"]) >= 5 else "missed"))
    hddc = _HDDC_ROW.search(outputs.get("bench HDDC", ""))
    if hddc and "--n 100000" in outputs.get("bench HDDC argv", ""):
        rows.append(("HDDC U = 20, n = 100k, d = 32, K 8 -> 32 within 1 s", f"{hddc['s']} s",
                     "met" if float(hddc["s"]) <= 1.0 else "missed"))
    kern = [m.groupdict() for m in _KERNEL_ROW.finditer(outputs.get("bench metric kernels", ""))]
    if kern:
        worst = min(kern, key=lambda r: float(r["ratio"]))
        rows.append(("metric kernels faster than on the CPU", f"lowest {worst['ratio']}x ({worst['name']})",
                     "met" if float(worst["ratio"]) > 1 else "missed"))
    # the issue's size, both S; the fused op is held to the issue's rule that no native op is slower than its twin
    guid = [m.groupdict() for m in _GUIDANCE_ROW.finditer(outputs.get("bench guidance", ""))
            if (m["B"], m["D"]) == ("512", "256")]
    if {r["S"] for r in guid} >= {"1", "8"}:
        worst = min(guid, key=lambda r: float(r["speedup"]))
        each = ", ".join(f"S={r['S']} {r['dtype']} {r['speedup']}x" for r in guid)
        rows.append(("guidance fused vs autograd at B = 512, D = 256, S = 1 and 8 (fused not slower)",
                     f"{each} ({worst['backend']})", "met" if float(worst["speedup"]) >= 1 else "missed"))
    # the issue names the comparison and sets no number: the ratios are recorded
    sami = [m.groupdict() for m in _SAMI_ROW.finditer(outputs.get("bench SAMI step", ""))]
    if sami:
        rows.append(("SAMI training step with vs without the fused guidance op",
                     "; ".join(f"{r['model']} B={r['B']} S={r['S']}: {r['fused']} vs {r['ref']} ms (x{r['ratio']}"
                               + (f", rounds x{r['lo']}-{r['hi']})" if r["lo"] else ")") for r in sami),
                     "recorded (no number set)"))
    gen = outputs.get("bench generation", "")
    kn, tw = _GEN_KERNEL.search(gen), _GEN_TWIN.search(gen)
    if kn and tw and kn["n"] == tw["n"]:
        rows.append(("kNN kernel (PRDC) faster than its eager twin", f"twin {tw['ratio']}x the kernel's time at "
                     f"N = M = {tw['n']}", "met" if float(tw["ratio"]) > 1 else "missed"))
        rows.append(("kNN kernel (PRDC) values equal to its eager twin's", f"kernel {kn['vals']}; twin {tw['vals']}",
                     "met" if kn["vals"] == tw["vals"] else "missed"))
    for want in ("BFN elementwise ops at >= 16M elements", "discretised loss", "MMD at N = M = 4096",
                 "HDDC U = 20, n = 100k, d = 32, K 8 -> 32 within 1 s", "metric kernels faster than on the CPU",
                 "guidance fused vs autograd at B = 512, D = 256, S = 1 and 8",
                 "SAMI training step with vs without the fused guidance op",
                 "kNN kernel (PRDC) faster than its eager twin", "kNN kernel (PRDC) values equal to its eager twin's"):
        if not any(want in r[0] for r in rows):
            rows.append((want, "-", "not measured"))
    return rows


def _excerpt(output: str, first_error: str, keep: int = 12000) -> str:
    """The output as the report keeps it: its last ``keep`` characters, and where the first error lies before
    them (a failed build's compiler error under minutes of CMake lines), the lines around it first."""
    out = output.rstrip()
    if len(out) <= keep:
        return out
    tail = out[-keep:]
    key = first_error[:80]
    if not key or key in tail or key not in out:
        return tail
    lines = out.splitlines()
    i = next(n for n, line in enumerate(lines) if key in line.strip())
    around = "\n".join(lines[max(0, i - 10):i + 20])
    return f"(the lines around the first error)\n{around}\n(...)\n(the last {keep} characters)\n{tail}"


def report(results: list[dict], *, dry_run: bool, gpu: str, total_s: float, pending: list[str] = (),
           facts: dict | None = None, notes: list[str] = ()) -> str:
    """The Markdown report of the steps run so far; ``pending`` names the steps still to run (the report is
    rewritten after every step, so a run cut off from outside leaves what it measured); ``facts``: the preflight's
    view of the GPU (``gpu_facts``); ``notes``: lines said before any step (a problem that stopped the run)."""
    torch_line = []
    if facts and facts.get("torch"):
        cap = "sm_{}{}".format(*facts["capability"]) if facts.get("capability") else "no GPU"
        torch_line = [f"- torch: {facts['torch']} (CUDA {facts.get('torch_cuda') or 'none'}; kernels for "
                      f"{', '.join(facts.get('arch_list') or []) or '-'}); the GPU: {cap}"]
    lines = [f"# GPU check{' (dry run on the CPU backends)' if dry_run else ''}: {gpu}", "",
             *[f"**{n}**" for n in notes], *([""] if notes else []),
             *([f"**In progress or cut off: {len(pending)} step(s) not run yet: {', '.join(pending)}.**", ""]
               if pending else []),
             f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
             f"- machine: {platform.node()} ({platform.machine()}, {os.cpu_count()} cores), Python {platform.python_version()}",
             *torch_line,
             f"- total: {total_s:.0f} s", "",
             "| step | status | seconds | first error | target |", "|---|---|---|---|---|"]
    for r in results:
        err = r["first_error"].replace("|", "\\|")
        lines.append(f"| {r['step'].name} | {r['status']} | {r['seconds']:.1f} | {err} | {r['step'].target} |")
    outputs = {r["step"].name: r["output"] for r in results}
    outputs.update({r["step"].name + " argv": " ".join(r["step"].argv) for r in results})
    lines += ["", "## Targets" + (" (dry run: CPU numbers at tiny sizes, not the GPU targets)" if dry_run else ""), "",
              "| target | measured | verdict |", "|---|---|---|"]
    lines += [f"| {t} | {m} | {v} |" for t, m, v in targets(outputs)]
    short = {s.name for s in short_limits([r["step"] for r in results])}
    lines += ["", "## Limits", "", "Each step ran under its own time limit; the estimate is the expected time on an "
              "H100 (a guess until a GPU has run the plan). Short limits (under 1.5x the estimate; a slow machine may "
              "cut these steps off first): " + (", ".join(sorted(short)) or "none") + ".", "",
              "| step | limit s | H100 estimate s | seconds |", "|---|---|---|---|"]
    lines += [f"| {r['step'].name}{' (short)' if r['step'].name in short else ''} | {r['limit_s']:.0f} | "
              f"{r['step'].estimate_s or '-'} | {r['seconds']:.1f} |" for r in results]
    for r in results:
        if r["status"] == "not run":
            continue
        lines += ["", f"## {r['step'].name}", "", "`" + " ".join(r["step"].argv) + "`", "", "```",
                  _excerpt(r["output"], r["first_error"]), "```"]
    return "\n".join(lines) + "\n"


def summary(text: str) -> str:
    """The report's head (the step table and the targets), printed last: on a machine whose files may not come
    back, the end of the command's output still carries them."""
    return text.split("\n## Limits")[0].rstrip() + "\n"


def out_folder(wanted: str) -> tuple[Path, str]:
    """The folder the report goes to: ``wanted`` where it can be created and written; else a new temporary folder,
    with the note that says why (the run goes on: its results are worth more than the folder)."""
    path = Path(wanted)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".gpu_check_probe_{os.getpid()}"
        probe.write_text("", encoding="utf-8")
        probe.unlink()
        return path, ""
    except OSError as e:
        other = Path(tempfile.mkdtemp(prefix="gpu_check_"))
        return other, f"--out {wanted} cannot be written ({type(e).__name__}: {e}): the report goes to {other}"


class _Writer:
    """Writes the report after every step; a failed write (a full disk, the folder taken away) is said once and
    the run goes on (the summary printed at the end carries the results)."""

    def __init__(self, path: Path):
        self.path, self.failed = path, False

    def __call__(self, text: str) -> None:
        try:
            self.path.write_text(text, encoding="utf-8")
        except OSError as e:
            if not self.failed:
                print(f"gpu_check: warning: the report {self.path} cannot be written ({type(e).__name__}: {e}); "
                      "the summary at the end of this output holds the results", file=sys.stderr, flush=True)
            self.failed = True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="CPU backends, tiny sizes, no build: checks the script")
    ap.add_argument("--no-build", action="store_true", help="skip the pip build (diffrep already installed)")
    ap.add_argument("--arch", default=None, help="CUDAARCHS for the build (default: the local GPU's, e.g. 90)")
    ap.add_argument("--budget", type=float, default=1.0, help="scale every step's time limit by this factor")
    ap.add_argument("--deadline", type=float, default=None,
                    help="seconds the whole run may take, the build included (e.g. 570 inside a 600 s command): each "
                         "step's limit is cut to the time left, and the steps that no longer fit are reported as "
                         "not run")
    ap.add_argument("--out", default=str(ROOT / "benches" / "results"), help="folder for the report")
    ap.add_argument("--jobs", type=int, default=1,
                    help="dry run only: run up to this many steps at once (a real run times its benches: one at a time)")
    ap.add_argument("--only", default=None,
                    help="comma-separated parts of step names (any case): run only the steps whose name holds one, "
                         "e.g. --only 'build,CUDA tests' to rebuild and rerun the CUDA tests after a fix")
    args = ap.parse_args(argv)
    if args.budget <= 0:
        ap.error(f"--budget must be > 0, got {args.budget}")
    if args.deadline is not None and args.deadline < MIN_LIMIT_S:
        ap.error(f"--deadline must be >= {MIN_LIMIT_S:.0f} s, got {args.deadline}")
    if args.jobs < 1:
        ap.error(f"--jobs must be >= 1, got {args.jobs}")
    if args.jobs > 1 and not args.dry_run:
        ap.error("--jobs > 1 needs --dry-run: on a GPU the benches time themselves and must run alone")
    t0, start = time.perf_counter(), time.monotonic()
    deadline = start + args.deadline if args.deadline is not None else None
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    facts = None
    if args.dry_run:
        gpu, arch = gpu_name(), args.arch
    else:
        print("[gpu_check] preflight: what torch sees of the GPU, and a tiny op on it", flush=True)
        facts = preflight(env)
        gpu = facts.get("gpu") or "no GPU"
        arch = args.arch or ("{}{}".format(*facts["capability"]) if facts.get("capability") else None)
    steps = plan(args.dry_run, arch, build=not (args.no_build or args.dry_run))
    if args.only is not None:
        wanted = [w.strip().lower() for w in args.only.split(",") if w.strip()]
        unknown = [w for w in wanted if not any(w in s.name.lower() for s in steps)]
        if not wanted or unknown:
            ap.error(f"--only {args.only!r}: {', '.join(unknown) or 'no name'} matches no step; the steps: "
                     + "; ".join(s.name for s in steps))
        steps = [s for s in steps if any(w in s.name.lower() for w in wanted)]
    out_dir, out_note = out_folder(args.out)
    if out_note:
        print(f"gpu_check: warning: {out_note}", file=sys.stderr, flush=True)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", gpu).strip("-").lower()
    stem = f"gpu_check_{'dryrun_' if args.dry_run else ''}{slug}_{datetime.date.today():%Y-%m-%d}"
    path, n = out_dir / f"{stem}.md", 1
    while path.exists():  # a second run of the day (the rest of a split run, a rerun after a fix) keeps the first
        n += 1
        path = out_dir / f"{stem}-{n}.md"
    write = _Writer(path)
    notes = [f"--out: {out_note}"] if out_note else []

    def finish(results: list[dict], rc: int) -> int:
        text = report(results, dry_run=args.dry_run, gpu=gpu, total_s=time.perf_counter() - t0, facts=facts,
                      notes=notes)
        write(text)
        failed = [r["step"].name for r in results if r["status"] not in ("pass", "not run")]
        skipped = [r["step"].name for r in results if r["status"] == "not run"]
        print("\n" + summary(text), flush=True)
        print(f"[gpu_check] report: {path}{' (NOT WRITTEN: see the warning above)' if write.failed else ''}; "
              f"{len(results) - len(failed) - len(skipped)} passed, {len(failed)} failed, {len(skipped)} not run",
              flush=True)
        return rc or (1 if failed or skipped else 0)

    if facts is not None and facts.get("problem"):  # nothing of the plan can run: say why, in the report too
        problem = facts["problem"]
        print(f"gpu_check: {problem} (use --dry-run to check the plan on the CPU)", file=sys.stderr, flush=True)
        notes.append(f"Stopped before any step: {problem}.")
        return finish([not_run(s, "stopped before any step (see the top)") for s in steps], 2)

    results: list[dict] = []
    if args.jobs == 1:
        stop = ""
        for i, s in enumerate(steps):
            if stop:
                results.append(not_run(s, stop))
                continue
            if s.name == "build":
                if reset_failed_build():
                    print(f"[gpu_check] the last build in {BUILD_DIR} failed: its CMake cache is removed", flush=True)
                (BUILD_DIR / BUILT_MARK).unlink(missing_ok=True)
            results.append(run_step(s, args.budget * (DRY_RUN_SLACK if args.dry_run else 1.0), env, deadline,
                                    echo=True))
            if s.name == "build" and results[-1]["status"] == "pass" and BUILD_DIR.is_dir():
                (BUILD_DIR / BUILT_MARK).touch()
            if results[-1].get("stop"):
                stop = f"{s.name} says nothing after it can run"
            write(report(results, dry_run=args.dry_run, gpu=gpu, total_s=time.perf_counter() - t0, facts=facts,
                         notes=notes, pending=[p.name for p in steps[i + 1:]]))
    else:  # map keeps the plan's order; Ctrl-C cancels the steps not yet started
        pool = ThreadPoolExecutor(args.jobs)
        try:
            results = list(pool.map(lambda s: run_step(s, args.budget * DRY_RUN_SLACK, env, deadline), steps))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    return finish(results, 0)


if __name__ == "__main__":
    sys.exit(main())
