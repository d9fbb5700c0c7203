"""The lean CPU call path of the BFN flows and updates (ops/_bfn_fast.py, csrc/common/bind_ptr.h;
docs/kernels/bfn.md#performance) against the general path: the same bits, the same generator
draws, the same errors, and the general path wherever anything is unusual (autograd, forced
backends, other dtypes or layouts). Also the address bindings' own checks."""

import math

import pytest
import torch

from diffrep import _native
from diffrep.ops import _bfn_fast as F
from diffrep.ops import bfn, use_backend
from diffrep.ops.random import philox_key

pytestmark = pytest.mark.skipif(not _native.cpu_available(), reason="_cpu not built")


@pytest.fixture
def general(monkeypatch):
    """A context in which the lean path is off (the ops take their general path, native CPU kernels)."""

    class Off:
        def __enter__(self):
            monkeypatch.setattr(F, "kernel", lambda name: None)

        def __exit__(self, *exc):
            monkeypatch.undo()

    return Off()


def _both(general, fn):
    """fn() on the lean path, then on the general path: (result or exception, ...) of each."""
    out = []
    for ctx in (None, general):
        try:
            if ctx is None:
                out.append(fn())
            else:
                with ctx:
                    out.append(fn())
        except (ValueError, TypeError, RuntimeError) as e:
            out.append(e)
    return out


def _same(a, b):
    if isinstance(a, Exception) or isinstance(b, Exception):
        assert type(a) is type(b) and str(a) == str(b), (a, b)
        return
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b)
        for u, v in zip(a, b):
            _same(u, v)
        return
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert torch.equal(a, b) or (a.isnan() == b.isnan()).all() and torch.equal(a.nan_to_num(), b.nan_to_num())
        return
    assert a == b


