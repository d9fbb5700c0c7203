"""The discretised probabilities' backward as the CUDA kernel runs it (csrc/bfn/bfn_math.h,
disc_probs_backward_f64: float32 inputs through the float64 body, as the CPU module does), built
here for the host so it is checked on every run, not only on a GPU (tests/ops/native/
bfn_probs_backward_host.cpp), against the gradient of BFN Eq. 103-104 differentiated bin by bin in
long double. The kernel ran the float32 body before: with clip=False, where the mass sits beyond
an edge, d_mu = (a_mu - gp dR_mu) / R cancels, and its error reached 20 times the gradient (+1e-6)."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE = Path(__file__).resolve().parent / "native" / "bfn_probs_backward_host.cpp"


@pytest.mark.skipif(shutil.which("g++") is None or not (ROOT / "csrc").is_dir(),
                    reason="needs g++ and the source tree's csrc/")
def test_cuda_probs_backward_is_accurate_for_float32(tmp_path):
    exe = tmp_path / "bfn_probs_backward_host"
    subprocess.run(["g++", "-std=c++17", "-O1", "-I", str(ROOT / "csrc"), str(SOURCE), "-o", str(exe)],
                   check=True, capture_output=True, timeout=120)
    entry, _float_body = map(float, subprocess.run([str(exe)], check=True, capture_output=True, text=True,
                                                   timeout=60).stdout.split())
    # |error| / (|gradient| + 1e-6): the float64 body's own cancellation where R ~ 1e-5 stays below
    # 5e-10 absolute (the float32 body: 2e-5)
    assert entry < 1e-3
