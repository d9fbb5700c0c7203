"""scripts/gpu_check.py end to end on the CPU (--dry-run), so it works the first time it meets a GPU."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = mod  # dataclasses look their module up here
    spec.loader.exec_module(mod)
    return mod


def test_plan_covers_build_tests_and_every_gpu_bench():
    gc = _load()
    names = [s.name for s in gc.plan(dry_run=False, arch="90", build=True)]
    assert names[0] == "build" and "CUDA tests" in names
    assert {"bench BFN", "bench guidance", "bench MMD", "bench HDDC", "bench SAMI step", "method step times (bf16)"} <= set(names)
    build = gc.plan(dry_run=False, arch="90", build=True)[0].argv
    assert "CUDAARCHS=90" in build and "--no-build-isolation" in build and "--no-deps" in build
    assert all("--device" not in s.argv or s.argv[s.argv.index("--device") + 1] == "cpu"
               for s in gc.plan(dry_run=True, arch=None, build=False))


def test_dry_run_writes_a_report_with_every_step_passing(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")  # the diffrep this test imports, built (the source tree has no .so)
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--dry-run", "--out", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    reports = list(tmp_path.glob("gpu_check_dryrun_*.md"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert len(reports) == 1
    text = reports[0].read_text()
    assert "| bench HDDC | pass |" in text and "fail" not in text.split("## ")[0]


def test_step_limit_and_first_error_are_reported(tmp_path):
    gc = _load()
    slow = gc.Step("sleeper", [sys.executable, "-c", "import time; time.sleep(30)"], limit_s=1)
    r = gc.run_step(slow, scale=1.0, env=dict(os.environ))
    assert r["status"].startswith("fail (over its") and r["seconds"] < 20
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
