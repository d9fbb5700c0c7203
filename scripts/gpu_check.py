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
files deselected by the pytest hook this file carries (``-p gpu_check``). Every bench of benches/ runs with
``--device cuda``, except the ones ``EXCLUDED_BENCHES`` lists with the reason (a test checks that no
bench is in neither). The steps after the build fit in 8 minutes on an H100: their limits add up to
at most ``PLAN_LIMIT_S`` = 480 s (a test checks the sum). The build has its own limit (300 s); where the
CUDA module can be built beforehand (nvcc needs no GPU: ``CUDAARCHS=90 pip install ...``), run
``--no-build`` on the GPU machine. ``--budget`` scales every step's limit; the dry run multiplies
them by ``DRY_RUN_SLACK`` (a shared CPU box imports torch more slowly than a GPU machine runs a step).
``--jobs N`` runs up to N steps at once in the dry run (each still in its own process under its own
limit; the report keeps the plan's order): the dry run checks the script, not speeds. A real run
always runs one step at a time, since the benches time themselves.

This file is the command and its plan; each part of the run is a file beside it: ``gpu_check_preflight`` (what
torch sees of the GPU), ``gpu_check_build`` (the build folder, the build report), ``gpu_check_cuda_tests`` (which
tests the CUDA test step keeps: the pytest hook), ``gpu_check_steps`` (a step in its own process group under its
limit, its first error), ``gpu_check_targets`` (the targets read from the bench tables) and ``gpu_check_report``
(the Markdown report).
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import signal
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

# the parts of the run lie beside this file: importable however it is loaded (run as a script, loaded by pytest as
# ``-p gpu_check`` with scripts/ on PYTHONPATH, or loaded by its path from a test)
if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.append(str(Path(__file__).resolve().parent))

from gpu_check_build import BUILD_DIR, BUILT_MARK, build_report, reset_failed_build  # noqa: E402
from gpu_check_cuda_tests import (NEED_CUDA_ENV, cuda_test_files, is_cuda_test,  # noqa: E402
                                  pytest_collection_modifyitems, pytest_configure, pytest_runtest_logreport)
from gpu_check_preflight import gpu_facts, gpu_name, preflight  # noqa: E402
from gpu_check_report import _excerpt, _Writer, report, summary  # noqa: E402
from gpu_check_steps import (KILL_GRACE_S, READER_GRACE_S, ROOT, STOP_RC, Step, _first_error, not_run,  # noqa: E402
                             run_limited, short_limits)
from gpu_check_targets import TABLES, table_rows, targets  # noqa: E402

#: the names the script is reached by besides ``main``: pytest's hook (``-p gpu_check``), and the parts of the run
#: that tests/scripts/test_gpu_check*.py and tests/contract/test_contract_issue_24.py check through this module.
#: ``main`` (and ``plan``, ``run_step``) look ``plan``, ``run_step``, ``preflight``, ``BUILD_DIR`` and the limits up
#: here when they run, so a test that replaces one of them on this module replaces it for the whole run
__all__ = ["BUILD_DIR", "BUILT_MARK", "DRY_RUN_SLACK", "EXCLUDED_BENCHES", "MIN_LIMIT_S", "NEED_CUDA_ENV",
           "PLAN_LIMIT_S", "ROOT", "STOP_RC", "TABLES", "Step", "_Writer", "_excerpt", "_first_error", "build_report",
           "cuda_test_files", "gpu_facts", "gpu_name", "is_cuda_test", "main", "plan", "plan_limit_s", "preflight",
           "pytest_collection_modifyitems", "pytest_configure", "pytest_runtest_logreport", "reset_failed_build",
           "run_step", "short_limits", "table_rows", "targets"]

MIN_LIMIT_S = 5.0  # no step gets less, whatever --budget says (a Python start with torch takes ~2-3 s)
#: the steps after the build must fit in 8 minutes on an H100 (issue 24): the sum of their limits
PLAN_LIMIT_S = 480
#: the dry run's limits are the GPU limits times this (tiny sizes, but a loaded CPU machine)
DRY_RUN_SLACK = 3.0
#: a CUDA test running longer than this has its stack dumped (it names the test a hang is in)
HANG_DUMP_S = 30


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


# The steps after the build, in order of value: the CUDA tests first (a failing one is a bug to fix before any
# timing), then the benches of the named GPU targets (issue 24), then the method step times, then the
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
    steps.append(Step("build report", _py("-c", f"import sys, gpu_check_build; sys.exit(gpu_check_build.build_report({not dry_run}))"),
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


def plan_limit_s(steps: list[Step]) -> float:
    """The sum of the limits of the steps after the build (at most ``PLAN_LIMIT_S``)."""
    return sum(s.limit_s for s in steps if s.name != "build")


def run_step(step: Step, scale: float, env: dict, deadline: float | None = None, echo: bool = False) -> dict:
    """One step under its limit: ``step.limit_s * scale``, at least ``MIN_LIMIT_S``, cut to what is left before
    ``deadline`` (a ``time.monotonic()`` value); a step that no longer fits is not run. The run itself, in its own
    process group: ``gpu_check_steps.run_limited``; ``echo`` prints its output as it comes."""
    limit = max(MIN_LIMIT_S, step.limit_s * scale)
    cut = ""
    if deadline is not None:
        # what a kill at the limit may still take (a process stuck in the driver, the output pipe) stays inside the
        # deadline: the report and its summary come before the machine's own limit
        left = deadline - time.monotonic() - KILL_GRACE_S - READER_GRACE_S
        if left < MIN_LIMIT_S:
            print(f"[gpu_check] {step.name}: not run (the --deadline is {max(left, 0):.0f} s away)", flush=True)
            return not_run(step, "not run: too little time left before the --deadline")
        if left < limit:
            limit, cut = left, " (cut to fit the --deadline)"
    return run_limited(step, limit, env, cut, echo)


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



def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    # a SIGTERM (`timeout`, a machine's limit that asks first) ends the running step's group and writes the report,
    # as Ctrl-C does; a SIGKILL cannot be caught: the report written before each step stands then
    signal.signal(signal.SIGTERM, _interrupt)
    if args.jobs == 1:
        stop = ""
        for i, s in enumerate(steps):
            if stop:
                results.append(not_run(s, stop))
                continue
            if s.name == "build":
                if reset_failed_build(BUILD_DIR):
                    print(f"[gpu_check] the last build in {BUILD_DIR} failed: its CMake cache is removed", flush=True)
                (BUILD_DIR / BUILT_MARK).unlink(missing_ok=True)
            # on disk before the step starts, naming it: a command killed during a long step (the build) still
            # leaves a report under --out that says what was running
            write(report(results, dry_run=args.dry_run, gpu=gpu, total_s=time.perf_counter() - t0, facts=facts,
                         notes=notes, pending=[p.name for p in steps[i:]]))
            try:
                results.append(run_step(s, args.budget * (DRY_RUN_SLACK if args.dry_run else 1.0), env, deadline,
                                        echo=True))
            except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (below): the step's group is already killed
                notes.append(f"Cut off from outside (a signal) during {s.name}: it and the steps after it did not end.")
                results += [not_run(p, "cut off from outside") for p in steps[i:]]
                return finish(results, 130)
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
