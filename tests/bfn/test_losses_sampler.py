"""Losses (values against direct formulas) and the n-step sampler / reverse chain."""

import math

import pytest
import torch

from diffrep.bfn import (CategoricalOutput, ContinuousFlow, DeltaOutput, DiscreteFlow, DiscretisedNormalOutput,
                         continuous_time_loss, discrete_time_loss, reconstruction_loss, reverse_chain, sample)


def test_discrete_continuous_time_loss_value():
    flow, out = DiscreteFlow(2, 3.0), CategoricalOutput(2)
    x = torch.randint(0, 2, (3, 1, 2, 2))
    state = flow.sample(x, torch.tensor([0.2, 0.5, 0.9]))
    logits = torch.randn(3, 1, 2, 2)
    got = continuous_time_loss(flow, out, logits, x, state)
    p1 = torch.sigmoid(logits)
    e = torch.stack([1 - p1, p1], -1)
    want = (2 * 9.0 * state.t.float().reshape(-1, 1, 1, 1) *
            (torch.nn.functional.one_hot(x, 2) - e).square().sum(-1)).reshape(3, -1).sum(1)
    assert torch.allclose(got, want, rtol=1e-5)


def test_delta_continuous_time_loss_value():
    flow, out = ContinuousFlow(0.01), DeltaOutput(0.01, noise_pred=False)
    x = torch.rand(2, 1, 3, 3) * 2 - 1
    state = flow.sample(x, torch.tensor([0.3, 0.7]))
    pred = torch.rand(2, 1, 3, 3) * 2 - 1
    got = continuous_time_loss(flow, out, pred, x, state)
    w = -math.log(0.01) * 0.01 ** (-2 * state.t.float())
    assert torch.allclose(got, w * (x - pred).square().reshape(2, -1).sum(1), rtol=1e-5)


def _exact_mixture_kl(logits, x, alpha, K, y):
    """Brute force: ln N(y | a(K e_x - 1), aK) - ln sum_k p_k N(y | a(K e_k - 1), aK), per dimension."""
    def lnorm(v, m):
        return (-(v - m) ** 2 / (2 * alpha * K) - 0.5 * math.log(2 * math.pi * alpha * K)).sum(-1)
    eye = torch.eye(K, dtype=y.dtype)
    comps = torch.stack([lnorm(y, alpha * (K * eye[k] - 1)) for k in range(K)], -1)
    log_r = torch.logsumexp(torch.log_softmax(logits, -1) + comps, -1)
    return lnorm(y, alpha * (K * torch.nn.functional.one_hot(x, K).to(y.dtype) - 1)) - log_r


def test_discrete_time_loss_exact_receiver_matches_brute_force():
    torch.manual_seed(0)
    K, n = 3, 10
    flow, out = DiscreteFlow(K, 1.0), CategoricalOutput(K)
    x = torch.randint(0, K, (2, 1, 2, 2))
    state = flow.sample(x, torch.tensor([0.3, 0.3]))
    net = torch.randn(2, K, 2, 2)
    gen = torch.Generator().manual_seed(5)
    got = discrete_time_loss(flow, out, net, x, state, n, n_samples=4, generator=gen)
    # replay the same sender draws
    alpha = 1.0 * (2 * 4 - 1) / n**2
    eps = torch.randn((4, 2, 1, 2, 2, K), generator=torch.Generator().manual_seed(5))
    y = alpha * (K * torch.nn.functional.one_hot(x, K).float() - 1) + math.sqrt(alpha * K) * eps
    logits = out.logits(net, x.shape)
    want = n * _exact_mixture_kl(logits, x, alpha, K, y).mean(0).reshape(2, -1).sum(1)
    assert torch.allclose(got, want, rtol=1e-4)
    fact = discrete_time_loss(flow, out, net, x, state, n, n_samples=4, receiver="factorised",
                              generator=torch.Generator().manual_seed(5))
    assert not torch.allclose(fact, got)  # the reference's receiver differs (docs/kernels/bfn.md#discrete-flow)
    with pytest.raises(ValueError, match="grid"):
        discrete_time_loss(flow, out, net, x, flow.sample(x, torch.tensor([0.33, 0.3])), n)


def test_reconstruction_loss_discretised_is_positive():
    flow, out = ContinuousFlow(1e-3), DiscretisedNormalOutput(1e-3, 16)
    x = torch.rand(2, 1, 2, 2) * 2 - 1
    state = flow.sample(x, 1.0)
    good = reconstruction_loss(flow, out, (torch.zeros_like(x), torch.zeros_like(x)), x, state)
    bad = reconstruction_loss(flow, out, (torch.full_like(x, 500.0), torch.zeros_like(x)), x, state)
    assert good.shape == (2,) and bool((good >= -1e-6).all()) and bool((bad > good + 1).all())


class _Oracle:
    """A network that returns the data itself (delta output, no noise prediction); counts calls."""

    def __init__(self, x):
        self.x, self.calls, self.times = x, 0, []

    def __call__(self, state, t):
        self.calls += 1
        self.times.append(float(t[0]))
        return self.x.float()


def test_sampler_makes_n_updates_and_a_final_call():
    x = torch.rand(2, 1, 3, 3) * 2 - 1
    flow, out, net = ContinuousFlow(1e-3), DeltaOutput(1e-3, noise_pred=False), _Oracle(x)
    got, state = sample(flow, out, net, flow.prior(x.shape), 8, generator=torch.Generator().manual_seed(0))
    assert net.calls == 9 and net.times == [i / 8 for i in range(8)] + [1.0]
    assert float(flow.precision(state.t)[0]) == pytest.approx(1e6)
    assert torch.allclose(got, x)
    legacy = _Oracle(x)
    _, st = sample(flow, out, legacy, flow.prior(x.shape), 8, legacy_skip_last_update=True)
    assert legacy.calls == 8 and legacy.times[-1] == 1.0 and float(st.t[0]) == pytest.approx(7 / 8)


def test_sampler_discrete_final_mode_and_sample():
    flow, out = DiscreteFlow(2, 3.0), CategoricalOutput(2)
    logits = torch.full((4, 1, 2, 2), 20.0)
    x, _ = sample(flow, out, lambda s, t: logits, flow.prior((4, 1, 2, 2)), 5)
    assert x.dtype == torch.int64 and bool((x == 1).all())
    with pytest.raises(ValueError):
        sample(flow, out, lambda s, t: logits, flow.prior((4, 1, 2, 2)), 5, final="median")


@pytest.mark.parametrize("kind", ["continuous", "discrete"])
def test_reverse_chain_with_oracle_returns_to_prior(kind):
    if kind == "continuous":
        x = torch.rand(2, 1, 3, 3) * 2 - 1
        flow, out = ContinuousFlow(1e-3), DeltaOutput(1e-3, noise_pred=False)
        net = lambda s, t: x  # noqa: E731
    else:
        x = torch.randint(0, 2, (2, 1, 3, 3))
        flow, out = DiscreteFlow(2, 3.0), CategoricalOutput(2)
        net = lambda s, t: (2 * x.float() - 1) * 50  # noqa: E731  (a one-hot oracle)
    seen = []
    sub = reverse_chain(flow, out, net, x, 12, callback=lambda s, st, t: seen.append(float(t[0])))
    assert seen == pytest.approx([1 - s / 12 for s in range(1, 13)])
    assert float(sub.t[0]) == 0.0 and sub.params.dtype == torch.float64
    prior = flow.prior(x.shape, dtype=torch.float64).params
    assert (sub.params - prior).abs().max() < 1e-6
