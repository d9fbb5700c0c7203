"""Fused MMD^2 against its cdist twin: values, gradients, estimator semantics, conventions and
bad inputs (docs/kernels/mmd.md)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffrep.ops import explain, mmd, use_backend
from diffrep.ops.reference import mmd as ref

from helpers import native_and_twin
from helpers import randn as rand

CASES = [(k, e) for k in ("rbf", "imq") for e in ("biased", "unbiased")]


def term_scale(x, y, kernel, scales, weights, estimator):
    """The size of the Gram sums that MMD^2 is a difference of (for float32 tolerances)."""
    w = sum(abs(v) for v in (weights or [1.0] * len(scales)))
    return 2.0 * w


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 40), m=st.integers(2, 40), d=st.sampled_from([1, 3, 8, 17, 32, 64]),
       case=st.sampled_from(CASES), multi=st.booleans(), dtype=st.sampled_from([torch.float32, torch.float64]),
       shift=st.sampled_from([0.0, 0.5, 3.0]), grad=st.sampled_from(["none", "x", "both"]))
def test_native_matches_twin(device, n, m, d, case, multi, dtype, shift, grad):
    kernel, estimator = case
    scales = [d * s for s in (0.1, 1.0, 10.0)] if multi else None
    x = rand((n, d), dtype, device, 1).requires_grad_(grad != "none")
    y = (rand((m, d), dtype, device, 2) + shift).requires_grad_(grad == "both")
    kw = dict(kernel=kernel, scales=scales, estimator=estimator)
    a, b = native_and_twin(lambda: mmd.mmd2(x, y, **kw), device)
    x64, y64 = x.detach().double().requires_grad_(), y.detach().double().requires_grad_()
    with use_backend("reference"):
        truth = mmd.mmd2(x64, y64, **kw)
    if dtype == torch.float64:
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-13)
    else:
        bound = 4 * abs(b.double() - truth).item() + 2e-6 * term_scale(x, y, kernel, scales or [1], None, estimator)
        assert abs(a.double() - truth).item() <= bound
    if grad != "none":
        inputs = (x, y) if grad == "both" else (x,)
        ga = torch.autograd.grad(a, inputs)
        gb = torch.autograd.grad(b, inputs)
        for u, v in zip(ga, gb):
            tol = dict(rtol=1e-9, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(u, v, **tol)


GRADCHECK_SIZES = [(1, 2, 1), (2, 5, 3), (5, 1, 32), (17, 17, 3)]


@pytest.mark.parametrize("kernel,estimator,n,m,d", [
    (kernel, estimator, n, m, d) for kernel, estimator in CASES for n, m, d in GRADCHECK_SIZES
    if estimator == "biased" or min(n, m) >= 2  # the unbiased estimator needs two samples per set
])
def test_gradcheck(device, kernel, estimator, n, m, d):
    x = rand((n, d), device=device, seed=3).requires_grad_()
    y = rand((m, d), device=device, seed=4).requires_grad_()
    with use_backend(device.type, strict=True):
        assert torch.autograd.gradcheck(
            lambda a, b: mmd.mmd2(a, b, kernel, scales=[0.3 * d, 2.0 * d], estimator=estimator), (x, y))


def test_biased_identical_sets_is_exactly_zero(device):
    for dtype in (torch.float32, torch.float64):
        x = rand((37, 5), dtype, device)
        for kernel in ("rbf", "imq"):
            with use_backend(device.type, strict=True):
                assert mmd.mmd2(x, x.clone(), kernel).item() == 0.0


def test_unbiased_identical_sets_closed_form(device):
    """With y = x the unbiased estimate is 2 O/(N(N - 1)) - 2 (O + N k(0))/N^2 (O: the off-diagonal
    Gram sum), which is negative; for independent draws of one distribution it is 0 in expectation."""
    x = rand((30, 4), device=device)
    n = 30
    k = ref.kernel_from_sq_dist(ref.sq_dist(x, x), "rbf", [16.0], [1.0])
    off = k.sum() - k.diagonal().sum()
    closed = 2 * off / (n * (n - 1)) - 2 * (off + n) / n**2
    with use_backend(device.type, strict=True):
        v = mmd.mmd2(x, x, estimator="unbiased")
    torch.testing.assert_close(v, closed, rtol=1e-12, atol=1e-14)
    assert v < 0
    # zero in expectation: average over independent same-distribution pairs
    vals = [mmd.mmd2(rand((20, 3), device=device, seed=s), rand((20, 3), device=device, seed=100 + s),
                     estimator="unbiased").item() for s in range(200)]
    mean, se = sum(vals) / len(vals), torch.tensor(vals).std().item() / math.sqrt(len(vals))
    assert abs(mean) < 4 * se


def test_infovae_convention(device):
    """InfoVAE compute_kernel: exp(-mean_d (x - y)^2 / d), biased mean of the three Grams."""
    x, y = rand((20, 6), device=device, seed=5), rand((25, 6), device=device, seed=6)

    def k(a, b):
        return torch.exp(-((a[:, None] - b[None]) ** 2).mean(2) / a.shape[1])

    expect = k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()
    with use_backend(device.type, strict=True):
        torch.testing.assert_close(mmd.mmd2(x, y), expect, rtol=1e-12, atol=1e-14)


def test_wae_convention(device):
    """WAE mmd_penalty (IMQ): sum over C in C_base * {.1,...,10}; off-diagonal within-set means, full cross mean."""
    n, d = 16, 8
    x, y = rand((n, d), device=device, seed=7), rand((n, d), device=device, seed=8)
    r = lambda a, b: ((a[:, None] - b[None]) ** 2).sum(2)  # noqa: E731
    eye = torch.eye(n, dtype=x.dtype, device=device)
    stat = 0.0
    for c in mmd.wae_imq_scales(d):
        kxx, kyy, kxy = c / (c + r(x, x)), c / (c + r(y, y)), c / (c + r(x, y))
        stat = stat + ((kxx + kyy) * (1 - eye)).sum() / (n * n - n) - 2 * kxy.sum() / (n * n)
    with use_backend(device.type, strict=True):
        torch.testing.assert_close(mmd.mmd2(x, y, "imq", scales=mmd.wae_imq_scales(d), estimator="unbiased"), stat,
                                   rtol=1e-12, atol=1e-14)


def test_torch_two_sample_convention(device):
    """torch-two-sample MMDStatistic: sum_j exp(-alpha_j r^2), unbiased; h = 1/alpha."""
    x, y = rand((12, 3), device=device, seed=9), rand((15, 3), device=device, seed=10)
    alphas = [0.5, 2.0]
    r2 = ref.sq_dist(torch.cat([x, y]), torch.cat([x, y]))
    k = sum(torch.exp(-a * r2) for a in alphas)
    n, m = 12, 15
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    expect = ((kxx.sum() - kxx.trace()) / (n * (n - 1)) + (kyy.sum() - kyy.trace()) / (m * (m - 1))
              - 2 * kxy.sum() / (n * m))
    with use_backend(device.type, strict=True):
        torch.testing.assert_close(mmd.mmd2(x, y, scales=[1 / a for a in alphas], estimator="unbiased"), expect,
                                   rtol=1e-12, atol=1e-14)


def test_weights_and_bandwidth(device):
    x, y = rand((9, 4), device=device, seed=11), rand((7, 4), device=device, seed=12)
    with use_backend(device.type, strict=True):
        a = mmd.mmd2(x, y, scales=[2.0, 8.0], weights=[0.25, 3.0])
        b = 0.25 * mmd.mmd2(x, y, bandwidth=2.0) + 3.0 * mmd.mmd2(x, y, bandwidth=torch.tensor(8.0))
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    h = mmd.median_bandwidth(x, y)
    assert h > 0 and math.isfinite(h)


def test_deterministic_and_no_nm_memory(device):
    x, y = rand((300, 16), torch.float32, device, 1), rand((200, 16), torch.float32, device, 2)
    x.requires_grad_()
    with use_backend(device.type, strict=True):
        a = mmd.mmd2(x, y)
        ga, = torch.autograd.grad(a, x)
        b = mmd.mmd2(x, y)
        gb, = torch.autograd.grad(b, x)
    assert a.item() == b.item() and torch.equal(ga, gb)


def test_high_dim_and_many_scales_fall_back(device):
    x, y = rand((5, 65), device=device), rand((6, 65), device=device, seed=1)
    assert explain("mmd.mmd2", x, y).backend == "reference"
    assert "d=65 > 64" in str(explain("mmd.mmd2", x, y))
    x2 = rand((5, 3), device=device)
    assert explain("mmd.mmd2", x2, x2, scales=[1.0] * 17).backend == "reference"
    torch.testing.assert_close(mmd.mmd2(x, y), ref.mmd2(x, y, "rbf", [65.0**2]))


def test_bad_inputs(device):
    x, y = rand((5, 3), device=device), rand((6, 3), device=device, seed=1)
    with pytest.raises(ValueError, match="unbiased"):
        mmd.mmd2(x[:1], y, estimator="unbiased")
    with pytest.raises(ValueError, match="d=3 but y has d=4"):
        mmd.mmd2(x, rand((6, 4), device=device))
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="bandwidth"):
            mmd.mmd2(x, y, bandwidth=bad)
        with pytest.raises(ValueError, match="scales"):
            mmd.mmd2(x, y, "imq", scales=[1.0, bad])
    with pytest.raises(ValueError, match="not both"):
        mmd.mmd2(x, y, bandwidth=1.0, scales=[1.0])
    with pytest.raises(ValueError, match="weights"):
        mmd.mmd2(x, y, scales=[1.0, 2.0], weights=[1.0])
    with pytest.raises(ValueError, match="kernel"):
        mmd.mmd2(x, y, kernel="laplace")
    with pytest.raises(ValueError, match="estimator"):
        mmd.mmd2(x, y, estimator="linear")
    with pytest.raises(ValueError, match="shape"):
        mmd.mmd2(x[0], y)
    with pytest.raises(ValueError, match="empty"):
        mmd.mmd2(x[:0], y)
    with pytest.raises(TypeError, match="x must be a floating-point"):
        mmd.mmd2(x.long(), y)
    with pytest.raises(TypeError, match="y must be a torch.Tensor"):
        mmd.mmd2(x, y.tolist())
    xn = x.clone()
    xn[2, 1] = math.nan
    for backend in (device.type, "reference"):
        with use_backend(backend), pytest.raises(ValueError, match="NaN"):
            mmd.mmd2(xn, y)


def test_native_boundary_rejects_bad_sizes():
    """The binding itself checks every size the kernel indexes (no out-of-bounds reads)."""
    import diffrep

    cpu = diffrep._native.cpu_module()
    x, y = torch.randn(4, 3), torch.randn(5, 3)
    rows, loss, flags = torch.empty(18, dtype=torch.float64), torch.empty(1), torch.zeros(1, dtype=torch.int32)
    launch = dict(flags=flags, device=-1, stream=0)

    def mmd2(x, y, d, kind, scales, weights, unbiased, want_grad, rows, loss, gx, gy):
        cpu.mmd2(x=x, y=y, d=d, kind=kind, scales=scales, weights=weights, unbiased=unbiased, want_grad=want_grad,
                 rows=rows, loss=loss, gx=gx, gy=gy, **launch)

    mmd2(x, y, 3, 0, [1.0], [1.0], False, False, rows, loss, None, None)
    with pytest.raises(ValueError, match="rows"):
        mmd2(x, y, 3, 0, [1.0], [1.0], False, False, rows[:10], loss, None, None)
    with pytest.raises(ValueError, match="gx"):
        mmd2(x, y, 3, 0, [1.0], [1.0], False, True, rows, loss, loss, torch.empty(15))
    with pytest.raises(ValueError):
        mmd2(x, y, 4, 0, [1.0], [1.0], False, False, rows, loss, None, None)
    with pytest.raises(ValueError, match="scale"):
        mmd2(x, y, 3, 0, [-1.0], [1.0], False, False, rows, loss, None, None)
    with pytest.raises(ValueError, match="scales"):
        mmd2(x, y, 3, 0, [1.0] * 17, [1.0] * 17, False, False, rows, loss, None, None)
    with pytest.raises(TypeError):
        mmd2(x.double(), y, 3, 0, [1.0], [1.0], False, False, rows, loss, None, None)
    with pytest.raises(TypeError):
        mmd2(x.t(), y, 3, 0, [1.0], [1.0], False, False, rows, loss, None, None)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 9), m=st.integers(1, 9), d=st.integers(1, 70), kind=st.integers(-1, 2),
       unbiased=st.booleans(), grad=st.booleans(), rows_len=st.integers(0, 40))
def test_fuzz_native_boundary(n, m, d, kind, unbiased, grad, rows_len):
    """Arbitrary sizes at the binding either run or raise ValueError/TypeError; never crash."""
    import diffrep

    cpu = diffrep._native.cpu_module()
    x, y = torch.randn(n, 3), torch.randn(m, 3)
    rows, loss = torch.empty(rows_len, dtype=torch.float64), torch.empty(1)
    gx, gy = torch.empty(n * 3), torch.empty(m * 3)
    try:
        cpu.mmd2(x=x, y=y, d=d, kind=kind, scales=[1.0], weights=[1.0], unbiased=unbiased, want_grad=grad, rows=rows,
                 loss=loss, gx=gx, gy=gy, flags=torch.zeros(1, dtype=torch.int32), device=-1, stream=0)
    except (ValueError, TypeError):
        return
    # x and y cross as flat arrays of rows of d values: any d dividing both sizes is valid (d = 1: 3n and 3m rows)
    assert kind in (0, 1) and (3 * n) % d == 0 and (3 * m) % d == 0 and rows_len == 2 * (3 * n // d + 3 * m // d)
