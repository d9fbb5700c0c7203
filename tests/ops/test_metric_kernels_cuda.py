"""CUDA-only checks of the metric kernels (the twin comparisons in test_metric_kernels.py also run
on CUDA through the ``device`` fixture): CUDA equals CPU, reruns are bitwise identical, and the
kernels run on torch's current stream. Skipped when no GPU is usable."""

import numpy as np
import pytest
import torch

import diffrep
from diffrep.ops import metrics as ops
from diffrep.ops import use_backend
from diffrep.ops._native_call import CLASS_OUT_OF_RANGE, run

pytestmark = pytest.mark.skipif(not diffrep.cuda_available(), reason="no usable CUDA device")


def _inputs(seed=0, n=3000):
    rng = np.random.RandomState(seed)
    f = rng.randint(0, 7, (n, 3))
    z = np.round(np.hstack([f + 0.3 * rng.randn(n, 3), rng.randn(n, 5)]), 2)
    return torch.from_numpy(z), torch.from_numpy(f)


def _all_ops(z, f):
    y = f[:, :2] % 2 == 0
    auc, _ = ops.auroc_matrix(z.T.contiguous(), y.T.contiguous())
    lab = ops.hist_discretize(z, 20)
    mi, h = ops.mi_matrix(lab, f)
    knn = ops.knn_mi_cd(z.T.contiguous(), f.T.contiguous(), 10)
    b = z[: 64 * 40].reshape(40, 64, z.shape[1])
    # the global variances from one device for both runs: torch's CUDA and CPU reductions may differ
    # in the last bit, and the votes compare the kernels, not torch
    g = z.cpu().var(dim=0).to(z.device)
    votes, arg = ops.factor_vae_votes(b, f[:40, 0] % 3, g, torch.ones(z.shape[1], dtype=torch.bool, device=z.device), 3)
    return [auc, lab, mi, h, knn, votes, arg]


def test_cuda_equals_cpu_and_reruns_are_bitwise():
    z, f = _inputs()
    with use_backend("cpu", strict=True):
        cpu = _all_ops(z, f)
    with use_backend("cuda", strict=True):
        gpu = _all_ops(z.cuda(), f.cuda())
        again = _all_ops(z.cuda(), f.cuda())
    for c, g, a in zip(cpu, gpu, again):
        assert torch.equal(g, a)
        if c.is_floating_point():
            torch.testing.assert_close(g.cpu(), c, rtol=1e-12, atol=1e-14, equal_nan=True)
        else:
            assert torch.equal(g.cpu(), c)


def test_kernels_run_on_the_current_stream():
    z, f = _inputs(1, 20000)
    zc = z.cuda()
    expected = ops.auroc_matrix(zc.T.contiguous(), (f[:, :1] > 2).T.contiguous().cuda())[0]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        y = zc * 1.0  # queued on the side stream; the kernels must see it
        out = ops.auroc_matrix(y.T.contiguous(), (f[:, :1] > 2).T.contiguous().cuda())[0]
    torch.cuda.current_stream().wait_stream(side)
    assert torch.equal(out, expected)


def test_knn_mi_argsort_that_overflows_a_group_is_flagged():
    """knn_group_rows_kernel runs metrics_math.h's group_row: an argsort that is not a permutation
    (label 1 met twice, one slot) writes nothing outside its group and flags an index error, as on
    the CPU (tests/ops/test_metrics_knn_mi_argsort_guard.py)."""
    sx = torch.tensor([[0.0, 1.0]], dtype=torch.float64).cuda()
    i64 = dict(dtype=torch.int64, device=sx.device)
    flags = run("cuda", "knn_mi_cd", sx.device, sx=sx, vorder=torch.tensor([[1, 1]], **i64),
                labels=torch.tensor([[0, 1]], **i64), J=1, F=1, n=2, V=2, k=1,
                dscratch=torch.zeros(8, dtype=torch.float64, device=sx.device), iscratch=torch.zeros(9, **i64),
                mi=torch.empty(1, 1, dtype=torch.float64, device=sx.device))
    assert flags == CLASS_OUT_OF_RANGE


