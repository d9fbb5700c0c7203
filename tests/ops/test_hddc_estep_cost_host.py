"""The HDDC E-step cost as the CUDA kernel instantiates it (estep_cost<T, 1, 1, DP>: one point, the
deviation in a DP-padded register array, d_k clamped to the rows of Qt), built here for the host
(tests/ops/native/hddc_estep_cost_host.cpp), so the CUDA path of csrc/hddc/hddc_math.h is checked on
every run, not only on a GPU: to the bit against the CPU kernel's instantiation (16-point tiles,
3 or 6 rows at a time, which skip other columns of a triangular Qt), and against the cost form
sum_j (ia_j - ib) (q_j . e)^2 + |e|^2 ib + cst in long double, over every padded dimension."""

from pathlib import Path

import pytest

from helpers import HOST_CXX_MISSING, host_program_output

SOURCE = Path(__file__).resolve().parent / "native" / "hddc_estep_cost_host.cpp"


@pytest.mark.skipif(HOST_CXX_MISSING is not None, reason=str(HOST_CXX_MISSING))
def test_cuda_estep_cost_equals_the_cpu_instantiation(tmp_path):
    mis_f, mis_d, err_d, err_f, cases, tri_cases = host_program_output(SOURCE, tmp_path)
    assert cases == 600 and tri_cases > 100  # the triangular form was exercised
    assert mis_f == 0 and mis_d == 0  # same operations in the same order: bitwise
    assert err_d < 1e-13  # relative to the sum of the terms' magnitudes
    assert err_f < 1e-5
