"""The BFN CPU kernels' non-AVX-512 code paths (AVX2, and the x86-64 baseline), which users on CPUs
without AVX-512 run: the kernel tests again in a subprocess with DIFFREP_CPU_ISA capping the
instruction set (docs/kernels/bfn.md, Performance). AVX2 in the default run; the baseline is slow-marked. The float kernels have separate AVX-512 bodies for
many bins, the boundary sums and the discrete loss; without this run their generic twins would go
untested on a machine that has AVX-512."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
FILES = ["test_bfn_cpu_paths.py", "test_bfn_cdf_tails.py", "test_bfn_log_update_large_logits.py"]


@pytest.mark.parametrize("isa", ["v3", pytest.param("v1", marks=pytest.mark.slow)])
def test_bfn_cpu_kernels_pass_with_the_instruction_set_capped(isa):
    env = dict(os.environ, DIFFREP_CPU_ISA=isa, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-p", "no:xdist",
           *(str(HERE / f) for f in FILES)]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]


def test_a_misspelt_cap_is_refused_not_ignored():
    # the native module reads anything but v1..v4 as "no cap": "avx2" ran the AVX-512 loops without a word.
    # One fresh process (the variable is read when the native module loads): ``diffrep info`` (the CLI's own
    # function; its return code is the exit code), then a kernel call, uncaught: the refusal is not cached
    code = ("import sys\nfrom diffrep.cli import main\n"
            "rc = main(['info'])\nprint('info exit code', rc, flush=True)\n"
            "import torch, diffrep.ops.bfn as b\n"
            "b.discrete_update(torch.full((2, 3), 1 / 3), torch.zeros(2, 3))")
    env = dict(os.environ, DIFFREP_CPU_ISA="avx2", DIFFREP_BACKEND="cpu")
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "ValueError: DIFFREP_CPU_ISA='avx2' is not one of v1, v2, v3, v4 (or unset: no cap)" in run.stderr
    info = run.stdout
    assert "info exit code 0" in info and "_cpu   built, not usable" in info, run.stdout + run.stderr
    assert "reason: DIFFREP_CPU_ISA='avx2' is not one of" in info


def test_the_cap_reaches_every_dispatcher():
    """``DIFFREP_CPU_ISA`` caps the shared dispatcher (common/isa.h: guidance, HDDC, philox) as well as the BFN
    kernels': v1 and v2 ran the AVX2 copies of the shared ones before (only BFN read the variable). The level the
    dispatchers run, in a fresh process per cap (read once): the machine's level, lowered to the cap; v2 has no
    copy of its own and runs the baseline; ``diffrep info`` says it."""
    code = ("from diffrep import _native\nfrom diffrep.cli import main\n"
            "print('level', _native.cpu_module().cpu_isa_level(), flush=True)\nmain(['info'])")

    def level(cap):
        env = {k: v for k, v in os.environ.items() if k != "DIFFREP_CPU_ISA"}
        if cap:
            env["DIFFREP_CPU_ISA"] = cap
        run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr[-2000:]
        return int(run.stdout.split("level ", 1)[1].split()[0]), run.stdout

    best, _ = level(None)
    assert best in (1, 3, 4)
    for cap, expected in (("v3", min(best, 3)), ("v2", 1)):  # (v4 reads as unset, v1 as v2: one process each)
        got, out = level(cap)
        assert got == expected, (cap, got)
        names = {4: "isa=x86-64-v4 (AVX-512)", 3: "isa=x86-64-v3 (AVX2 + FMA)", 1: "isa=baseline x86-64"}
        assert names[expected] in out, out