@pytest.mark.parametrize("where", ["label", "vorder"])
def test_knn_mi_indices_out_of_range_are_flagged_by_the_kernels_that_read_them(where):
    """No host wait for a range check in the launcher: knn_groups_kernel flags a label outside [0, V) and
    group_row a vorder entry outside [0, n), as the CPU kernel does (tests/ops/test_metrics_knn_mi_flag_guards.py);
    the pairs without a bad index equal the CPU's values (a flagged pair's value is unspecified on CUDA)."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 200, generator=g, dtype=torch.float64)
    lab = torch.randint(0, 4, (2, 200), generator=g)
    sx, vorder = torch.sort(x, dim=1, stable=True)
    if where == "label":
        lab[0, 17] = -(2**62)
    else:
        vorder[1, 23] = 10**12
    out = {}
    for dev in ("cpu", "cuda"):
        i64 = dict(dtype=torch.int64, device=dev)
        mi = torch.full((3, 2), -1.0, dtype=torch.float64, device=dev)
        flags = run(dev, "knn_mi_cd", mi.device, sx=sx.contiguous().to(dev), vorder=vorder.contiguous().to(dev),
                    labels=lab.to(dev), J=3, F=2, n=200, V=4, k=3,
                    dscratch=torch.empty(4 * 3 * 200, dtype=torch.float64, device=dev),
                    iscratch=torch.empty(2 * 2 * 4 + 3 * 201 + 3 * 4, **i64), mi=mi)
        assert flags == CLASS_OUT_OF_RANGE
        out[dev] = mi.cpu()
    keep = (slice(None), 1) if where == "label" else ([0, 2], slice(None))
    torch.testing.assert_close(out["cuda"][keep], out["cpu"][keep], rtol=1e-12, atol=1e-14)


def test_knn_mi_junk_indices_flag_as_on_the_cpu_and_clean_pairs_keep_their_values():
    """The launcher waits for no range check: its kernels guard their own reads. Random junk (labels and
    argsort entries from -3 to n + 2, in-range argsorts that are not permutations, clean permutations): the
    flags word equals the CPU kernel's, and every pair whose argsort row is a permutation and whose labels are
    all in range equals the CPU's value (tests/ops/test_cuda_launchers_host.py runs the same kernels on the
    host under AddressSanitizer)."""
    rng = np.random.RandomState(4)
    seen = set()
    for _ in range(60):
        n, j, f, v = rng.randint(1, 300), rng.randint(1, 4), rng.randint(1, 3), rng.randint(1, 5)
        mode = rng.randint(3)
        lo, hi = (-3, n + 3) if mode == 0 else (0, n)
        vorder = rng.randint(lo, hi, (j, n)) if mode < 2 else np.stack([rng.permutation(n) for _ in range(j)])
        if mode == 0 and rng.randint(2):
            vorder[0] = rng.permutation(n)  # one clean row among junk
        labels = rng.randint(-1 if mode == 0 else 0, v + (mode == 0), (f, n))
        sx = np.sort(np.round(rng.randn(j, n), 1), axis=1)
        out = {}
        for dev in ("cpu", "cuda"):
            i64 = dict(dtype=torch.int64, device=dev)
            mi = torch.full((j, f), -1.0, dtype=torch.float64, device=dev)
            flags = run(dev, "knn_mi_cd", mi.device, sx=torch.from_numpy(sx).to(dev),
                        vorder=torch.from_numpy(vorder).to(dev), labels=torch.from_numpy(labels).to(dev), J=j, F=f,
                        n=n, V=v, k=3, dscratch=torch.empty(4 * j * n, dtype=torch.float64, device=dev),
                        iscratch=torch.empty(2 * f * v + j * (n + 1) + j * v, **i64), mi=mi)
            out[dev] = (flags, mi.cpu())
        assert out["cuda"][0] == out["cpu"][0]
        rows = [r for r in range(j) if np.array_equal(np.sort(vorder[r]), np.arange(n))]
        cols = [c for c in range(f) if ((labels[c] >= 0) & (labels[c] < v)).all()]
        torch.testing.assert_close(out["cuda"][1][rows][:, cols], out["cpu"][1][rows][:, cols], rtol=1e-12,
                                   atol=1e-14)
        seen.add(out["cpu"][0])
    assert seen == {0, CLASS_OUT_OF_RANGE}
