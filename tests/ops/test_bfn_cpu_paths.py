"""The CPU kernels' fast paths (docs/kernels/bfn.md#performance) against independent float64
computations: the probability-space discrete update and its log-space fallback, the K = 2
straight-line bodies, and the precision checks the continuous updates now run in the kernel."""

import math

import pytest
import torch

from diffrep import _native
from diffrep.ops import bfn, use_backend

from helpers import assert_as_accurate_as_twin, native_and_twin

pytestmark = pytest.mark.skipif(not _native.cpu_available(), reason="_cpu not built")


def _update64(theta, y, sign=1.0):
    """theta e^(sign y) / sum in float64 through log space (the independent truth)."""
    l = theta.double().log() + sign * y.double()
    return torch.softmax(l, -1)


@pytest.mark.parametrize("K", [2, 3, 16, 256])
def test_discrete_update_probability_space_matches_float64(K):
    g = torch.Generator().manual_seed(K)
    theta = torch.softmax(torch.randn(64, K, generator=g, dtype=torch.float64) * 3, -1).float()
    y = torch.randn(64, K, generator=g) * 5
    with use_backend("cpu", strict=True):
        out = bfn.discrete_update(theta, y)
        back = bfn.discrete_update_inverse(out, y)
    torch.testing.assert_close(out.double(), _update64(theta, y), rtol=2e-5, atol=1e-7)
    torch.testing.assert_close(back.double(), theta.double(), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("K", [2, 16])
def test_discrete_update_falls_back_to_log_space_where_products_underflow(K):
    # the class with the largest y has theta = 1e-30 and the others sit 100 below it: in probability
    # space every product underflows (sum < 2^-40), the log-space fallback keeps the exact answer
    theta = torch.full((4, K), 1.0 / (K - 1))
    theta[:, 0] = 1e-30
    theta = theta / theta.sum(-1, keepdim=True)
    y = torch.zeros(4, K)
    y[:, 0] = 100.0
    with use_backend("cpu", strict=True):
        out = bfn.discrete_update(theta, y)
    expect = _update64(theta, y)
    assert bool(torch.isfinite(out).all())
    torch.testing.assert_close(out.double(), expect, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("K", [3, 16, 256])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_discrete_update_tiles_redo_only_the_items_that_need_it(K, dtype):
    # several 1024-value tiles of the flat two-pass update; scattered items whose exp overflows
    # (y > 88), whose products underflow (theta = 1e-30 on the winning class) or that are one-hot
    # are redone by the max-shifted / log-space body; the rest stay in probability space
    g = torch.Generator().manual_seed(K)
    n = 4096 // K + 37
    theta = torch.softmax(torch.randn(n, K, generator=g, dtype=torch.float64) * 2, -1)
    y = torch.randn(n, K, generator=g, dtype=torch.float64) * 4
    y[5, 1] = 200.0                         # e^200 overflows float and the unshifted float64 sum stays finite
    y[n // 2, :] = 800.0                    # every class overflows (float64 too)
    theta[n // 3] = 1.0 / (K - 1)
    theta[n // 3, 0] = 1e-30
    theta[n // 3] /= theta[n // 3].sum()
    y[n // 3] = 0.0
    y[n // 3, 0] = 100.0
    theta[n - 1] = 0.0
    theta[n - 1, K - 1] = 1.0               # one-hot: theta' = theta
    theta, y = theta.to(dtype), y.to(dtype)
    with use_backend("cpu", strict=True):
        out = bfn.discrete_update(theta, y)
        back = bfn.discrete_update_inverse(out, y)
    tol = dict(rtol=2e-5, atol=1e-7) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(out.double(), _update64(theta, y), **tol)
    ok = torch.ones(n, dtype=torch.bool)
    ok[[5, n // 2, n // 3]] = False         # the inverse of an update that saturated is not defined
    torch.testing.assert_close(back[ok].double(), theta[ok].double(), rtol=1e-3, atol=1e-5)
    # log space (what the samplers run): the same rows as log-probabilities, -inf for the one-hot
    # row's other classes; the result's log-probabilities are exact even where probabilities underflow
    with use_backend("cpu", strict=True):
        lout = bfn.discrete_update(theta.log(), y, log=True)
        lback = bfn.discrete_update_inverse(lout, y, log=True)
    expect = torch.log_softmax(theta.double().log() + y.double(), -1)
    fin = torch.isfinite(expect)
    assert bool((torch.isfinite(lout) == fin).all())
    tol = dict(rtol=1e-5, atol=1e-4) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(lout.double()[fin], expect[fin], **tol)
    back_fin = torch.isfinite(theta.log())
    torch.testing.assert_close(lback[ok & back_fin.all(-1)].double(), theta[ok & back_fin.all(-1)].double().log(),
                               rtol=1e-3, atol=1e-3)


def _at_threads(threads, fn, th, y, log):
    """``fn`` on the CPU kernel with ``threads`` intra-op threads, the caller's count restored after
    (a pytest-xdist worker runs with 1: a count left at 2 oversubscribes the cores for every later test)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with use_backend("cpu", strict=True):
            return fn(th, y, log=log)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("K", [16, 17, 32, 40, 256])
@pytest.mark.parametrize("log", [False, True])
def test_discrete_update_groups_of_16_items_match_float64(K, log):
    # float32, K >= 16: items go through the one-pass kernel 16 at a time (full 16-lane steps when
    # 16 divides K, masked tails otherwise), the last n % 16 through the flat passes; a group with
    # an item whose exp overflows (y = 120) or whose classes underflow redoes only that item
    g = torch.Generator().manual_seed(K)
    n = 16 * -(-1024 // K) + 7  # >= 16384 values: the parallel region runs; 7 items after the last group
    theta = torch.softmax(torch.randn(n, K, generator=g, dtype=torch.float64) * 3, -1)
    y = torch.randn(n, K, generator=g, dtype=torch.float64) * 6
    y[17, 3] = 120.0
    theta[40] = 1.0 / (K - 1)
    theta[40, 0] = 1e-30
    theta[40] /= theta[40].sum()
    y[40] = 0.0
    y[40, 0] = 100.0
    theta, y = theta.float(), y.float()
    th = theta.log() if log else theta
    for fn, sign in ((bfn.discrete_update, 1.0), (bfn.discrete_update_inverse, -1.0)):
        out, one = _at_threads(2, fn, th, y, log), _at_threads(1, fn, th, y, log)
        expect = torch.log_softmax((th.double() if log else theta.double().log()) + sign * y.double(), -1)
        if log:
            # a - lse in float32: rounding of a = theta + y and of lse (which can be far larger:
            # the row with y = 120); the vectorised log of the 16 sums is good to ~1e-7, so the
            # probabilities sum to 1 within a few float32 ulps
            fin = torch.isfinite(expect)
            err = (out.double() - expect).abs()[fin]
            lse = th.double() + sign * y.double() - expect
            scale = (th.double().abs() + y.double().abs() + lse.abs())[fin]
            assert bool((err <= 2.5e-7 * scale + 1e-6).all()), err.max()
            torch.testing.assert_close(out.double().exp().sum(-1), torch.ones(n, dtype=torch.float64),
                                       rtol=0, atol=2e-6)
        else:
            torch.testing.assert_close(out.double(), expect.exp(), rtol=2e-5, atol=1e-7)
        assert torch.equal(one, out)  # items never straddle tiles: the same bits at any thread count


@pytest.mark.parametrize("K", [16, 40])
@pytest.mark.parametrize("where", [0, 21, 85])
def test_discrete_update_groups_of_16_items_flag_invalid_input(K, where):
    # one bad value anywhere in a group (or in the flat-pass tail at item 85) is found and named
    theta = torch.softmax(torch.randn(87, K, generator=torch.Generator().manual_seed(1)), -1)
    cases = [(theta, "probabilities", False, lambda t, y: t.__setitem__((where, K - 1), 1.5)),
             (theta, "probabilities", False, lambda t, y: t.__setitem__((where, 3), -1e-3)),
             (theta, "finite", False, lambda t, y: y.__setitem__((where, 5), float("inf"))),
             (theta, "finite", False, lambda t, y: y.__setitem__((where, K - 1), float("nan"))),
             (theta.log(), "log-probabilities <= 0", True, lambda t, y: t.__setitem__((where, 2), 0.25)),
             (theta.log(), "log-probabilities <= 0", True, lambda t, y: t.__setitem__((where, 2), float("nan"))),
             (theta.log(), "finite", True, lambda t, y: y.__setitem__((where, 0), -float("inf")))]
    for th, match, log, spoil in cases:
        t, y = th.clone(), torch.zeros(87, K)
        spoil(t, y)
        with use_backend("cpu", strict=True), pytest.raises(ValueError, match=match):
            bfn.discrete_update(t, y, log=log)
    # -0.0 is a probability (and a log-probability): accepted, as by the per-item body
    t = theta.clone()
    t[where, 1] = -0.0
    with use_backend("cpu", strict=True):
        out = bfn.discrete_update(t, torch.zeros(87, K))
    torch.testing.assert_close(out, t / t.sum(-1, keepdim=True))


@pytest.mark.parametrize("K", [3, 16, 27, 70])
def test_flow_noise_matches_the_philox_twin_across_tiles(K):
    # thousands of normals: many 1024-normal tiles whose stream starts are not multiples of 4 (the
    # partial Philox blocks at both ends) and the 16-block AVX-512 word batches, against the twin
    x = torch.randint(0, K, (3, 1001), generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0.2, 0.6, 0.9])
    a, b = native_and_twin(lambda gen: bfn.discrete_flow(x, t, 3.0, K, gen), torch.device("cpu"), seed=7)
    torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-6)
    theta = torch.softmax(torch.randn(3, 1001, K, generator=torch.Generator().manual_seed(2)), -1)
    for log in (False, True):
        th = theta.log() if log else theta
        (a, ya), (b, yb) = native_and_twin(lambda gen: bfn.discrete_sender_update(th, x, 0.3, gen, log=log, return_y=True),
                                           torch.device("cpu"), seed=10)
        # y = alpha (K e_x - 1) + sqrt(alpha K) eps sums terms up to alpha K = 21 (K = 70): float32
        # rounding of that scale, not of y's (which crosses 0), bounds the difference
        torch.testing.assert_close(ya, yb, rtol=2e-5, atol=2e-7 * (1 + yb.abs().max().item()))
        # log-probabilities a - lse: float32 rounding of the logits' scale (log=False: of 1)
        scale = 1 + (b[torch.isfinite(b)].abs().max().item() if log else 0.0)
        torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-6 * scale)
    xc = torch.rand(3, 3001, generator=torch.Generator().manual_seed(1)) * 2 - 1
    a, b = native_and_twin(lambda gen: bfn.continuous_flow(xc, t, 1e-3, gen), torch.device("cpu"), seed=8)
    torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-6)
    mu, rho, alpha = torch.zeros(3, 3001), torch.ones(3), torch.full((3,), 0.7)
    a, b = native_and_twin(lambda gen: bfn.continuous_sender_update(mu, rho, xc, alpha, gen, return_y=True)[2],
                           torch.device("cpu"), seed=9)
    torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("K", [3, 16, 70])
def test_discrete_flow_with_injected_noise_far_beyond_philox_range(K):
    # the kernel shifts the logits by the true class's logit, safe for Philox normals (|eps| < 5.8);
    # injected noise of 300 overflows that shift and the item is redone with the max shift
    x = torch.tensor([[0, 1, K - 1]])
    t = torch.tensor([0.9])
    noise = torch.randn(1, 3, K, generator=torch.Generator().manual_seed(K))
    noise[0, 0, 1] = 300.0
    noise[0, 2, 0] = -300.0
    a, b = native_and_twin(lambda: bfn.discrete_flow(x, t, 3.0, K, noise=noise), torch.device("cpu"))
    assert bool(torch.isfinite(a).all())
    torch.testing.assert_close(a, b, rtol=2e-5, atol=2e-6)
    l = 3.0 * 0.9**2 * (K * torch.nn.functional.one_hot(x, K).double() - 1) + (3.0 * 0.9**2 * K) ** 0.5 * noise.double()
    torch.testing.assert_close(a.double(), torch.softmax(l, -1), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("K", [2, 16])
def test_discrete_update_rejects_all_zero_theta(K):
    theta = torch.softmax(torch.randn(3, K), -1)
    theta[1] = 0.0
    with use_backend("cpu", strict=True), pytest.raises(ValueError, match="at least one class > 0"):
        bfn.discrete_update(theta, torch.zeros(3, K))
    with use_backend("cpu", strict=True), pytest.raises(ValueError, match="at least one class > 0"):
        bfn.discrete_update(theta.log(), torch.zeros(3, K), log=True)
    with use_backend("cpu", strict=True), pytest.raises(ValueError, match="log-probabilities <= 0"):
        bfn.discrete_update(torch.full((3, K), 0.5), torch.zeros(3, K), log=True)


def test_discrete_loss_k2_matches_float64_closed_form():
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(8, 32, 2, generator=g) * 4).requires_grad_()
    x = torch.randint(0, 2, (8, 32), generator=g)
    for t in (torch.rand(8, generator=g), torch.rand(8, 32, generator=g)):  # per row and per element
        with use_backend("cpu", strict=True):
            loss = bfn.discrete_continuous_time_loss(logits, x, t, 3.0)
            (grad,) = torch.autograd.grad(loss.sum(), logits)
        l64 = logits.detach().double().requires_grad_()
        p = torch.softmax(l64, -1)
        tt = t.double() if t.dim() == 2 else t.double()[:, None]
        expect = 2 * 3.0 * tt * ((torch.nn.functional.one_hot(x, 2).double() - p) ** 2).sum(-1)
        (g64,) = torch.autograd.grad(expect.sum(), l64)
        torch.testing.assert_close(loss.double(), expect, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(grad.double(), g64, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("K", [2, 3, 16, 17, 27, 40])
def test_discrete_loss_is_relatively_accurate_for_confident_logits(K):
    """L^inf (BFN Eq. 205) where the network is confident, as a trained ParamReL_d decoder is on
    most pixels: the loss is c ((1 - p_x)^2 + sum_{k != x} p_k^2), tiny, and must keep its relative
    accuracy. The form with p_x rounded to float32 first loses it (1 - p_x cancels): the K = 2
    kernel before the straight-line body had relative errors up to 1.4 on such elements and the
    quickstart's training followed a different trajectory
    (benches/results/quickstart_traversal_2026-12-06.md, section "2026-12-06, later"); the K >= 3
    body had up to 0.47 until it summed 1 - p_x as sum_{k != x} p_k (2026-12-06 "d")."""
    g = torch.Generator().manual_seed(3)
    n = 512
    x = torch.randint(0, K, (4, n), generator=g)
    # the true class's logit 5..15 above every other: p_o from about 7e-3 down to 3e-7 (float32 1 - p_x
    # has an absolute error of ~6e-8, a relative error up to ~0.2 there)
    margin = 5 + 10 * torch.rand(4, n, generator=g)
    logits = torch.randn(4, n, K, generator=g) * 0.5
    logits = logits + margin[..., None] * torch.nn.functional.one_hot(x, K)
    logits = logits.float().requires_grad_()
    t = torch.rand(4, generator=g) * 0.9 + 0.1
    with use_backend("cpu", strict=True):
        loss = bfn.discrete_continuous_time_loss(logits, x, t, 3.0)
        (grad,) = torch.autograd.grad(loss.sum(), logits)
    l64 = logits.detach().double().requires_grad_()
    p = torch.softmax(l64, -1)
    expect = K * 3.0 * t.double()[:, None] * ((torch.nn.functional.one_hot(x, K).double() - p) ** 2).sum(-1)
    (g64,) = torch.autograd.grad(expect.sum(), l64)
    # the regime where float32's 1 - p_x would cancel is present (its absolute error ~6e-8)
    assert float((1 - p.detach().gather(-1, x[..., None])).min()) < 1e-5
    torch.testing.assert_close(loss.double(), expect.detach(), rtol=2e-6, atol=0.0)
    torch.testing.assert_close(grad.double(), g64, rtol=2e-6, atol=0.0)


@pytest.mark.parametrize("clip", [True, False])
def test_discretised_probs_k2_matches_float64(clip):
    g = torch.Generator().manual_seed(1)
    # mass inside [-1, 1] well above float32's resolution (R = Phi(1) - Phi(-1) >~ 0.02), so the
    # float32 kernel's clip=False normaliser carries no cancellation (the twin has the same limit)
    mu = (torch.randn(1000, generator=g) * 0.5).clamp(-1.0, 1.0)
    sigma = torch.rand(1000, generator=g) * 0.5 + 0.02
    with use_backend("cpu", strict=True):
        p = bfn.discretised_probs(mu, sigma, 2, clip)
    n = torch.distributions.Normal(mu.double(), sigma.double())
    lo = torch.zeros_like(mu, dtype=torch.float64) if clip else n.cdf(torch.tensor(-1.0, dtype=torch.float64))
    hi = torch.ones_like(mu, dtype=torch.float64) if clip else n.cdf(torch.tensor(1.0, dtype=torch.float64))
    mid = n.cdf(torch.tensor(0.0, dtype=torch.float64))
    R = hi - lo
    expect = torch.stack([mid - lo, hi - mid], -1) / R.clamp_min(1e-300)[..., None]
    expect[R < 1e-5] = 0.5  # the reference's uniform bins where the mass outside [-1, 1] is all
    torch.testing.assert_close(p.double(), expect, rtol=1e-4, atol=2e-6)


@pytest.mark.parametrize("clip", [True, False])
@pytest.mark.parametrize("K", [3, 7, 15, 16, 17, 40, 256])
def test_discretised_probs_match_float64(K, clip):
    # 3 <= K < 16 runs vectorised over items in chunks of 256 (700 items: three chunks); K >= 16
    # item by item, 16 boundaries per step on AVX-512 (a masked last step for 17 and 40). One item
    # far beyond the edge (clip=False: uniform 1/K) and one with sigma at the clamp floor
    g = torch.Generator().manual_seed(K)
    mu = (torch.randn(700, generator=g) * 0.5).clamp(-1.0, 1.0)
    sigma = torch.rand(700, generator=g) * 0.5 + 0.02
    mu[300], sigma[300] = 40.0, 0.01
    mu[500], sigma[500] = 0.1, 1e-3
    with use_backend("cpu", strict=True):
        p = bfn.discretised_probs(mu, sigma, K, clip)
    b = torch.linspace(-1, 1, K + 1, dtype=torch.float64)
    cdf = torch.distributions.Normal(mu.double()[:, None], sigma.double()[:, None]).cdf(b)
    if clip:
        cdf[:, 0], cdf[:, -1] = 0.0, 1.0
    expect = cdf[:, 1:] - cdf[:, :-1]
    if not clip:
        R = cdf[:, -1] - cdf[:, 0]
        expect = expect / R.clamp_min(1e-300)[:, None]
        expect[R < 1e-5] = 1.0 / K
        assert bool((R < 1e-5)[300])
    torch.testing.assert_close(p.double(), expect, rtol=1e-4, atol=2e-6)
    # in the lower tail, -4 sqrt(2) <= z < -sqrt(2), the CDFs come from erfc (below, 0 by design):
    # bins there keep their relative accuracy, where the upper CDF is at least twice the lower
    z = (b[None, :] - mu.double()[:, None]) / sigma.double()[:, None]
    tail = (z[:, 1:] < -2**0.5) & (z[:, :-1] >= -4 * 2**0.5) & (cdf[:, 1:] >= 2 * cdf[:, :-1])
    tail[[300, 500]] = False
    if K >= 16:
        assert int(tail.sum()) > 100
    rel = ((p.double() - expect).abs() / expect)[tail]
    assert float(torch.cat([rel, rel.new_zeros(1)]).max()) < 2e-5
    with use_backend("cpu", strict=True), pytest.raises(ValueError, match="sigma_x must be > 0"):
        bfn.discretised_probs(mu, sigma.index_fill(0, torch.tensor([400]), 0.0), K, clip)


@pytest.mark.parametrize("bad, match", [
    (lambda a: a.index_fill(0, torch.tensor([2]), -0.5), "alpha must be >= 0"),
    (lambda a: a.index_fill(0, torch.tensor([1]), float("nan")), "alpha must be >= 0"),
])
def test_continuous_update_kernel_checks_per_row_alpha(bad, match):
    mu, y = torch.zeros(4, 8), torch.ones(4, 8)
    alpha = bad(torch.full((4,), 0.5))
    with use_backend("cpu", strict=True), pytest.raises(ValueError, match=match):
        bfn.continuous_update(mu, torch.ones(4), y, alpha)


def test_continuous_update_inverse_kernel_checks_the_prior_precision():
    mu, y = torch.zeros(4, 8), torch.ones(4, 8)
    rho = torch.tensor([2.0, 2.0, 0.4, 2.0])  # row 2: rho - alpha < 0
    with use_backend("cpu", strict=True), pytest.raises(ValueError, match="rho - alpha must be > 0"):
        bfn.continuous_update_inverse(mu, rho, y, torch.full((4,), 0.5))


def test_continuous_sender_update_kernel_checks_alpha_and_rho():
    mu, x = torch.zeros(4, 8), torch.ones(4, 8)
    with use_backend("cpu", strict=True), pytest.raises(ValueError, match="alpha must be > 0"):
        bfn.continuous_sender_update(mu, torch.ones(4), x, torch.tensor([0.5, 0.0, 0.5, 0.5]))
    with use_backend("cpu", strict=True), pytest.raises(ValueError, match="rho must be > 0"):
        bfn.continuous_sender_update(mu, torch.tensor([1.0, 1.0, float("inf"), 1.0]), x, torch.full((4,), 0.5))


@pytest.mark.parametrize("K", [2, 256])
def test_discretised_probs_backward_float32_is_accurate_beyond_an_edge(K):
    # mass beyond -1 with clip=False: the backward's two terms nearly cancel. In float32 the kernel
    # gave d_mu = 7.4e-6 for a true -3.3e-8 (K = 2; verified before the double-precision backward)
    mu = torch.tensor([-1.3979312181472778, -1.484602928161621]).requires_grad_()
    sigma = torch.tensor([0.21437980234622955, 0.21967053413391113]).requires_grad_()
    w = torch.linspace(-1, 1, 2 * K).reshape(2, K)
    with use_backend("cpu", strict=True):
        gm, gs = torch.autograd.grad((bfn.discretised_probs(mu, sigma, K, False) * w).sum(), (mu, sigma))
    m64, s64 = mu.detach().double().requires_grad_(), sigma.detach().double().requires_grad_()
    with use_backend("reference"):
        em, es = torch.autograd.grad((bfn.discretised_probs(m64, s64, K, False) * w.double()).sum(), (m64, s64))
    torch.testing.assert_close(gm.double(), em, rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(gs.double(), es, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("noise_pred", [False, True])
@pytest.mark.parametrize("clip", [True, False])
@pytest.mark.parametrize("K", [2, 3, 16, 17, 40, 256])
def test_discretised_loss_matches_float64(K, clip, noise_pred):
    # K = 2: straight-line code vectorised over the elements of a row (items::disc_cts_loss2); K >= 3:
    # the discretised mean's sums over the K - 1 interior boundaries 16 per AVX-512 step (a masked
    # last step for K = 3, 16, 40, 256; none for 17). Loss and both gradients against the float64
    # twin, 512 elements whose output distributions straddle the bins and the edges, four far beyond
    # an edge (clip=False: uniform bins, x_hat = 0) and, with noise_pred, a row at t = 0 (x_hat from
    # N(0, 1), no gradient). With clip=False a distribution mostly beyond an edge divides by a small
    # R = Phi(1) - Phi(-1), where float32 itself is coarse: there the bound is the float32 twin's
    # error (assert_as_accurate_as_twin)
    g = torch.Generator().manual_seed(K)
    B, D = 4, 128
    eps = torch.rand(B, D, generator=g) * 3 - 1.5
    log_sigma = torch.rand(B, D, generator=g) * 4 - 4
    x = (torch.floor((torch.rand(B, D, generator=g)) * K) * 2 + 1) / K - 1  # bin centres
    t = torch.rand(B, generator=g) * 0.8 + 0.1
    mu = torch.rand(B, D, generator=g) * 2 - 1
    # clamps with a zero log-sigma gradient: log sigma below -10, sigma below 1e-3 and above 10
    log_sigma[3, :3] = torch.tensor([-12.0, -8.0, 2.5])
    if noise_pred:
        t[2] = 0.0
    else:
        eps[1, :4], log_sigma[1, :4] = torch.tensor([5.0, -5.0, 3.0, -3.0]), -4.0
    out = []
    for backend, dt in (("cpu", torch.float32), ("reference", torch.float32), ("reference", torch.float64)):
        e, s = eps.to(dt).requires_grad_(), log_sigma.to(dt).requires_grad_()
        with use_backend(backend, strict=backend == "cpu"):
            loss = bfn.discretised_continuous_time_loss(e, s, mu.to(dt), t.to(dt), x.to(dt), 0.02, K, clip,
                                                        noise_pred)
            grads = torch.autograd.grad(loss.sum(), (e, s))
        out.append((loss.detach(), *grads))
    for native, twin, truth in zip(*out):
        assert float(truth.abs().max()) > 0
        assert_as_accurate_as_twin(native, twin, truth.double(), torch.float32, atol=2e-5)
        if clip and not noise_pred:  # no division by R, no mu / gamma - scale * eps: relative to the scale alone
            torch.testing.assert_close(native.double(), truth, rtol=1e-4, atol=2e-5 * float(truth.abs().max()))
    assert float(out[0][2][3, :2].abs().max()) == 0.0 and (noise_pred or float(out[0][2][3, 2]) == 0.0)
    if noise_pred:
        assert float(out[0][1][2].abs().max()) == 0.0 and float(out[0][2][2].abs().max()) == 0.0
    elif not clip:  # the four far beyond an edge are uniform: x_hat = 0, loss -ln(sigma1) x^2 / sigma1^(2t)
        w = -math.log(0.02) / 0.02 ** (2 * float(t[1]))
        torch.testing.assert_close(out[0][0][1, :4].double(), w * x[1, :4].double() ** 2, rtol=1e-5, atol=0.0)


@pytest.mark.parametrize("which", ["out_mean", "out_log_sigma", "mu", "x"])
@pytest.mark.parametrize("K", [2, 16])
def test_discretised_loss_names_non_finite_input(K, which):
    # one NaN or inf among 3 x 40 elements, in the vectorised K = 2 row loop and the K = 16 body
    args = dict(out_mean=torch.zeros(3, 40), out_log_sigma=torch.full((3, 40), -1.0), mu=torch.zeros(3, 40),
                x=torch.full((3, 40), 1.0 / K - 1.0))
    for bad in (math.nan, math.inf):
        a = {k: v.clone() for k, v in args.items()}
        a[which][1, 17] = bad
        with use_backend("cpu", strict=True), pytest.raises(ValueError, match="NaN or infinite"):
            bfn.discretised_continuous_time_loss(a["out_mean"], a["out_log_sigma"], a["mu"], torch.full((3,), 0.5),
                                                 a["x"], 0.02, K)


@pytest.mark.parametrize("K", [3, 16, 27])
def test_discrete_loss_names_a_non_finite_logit(K):
    # one NaN or inf among 3 x 40 items of K logits, in a full 16-lane step and in the masked tail
    for bad in (math.nan, math.inf, -math.inf):
        for k in (0, K - 1):
            logits = torch.zeros(3, 40, K)
            logits[2, 5, k] = bad
            with use_backend("cpu", strict=True), pytest.raises(ValueError, match="NaN or infinite"):
                bfn.discrete_continuous_time_loss(logits, torch.zeros(3, 40, dtype=torch.long), torch.full((3,), 0.5),
                                                  3.0)
