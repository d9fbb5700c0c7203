"""csrc/bfn/bfn_math.h's per-element discretised distribution, forward and backward, is what the CUDA
kernels run (the CPU module has its own item loops): built here for the host, so its float32 body is
checked on every run, not only on a GPU (tests/ops/native/bfn_math_host.cpp): the float64 body against
the formula in long double, the float32 body against the float64 one.
The float32 boundary CDFs are split at the mean (docs/kernels/bfn.md, Numerical safeguards): before
that, bins above the mean had relative errors up to 12 and the backward 1.7e-3."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE = Path(__file__).resolve().parent / "native" / "bfn_math_host.cpp"


@pytest.mark.skipif(shutil.which("g++") is None or not (ROOT / "csrc").is_dir(),
                    reason="needs g++ and the source tree's csrc/")
def test_cuda_element_body_is_accurate_in_float32(tmp_path):
    exe = tmp_path / "bfn_math_host"
    subprocess.run(["g++", "-std=c++17", "-O1", "-I", str(ROOT / "csrc"), str(SOURCE), "-o", str(exe)],
                   check=True, capture_output=True, timeout=120)
    exact, probs_abs, probs_rel, backward = map(float, subprocess.run([str(exe)], check=True, capture_output=True,
                                                              text=True, timeout=60).stdout.split())
    assert exact < 1e-10  # double: BFN Eq. 103-104 (long double, erfc); 1e-16 / R where R ~ 1e-5
    assert probs_rel < 2e-4  # bins above 1e-6 with both boundaries inside the float tail's range
    assert probs_abs < 1e-3  # beyond the range, where clip=False renormalises a sliver of mass
    assert backward < 2e-4
