"""scripts/gpu_check.py when the GPU machine goes wrong: a build that fails, a test that hangs, no GPU visible, a torch
without kernels for the card, an --out folder that cannot be written, a bench that raises, a --deadline. Each ends in
a line of the report (never a traceback) and the report is still written. The steps here are fakes (tiny Python
processes) run by the script's own step runner and ``main``; the GPU facts are the preflight's dict, so no GPU and
no build is needed."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from helpers import load_script

PY = sys.executable
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def gc(monkeypatch):
    mod = load_script("gpu_check")
    monkeypatch.setattr(mod, "MIN_LIMIT_S", 1.0)
    monkeypatch.setattr(mod, "DRY_RUN_SLACK", 1.0)
    monkeypatch.setattr(mod, "KILL_GRACE_S", 0.0)  # the deadline's reserve for a kill (the test below sets it)
    monkeypatch.setattr(mod, "READER_GRACE_S", 0.0)
    return mod


def _step(gc, name, code, limit=20.0):
    return gc.Step(name, [PY, "-c", code], limit)


def _wait_for(pidfile, seconds: float) -> None:
    """Until a step has written its pid to ``pidfile`` (at most ``seconds``)."""
    for _ in range(int(seconds / 0.05)):
        if pidfile.exists() and pidfile.read_text():
            return
        time.sleep(0.05)


def _driver(tmp_path, pidfile, out, plan: str):
    """gpu_check's dry run in a child process whose plan is ``plan`` (the Python source of its step list, in which
    ``SLEEPER`` is a step that writes its pid to ``pidfile`` and sleeps a minute); returns the Popen, output piped."""
    import subprocess

    sleeper = f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    driver = tmp_path / "driver.py"
    driver.write_text(f"""import sys
sys.path.insert(0, {str(ROOT / 'tests')!r})
from helpers import load_script
gc = load_script("gpu_check")
SLEEPER = {sleeper!r}
gc.plan = lambda dry_run, arch, build: {plan}
sys.exit(gc.main(["--dry-run", "--out", {str(out)!r}]))
""")
    return subprocess.Popen([PY, str(driver)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _rows(text: str) -> dict[str, list[str]]:
    """The report's step table: name -> [status, seconds, first error, target]."""
    head = text.split("## Targets")[0]
    rows = [[c.strip() for c in line.strip().strip("|").split(" | ")] for line in head.splitlines()
            if line.startswith("| ") and not line.startswith("| step ")]
    return {r[0]: r[1:] for r in rows}


def _report(tmp_path) -> str:
    (path,) = tmp_path.glob("gpu_check_*.md")
    return path.read_text()


H100 = {"gpu": "NVIDIA H100 80GB HBM3", "capability": [9, 0], "torch": "2.11.0+cu130", "torch_cuda": "13.0",
        "arch_list": ["sm_80", "sm_90"], "problem": None}

# what pip -v printed when CMake met a broken CUDA compiler (a rehearsal on a CPU machine, CUDACXX pointing at a
# script that fails): pip's own "error: subprocess-exited-with-error" comes after CMake's error and says nothing
PIP_CMAKE_FAILURE = """\
  -- The CUDA compiler identification is unknown
  -- Detecting CUDA compiler ABI info
  CMake Error at /usr/share/cmake-3.25/Modules/CMakeDetermineCompilerABI.cmake:57 (try_compile):
    Failed to generate test project build system.
  Call Stack (most recent call first):
    CMakeLists.txt:66 (enable_language)

  -- Configuring incomplete, errors occurred!
  *** CMake configuration failed
  error: subprocess-exited-with-error

  x Building wheel for diffrep (pyproject.toml) did not run successfully.
  ERROR: Failed building wheel for diffrep
"""


