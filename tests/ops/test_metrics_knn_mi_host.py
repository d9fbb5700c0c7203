"""The 1-D kNN MI as its CUDA kernels run it (csrc/metrics/metrics_cuda.cu), built here for the host
(tests/ops/native/metrics_knn_mi_host.cpp), so its per-position pieces are checked on every run, not
only on a GPU: ``group_label`` (metrics_math.h; the label of a grouped position, passing over empty
labels) against a linear scan of the groups, and the estimate summed position by position with zero
terms for dropped points against the CPU kernel's walk over the kept groups, to the bit. The CUDA
sums were a tree of per-thread partials before, ~3e-13 away from the CPU's at n = 3000."""

from pathlib import Path

import pytest

from helpers import HOST_CXX_MISSING, host_program_output

SOURCE = Path(__file__).resolve().parent / "native" / "metrics_knn_mi_host.cpp"


@pytest.mark.skipif(HOST_CXX_MISSING is not None, reason=str(HOST_CXX_MISSING))
def test_cuda_knn_mi_pieces_equal_the_cpu_kernel(tmp_path):
    wrong_label, wrong_sum, cases, inner_empty, refused = host_program_output(SOURCE, tmp_path)
    assert cases == 400 and inner_empty > 20  # empty labels between non-empty ones were exercised
    assert wrong_label == 0
    assert wrong_sum == 0
    assert refused == 0  # group_row (both kernels' grouping) takes every permutation
