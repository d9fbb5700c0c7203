"""The tiled kNN kernel (diffrep.ops.knn, docs/kernels/knn.md): the native backends (CPU OpenMP,
and CUDA through the ``device`` fixture) against the pure-PyTorch twin and against a brute-force
NumPy computation (np.partition over full distance matrices), including duplicate points, exact
ties and points exactly on a ball's boundary; and every bad input."""

import numpy as np
import pytest
import torch

from diffrep import _native
from diffrep.ops import explain, use_backend
from diffrep.ops import knn as K
from diffrep.ops.reference import knn as ref

needs_cpu = pytest.mark.skipif(not _native.cpu_available(), reason="diffrep._cpu not built")


def brute(q, c, kk, r2=None, strict=False):
    """kth (1-based kk-th smallest squared distance) and ball counts from full float64 matrices."""
    q, c = np.asarray(q, dtype=np.float64), np.asarray(c, dtype=np.float64)
    d2 = ((q[:, None, :] - c[None, :, :]) ** 2).sum(-1)
    kth = np.partition(d2, kk - 1, axis=1)[:, kk - 1] if kk else None
    cnt = None
    if r2 is not None:
        r2 = np.asarray(r2, dtype=np.float64)[None, :]
        cnt = (d2 < r2 if strict else d2 <= r2).sum(1)
    return kth, cnt


def _run(backend, q, c, **kw):
    with use_backend(backend, strict=True):
        return K.knn_scan(q, c, **kw)


@needs_cpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("m,n,d", [(1, 1, 1), (5, 3, 2), (37, 53, 70), (130, 17, 33)])
def test_native_matches_twin_and_brute_force(device, dtype, m, n, d):
    g = torch.Generator().manual_seed(m * 1000 + n)
    q = torch.randn(m, d, generator=g, dtype=dtype)
    c = torch.randn(n, d, generator=g, dtype=dtype)
    kk = min(n, 4)
    r2 = torch.rand(n, generator=g, dtype=dtype) * 2 * d
    native = _run(device.type, q.to(device), c.to(device), kk=kk, r2=r2.to(device))
    twin = _run("reference", q, c, kk=kk, r2=r2)
    want_kth, want_cnt = brute(q.numpy(), c.numpy(), kk, r2.numpy())
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(native[0].cpu().numpy(), want_kth, **tol)
    np.testing.assert_allclose(twin[0].numpy(), want_kth, **tol)
    assert native[0].dtype == dtype and native[1].dtype == torch.int64
    if dtype == torch.float64:  # random continuous data: no point within rounding of a boundary
        np.testing.assert_array_equal(native[1].cpu().numpy(), want_cnt)
        np.testing.assert_array_equal(twin[1].numpy(), want_cnt)


@needs_cpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("strict", [False, True])
def test_ties_duplicates_and_boundaries_are_exact(device, dtype, strict):
    # small integer coordinates: every squared distance is an exact integer, so there are many
    # exact ties, duplicated points (distance exactly 0) and queries exactly on a ball's boundary
    rng = np.random.default_rng(3)
    c = rng.integers(0, 3, (61, 3)).astype(np.float64)
    q = np.vstack([c[:20], rng.integers(0, 3, (25, 3))]).astype(np.float64)
    for kk in (1, 2, 4, 9, 32):
        r2 = brute(c, c, min(kk, 8))[0]  # radii that coincide with many distances
        want_kth, want_cnt = brute(q, c, kk, r2, strict)
        qt, ct, rt = (torch.from_numpy(a).to(dtype) for a in (q, c, r2))
        for backend, dev in ((device.type, device), ("reference", torch.device("cpu"))):
            kth, cnt = _run(backend, qt.to(dev), ct.to(dev), kk=kk, r2=rt.to(dev), strict=strict)
            np.testing.assert_array_equal(kth.cpu().numpy(), want_kth)
            np.testing.assert_array_equal(cnt.cpu().numpy(), want_cnt)
    # the boundary matters: <= and < differ on these data
    r2 = brute(c, c, 3)[0]
    lo = _run(device.type, torch.from_numpy(q).to(device), torch.from_numpy(c).to(device),
              r2=torch.from_numpy(r2).to(device), strict=True)[1]
    hi = _run(device.type, torch.from_numpy(q).to(device), torch.from_numpy(c).to(device),
              r2=torch.from_numpy(r2).to(device), strict=False)[1]
    assert (hi >= lo).all() and (hi > lo).any()


@needs_cpu
def test_radius_including_self_is_the_partition_index_k():
    x = torch.tensor([[0.0], [1.0], [3.0], [6.0], [10.0]], dtype=torch.float64)
    # sorted distances of 0: 0, 1, 3, 6, 10 -> k = 2 picks 3 (squared 9); of 6: 0, 3, 4, 5, 6 -> 4 (16)
    np.testing.assert_array_equal(K.knn_radii(x, 2).numpy(), [9.0, 4.0, 9.0, 16.0, 49.0])
    assert K.ball_count(x, x, torch.zeros(5, dtype=torch.float64)).tolist() == [1] * 5  # itself, d2 = 0 <= 0
    assert K.ball_count(x, x, torch.zeros(5, dtype=torch.float64), strict=True).tolist() == [0] * 5


