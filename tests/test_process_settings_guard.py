"""The conftest's guard against tests that leave process-wide state changed (under ``--dist loadfile`` the
files reach each worker in an order that changes between runs, so such a leak fails some other file's test,
rarely). Checked in a child pytest session over this folder's conftest and helpers: a test that leaves the
default dtype, deterministic mode, grad mode, the working directory, a backend forced by ``use_backend`` or
one of diffrep's environment variables changed is an error naming the setting, and the next test finds the
setting as it was; the same changes made through monkeypatch, or undone in the test, are no error."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import diffrep

TESTS = Path(__file__).resolve().parent
PACKAGE_PARENT = Path(diffrep.__file__).resolve().parents[1]

LEAKS = '''
import os

import torch

from diffrep.ops import _dispatch, use_backend

_held = []

def test_env_leaks():
    os.environ["DIFFREP_BACKEND"] = "reference"


def test_env_is_back():
    assert "DIFFREP_BACKEND" not in os.environ


def test_dtype_leaks():
    torch.set_default_dtype(torch.float64)


def test_dtype_is_back():
    assert torch.get_default_dtype() == torch.float32


def test_deterministic_leaks():
    torch.use_deterministic_algorithms(True)


def test_deterministic_is_back():
    assert not torch.are_deterministic_algorithms_enabled()


def test_grad_mode_leaks():
    torch.set_grad_enabled(False)


def test_grad_mode_is_back():
    assert torch.is_grad_enabled()


def test_cwd_leaks(tmp_path):
    os.chdir(tmp_path)


def test_cwd_is_back():
    assert os.path.isfile("test_leaks.py")


def test_forced_backend_leaks():
    block = use_backend("reference")
    block.__enter__()  # entered and never left (held, so that no garbage collection leaves it)
    _held.append(block)


def test_forced_backend_is_back():
    assert _dispatch._forced.get() is None


def test_monkeypatch_is_no_leak(monkeypatch, tmp_path):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    monkeypatch.chdir(tmp_path)


def test_undone_in_the_test_is_no_leak():
    torch.set_default_dtype(torch.float64)
    torch.set_default_dtype(torch.float32)
'''


def test_a_leaking_test_is_an_error_naming_the_setting_and_the_next_test_finds_it_restored(tmp_path):
    for name in ("conftest.py", "helpers.py"):
        shutil.copy(TESTS / name, tmp_path / name)
    (tmp_path / "test_leaks.py").write_text(LEAKS)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(PACKAGE_PARENT), os.environ.get("PYTHONPATH")) if p)}
    env.pop("DIFFREP_BACKEND", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                        "test_leaks.py"], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=300)
    out = r.stdout + r.stderr
    errors = dict(re.findall(r"^_+ ERROR at teardown of (\w+) _+\nthe test left process-wide settings changed: (.*) "
                             r"\(restore them", out, re.M))
    assert set(errors) == {"test_env_leaks", "test_dtype_leaks", "test_deterministic_leaks", "test_grad_mode_leaks",
                           "test_cwd_leaks", "test_forced_backend_leaks"}, out
    # every test passes (each *_is_back among them), and each leaking one errors at its teardown
    assert re.match(r"14 passed, 6 errors in ", out.splitlines()[-1]), out
    # each names its one setting with the value before and after
    assert errors["test_env_leaks"] == "$DIFFREP_BACKEND None -> 'reference'"
    assert errors["test_dtype_leaks"] == "torch.get_default_dtype() torch.float32 -> torch.float64"
    assert errors["test_deterministic_leaks"] == "torch.are_deterministic_algorithms_enabled() False -> True"
    assert errors["test_grad_mode_leaks"] == "torch.is_grad_enabled() True -> False"
    assert re.fullmatch(r"the working directory '[^']*' -> '[^']*test_cwd_leaks0'", errors["test_cwd_leaks"])
    assert errors["test_forced_backend_leaks"] == "the backend forced by diffrep.ops.use_backend None -> ('reference', False)"


def test_hypothesis_profile_drops_the_timing_verdicts():
    """conftest's profile: a test's own @settings keeps its fields and inherits no deadline and no 'too slow'
    health check (timing verdicts fail on a loaded machine while the values are right)."""
    from hypothesis import HealthCheck, settings

    s = settings(max_examples=3)
    assert s.max_examples == 3 and s.deadline is None
    assert HealthCheck.too_slow in s.suppress_health_check
