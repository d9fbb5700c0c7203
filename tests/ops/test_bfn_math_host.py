"""csrc/bfn/bfn_math.h's per-element discretised distribution, forward and backward, is what the CUDA
kernels run (the CPU module has its own item loops): built here for the host, so its float32 body is
checked on every run, not only on a GPU (tests/ops/native/bfn_math_host.cpp): the float64 body against
the formula in long double, the float32 body against the float64 one.
The float32 boundary CDFs are split at the mean (docs/kernels/bfn.md, Numerical safeguards): before
that, bins above the mean had relative errors up to 12 and the backward 1.7e-3."""

from pathlib import Path

import pytest

from helpers import HOST_CXX_MISSING, host_program_output

SOURCE = Path(__file__).resolve().parent / "native" / "bfn_math_host.cpp"


@pytest.mark.skipif(HOST_CXX_MISSING is not None, reason=str(HOST_CXX_MISSING))
def test_cuda_element_body_is_accurate_in_float32(tmp_path):
    exact, probs_abs, probs_rel, backward = host_program_output(SOURCE, tmp_path)
    assert exact < 1e-10  # double: BFN Eq. 103-104 (long double, erfc); 1e-16 / R where R ~ 1e-5
    assert probs_rel < 2e-4  # bins above 1e-6 with both boundaries inside the float tail's range
    assert probs_abs < 1e-3  # beyond the range, where clip=False renormalises a sliver of mass
    assert backward < 2e-4