def test_a_failed_build_reports_the_compiler_error_and_stops_what_cannot_run(gc, tmp_path, monkeypatch):
    """A failed build, then the build report finding no diffrep (a fresh machine): the report names CMake's error
    (not pip's wrapper line), and the steps after it are 'not run' instead of failing one by one."""
    failing = _step(gc, "build", f"import sys; print({PIP_CMAKE_FAILURE!r}); sys.exit(1)")
    report_step = _step(gc, "build report", "import sys; print('gpu_check: error: diffrep does not import "
                                            f"(ModuleNotFoundError)'); sys.exit({gc.STOP_RC})")
    bench = _step(gc, "bench guidance", "print('never')")
    monkeypatch.setattr(gc, "preflight", lambda env: H100)
    monkeypatch.setattr(gc, "BUILD_DIR", tmp_path / "build")
    monkeypatch.setattr(gc, "plan", lambda dry_run, arch, build: [failing, report_step, bench])
    assert gc.main(["--out", str(tmp_path)]) == 1
    rows = _rows(_report(tmp_path))
    assert rows["build"][0] == "fail (exit 1)"
    assert rows["build"][2] == ("CMake Error at /usr/share/cmake-3.25/Modules/CMakeDetermineCompilerABI.cmake:57 "
                                "(try_compile): Failed to generate test project build system.")
    assert rows["build report"][0] == f"fail (exit {gc.STOP_RC})"
    assert rows["bench guidance"][:3] == ["not run", "0.0", "build report says nothing after it can run"]
    # pip's wrapper lines are the first error only where nothing else names one (without -v pip prints its wrapper
    # first, the build's output after it); an nvcc error is found
    assert gc._first_error("  error: subprocess-exited-with-error\n  note: x\n") == "error: subprocess-exited-with-error"
    quiet = ("  error: subprocess-exited-with-error\n  x Building wheel for diffrep did not run successfully.\n"
             "      CMake Error at CMakeLists.txt:66 (enable_language):\n        No CMAKE_CUDA_COMPILER could be found.\n\n")
    assert gc._first_error(quiet) == ("CMake Error at CMakeLists.txt:66 (enable_language): No CMAKE_CUDA_COMPILER could "
                                      "be found.")
    assert gc._first_error("[ 40%] Building CUDA object\ncsrc/bfn/bfn_cuda.cu(12): error: identifier \"x\" is "
                           "undefined\nerror: subprocess-exited-with-error\n") == \
        'csrc/bfn/bfn_cuda.cu(12): error: identifier "x" is undefined'


def test_a_failed_builds_cmake_cache_is_reset_before_the_next_build(gc, tmp_path, monkeypatch):
    """CMake caches the compiler it found or failed to identify: a rerun after the cause is fixed would fail the
    same way. After a failed build (no mark) the cache goes; after one that passed, nothing is touched."""
    plan = gc.plan
    build = tmp_path / "build"
    (build / "CMakeFiles" / "3.25.1").mkdir(parents=True)
    (build / "CMakeCache.txt").write_text("CMAKE_CUDA_COMPILER:FILEPATH=/broken/nvcc\n")
    (build / "CMakeFiles" / "3.25.1" / "CMakeCUDACompiler.cmake").write_text("")
    (build / "build.ninja").write_text("")
    assert gc.reset_failed_build(build)
    assert sorted(p.name for p in build.iterdir()) == ["build.ninja"]
    assert not gc.reset_failed_build(build)  # nothing cached: nothing to do
    (build / "CMakeCache.txt").write_text("")
    (build / gc.BUILT_MARK).write_text("")
    assert not gc.reset_failed_build(build) and (build / "CMakeCache.txt").exists()
    # main: the mark goes before the build step and comes back only when it passes
    monkeypatch.setattr(gc, "BUILD_DIR", build)
    monkeypatch.setattr(gc, "preflight", lambda env: H100)
    for code, marked in (("print('built')", True), ("import sys; sys.exit(1)", False)):
        monkeypatch.setattr(gc, "plan", lambda dry_run, arch, build, code=code: [_step(gc, "build", code)])
        gc.main(["--out", str(tmp_path / "out")])
        assert (build / gc.BUILT_MARK).exists() == marked
    # the step's own folder, and the architecture as a CMake definition (CUDAARCHS seeds a fresh cache only)
    argv = plan(dry_run=False, arch="90", build=True)[0].argv
    assert f"-Cbuild-dir={gc.BUILD_DIR}" in argv and "-Ccmake.define.CMAKE_CUDA_ARCHITECTURES=90" in argv
    assert "CUDAARCHS=90" in argv and argv[-1] == str(gc.ROOT)


