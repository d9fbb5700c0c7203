"""CUDA-only checks of the tiled kNN kernel (the twin comparisons in test_knn.py also run on CUDA
through the ``device`` fixture): shapes that cross the 64 x 64 tiles and the 32-wide staging of
the dimensions, CUDA equal to the CPU kernel, bitwise-identical reruns. Skipped without a GPU."""

import numpy as np
import pytest
import torch

import diffrep
from diffrep.ops import knn as K
from diffrep.ops import use_backend

pytestmark = pytest.mark.skipif(not diffrep.cuda_available(), reason="no usable CUDA device")


@pytest.mark.parametrize("m,n,d", [(1, 1, 1), (63, 65, 31), (129, 200, 2048), (500, 64, 33)])
def test_cuda_equals_cpu(m, n, d):
    g = torch.Generator().manual_seed(m + n + d)
    q, c = torch.randn(m, d, generator=g, dtype=torch.float64), torch.randn(n, d, generator=g, dtype=torch.float64)
    kk = min(n, 4)
    r2 = torch.rand(n, generator=g, dtype=torch.float64) * 2 * d
    with use_backend("cpu", strict=True):
        want = K.knn_scan(q, c, kk=kk, r2=r2)
    with use_backend("cuda", strict=True):
        got = K.knn_scan(q.cuda(), c.cuda(), kk=kk, r2=r2.cuda())
        again = K.knn_scan(q.cuda(), c.cuda(), kk=kk, r2=r2.cuda())
    np.testing.assert_allclose(got[0].cpu().numpy(), want[0].numpy(), rtol=1e-12)
    np.testing.assert_array_equal(got[1].cpu().numpy(), want[1].numpy())
    assert torch.equal(got[0], again[0]) and torch.equal(got[1], again[1])


def test_cuda_float32_2048d_radii():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1000, 2048, generator=g)
    with use_backend("cuda", strict=True):
        r = K.knn_radii(x.cuda(), 3).cpu()
    d2 = torch.cdist(x.double(), x.double()) ** 2
    want = d2.kthvalue(4, dim=1).values
    np.testing.assert_allclose(r.numpy(), want.numpy(), rtol=1e-4)


@pytest.mark.parametrize("bad", [float("inf"), float("nan")])
@pytest.mark.parametrize("m", [40, 200])
def test_a_non_finite_r2_entry_is_flagged_by_the_kernel(bad, m):
    """r2 is checked by the CUDA kernel's first block (no Python read before the launch): one non-finite entry
    in the last column tile, with finite points, sets the flag (one block of 64 rows, or four), and the public
    op raises the CPU path's message."""
    from diffrep.ops._native_call import NON_FINITE, run

    g = torch.Generator().manual_seed(m)
    q, c = torch.randn(m, 3, generator=g, dtype=torch.float64), torch.randn(130, 3, generator=g, dtype=torch.float64)
    r2 = torch.rand(130, generator=g, dtype=torch.float64)
    r2[-1] = bad
    dev = torch.device("cuda", torch.cuda.current_device())
    count = torch.empty(m, dtype=torch.int64, device=dev)
    flags = run("cuda", "knn_scan", dev, d=3, q=q.to(dev), c=c.to(dev), kk=0, strict=False, r2=r2.to(dev), kth=None,
                count=count)
    assert flags == NON_FINITE
    with use_backend("cpu", strict=True), pytest.raises(ValueError) as on_cpu:
        K.ball_count(q, c, r2)
    with use_backend("cuda", strict=True), pytest.raises(ValueError) as on_cuda:
        K.ball_count(q.to(dev), c.to(dev), r2.to(dev))
    assert "r2" in str(on_cpu.value) and str(on_cuda.value) == str(on_cpu.value)
