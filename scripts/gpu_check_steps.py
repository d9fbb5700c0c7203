"""The step runner of scripts/gpu_check.py: a step, its run in its own process group under a time limit, and
its verdict (pass/fail and the first line that says why). What limit a step gets (``--budget``, the dry run's
slack, ``--deadline``) is the plan's business: ``gpu_check.run_step``."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: a step that exits with this code says nothing after it can run (diffrep does not import: a failed build, or
#: --no-build on a machine where it was never installed): the rest of the plan is reported as not run, not failed
#: one by one at a torch import each
STOP_RC = 4
#: how long a step killed at its limit may take to go (a process stuck in the driver), then how long its output
#: pipe is read on; both fit inside a --deadline (gpu_check.run_step keeps them out of the last step's limit)
KILL_GRACE_S = 10
READER_GRACE_S = 3


@dataclasses.dataclass
class Step:
    name: str
    argv: list[str]
    limit_s: float
    target: str = ""  # what the step's numbers are held against (docs/kernels/*.md)
    estimate_s: float = 0.0  # the expected time on an H100 (a guess until a GPU has run it; 0: not estimated)
    env: dict = dataclasses.field(default_factory=dict)  # added to the environment; PYTHONPATH is prepended


def short_limits(steps: list[Step]) -> list[Step]:
    """The steps whose limit is under 1.5x their estimated time: the ones a slow GPU machine may cut off."""
    return [s for s in steps if s.estimate_s and s.limit_s < 1.5 * s.estimate_s]


def not_run(step: Step, why: str) -> dict:
    """The result of a step the run did not start (the deadline came, or a step before it said nothing can run)."""
    return {"step": step, "status": "not run", "seconds": 0.0, "limit_s": step.limit_s, "output": "",
            "first_error": why}


#: a new process group in the caller's session (``process_group`` needs Python 3.11)
_OWN_GROUP = {"process_group": 0} if sys.version_info >= (3, 11) else {"preexec_fn": os.setpgrp}


def run_limited(step: Step, limit: float, env: dict, cut: str = "", echo: bool = False) -> dict:
    """One step in its own process group, killed at ``limit`` seconds (``cut``: why the limit is shorter than the
    step's own, said in its status). ``echo`` prints each line of its output as it comes (the progress of a long
    build or test step), indented under the step's own line."""
    print(f"[gpu_check] {step.name} (limit {limit:.0f} s{cut}): {' '.join(step.argv)}", flush=True)
    env = dict(env)
    for k, v in step.env.items():
        env[k] = v + os.pathsep + env[k] if k == "PYTHONPATH" and env.get(k) else v
    t0 = time.perf_counter()
    # its own process group, so that a step over its limit is killed with its children (pytest workers,
    # DataLoader workers) and none of them keeps the GPU; the command's session, not a new one, so that where the
    # command itself is killed from outside (a lent machine's time limit) the step goes with it instead of holding
    # the GPU; stderr joins stdout in order; a thread reads the
    # output line by line, so that what a step printed before a kill is kept, even where a child that left the
    # group still holds the pipe
    try:
        proc = subprocess.Popen(step.argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", **_OWN_GROUP)
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
            proc.wait(timeout=KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            lines.append(f"\n(the step's process did not end within {KILL_GRACE_S} s of SIGKILL: left behind)\n")
        status = f"fail (over its {limit:.0f} s limit{cut})"
        timed_out = True
    except BaseException:  # Ctrl-C: the step's group is not in the terminal's, so end it here
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    reader.join(timeout=READER_GRACE_S)
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
