"""Native BFN kernels against their pure-PyTorch twins: values, random streams and gradients."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffrep.ops import bfn, explain, use_backend
from diffrep.ops.reference import bfn as ref

from helpers import assert_as_accurate_as_twin, native_and_twin
from helpers import uniform as rand

TOL = {torch.float32: dict(rtol=2e-5, atol=2e-6), torch.float64: dict(rtol=1e-12, atol=1e-12)}
dtypes = st.sampled_from([torch.float32, torch.float64])
shapes = st.tuples(st.integers(1, 5), st.integers(1, 7), st.integers(1, 3))


def t_for(shape, per_row, dtype, device, seed=1):
    return rand(shape[:1] if per_row else shape, dtype, device, 0.0, 1.0, seed)


@settings(max_examples=25, deadline=None)
@given(shape=shapes, dtype=dtypes, per_row=st.booleans(), inject=st.booleans(),
       sigma1=st.sampled_from([1e-3, 0.0316, 0.5]))
def test_continuous_flow_matches_twin(device, shape, dtype, per_row, inject, sigma1):
    x = rand(shape, dtype, device, seed=1234)
    t = t_for(shape, per_row, dtype, device, seed=1234)
    noise = rand(shape, dtype, device, seed=3) if inject else None
    a, b = native_and_twin(lambda g: bfn.continuous_flow(x, t, sigma1, g, noise=noise), device, seed=1234)
    torch.testing.assert_close(a, b, **TOL[dtype])


@settings(max_examples=25, deadline=None)
@given(shape=shapes, dtype=dtypes, per_row=st.booleans(), inject=st.booleans(),
       K=st.sampled_from([2, 3, 16]), beta1=st.sampled_from([0.5625, 3.0, 9.0]))
def test_discrete_flow_matches_twin(device, shape, dtype, per_row, inject, K, beta1):
    x = torch.randint(0, K, shape, generator=torch.Generator().manual_seed(5)).to(device)
    t = t_for(shape, per_row, dtype, device, seed=1234)
    noise = rand((*shape, K), dtype, device, seed=3) if inject else None
    a, b = native_and_twin(lambda g: bfn.discrete_flow(x, t, beta1, K, g, noise=noise, dtype=dtype), device, seed=1234)
    torch.testing.assert_close(a, b, **TOL[dtype])
    torch.testing.assert_close(a.sum(-1), torch.ones(shape, dtype=dtype, device=device), **TOL[dtype])


@settings(max_examples=25, deadline=None)
@given(shape=shapes, dtype=dtypes, rho_row=st.booleans(), alpha_row=st.booleans(), inverse=st.booleans())
def test_continuous_update_matches_twin(device, shape, dtype, rho_row, alpha_row, inverse):
    mu, y = rand(shape, dtype, device), rand(shape, dtype, device, -3, 3, seed=2)
    alpha = rand(shape[:1] if alpha_row else shape, dtype, device, 0.1, 2.0, seed=4)
    rho = rand(shape[:1] if rho_row else shape, dtype, device, 1.0, 3.0, seed=5)
    if inverse:
        rho = rho + (alpha if alpha_row == rho_row else alpha.max())
    fn = bfn.continuous_update_inverse if inverse else bfn.continuous_update
    (a, ra), (b, rb) = native_and_twin(lambda g: fn(mu, rho, y, alpha), device, seed=1234)
    torch.testing.assert_close(a, b, **TOL[dtype])
    torch.testing.assert_close(ra, rb)


@settings(max_examples=25, deadline=None)
@given(shape=shapes, dtype=dtypes, K=st.sampled_from([2, 5, 16, 27]), inverse=st.booleans(), log=st.booleans())
def test_discrete_update_matches_twin(device, shape, dtype, K, inverse, log):
    theta = torch.softmax(rand((*shape, K), dtype, device, -4, 4), -1)
    if log:
        theta = theta.log()
    y = rand((*shape, K), dtype, device, -20, 20, seed=7)
    fn = bfn.discrete_update_inverse if inverse else bfn.discrete_update
    a, b = native_and_twin(lambda g: fn(theta, y, log=log), device, seed=1234)
    torch.testing.assert_close(a, b, **TOL[dtype])


@settings(max_examples=20, deadline=None)
@given(shape=shapes, dtype=dtypes, alpha_row=st.booleans(), inject=st.booleans())
def test_continuous_sender_update_matches_twin(device, shape, dtype, alpha_row, inject):
    mu, x = rand(shape, dtype, device), rand(shape, dtype, device, seed=9)
    alpha = rand(shape[:1] if alpha_row else shape, dtype, device, 0.1, 2.0, seed=4)
    noise = rand(shape, dtype, device, seed=3) if inject else None
    (a, ra, ya), (b, rb, yb) = native_and_twin(
        lambda g: bfn.continuous_sender_update(mu, 1.0, x, alpha, g, noise=noise, return_y=True), device, seed=1234)
    torch.testing.assert_close(ya, yb, **TOL[dtype])
    torch.testing.assert_close(a, b, **TOL[dtype])
    # the drawn y is exactly the y the update used
    torch.testing.assert_close(a, bfn.continuous_update(mu, 1.0, ya, alpha)[0], **TOL[dtype])


@settings(max_examples=20, deadline=None)
@given(shape=shapes, dtype=dtypes, K=st.sampled_from([2, 4, 16]), log=st.booleans(), inject=st.booleans())
def test_discrete_sender_update_matches_twin(device, shape, dtype, K, log, inject):
    theta = torch.softmax(rand((*shape, K), dtype, device, -2, 2), -1)
    theta = theta.log() if log else theta
    x = torch.randint(0, K, shape, generator=torch.Generator().manual_seed(2)).to(device)
    alpha = rand(shape[:1], dtype, device, 0.1, 3.0, seed=4)
    noise = rand((*shape, K), dtype, device, seed=3) if inject else None
    (a, ya), (b, yb) = native_and_twin(
        lambda g: bfn.discrete_sender_update(theta, x, alpha, g, log=log, noise=noise, return_y=True), device, seed=1234)
    torch.testing.assert_close(ya, yb, **TOL[dtype])
    torch.testing.assert_close(a, b, **TOL[dtype])


@settings(max_examples=25, deadline=None)
@given(shape=shapes, dtype=dtypes, K=st.sampled_from([2, 16, 256]), clip=st.booleans())
def test_discretised_probs_matches_twin_with_grad(device, shape, dtype, K, clip):
    mu = rand(shape, dtype, device, -1.5, 1.5).requires_grad_()
    sigma = rand(shape, dtype, device, 1e-3, 2.0, seed=6).requires_grad_()
    w = rand((*shape, K), dtype, device, seed=8)
    def probs_and_grads():
        p = bfn.discretised_probs(mu, sigma, K, clip)
        return (p.detach(), *torch.autograd.grad((p * w).sum(), (mu, sigma)))

    native, twin = native_and_twin(probs_and_grads, device, strict=False)
    if dtype == torch.float32:
        # The native CPU backward runs in double (docs/kernels/bfn.md#performance): with clip=False its
        # two terms nearly cancel when the mass sits beyond an edge, where the float32 twin is off by
        # up to ~4e-4 relative; compare against the twin in float64.
        mu64, sigma64 = mu.detach().double().requires_grad_(), sigma.detach().double().requires_grad_()
        with use_backend("reference"):
            p64 = bfn.discretised_probs(mu64, sigma64, K, clip)
            twin = (p64.detach(), *torch.autograd.grad((p64 * w.double()).sum(), (mu64, sigma64)))
        twin = [v.float() for v in twin]  # the CUDA backward runs in double too (bfn_math.h disc_probs_backward_f64)
    for a, b in zip(native, twin):
        torch.testing.assert_close(a, b, rtol=1e-4 if dtype == torch.float32 else 1e-10,
                                   atol=1e-5 if dtype == torch.float32 else 1e-10)


@settings(max_examples=25, deadline=None)
@given(shape=shapes, dtype=dtypes, K=st.sampled_from([2, 16, 256]), clip=st.booleans(), noise_pred=st.booleans(),
       per_row=st.booleans(), sigma1=st.sampled_from([1e-3, 0.0316]), min_loss_variance=st.sampled_from([-1.0, 1e-4]))
def test_discretised_continuous_time_loss_matches_twin_with_grad(device, shape, dtype, K, clip, noise_pred, per_row,
                                                                 sigma1, min_loss_variance):
    eps = rand(shape, dtype, device, -2, 2)
    log_sigma = rand(shape, dtype, device, -4, 1, seed=2)
    x = ref.quantize(rand(shape, dtype, device, seed=3), K)
    t = t_for(shape, per_row, dtype, device).clamp(min=0.05)
    mu = bfn.continuous_flow(x, t, sigma1, torch.Generator().manual_seed(0))
    results = []
    for backend, dt in ((device.type, dtype), ("reference", dtype), ("reference", torch.float64)):
        e, s = eps.to(dt).requires_grad_(), log_sigma.to(dt).requires_grad_()
        with use_backend(backend):
            loss = bfn.discretised_continuous_time_loss(e, s, mu.to(dt), t.to(dt), x.to(dt), sigma1, K, clip,
                                                        noise_pred, min_loss_variance)
            grads = torch.autograd.grad(loss.sum(), (e, s))
        results.append((loss.detach(), *grads))
    for native, twin, truth in zip(*results):
        # float32: the kernel's polynomial erf (|err| <= 1.5e-7) summed over K - 1 boundaries and scaled
        # by weights up to 1e6 stays within 3e-5 of the loss scale
        assert_as_accurate_as_twin(native, twin, truth, dtype, atol=3e-5)


@settings(max_examples=25, deadline=None)
@given(shape=shapes, dtype=dtypes, K=st.sampled_from([1, 2, 5, 27]), per_row=st.booleans())
def test_discrete_continuous_time_loss_matches_twin_with_grad(device, shape, dtype, K, per_row):
    logits = rand((*shape, K), dtype, device, -5, 5)
    classes = max(K, 2)
    x = torch.randint(0, classes, shape, generator=torch.Generator().manual_seed(1)).to(device)
    t = t_for(shape, per_row, dtype, device, seed=1234)
    results = []
    for backend, dt in ((device.type, dtype), ("reference", dtype), ("reference", torch.float64)):
        lg = logits.to(dt).requires_grad_()
        with use_backend(backend):
            loss = bfn.discrete_continuous_time_loss(lg, x, t.to(dt), 9.0)
            (grad,) = torch.autograd.grad(loss.sum(), lg)
        results.append((loss.detach(), grad))
    for native, twin, truth in zip(*results):
        assert_as_accurate_as_twin(native, twin, truth, dtype, atol=1e-6)


def test_native_is_chosen_for_native_arguments(device):
    x, t = torch.zeros(2, 3, device=device), torch.zeros(2, device=device)  # t on x's device (else an error)
    assert explain("bfn.continuous_flow", x, t, 1e-3).backend == device.type
    choice = explain("bfn.continuous_flow", x.requires_grad_(), t, 1e-3)
    assert choice.backend == "reference"
    assert any("autograd" in r for r in choice.skipped[device.type])


def test_forced_reference_is_explained(monkeypatch):
    monkeypatch.setenv("DIFFREP_BACKEND", "reference")
    choice = explain("bfn.discretised_probs", torch.zeros(3), torch.ones(3), 4)
    assert choice.backend == "reference"
    assert "forces the reference" in str(choice)


def test_gradcheck_native_ops():
    """float64 gradcheck of the native backward kernels (float32 is compared with the twin above)."""
    dtype = torch.float64
    g = torch.Generator().manual_seed(0)
    mu = (torch.rand(3, 4, generator=g, dtype=dtype) * 2 - 1).requires_grad_()
    sigma = (torch.rand(3, 4, generator=g, dtype=dtype) + 0.2).requires_grad_()
    for clip in (True, False):
        assert torch.autograd.gradcheck(lambda m, s: bfn.discretised_probs(m, s, 8, clip), (mu, sigma))
    x = ref.quantize(torch.rand(3, 4, generator=g, dtype=dtype) * 2 - 1, 16)
    t = torch.rand(3, generator=g, dtype=dtype) * 0.8 + 0.1
    # sigma1 = 0.1 keeps the loss O(1): at 1e-3 its weight reaches 1e6 and finite differences lose
    # the digits gradcheck needs (the twin comparison above covers sigma1 = 1e-3).
    flow = bfn.continuous_flow(x, t, 0.1, g)
    eps = torch.randn(3, 4, generator=g, dtype=dtype).requires_grad_()
    ls = (torch.rand(3, 4, generator=g, dtype=dtype) - 2).requires_grad_()
    for clip in (True, False):
        for noise_pred in (True, False):
            assert torch.autograd.gradcheck(
                lambda e, s: bfn.discretised_continuous_time_loss(e, s, flow, t, x, 0.1, 16, clip, noise_pred),
                (eps, ls))
    logits = torch.randn(3, 4, 5, generator=g, dtype=dtype, requires_grad=True)
    classes = torch.randint(0, 5, (3, 4), generator=g)
    assert torch.autograd.gradcheck(lambda lg: bfn.discrete_continuous_time_loss(lg, classes, t, 3.0), (logits,))


def test_double_backward_is_refused_not_wrong():
    mu = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    sigma = torch.ones(2, 3, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(bfn.discretised_probs(mu, sigma, 4)[..., 0].sum(), mu, create_graph=True)
    with pytest.raises(RuntimeError):
        g.sum().backward()


def test_fused_loss_equals_probs_then_mean_path():
    """The Abel-summed x_hat equals sum_k p_k k_c from the explicit bin tensor."""
    g = torch.Generator().manual_seed(3)
    mu = torch.randn(64, generator=g, dtype=torch.float64)
    sigma = torch.rand(64, generator=g, dtype=torch.float64) * 2 + 1e-3
    for K in (2, 16, 256):
        for clip in (True, False):
            c = ref.bin_centres(K)
            explicit = (bfn.discretised_probs(mu, sigma, K, clip) * c).sum(-1)
            torch.testing.assert_close(ref.discretised_mean(mu, sigma, K, clip), explicit, rtol=1e-12, atol=1e-12)
            x = torch.zeros(64, dtype=torch.float64)
            loss = bfn.discretised_continuous_time_loss(mu, sigma.log(), None, torch.ones(64, dtype=torch.float64),
                                                        x, 0.5, K, clip, noise_pred=False)
            expected = -math.log(0.5) / 0.25 * explicit.square()
            within = (sigma >= 1e-3) & (sigma <= 10)
            torch.testing.assert_close(loss[within], expected[within], rtol=1e-10, atol=1e-12)