def test_the_build_report_stops_the_run_when_diffrep_does_not_import(gc, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "diffrep", None)  # import diffrep raises ImportError
    assert gc.build_report(need_cuda=True) == gc.STOP_RC
    assert "gpu_check: error: diffrep does not import (ModuleNotFoundError" in capsys.readouterr().out


HUNG_TEST = """\
import faulthandler, time
print("FAILED tests/ops/test_x.py::test_before - AssertionError: 1 != 2", flush=True)
def wait_forever():
    time.sleep(60)

def test_waits():
    faulthandler.dump_traceback_later(0.2)
    wait_forever()
"""


def test_a_hung_test_is_killed_at_its_limit_named_and_the_run_goes_on(gc, tmp_path, monkeypatch):
    """The hang dumps its stack as pytest's faulthandler_timeout does; the step's limit kills it, the report names
    the test function it hung in, and the next step still runs."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_hung.py").write_text(HUNG_TEST)
    hang = gc.Step("CUDA tests", [PY, "-c", f"import sys; sys.path.insert(0, {str(tmp_path / 'tests')!r}); "
                                            "import test_hung; test_hung.test_waits()"], 1.5)
    after = _step(gc, "bench BFN", "print('ran')")
    monkeypatch.setattr(gc, "preflight", lambda env: H100)
    monkeypatch.setattr(gc, "plan", lambda dry_run, arch, build: [hang, after])
    out = tmp_path / "out"
    assert gc.main(["--no-build", "--out", str(out)]) == 1
    rows = _rows(_report(out))
    assert rows["CUDA tests"][0] == "fail (over its 2 s limit)" and float(rows["CUDA tests"][1]) < 15
    assert rows["CUDA tests"][2].startswith("still running after 0:00:00.2") and \
        rows["CUDA tests"][2].endswith("test_hung.py:8 test_waits (stack dump in the output)")
    assert rows["bench BFN"][0] == "pass"
    # a step that ended by itself keeps its first error line, dump or not
    text = "FAILED tests/ops/test_x.py::test_before - boom\nTimeout (0:00:30)!\n  File \"tests/test_a.py\", line 3 in test_a\n"
    assert gc._first_error(text) == "FAILED tests/ops/test_x.py::test_before - boom"
    assert gc._first_error(text, timed_out=True) == "still running after 0:00:30 in tests/test_a.py:3 test_a (stack " \
                                                    "dump in the output)"


def test_no_gpu_visible_writes_a_report_saying_so(gc, tmp_path, monkeypatch, capsys):
    facts = dict(H100, gpu=None, capability=None, arch_list=[],
                 problem="no CUDA device is visible to torch 2.11.0+cu130 (nvidia-smi -L: did not run)")
    monkeypatch.setattr(gc, "preflight", lambda env: facts)
    assert gc.main(["--out", str(tmp_path)]) == 2
    assert "gpu_check: no CUDA device is visible" in capsys.readouterr().err
    text = _report(tmp_path)
    assert text.startswith("# GPU check: no GPU\n")
    assert "**Stopped before any step: no CUDA device is visible to torch 2.11.0+cu130" in text
    rows = _rows(text)
    assert rows and all(r[0] == "not run" for r in rows.values()) and "build" in rows


def test_gpu_facts_on_this_machine_without_a_gpu():
    gc = load_script("gpu_check")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    facts = gc.gpu_facts()
    assert facts["gpu"] is None and facts["torch"] == torch.__version__
    assert facts["problem"].startswith(f"no CUDA device is visible to torch {torch.__version__}")
    assert "nvidia-smi -L: " in facts["problem"]


def test_a_torch_without_kernels_for_the_card_stops_before_the_build(gc, tmp_path, monkeypatch, capsys):
    """torch sees the GPU but was built for other architectures: the preflight's tiny op fails, and the run stops
    with the reason before it spends minutes building for a GPU nothing can run on."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ["sm_50", "sm_60"])

    def no_image(*a, **k):
        raise RuntimeError("CUDA error: no kernel image is available for execution on the device\nCUDA kernel "
                           "errors might be asynchronously reported")

    real_arange = torch.arange
    # the tiny op's answer is checked: a GPU that runs it gives 2 * (0 + ... + 1023), a broken one anything else
    monkeypatch.setattr(torch, "arange", lambda n, device=None, dtype=None: real_arange(n, dtype=dtype))
    assert gc.gpu_facts()["problem"] is None
    monkeypatch.setattr(torch, "arange", lambda n, device=None, dtype=None: torch.ones(n, dtype=dtype))
    assert gc.gpu_facts()["problem"] == "a tiny torch op on the GPU gave 2048.0, not 1047552"
    monkeypatch.setattr(torch, "arange", no_image)
    facts = gc.gpu_facts()
    monkeypatch.undo()
    monkeypatch.setattr(gc, "MIN_LIMIT_S", 1.0)
    assert facts["gpu"] == "NVIDIA H100 80GB HBM3" and facts["capability"] == [9, 0]
    assert facts["problem"] == (f"torch {torch.__version__} cannot run on this GPU (NVIDIA H100 80GB HBM3, sm_90; "
                                "torch's kernels are built for sm_50, sm_60): RuntimeError: CUDA error: no kernel "
                                "image is available for execution on the device")
    monkeypatch.setattr(gc, "preflight", lambda env: facts)
    assert gc.main(["--out", str(tmp_path)]) == 2
    assert "cannot run on this GPU" in capsys.readouterr().err
    text = _report(tmp_path)
    assert text.startswith("# GPU check: NVIDIA H100 80GB HBM3\n") and "Stopped before any step: torch" in text
    assert f"- torch: {torch.__version__} (CUDA {torch.version.cuda or 'none'}; kernels for sm_50, sm_60); the GPU: " \
           "sm_90" in text
    assert _rows(text)["build"][0] == "not run"


