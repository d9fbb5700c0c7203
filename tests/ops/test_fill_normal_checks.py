"""diffrep.ops.random.fill_normal validates its arguments on every backend (docs/kernels/random.md:
a contiguous float tensor, a uint64 key): before, the native binding refused a bad one with nanobind's
list of signatures and the twin took a negative seed modulo 2**64."""

import numpy as np
import pytest
import torch

from diffrep.ops import random, use_backend
from diffrep.ops.reference import philox

BACKENDS = ["native", "reference"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    if request.param == "reference":
        with use_backend("reference"):
            yield request.param
    else:
        yield request.param


@pytest.mark.parametrize("out, seed, offset, error, match", [
    ([0.0, 0.0], 1, 0, TypeError, "out must be a torch.Tensor"),
    (torch.zeros(4, dtype=torch.int32), 1, 0, TypeError, "out must be float32 or float64"),
    (torch.zeros(4, dtype=torch.float16), 1, 0, TypeError, "out must be float32 or float64"),
    (torch.zeros(8)[::2], 1, 0, ValueError, "out must be contiguous"),
    (torch.zeros(4), -1, 0, ValueError, r"seed must lie in \[0, 2\*\*64\)"),
    (torch.zeros(4), 1 << 64, 0, ValueError, r"seed must lie in \[0, 2\*\*64\)"),
    (torch.zeros(4), 1, -3, ValueError, r"offset must lie in \[0, 2\*\*64\)"),
    (torch.zeros(4), 1.5, 0, TypeError, "seed must be an int"),
    (torch.zeros(4), True, 0, TypeError, "seed must be an int"),
    (torch.zeros(4), 1, "0", TypeError, "offset must be an int"),
])
def test_bad_arguments_raise_a_named_error(backend, out, seed, offset, error, match):
    with pytest.raises(error, match=match):
        random.fill_normal(out, seed, offset)


def test_the_key_range_ends_are_accepted_and_follow_the_stream(backend):
    """seed = offset = 2**64 - 1 and numpy integers are keys; the values are the twin's stream."""
    out = torch.empty(2, 3, dtype=torch.float64)
    key = (1 << 64) - 1
    random.fill_normal(out, key, np.uint64(key))
    torch.testing.assert_close(out.flatten(), philox.normals(6, key, key), rtol=1e-13, atol=1e-13)
