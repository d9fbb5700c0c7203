"""scripts/gpu_check.py on a real GPU run: a CUDA test step whose diffrep cannot run its CUDA kernels fails with
the reason (every CUDA test would skip, and the step read "pass"); the build uses every core; and each bench
says clearly, before any work, that ``--device cuda`` cannot run here (benches/harness.py ``parse_device``)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import diffrep
from helpers import load_script

ROOT = Path(__file__).resolve().parents[2]


def _harness():
    sys.path.insert(0, str(ROOT / "benches"))
    try:
        import harness
    finally:
        sys.path.remove(str(ROOT / "benches"))
    return harness


def test_the_real_runs_cuda_test_step_needs_a_usable_cuda_backend():
    gc = load_script("gpu_check")
    real = {s.name: s for s in gc.plan(dry_run=False, arch="90", build=False)}["CUDA tests"]
    dry = {s.name: s for s in gc.plan(dry_run=True, arch=None, build=False)}["CUDA tests (collected; they skip without a GPU)"]
    assert real.env[gc.NEED_CUDA_ENV] == "1" and gc.NEED_CUDA_ENV not in dry.env
    assert real.env["PYTHONPATH"] == dry.env["PYTHONPATH"] == str(ROOT / "scripts")


@pytest.mark.skipif(diffrep.cuda_available(), reason="checks the refusal where the CUDA backend is not usable")
def test_without_a_usable_cuda_backend_the_cuda_test_step_fails_with_the_reason(tmp_path):
    """The hook in a real pytest process (scripts/ and python/ on the path, as the step's environment has them)."""
    (tmp_path / "test_one.py").write_text("def test_cuda_thing():\n    pass\n")
    # the reason of the diffrep the step imports (python/ first on its path: in a clean clone that tree has no
    # built _cuda, where the installed one in this process may have one that finds no GPU), read by a conftest
    # of the same process into a file (its stdout would hold the reason whatever the hook printed) before the
    # hook runs: one interpreter instead of a second one that imports diffrep again
    (tmp_path / "conftest.py").write_text(
        "import pathlib\nimport diffrep\n\n"
        "pathlib.Path(__file__).with_name('why.txt').write_text(diffrep.info()['modules']['_cuda']['reason'])\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "scripts"), str(ROOT / "python")]))
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "gpu_check", str(tmp_path)]
    need = subprocess.run(argv, cwd=tmp_path, env={**env, "DIFFREP_GPU_CHECK_NEED_CUDA": "1"}, capture_output=True,
                          text=True, timeout=120)
    assert need.returncode == 3, need.stdout + need.stderr
    why = (tmp_path / "why.txt").read_text().strip()
    assert why
    assert "gpu_check: error: the CUDA backend of diffrep" in need.stdout and why in need.stdout
    assert "is not usable" in load_script("gpu_check")._first_error(need.stdout)  # the report's first-error line


def test_the_build_runs_on_every_core(monkeypatch):
    gc = load_script("gpu_check")
    monkeypatch.delenv("CMAKE_BUILD_PARALLEL_LEVEL", raising=False)
    argv = gc.plan(dry_run=False, arch="90", build=True)[0].argv
    assert f"CMAKE_BUILD_PARALLEL_LEVEL={os.cpu_count()}" in argv and argv.index("DIFFREP_CUDA=ON") < argv.index("-m")
    monkeypatch.setenv("CMAKE_BUILD_PARALLEL_LEVEL", "3")  # the caller's own setting is left to the environment
    assert not any(a.startswith("CMAKE_BUILD_PARALLEL_LEVEL") for a in gc.plan(dry_run=False, arch="90", build=True)[0].argv)


class _Usage(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _Usage(message)


def test_parse_device_refuses_what_cannot_run_here_with_the_reason(monkeypatch):
    h = _harness()
    p = _Parser()
    assert h.parse_device(p, "cpu") == torch.device("cpu")
    with pytest.raises(_Usage, match="--device 'cdua': "):
        h.parse_device(p, "cdua")
    with pytest.raises(_Usage, match="the benches run on 'cpu' or 'cuda'"):
        h.parse_device(p, "meta")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(_Usage, match=r"--device cuda: no CUDA device is visible \("):
        h.parse_device(p, "cuda")
    # a GPU torch sees, and a diffrep whose _cuda cannot run on it
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(diffrep, "cuda_available", lambda: False)
    monkeypatch.setattr(diffrep, "info", lambda: {"modules": {"_cuda": {"reason": "no kernel image for sm_90"}}})
    assert h.parse_device(p, "cuda") == torch.device("cuda")  # benches of whole models need no diffrep kernel
    with pytest.raises(_Usage, match="diffrep's CUDA kernels cannot run here: no kernel image for sm_90"):
        h.parse_device(p, "cuda", native=True)
    with pytest.raises(_Usage, match="--device cuda:1: torch sees 1 GPU"):
        h.parse_device(p, "cuda:1")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message where no GPU is visible")
@pytest.mark.parametrize("bench", ["bench_bfn", "bench_guidance", "bench_mmd", "bench_hddc", "bench_metrics",
                                   "bench_generation", "bench_sami_step", "bench_method_step", "bench_multibeta",
                                   "bench_encdiff", "bench_diffusion_baselines", "bench_vae", "bench_train_step"])
def test_each_bench_says_no_gpu_is_visible_before_any_work(bench, monkeypatch, capsys):
    """Before, most of them ended in torch's "Torch not compiled with CUDA enabled" traceback (bench_metrics
    after its CPU sections)."""
    import importlib.util

    sys.path.insert(0, str(ROOT / "benches"))
    try:
        spec = importlib.util.spec_from_file_location(f"_cuda_msg_{bench}", ROOT / "benches" / f"{bench}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        monkeypatch.setattr(sys, "argv", [f"{bench}.py", "--device", "cuda"])
        with pytest.raises(SystemExit) as e:
            mod.main()
    finally:
        sys.path.remove(str(ROOT / "benches"))
    assert e.value.code == 2
    err = capsys.readouterr()
    assert "error: --device cuda: no CUDA device is visible" in err.err and err.out == ""


@pytest.mark.slow  # a second Python process importing torch: ~4 s on 2 idle cores
@pytest.mark.skipif(diffrep.cuda_available(), reason="checks the real run's path where the CUDA backend is not usable")
def test_the_real_run_on_a_gpu_machine_whose_build_is_unusable_reports_why(tmp_path, monkeypatch, capsys):
    """The real run's own path (not the dry run's) through ``main`` up to its first step, as on an H100 whose
    diffrep has no usable CUDA backend: the architecture is read from the GPU, the report is named for it,
    and the build report step fails with the reason."""
    gc = load_script("gpu_check")
    monkeypatch.setattr(gc, "preflight", lambda env: {"gpu": "NVIDIA H100 80GB HBM3", "capability": [9, 0],
                                                      "torch": "2.11.0+cu130", "torch_cuda": "13.0",
                                                      "arch_list": ["sm_90"], "problem": None})
    monkeypatch.setenv("PYTHONPATH", str(ROOT / "python"))
    assert gc.main(["--no-build", "--only", "build report", "--out", str(tmp_path)]) == 1
    report = next(tmp_path.glob("gpu_check_nvidia-h100-80gb-hbm3_*.md")).read_text()
    assert "| build report | fail (exit 1) |" in report and "CUDA backend not usable" in report
    assert "# GPU check: NVIDIA H100 80GB HBM3" in report and "dry run" not in report.split("\n")[0]
    arch = {s.name: s for s in gc.plan(dry_run=False, arch="90", build=True)}["build"].argv
    assert "CUDAARCHS=90" in arch