@needs_cpu
def test_blocking_does_not_change_the_twin(monkeypatch):
    g = torch.Generator().manual_seed(0)
    q, c = torch.randn(90, 9, generator=g, dtype=torch.float64), torch.randn(70, 9, generator=g, dtype=torch.float64)
    r2 = torch.rand(70, generator=g, dtype=torch.float64) * 10
    full = ref.knn_scan(q, c, 5, r2)
    monkeypatch.setattr(ref, "BLOCK_ELEMENTS", 9 * 64 * 3)  # blocks of 64 queries x 3 points
    tiled = ref.knn_scan(q, c, 5, r2)
    torch.testing.assert_close(full[0], tiled[0], rtol=1e-12, atol=1e-12)
    assert torch.equal(full[1], tiled[1])


@needs_cpu
def test_backend_choice_and_reruns():
    q, c = torch.randn(50, 8), torch.randn(60, 8)
    assert explain("knn.knn_scan", q, c, kk=3).backend == "cpu"
    a = K.knn_scan(q, c, kk=3, r2=torch.ones(60))
    b = K.knn_scan(q, c, kk=3, r2=torch.ones(60))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert K.knn_scan(q, c, kk=3)[1] is None and K.knn_scan(q, c, r2=torch.ones(60))[0] is None
    # half precision computes in float32
    assert K.knn_scan(q.half(), c.half(), kk=1)[0].dtype == torch.float32


@pytest.mark.parametrize("backend", ["native", "reference"])
def test_bad_inputs(device, backend):
    if backend == "native" and not _native.cpu_available():
        pytest.skip("diffrep._cpu not built")
    name = device.type if backend == "native" else "reference"
    dev = device if backend == "native" else torch.device("cpu")
    q, c = torch.randn(6, 4, device=dev), torch.randn(5, 4, device=dev)

    def call(*a, **k):
        with use_backend(name):
            return K.knn_scan(*a, **k)

    bad_q = q.clone()
    bad_q[2, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        call(bad_q, c, kk=2)
    bad_c = c.clone()
    bad_c[0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite"):
        call(q, bad_c, r2=torch.ones(5, device=dev))
    with pytest.raises(ValueError, match="r2"):
        call(q, c, r2=torch.tensor([1.0, 1, 1, float("nan"), 1], device=dev))
    with pytest.raises(ValueError, match="shape"):
        call(q[0], c, kk=1)
    with pytest.raises(ValueError, match="d=4 but c has d=3"):
        call(q, c[:, :3], kk=1)
    with pytest.raises(ValueError, match="exceeds the number of points"):
        call(q, c, kk=6)
    with pytest.raises(ValueError, match=r"kk must be in \[0, 32\]"):
        call(q, torch.randn(40, 4, device=dev), kk=33)
    with pytest.raises(ValueError, match="nothing to compute"):
        call(q, c)
    with pytest.raises(ValueError, match="one squared radius per point"):
        call(q, c, r2=torch.ones(4, device=dev))
    with pytest.raises(ValueError, match="empty"):
        call(q[:0], c, kk=1)
    with pytest.raises(TypeError, match="floating-point"):
        call(q.long(), c.long(), kk=1)
    with pytest.raises(TypeError, match="kk must be an int"):
        call(q, c, kk=2.0)
    with pytest.raises(TypeError, match="strict must be a bool"):
        call(q, c, r2=torch.ones(5, device=dev), strict=1)
    with pytest.raises(ValueError, match="at least k \\+ 1"):
        K.knn_radii(q[:3], 3)
    with pytest.raises(ValueError, match="positive int"):
        K.knn_radii(q, 0)


def test_a_native_module_without_the_op_declines_to_the_twin(monkeypatch):
    class Stale:  # a module built before the knn family
        pass

    monkeypatch.setattr(_native, "cpu_module", lambda: Stale())
    q, c = torch.randn(6, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    choice = explain("knn.knn_scan", q, c, kk=2)
    assert choice.backend == "reference" and "no knn_scan" in str(choice)
    torch.testing.assert_close(K.knn_scan(q, c, kk=2)[0], torch.from_numpy(brute(q.numpy(), c.numpy(), 2)[0]))


def test_twin_outputs_when_one_part_is_not_asked():
    q, c = torch.randn(5, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    kth, cnt = ref.knn_scan(q, c, 0, torch.ones(4, dtype=torch.float64))
    assert kth is None and cnt.dtype == torch.int64
    kth, cnt = ref.knn_scan(q, c, 2)
    assert cnt is None and kth.dtype == torch.float64
