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
