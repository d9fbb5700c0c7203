"""The discretised probabilities' backward as the CUDA kernel runs it (csrc/bfn/bfn_math.h,
disc_probs_backward_f64: float32 inputs through the float64 body, as the CPU module does), built
here for the host so it is checked on every run, not only on a GPU (tests/ops/native/
bfn_probs_backward_host.cpp), against the gradient of BFN Eq. 103-104 differentiated bin by bin in
long double. The kernel ran the float32 body before: with clip=False, where the mass sits beyond
an edge, d_mu = (a_mu - gp dR_mu) / R cancels, and its error reached 20 times the gradient (+1e-6)."""

from pathlib import Path

import pytest

from helpers import HOST_CXX_MISSING, host_program_output

SOURCE = Path(__file__).resolve().parent / "native" / "bfn_probs_backward_host.cpp"


@pytest.mark.skipif(HOST_CXX_MISSING is not None, reason=str(HOST_CXX_MISSING))
def test_cuda_probs_backward_is_accurate_for_float32(tmp_path):
    entry, _float_body = host_program_output(SOURCE, tmp_path)
    # |error| / (|gradient| + 1e-6): the float64 body's own cancellation where R ~ 1e-5 stays below
    # 5e-10 absolute (the float32 body: 2e-5)
    assert entry < 1e-3
