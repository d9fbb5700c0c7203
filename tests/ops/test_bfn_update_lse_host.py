"""The discrete update's element body (csrc/bfn/bfn_math.h, disc_update_elem), which the CUDA kernels
run, in float32 at logits of ~100 (a sender sample with alpha K ~ 100), built for the host
(tests/ops/native/bfn_update_lse_host.cpp) against logsumexp in long double. It subtracts
(l - max) - log(sum), the twin's log_softmax order; l - (max + log sum) rounded the log-probabilities
near 0 to the ulp of the max (errors up to 7.6e-6, 4x the twin comparison's atol of 2e-6)."""

from pathlib import Path

import pytest

from helpers import HOST_CXX_MISSING, host_program_output

SOURCE = Path(__file__).resolve().parent / "native" / "bfn_update_lse_host.cpp"


@pytest.mark.skipif(HOST_CXX_MISSING is not None, reason=str(HOST_CXX_MISSING))
def test_float32_update_keeps_log_probabilities_near_zero(tmp_path):
    (worst,) = host_program_output(SOURCE, tmp_path)
    assert worst < 1.5e-6  # relative to max(1, |log p|)