def _data(dtype, B=3, D=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(B, D, generator=g, dtype=dtype)
    y = torch.randn(B, D, generator=g, dtype=dtype)
    rho = torch.rand(B, generator=g, dtype=dtype) + 1
    alpha = torch.rand(B, generator=g, dtype=dtype) + 0.1
    return mu, y, rho, alpha


def test_the_lean_path_runs_in_the_common_case(monkeypatch):
    """With the general preparation made to fail, the common calls still succeed: they never reach it."""
    def boom(*a, **k):
        raise AssertionError("general path taken")

    for name in ("_prep_continuous_update", "_prep_continuous_sender_update", "_prep_continuous_flow",
                 "_prep_discrete_flow", "_prep_discrete_update"):
        monkeypatch.setattr(bfn, name, boom)
    mu, y, rho, alpha = _data(torch.float32)
    bfn.continuous_update(mu, rho, y, alpha)
    bfn.continuous_update_inverse(mu, rho + alpha, y, alpha)
    bfn.continuous_sender_update(mu, rho, y, alpha)
    bfn.continuous_flow(mu, rho - 1, 1e-3)
    bfn.discrete_flow(torch.randint(0, 4, (3, 5)), rho - 1, 2.0, 4)
    theta = torch.softmax(torch.randn(3, 5, 4), -1)
    bfn.discrete_update(theta, theta)
    bfn.discrete_update(theta.log(), theta, log=True)
    bfn.discrete_update_inverse(theta, theta)
    with pytest.raises(AssertionError, match="general path"):  # autograd: the general path
        bfn.continuous_update(mu.requires_grad_(), rho, y, alpha)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("form", ["rows", "rho elements", "alpha elements", "flat"])
def test_continuous_updates_equal_the_general_path(general, dtype, form):
    mu, y, rho, alpha = _data(dtype)
    if form == "rho elements":
        rho = rho[:, None].expand_as(mu).contiguous() + 0.01 * mu.abs()
    elif form == "alpha elements":
        alpha = alpha[:, None].expand_as(mu).contiguous() + 0.01 * y.abs()
    elif form == "flat":  # 1-d data: (B,) parameters are per element
        mu, y = mu[0], y[0]
        rho, alpha = torch.full_like(mu, 1.5), torch.full_like(mu, 0.25)
    for fn in (bfn.continuous_update, bfn.continuous_update_inverse):
        a, b = _both(general, lambda: fn(mu, 3 * rho, y, alpha))  # 3 rho > alpha: a valid inverse
        _same(a, b)
        assert not isinstance(a, Exception)
    a, b = _both(general, lambda: bfn.continuous_sender_update(mu, rho, y, alpha,
                                                               torch.Generator().manual_seed(3), return_y=True))
    _same(a, b)
    a, b = _both(general, lambda: bfn.continuous_sender_update(mu, rho, y, alpha, torch.Generator().manual_seed(3)))
    _same(a, b)
    assert len(a) == 2


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_flows_equal_the_general_path_and_draw_the_same_key(general, dtype):
    mu, _, rho, _ = _data(dtype)
    t = rho - 1
    for tt in (t, t[:, None].expand_as(mu).contiguous()):
        a, b = _both(general, lambda: bfn.continuous_flow(mu, tt, 1e-3, torch.Generator().manual_seed(1)))
        _same(a, b)
    for K in (2, 5):
        x = torch.randint(0, K, (3, 5))
        for tt in (t, t[:, None].expand(3, 5).contiguous()):
            a, b = _both(general, lambda: bfn.discrete_flow(x, tt, 3.0, K, torch.Generator().manual_seed(2)))
            _same(a, b)
            assert a.dtype == dtype
    # the global generator: the same draws, and the same state afterwards
    states = []
    for ctx in (None, general):
        torch.manual_seed(7)
        if ctx is None:
            out = bfn.continuous_flow(mu, t, 1e-3)
        else:
            with ctx:
                out = bfn.continuous_flow(mu, t, 1e-3)
        states.append((out, torch.rand(1)))
    _same(states[0], states[1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("K", [2, 3, 16])
def test_discrete_updates_equal_the_general_path(general, dtype, K):
    g = torch.Generator().manual_seed(K)
    theta = torch.softmax(torch.randn(4, 6, K, generator=g, dtype=dtype) * 2, -1)
    y = torch.randn(4, 6, K, generator=g, dtype=dtype) * 3
    for fn in (bfn.discrete_update, bfn.discrete_update_inverse):
        for log, th in ((False, theta), (True, theta.log())):
            a, b = _both(general, lambda: fn(th, y, log=log))
            _same(a, b)
            assert not isinstance(a, Exception)


def _bad_cases():
    mu, y, rho, alpha = _data(torch.float32)
    nan_mu = mu.clone()
    nan_mu[1, 2] = math.nan
    t = rho - 1
    bad_t = t.clone()
    bad_t[0] = 1.5
    nan_t = t.clone()
    nan_t[2] = math.nan
    x = torch.randint(0, 4, (3, 5))
    bad_x = x.clone()
    bad_x[1, 1] = 4
    theta = torch.softmax(torch.randn(3, 5, 4), -1)
    bad_theta = theta.clone()
    bad_theta[0, 0, 0] = 1.5
    yk = torch.randn(3, 5, 4)
    inf_y = yk.clone()
    inf_y[2, 1, 3] = math.inf
    neg = rho.clone()
    neg[1] = -1.0
    zero = alpha.clone()
    zero[0] = 0.0
    return [
        lambda: bfn.continuous_update(nan_mu, rho, y, alpha),
        lambda: bfn.continuous_update(mu, neg, y, alpha),
        lambda: bfn.continuous_update(mu, rho, y, -alpha),
        lambda: bfn.continuous_update(mu, rho, y, zero * math.inf),
        lambda: bfn.continuous_update_inverse(mu, rho, y, rho + 1),
        lambda: bfn.continuous_update_inverse(mu, rho, nan_mu, alpha),
        lambda: bfn.continuous_sender_update(mu, rho, y, zero),
        lambda: bfn.continuous_sender_update(mu, neg, y, alpha),
        lambda: bfn.continuous_sender_update(mu, rho, nan_mu, alpha),
        lambda: bfn.continuous_sender_update(mu, rho, y, alpha, generator=3),
        lambda: bfn.continuous_flow(mu, bad_t, 1e-3),
        lambda: bfn.continuous_flow(mu, nan_t, 1e-3),
        lambda: bfn.continuous_flow(nan_mu, t, 1e-3),
        lambda: bfn.continuous_flow(mu, t, 1.5),
        lambda: bfn.continuous_flow(mu, t, -1e-3),
        lambda: bfn.continuous_flow(mu, t, 1e-3, generator="g"),
        lambda: bfn.discrete_flow(bad_x, t, 2.0, 4),
        lambda: bfn.discrete_flow(x, bad_t, 2.0, 4),
        lambda: bfn.discrete_flow(x, t, -2.0, 4),
        lambda: bfn.discrete_flow(x, t, 2.0, 1),
        lambda: bfn.discrete_flow(x, t, 2.0, 4.0),
        lambda: bfn.discrete_update(bad_theta, yk),
        lambda: bfn.discrete_update(theta, inf_y),
        lambda: bfn.discrete_update(torch.zeros_like(theta), yk),
        lambda: bfn.discrete_update(theta.log() + 1, yk, log=True),
        lambda: bfn.discrete_update_inverse(theta, inf_y, log=True),
        # pairs the lean path must leave to the general path's checks: one element count in another shape
        # (else the kernel would read y in mu's layout), empty data
        lambda: bfn.continuous_update(mu, rho, y.reshape(5, 3), alpha),
        lambda: bfn.continuous_update(mu[:0], rho[:0], y[:0], alpha[:0]),
        lambda: bfn.discrete_update(theta, yk.reshape(5, 3, 4)),
        lambda: bfn.continuous_update(mu, torch.ones(3, 2), y, alpha),  # neither (B,) nor mu's shape
    ]


@pytest.mark.parametrize("case", range(len(_bad_cases())))
def test_errors_are_those_of_the_general_path(general, case):
    fn = _bad_cases()[case]
    states = []
    results = []
    for ctx in (None, general):
        torch.manual_seed(11)
        try:
            if ctx is None:
                fn()
            else:
                with ctx:
                    fn()
            results.append(None)
        except (ValueError, TypeError) as e:
            results.append(e)
        states.append(torch.get_rng_state())
    assert isinstance(results[0], Exception), "the bad call did not raise"
    _same(results[0], results[1])
    assert torch.equal(states[0], states[1])  # the same draws from the generator before the error


def test_mixed_dtypes_are_promoted_as_on_the_general_path(general):
    mu, y, rho, alpha = _data(torch.float32)
    theta, yk = torch.softmax(torch.randn(3, 5, 4), -1), torch.randn(3, 5, 4)
    for fn in (lambda: bfn.continuous_update(mu, rho, y.double(), alpha),
               lambda: bfn.discrete_update(theta, yk.double())):
        lean, slow = _both(general, fn)
        assert not isinstance(lean, Exception)
        _same(lean, slow)
        assert (lean[0] if isinstance(lean, tuple) else lean).dtype == torch.float64


def test_forced_backends_and_the_environment_bypass_the_lean_path(monkeypatch):
    assert F.kernel("cts_update") is not None
    for backend in ("reference", "cpu"):
        with use_backend(backend):
            assert F.kernel("cts_update") is None
    for value in ("reference", "cpu", "auto", ""):
        monkeypatch.setenv("DIFFREP_BACKEND", value)
        assert F.kernel("cts_update") is None
    monkeypatch.delenv("DIFFREP_BACKEND")
    assert F.kernel("cts_update") is not None
    # forced reference: the twin's values (which differ from the kernel's in the last bits or not at all)
    mu, y, rho, alpha = _data(torch.float64)
    monkeypatch.setenv("DIFFREP_BACKEND", "reference")
    with pytest.raises(ValueError, match="rho - alpha must be > 0"):
        bfn.continuous_update_inverse(mu, rho, y, rho + 1)  # the reference path's own message
    monkeypatch.setenv("DIFFREP_BACKEND", "cuda")
    with use_backend("cuda", strict=True), pytest.raises(RuntimeError, match="forced but the tensors are on 'cpu'"):
        bfn.continuous_update(mu, rho, y, alpha)


def test_autograd_and_unusual_inputs_take_the_general_path():
    mu, y, rho, alpha = _data(torch.float64)
    mu.requires_grad_()
    out, new_rho = bfn.continuous_update(mu, rho, y, alpha)
    out.sum().backward()  # the reference path with autograd: d mu' / d mu = rho / (rho + alpha)
    torch.testing.assert_close(mu.grad, (rho / (rho + alpha))[:, None].expand_as(mu))
    torch.testing.assert_close(new_rho, rho + alpha)
    mu = mu.detach()
    with torch.no_grad():  # requires_grad without grad mode: the kernel, on the general path
        out2, _ = bfn.continuous_update(mu.clone().requires_grad_(), rho, y, alpha)
    torch.testing.assert_close(out2, out.detach())
    # non-contiguous, mixed dtypes and number parameters: converted on the general path
    torch.testing.assert_close(bfn.continuous_update(mu.t().contiguous().t(), rho, y, alpha)[0], out.detach())
    torch.testing.assert_close(bfn.continuous_update(mu.float(), rho, y.float(), alpha)[0], out.detach().float())
    out3, r3 = bfn.continuous_update(mu, 1.5, y, 0.25)
    torch.testing.assert_close(out3, (1.5 * mu + 0.25 * y) / 1.75)
    assert r3 == 1.75
    neg = torch._neg_view(mu)  # a tensor whose negation is a bit, not stored: never handed over by address
    assert F.pair(neg, y) is None
    with pytest.raises(RuntimeError, match="negative bit"):  # the general path's numpy view refuses it
        bfn.continuous_update(neg, rho, y, alpha)


def test_philox_key_is_randint():
    for gen in (None, torch.Generator().manual_seed(5)):
        torch.manual_seed(9)
        g2 = None if gen is None else torch.Generator().manual_seed(5)
        keys = [philox_key(gen) for _ in range(5)]
        after = torch.rand(2, generator=gen)
        torch.manual_seed(9)
        want = [(int(torch.randint(-(2**63), 2**63 - 1, (1,), generator=g2, dtype=torch.int64).item()) & (2**64 - 1), 0)
                for _ in range(5)]
        assert keys == want
        assert torch.equal(after, torch.rand(2, generator=g2))
    with torch.inference_mode():
        philox_key()
    philox_key()  # the reused word is not an inference tensor


def test_address_bindings_check_counts_dtypes_and_addresses():
    cpu = _native.cpu_module()
    mu = torch.randn(2, 3)
    out = torch.empty_like(mu)
    rho = torch.ones(2)

    def call(mu_n=6, mu_dt=0, out_addr=None, abi=F.ABI, rho_n=2, row_len=3, y_n=6):
        return cpu.cts_update_addr(abi, mu.data_ptr(), mu_n, mu_dt, rho.data_ptr(), rho_n, 0, True, rho.data_ptr(),
                                   rho_n, 0, True, row_len, mu.data_ptr(), y_n, 0, False,
                                   out.data_ptr() if out_addr is None else out_addr, 6, 0)

    assert call() == 0
    torch.testing.assert_close(out, mu)  # (rho mu + alpha mu) / (rho + alpha)
    with pytest.raises(ValueError, match="y: expected 6 elements, got 5"):
        call(y_n=5)
    with pytest.raises(ValueError, match="rho: expected 2 elements, got 3"):
        call(rho_n=3)
    with pytest.raises(ValueError, match="row_len"):
        call(row_len=4)
    with pytest.raises(TypeError, match="unexpected dtype"):
        cpu.cts_update_addr(F.ABI, mu.data_ptr(), 6, 1, rho.data_ptr(), 2, 0, True, rho.data_ptr(), 2, 0, True, 3,
                            mu.data_ptr(), 6, 0, False, out.data_ptr(), 6, 0)  # float64 code, float32 others
    with pytest.raises(TypeError, match="unknown dtype code"):
        call(mu_dt=7)
    with pytest.raises(ValueError, match="out: address 0"):
        call(out_addr=0)
    with pytest.raises(ValueError, match="negative element count"):
        call(mu_n=-1)
    with pytest.raises(ValueError, match="layout version"):
        call(abi=F.ABI + 1)
    # an optional array (noise) given as None: address 0 and count 0 only
    x = torch.randn(2, 3)
    t = torch.rand(2)
    assert cpu.cts_flow_addr(F.ABI, x.data_ptr(), 6, 0, t.data_ptr(), 2, 0, True, 3, -1.0, 0, 0, 0, 1, 0,
                             out.data_ptr(), 6, 0) == 0
    with pytest.raises(ValueError, match="noise: address 0 with a non-zero count"):
        cpu.cts_flow_addr(F.ABI, x.data_ptr(), 6, 0, t.data_ptr(), 2, 0, True, 3, -1.0, 0, 6, 0, 1, 0,
                          out.data_ptr(), 6, 0)
