"""The 1-D kNN MI kernels' grouping step (metrics_math.h ``group_row``, run by the CPU kernel and by
CUDA's knn_group_rows_kernel) keeps every write inside its label's group when the argsort handed to
the binding is not a permutation. Such an argsort once made the CPU kernel write past its n-element
buffer (vorder = [1, 1] over labels [0, 1]: label 1 met twice, written at positions 1 and 2 of a
2-slot row) with no flag; now the overflowing points are dropped and the call flags an index
error. The public op passes torch's argsort, a permutation: its results are unchanged."""

import pytest
import torch

from diffrep import _native
from diffrep.ops import metrics as ops
from diffrep.ops import use_backend
from diffrep.ops._native_call import CLASS_OUT_OF_RANGE, run

pytestmark = pytest.mark.skipif(not _native.cpu_available(), reason="_cpu not built")

F64, I64 = torch.float64, torch.int64


def _raw(sx, vorder, labels, k=1):
    """The CPU binding on one latent row and one factor row: (flags, mi)."""
    j, n = sx.shape
    f = labels.shape[0]
    v = int(labels.max()) + 1
    mi = torch.full((j, f), -1.0, dtype=F64)
    flags = run("cpu", "knn_mi_cd", torch.device("cpu"), sx=sx, vorder=vorder, labels=labels, J=j, F=f, n=n, V=v, k=k,
                dscratch=torch.empty(4 * j * n, dtype=F64), iscratch=torch.empty(2 * f * v + j * (n + 1) + j * v,
                                                                                 dtype=I64), mi=mi)
    return flags, mi


@pytest.mark.parametrize("vorder, labels", [
    ([1, 1], [0, 1]),                   # label 1 twice, one slot: the write that left the buffer
    ([0, 1, 2, 3, 0], [0, 0, 1, 1, 1]),  # label 0 three times, two slots
    ([4, 4, 4, 4, 4], [0, 1, 0, 1, 1]),  # every point in label 1's group
])
def test_an_argsort_that_overflows_a_group_is_flagged(vorder, labels):
    n = len(vorder)
    sx = torch.arange(n, dtype=F64).view(1, n)
    flags, _ = _raw(sx, torch.tensor([vorder]), torch.tensor([labels]))
    assert flags == CLASS_OUT_OF_RANGE


def test_a_repeat_that_keeps_every_group_size_stays_in_bounds_unflagged():
    """Point 0 twice and point 1 never, both of label 0: each group gets exactly its count of
    writes, so nothing overflows (the values are those the argsort names)."""
    sx = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0]], dtype=F64)
    flags, mi = _raw(sx, torch.tensor([[0, 0, 2, 3, 4]]), torch.tensor([[0, 0, 1, 1, 1]]))
    assert flags == 0 and bool(torch.isfinite(mi).all())


def test_a_permutation_gives_the_public_result():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 60, generator=g, dtype=F64)
    lab = torch.randint(0, 4, (1, 60), generator=g)
    sx, vorder = torch.sort(x, dim=1, stable=True)
    flags, mi = _raw(sx.contiguous(), vorder.contiguous(), lab, k=3)
    with use_backend("reference"):
        want = ops.knn_mi_cd(x, lab, 3)
    assert flags == 0
    torch.testing.assert_close(mi, want, rtol=1e-12, atol=1e-12)