def test_an_out_folder_that_cannot_be_written_moves_the_report_and_says_so(gc, tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    fallback = tmp_path / "fallback"
    fallback.mkdir()
    monkeypatch.setattr(gc.tempfile, "mkdtemp", lambda prefix="": str(fallback))
    monkeypatch.setattr(gc, "plan", lambda dry_run, arch, build: [_step(gc, "quick", "print('measured')")])
    assert gc.main(["--dry-run", "--out", str(blocker / "sub")]) == 0
    err = capsys.readouterr()
    assert f"--out {blocker / 'sub'} cannot be written (NotADirectoryError" in err.err
    text = _report(fallback)
    assert f"the report goes to {fallback}" in text and "| quick | pass |" in text
    assert "| quick | pass |" in err.out  # the summary printed last carries the results too
    # a report that cannot be written mid-run is said once, and the run goes on
    write = gc._Writer(tmp_path / "gone" / "report.md")
    write("x")
    write("y")
    assert write.failed and capsys.readouterr().err.count("cannot be written") == 1


def test_a_bench_that_raises_or_cannot_start_is_a_report_line(gc, tmp_path, monkeypatch):
    raiser = _step(gc, "bench MMD", "raise RuntimeError('CUDA error: an illegal memory access was encountered')")
    missing = gc.Step("bench HDDC", [str(tmp_path / "no-such-program")], 20)
    after = _step(gc, "bench guidance", "print('ran')")
    monkeypatch.setattr(gc, "plan", lambda dry_run, arch, build: [raiser, missing, after])
    assert gc.main(["--dry-run", "--out", str(tmp_path)]) == 1
    rows = _rows(_report(tmp_path))
    assert rows["bench MMD"][0] == "fail (exit 1)"
    assert rows["bench MMD"][2] == "RuntimeError: CUDA error: an illegal memory access was encountered"
    assert rows["bench HDDC"][0] == "fail (did not start)" and "FileNotFoundError" in rows["bench HDDC"][2]
    assert rows["bench guidance"][0] == "pass"


def test_the_deadline_cuts_the_last_steps_limit_and_skips_what_no_longer_fits(gc, tmp_path, monkeypatch):
    quick = _step(gc, "build report", "print('ok')")
    sleeper = _step(gc, "CUDA tests", "import time; time.sleep(60)", limit=60)
    last = _step(gc, "bench BFN", "print('never')")
    monkeypatch.setattr(gc, "plan", lambda dry_run, arch, build: [quick, sleeper, last])
    assert gc.main(["--dry-run", "--deadline", "2.5", "--out", str(tmp_path)]) == 1
    rows = _rows(_report(tmp_path))
    assert rows["build report"][0] == "pass"
    assert rows["CUDA tests"][0].startswith("fail (over its ") and rows["CUDA tests"][0].endswith(
        " s limit (cut to fit the --deadline))") and float(rows["CUDA tests"][1]) < 10
    assert rows["bench BFN"][:3] == ["not run", "0.0", "not run: too little time left before the --deadline"]
    with pytest.raises(SystemExit):
        gc.main(["--dry-run", "--deadline", "0.5"])
    # a kill's grace stays inside the deadline: a step cut to fit ends that much before it, so the report comes
    # before the lent machine's own limit even where the killed process is slow to go
    monkeypatch.setattr(gc, "KILL_GRACE_S", 1.0)
    monkeypatch.setattr(gc, "READER_GRACE_S", 0.5)
    r = gc.run_step(sleeper, 1.0, {}, deadline=gc.time.monotonic() + 4.5)
    assert r["status"].endswith("(cut to fit the --deadline))") and 2.9 <= r["limit_s"] <= 3.0


def test_a_steps_output_is_echoed_as_it_comes_and_a_long_one_keeps_its_first_error(gc, capsys):
    r = gc.run_step(_step(gc, "talker", "print('line one'); print('line two')"), 1.0, {}, echo=True)
    assert r["status"] == "pass" and r["output"] == "line one\nline two\n"
    assert "    line one\n    line two\n" in capsys.readouterr().out
    long = "\n".join(["-- configuring"] * 50 + ["x.cu(3): error: boom"] + ["[ 50%] building"] * 3000)
    kept = gc._excerpt(long, gc._first_error(long))
    assert "x.cu(3): error: boom" in kept and kept.endswith("[ 50%] building") and len(kept) < 14000
    assert gc._excerpt("short", "") == "short"


def test_what_a_step_leaves_running_is_ended_with_it(gc):
    """A step whose process exits with a child still running in its group (a loader worker, a daemon): the child
    would hold the GPU and the output pipe; it is killed with the group, and the run goes on at once."""
    code = ("import subprocess, sys; subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            "print('parent done')")
    r = gc.run_step(_step(gc, "leaver", code), 1.0, {})
    assert r["status"] == "pass" and r["output"] == "parent done\n" and r["seconds"] < 8


def test_a_command_killed_during_its_first_step_leaves_a_report_naming_it(tmp_path):
    """The lent machine's limit kills the whole command with SIGKILL (nothing runs after it): a report written only
    after each step left nothing while the first, longest step (the build) ran. The report is on disk before each
    step starts and names the steps not run yet, the running one first."""
    import os
    import signal

    pidfile, out = tmp_path / "step.pid", tmp_path / "out"
    proc = _driver(tmp_path, pidfile, out, '''[gc.Step("CUDA tests", [sys.executable, "-c", SLEEPER], 60),
                                           gc.Step("bench BFN", [sys.executable, "-c", "0"], 20)]''')
    try:
        for line in proc.stdout:  # the step's line is printed once the report before it is written
            if line.startswith("[gpu_check] CUDA tests (limit"):
                break
        _wait_for(pidfile, 5.0)  # the step itself has started
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    (path,) = out.glob("gpu_check_*.md")
    assert "**In progress or cut off: 2 step(s) not run yet: CUDA tests, bench BFN.**" in path.read_text()
    assert not list(out.glob(".*.tmp"))  # written whole: no half-written file beside it
    # the step outlived the SIGKILLed command, in the command's session (not a new one): the lent machine ends that
    # session's processes when the command returns, so it cannot hold the GPU after
    step_pid = int(pidfile.read_text())
    try:
        assert os.getsid(step_pid) == os.getsid(0)
    finally:
        os.kill(step_pid, signal.SIGKILL)


def test_a_sigterm_ends_the_running_step_and_writes_the_report(tmp_path):
    """`timeout` (or a limit that asks first) sends SIGTERM: the running step's group is killed with it, and the
    report says the run was cut off, the running step and the ones after it 'not run'."""
    import os
    import signal

    pidfile, out = tmp_path / "step.pid", tmp_path / "out"
    proc = _driver(tmp_path, pidfile, out, '''[gc.Step("bench MMD", [sys.executable, "-c", "print('done')"], 20),
                                           gc.Step("bench HDDC", [sys.executable, "-c", SLEEPER], 60),
                                           gc.Step("bench BFN", [sys.executable, "-c", "0"], 20)]''')
    try:
        _wait_for(pidfile, 10.0)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    text = _report(out)
    rows = _rows(text)
    assert rows["bench MMD"][0] == "pass"
    assert rows["bench HDDC"][:3] == ["not run", "0.0", "cut off from outside"] and rows["bench BFN"][0] == "not run"
    assert "**Cut off from outside (a signal) during bench HDDC" in text
    step_pid = int(pidfile.read_text())
    for _ in range(100):  # killed with its group, not left holding the GPU (init reaps it once the driver is gone)
        try:
            os.kill(step_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(step_pid, signal.SIGKILL)
        pytest.fail("the running step outlived the SIGTERM")


def test_a_cuda_test_step_killed_mid_run_keeps_the_tests_that_had_failed(gc, tmp_path):
    # pytest prints its failures at the end of the session: a CUDA test step killed at its limit would keep only
    # dots. The -p gpu_check hook prints each failure as it happens; here the second test kills pytest outright
    # (SIGKILL: what the step's limit does), after the first one failed
    (tmp_path / "test_fake_cuda.py").write_text(
        "import os, signal\n"
        "def test_cuda_value():\n"
        "    assert 1 + 1 == 3, 'the kernel gave 2'\n"
        "def test_cuda_then_killed():\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n", encoding="utf-8")
    import os
    import subprocess

    env = dict(os.environ, PYTHONPATH=str(ROOT / "scripts"))
    env.pop(gc.NEED_CUDA_ENV, None)
    done = subprocess.run([PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "gpu_check", "--tb=short",
                           "test_fake_cuda.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == -9  # killed: pytest's own end-of-session summary never came
    assert "short test summary" not in done.stdout
    assert "FAILED test_fake_cuda.py::test_cuda_value (call): AssertionError: the kernel gave 2" in done.stdout
    assert "assert 1 + 1 == 3" in done.stdout  # the traceback's end, not just the line
    # the report's first error for the killed step is that line (no faulthandler dump in it: no hang site)
    assert gc._first_error(done.stdout, timed_out=True).startswith("FAILED test_fake_cuda.py::test_cuda_value")


def test_a_hung_preflight_is_killed_and_the_report_says_so(gc, tmp_path, monkeypatch, capsys):
    # the preflight's child asks torch for the GPU; a driver that hangs it must cost its limit, not the run
    import gpu_check_preflight

    monkeypatch.setattr(gpu_check_preflight, "PREFLIGHT_LIMIT_S", 1.0)
    monkeypatch.setattr(gpu_check_preflight, "FACTS_CODE", "import time; time.sleep(60)")
    t0 = time.monotonic()
    facts = gpu_check_preflight.preflight(dict(__import__("os").environ))
    assert time.monotonic() - t0 < 10
    assert facts == {"gpu": None, "problem": "asking torch for the GPU hung for 1.0 s (the driver?)"}
    # through main, the preflight as the module holds it: the report is written and names the hang
    monkeypatch.setattr(gc, "preflight", gpu_check_preflight.preflight)
    assert gc.main(["--no-build", "--out", str(tmp_path)]) == 2
    text = _report(tmp_path)
    assert "Stopped before any step: asking torch for the GPU hung for 1.0 s (the driver?)." in text
    assert "hung for 1.0 s" in capsys.readouterr().err
