"""scripts/gpu_check.py end to end on the CPU (--dry-run), so it works the first time it meets a GPU."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from helpers import load_script

ROOT = Path(__file__).resolve().parents[2]


def _load():
    return load_script("gpu_check")


def test_plan_covers_build_tests_and_every_gpu_bench():
    gc = _load()
    names = [s.name for s in gc.plan(dry_run=False, arch="90", build=True)]
    assert names[0] == "build" and "CUDA tests" in names
    assert {"bench BFN", "bench guidance", "bench MMD", "bench HDDC", "bench SAMI step", "method step times (bf16)",
            "bench generation", "bench metric kernels"} <= set(names)
    # the steps after the build fit in 8 minutes on an H100 (issue 24), with or without a build step
    for build in (True, False):
        steps = gc.plan(dry_run=False, arch="90", build=build)
        assert gc.plan_limit_s(steps) <= gc.PLAN_LIMIT_S == 480
        assert sum(s.limit_s for s in steps) - gc.plan_limit_s(steps) == (300 if build else 0)
    real = {s.name: s.argv for s in gc.plan(dry_run=False, arch="90", build=False)}
    assert real["CUDA tests"][-1] == "tests/ops"  # every CUDA test, the kNN ones included
    dry = {s.name: s.argv for s in gc.plan(dry_run=True, arch=None, build=False)}
    collected = dry["CUDA tests (collected; they skip without a GPU)"]
    assert {"tests/ops/test_bfn_cuda.py", "tests/ops/test_metric_kernels_cuda.py", "tests/ops/test_knn_cuda.py"} <= set(collected)
    assert all((ROOT / t).is_file() for t in collected if t.startswith("tests/"))
    for name in ("bench generation", "bench metric kernels"):
        assert real[name][real[name].index("--device") + 1] == "cuda"
    build = gc.plan(dry_run=False, arch="90", build=True)[0].argv
    assert "CUDAARCHS=90" in build and "--no-build-isolation" in build and "--no-deps" in build
    assert all("--device" not in s.argv or s.argv[s.argv.index("--device") + 1] == "cpu"
               for s in gc.plan(dry_run=True, arch=None, build=False))


def test_dry_run_writes_a_report_with_every_step_passing(tmp_path, monkeypatch, capsys):
    """The whole dry run through ``main`` (in this process; every step still runs in its own process,
    two at a time with ``--jobs 2``, each importing the diffrep this test imports)."""
    gc = _load()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    rc = gc.main(["--dry-run", "--jobs", "2", "--out", str(tmp_path)])
    out = capsys.readouterr()
    reports = list(tmp_path.glob("gpu_check_dryrun_*.md"))
    assert rc == 0, out.out[-3000:] + out.err[-3000:]
    assert len(reports) == 1
    text = reports[0].read_text()
    assert "| bench HDDC | pass |" in text and "fail" not in text.split("## ")[0]
    assert "| bench generation | pass |" in text and "| bench metric kernels | pass |" in text
    # every step of the plan, in the plan's order, whatever order they finished in
    rows = [line.split(" | ")[0][2:] for line in text.split("## Targets")[0].splitlines() if line.startswith("| ")][1:]
    assert rows == [s.name for s in gc.plan(dry_run=True, arch=None, build=False)]
    # the CPU tables have no CUDA rows: those targets are 'not measured', the twin rows are read
    assert "| metric kernels faster than on the CPU | - | not measured |" in text
    assert "| kNN kernel (PRDC) values equal to its eager twin's | kernel P=" in text


def test_step_limit_and_first_error_are_reported(tmp_path, monkeypatch):
    gc = _load()
    monkeypatch.setattr(gc, "MIN_LIMIT_S", 1.0)
    slow = gc.Step("sleeper", [sys.executable, "-c", "import time; time.sleep(30)"], limit_s=1)
    r = gc.run_step(slow, scale=1.0, env=dict(os.environ))
    assert r["status"] == "fail (over its 1 s limit)" and r["seconds"] < 20
    bad = gc.Step("raiser", [sys.executable, "-c", "raise ValueError('boom')"], limit_s=30)
    r = gc.run_step(bad, scale=1.0, env=dict(os.environ))
    assert r["status"] == "fail (exit 1)" and "ValueError: boom" in r["first_error"]


def test_without_a_gpu_the_real_run_refuses_with_a_message(capsys):
    gc = _load()
    import torch

    if torch.cuda.is_available():
        return
    assert gc.main(["--no-build"]) == 2
    assert "no CUDA device" in capsys.readouterr().err
    for bad, msg in ((["--jobs", "2"], "needs --dry-run"), (["--dry-run", "--jobs", "0"], "must be >= 1")):
        with pytest.raises(SystemExit) as e:
            gc.main(bad)
        assert e.value.code == 2 and msg in capsys.readouterr().err


def test_targets_are_read_from_the_bench_tables():
    gc = _load()
    bfn = ("op                                K   elements  backend  native ms   eager ms  speed-up   (best)    GB/s  % copy\n"
           "continuous_flow                   -    1.6e+07     cuda      0.129      0.116      9.9x     9.2x  2000.0     81% \n"
           "discrete_update                   2    1.6e+07     cuda      0.129      0.116      4.9x     5.2x  1500.0     64% \n"
           "discrete_update                  16    1.6e+07     cuda      0.129      0.116      4.9x     5.2x  1500.0     10% \n"
           "discretised_cts_loss fwd+bwd    256    1.6e+07     cuda      9.315    100.308     10.8x    10.3x     0.0      1%\n"
           "discretised_cts_loss fwd+bwd     16    1.0e+06     cuda      3.108      7.679      8.5x     2.4x     0.1      1%\n")
    mmd = ("rbf    biased      4096  32     cuda      0.32      0.93     7.0x      0.08       1.4\n"
           "imq    unbiased    4096  32     cuda      0.41      2.53     6.2x      0.08       3.7\n")
    hddc = "AkjBkQkDk  fit+split/filter     0.84 s (0.9 CPU s)   plain EM (30 it)     0.20 s\n"
    rows = {t: (m, v) for t, m, v in gc.targets({"bench BFN": bfn, "bench MMD": mmd, "bench HDDC": hddc,
                                                  "bench HDDC argv": "bench_hddc.py --U 20 --n 100000"})}
    copy = next(v for t, v in rows.items() if "copy bandwidth" in t)
    assert copy == ("lowest 64% (discrete_update, K=2)", "missed")  # K = 16 is not an elementwise row
    assert next(v for t, v in rows.items() if "discretised loss" in t) == ("lowest 8.5x (K=16, 1.0e+06)", "missed")
    assert next(v for t, v in rows.items() if "MMD" in t) == ("lowest 6.2x (imq unbiased)", "met")
    assert next(v for t, v in rows.items() if "HDDC" in t) == ("0.84 s", "met")
    empty = gc.targets({})
    assert len(empty) == 7 and all(v == "not measured" for _, _, v in empty)


def test_generation_and_metric_kernel_targets_are_read_from_their_tables():
    gc = _load()
    kern = ("# kernels on GPU NVIDIA H100 vs the CPU kernels (16 CPU threads), min of 3 after a warm-up\n"
            "kernel auroc_matrix 40x256x8000         cpu    47.90 ms  cuda     1.20 ms  vs cpu x   39.9  twin(cuda)"
            "     3.00 ms  x   2.5\n"
            "kernel hist_discretize 10000x20         cpu     0.55 ms  cuda     0.61 ms  vs cpu x    0.9  twin(cuda)"
            "     0.70 ms  x   1.1\n"
            "kernel knn_mi_cd 20x6 n=10000 k=10      cpu   240.00 ms  cuda     4.00 ms  vs cpu x   60.0  twin(cuda)"
            "    90.00 ms  x  22.5\n")
    gen = ("diffrep kNN kernel (cuda)               4.20     1.00x  P=0.0020 R=0.9945 D=0.0010 C=0.0030\n"
           "(N = M = 5000) diffrep kNN kernel        0.11     1.00x  P=0.0033 R=1.0000 D=0.0011 C=0.0033\n"
           "(N = M = 5000) eager twin                9.35    87.48x  P=0.0033 R=1.0000 D=0.0011 C=0.0034\n"
           "(N = M = 5000) diffrep kNN kernel        0.11     1.00x  P=0.0033 R=1.0000 D=0.0011 C=0.0033\n"
           "(N = M = 5000) prdc package 0.2          3.00    27.00x  P=0.0033 R=1.0000 D=0.0011 C=0.0033\n")
    rows = {t: (m, v) for t, m, v in gc.targets({"bench metric kernels": kern, "bench generation": gen})}
    assert rows["metric kernels faster than on the CPU"] == ("lowest 0.9x (hist_discretize 10000x20)", "missed")
    assert rows["kNN kernel (PRDC) faster than its eager twin"] == ("twin 87.48x the kernel's time at N = M = 5000",
                                                                    "met")
    assert rows["kNN kernel (PRDC) values equal to its eager twin's"][1] == "missed"  # C differs in the last digit
    fast = kern.replace("0.61 ms  vs cpu x    0.9", "0.50 ms  vs cpu x    1.1")
    rows = {t: (m, v) for t, m, v in gc.targets({"bench metric kernels": fast})}
    assert rows["metric kernels faster than on the CPU"] == ("lowest 1.1x (hist_discretize 10000x20)", "met")
    assert rows["kNN kernel (PRDC) faster than its eager twin"] == ("-", "not measured")
