"""A run killed with SIGKILL and resumed gives the same losses and weights as an uninterrupted run.

The killed runs are child processes (a real SIGKILL); the uninterrupted reference and the resumes run
``_train_script.main`` in this process (the same run, without a child's interpreter and torch start-up)."""

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from diffrep.train import list_checkpoints, read_metrics
from diffrep.nn.pretrained import load_safetensors_checked

SCRIPT = Path(__file__).with_name("_train_script.py")


def _run_killed(*args):
    """The script in a child process that SIGKILLs itself (``--kill-at`` / ``--kill-in-save``)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    r = subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]


def _run_here(*args):
    """The script's run in this process; the process-wide settings it makes (one torch thread, deterministic
    kernels, the CUBLAS workspace variable) are put back afterwards for the later tests."""
    assert not any(str(a).startswith("--kill") for a in args)  # a SIGKILL here would kill the test process
    spec = importlib.util.spec_from_file_location("_train_script", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    threads, det, bench = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
                           torch.backends.cudnn.benchmark)
    cublas = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    try:
        script.main([str(a) for a in args])
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det)
        torch.backends.cudnn.benchmark = bench
        if cublas is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = cublas


def _losses(run_dir):
    return {r["step"]: (r["loss"], r["grad_norm"]) for r in read_metrics(Path(run_dir) / "metrics.jsonl")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref")
    _run_here(d, "--steps", 10)
    return d


def _assert_same_run(a, b):
    la, lb = _losses(a), _losses(b)
    assert sorted(la) == list(range(1, 11)) and la == lb  # bit-identical losses and gradient norms
    wa = load_safetensors_checked(Path(a) / "final" / "model.safetensors")
    wb = load_safetensors_checked(Path(b) / "final" / "model.safetensors")
    ea = load_safetensors_checked(Path(a) / "final" / "ema.safetensors")
    eb = load_safetensors_checked(Path(b) / "final" / "ema.safetensors")
    for k in wa:
        assert torch.equal(wa[k], wb[k]) and torch.equal(ea[k], eb[k]), k


def test_sigkill_mid_run_then_resume_is_exact(reference, tmp_path):
    _run_killed(tmp_path, "--steps", 10, "--kill-at", 7)
    assert [s for s, _ in list_checkpoints(tmp_path / "checkpoints")] == [3, 6]
    _run_here(tmp_path, "--steps", 10, "--resume", "latest")
    _assert_same_run(reference, tmp_path)


def test_sigkill_during_checkpoint_write_keeps_previous(reference, tmp_path):
    _run_killed(tmp_path, "--steps", 10, "--kill-in-save", 6)
    # the half-written step-6 checkpoint never became visible; step 3 is intact
    assert [s for s, _ in list_checkpoints(tmp_path / "checkpoints")] == [3]
    assert not (tmp_path / "checkpoints" / "step-00000006").exists()
    _run_here(tmp_path, "--steps", 10, "--resume", "latest")
    _assert_same_run(reference, tmp_path)
