"""Faithfulness review, part 2: the output distributions as the sampler and L^r call them, and the deterministic
paths of the sampler and the reverse chain, by hand (BFN §4-6; reference probability.py and
BFN.sample). Written after mutation testing showed these paths were reached only through ParamReL's tests
(benches/results/mutation_bfn_faithful_2026-12-07.md)."""

import math

import pytest
import torch

from diffrep.bfn import (CategoricalOutput, ContinuousFlow, DeltaOutput, DiscreteFlow, DiscretisedNormalOutput,
                         FlowState, reverse_chain, sample)
from diffrep.bfn.distributions import CategoricalDist

G = torch.Generator().manual_seed
D = torch.float64


def _phi(z):
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def _state(mu, t):
    return FlowState(torch.as_tensor(mu, dtype=D), torch.as_tensor(t, dtype=D))


def test_delta_output_noise_prediction_guard_and_clip():
    """x_hat = mu/gamma - sqrt((1 - gamma)/gamma) eps_hat, 0 for t < 1e-6, clipped to [-1, 1] (BFN Eq. 84, reference
    DeltaFactory(clip_range=1)); noise prediction is the default (all the BFN code's continuous configs)."""
    s1 = 0.1
    out = DeltaOutput(s1)
    assert out.noise_pred and out.clip_range == 1.0 and out.eps_sign == -1
    mu = torch.tensor([[0.45, 0.45, 0.9, -0.9], [0.3, 0.3, 0.3, 0.3]], dtype=D)
    eps = torch.tensor([[0.5, -0.5, -2.0, 2.0], [1.0, 1.0, 1.0, 1.0]], dtype=D)
    t = torch.tensor([0.5, 0.0], dtype=D)
    # t = 1/2: gamma = 0.9, sqrt(0.1/0.9) = 1/3: 0.5 - 1/6, 0.5 + 1/6, 1 + 2/3 -> 1, -1 - 2/3 -> -1; t = 0: guard
    got = out(eps, _state(mu, t), t).mean
    want = torch.tensor([[0.5 - 1 / 6, 0.5 + 1 / 6, 1.0, -1.0], [0.0, 0.0, 0.0, 0.0]], dtype=D)
    assert torch.allclose(got, want, atol=1e-12)
    # clip_range = 0 disables the clip; eps_sign = +1 reads the network output as -eps_hat (ParamReL Eq. 10 printed)
    assert float(DeltaOutput(s1, clip_range=0.0)(eps, _state(mu, t), t).mean[0, 2]) == pytest.approx(1 + 2 / 3)
    assert torch.allclose(DeltaOutput(s1, eps_sign=1)(-eps, _state(mu, t), t).mean, want, atol=1e-12)
    # the mode and the sample of a delta are x_hat; L^r through the output (sigma1^2 != 1e-3: 256 bins, sd sigma1)
    d = out(eps, _state(mu, t), t)
    assert torch.equal(d.mode, got) and torch.equal(d.sample(G(0)), got)
    x = torch.tensor([[0.34, 0.66, 0.99, -0.99], [0.0, 0.01, -0.01, 0.0]], dtype=D)
    lp = d.log_prob(x)
    k = math.floor((0.34 + 1) / 2 * 256)
    c = (2 * k + 1) / 256 - 1
    want_lp = math.log(_phi((c + 1 / 256 - (0.5 - 1 / 6)) / s1) - _phi((c - 1 / 256 - (0.5 - 1 / 6)) / s1))
    assert float(lp[0, 0]) == pytest.approx(want_lp, rel=1e-10)


def test_discretised_output_noise_prediction_and_options():
    """(eps_hat, ln sigma_eps) -> mu_x = mu/gamma - s eps_hat, sigma_x = s exp(ln sigma_eps), s = sqrt((1-gamma)/gamma),
    sigma_x clamped to [1e-3, 10] (reference PredDistToDataDistFactory + DiscretizedNormal); noise prediction and
    clip=True are the defaults (the BFN code's CIFAR configs)."""
    s1, K = 0.1, 4
    out = DiscretisedNormalOutput(s1, K)
    assert out.noise_pred and out.clip
    mu = torch.tensor([[0.45]], dtype=D)
    t = torch.tensor([0.5], dtype=D)
    eps, ls = torch.tensor([[0.3]], dtype=D), torch.tensor([[math.log(1.5)]], dtype=D)
    d = out((eps, ls), _state(mu, t), t)
    mx, sx = 0.5 - 0.1, 0.5  # 0.45/0.9 - 0.3/3, 1.5/3
    assert float(d.mu_x) == pytest.approx(mx, abs=1e-12) and float(d.sigma_x) == pytest.approx(sx, abs=1e-12)
    cdf = [0.0] + [_phi((b - mx) / sx) for b in (-0.5, 0.0, 0.5)] + [1.0]
    assert d.probs[0, 0].tolist() == pytest.approx([cdf[k + 1] - cdf[k] for k in range(4)], abs=1e-14)
    # eps_sign = +1 reads the network's first output as -eps_hat
    d2 = DiscretisedNormalOutput(s1, K, eps_sign=1)((-eps, ls), _state(mu, t), t)
    assert float(d2.mu_x) == pytest.approx(mx, abs=1e-12)
    # clip=False renormalises over [-1, 1]
    d3 = DiscretisedNormalOutput(s1, K, clip=False)((eps, ls), _state(mu, t), t)
    full = [_phi((b - mx) / sx) for b in (-1.0, -0.5, 0.0, 0.5, 1.0)]
    R = full[-1] - full[0]
    assert d3.probs[0, 0].tolist() == pytest.approx([(full[k + 1] - full[k]) / R for k in range(4)], abs=1e-14)
    # clip=False with R < 1e-5 (the mass far outside [-1, 1]): uniform 1/K, so log p = -ln K
    lp = DiscretisedNormalOutput(s1, K, noise_pred=False, clip=False)(
        (torch.tensor([[5.0]], dtype=D), torch.tensor([[math.log(0.01)]], dtype=D)), _state(mu, t), t).log_prob(
        torch.tensor([[0.3]], dtype=D))
    assert float(lp) == pytest.approx(-math.log(K), rel=1e-12)


def test_categorical_output_channels_logits_and_log_prob():
    """K = 2: one Bernoulli logit per dimension for class 1 (reference BernoulliFactory); K > 2: K logits."""
    assert CategoricalOutput(2).out_channels(3) == 3 and CategoricalOutput(5).out_channels(3) == 15
    st = FlowState(torch.zeros(1, 1, 1, 2, 2, dtype=D), torch.zeros(1, dtype=D))
    d = CategoricalOutput(2)(torch.tensor([[[[0.0, math.log(3.0)]]]], dtype=D), st, st.t)
    assert d.probs[0, 0, 0].flatten().tolist() == pytest.approx([0.5, 0.5, 0.25, 0.75])
    lp = d.log_prob(torch.tensor([[[[1, 0]]]]))
    assert lp.shape == (1, 1, 1, 2) and lp.flatten().tolist() == pytest.approx([math.log(0.5), math.log(0.25)])
    cd = CategoricalDist(torch.log(torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]], dtype=D)))
    assert cd.log_prob(torch.tensor([2, 0])).tolist() == pytest.approx([math.log(0.3), math.log(0.6)])
    assert cd.mode.tolist() == [1, 0]


def test_sampler_mean_path_is_the_noise_free_flow():
    """x_tilde="mean", sender_noise=False (the deterministic decoder of reverse-sampling): y = E[y | x~] each step,
    so a network with a constant output c reaches the noise-free flow state: mu = gamma(1) c (continuous);
    logits beta(1)(K p - 1) up to a constant (discrete, p the output probabilities)."""
    s1, n, c = 0.2, 5, 0.3
    flow = ContinuousFlow(s1)
    _, st = sample(flow, DeltaOutput(s1, noise_pred=False), lambda s, t: torch.full(s.params.shape, c, dtype=D),
                   flow.prior((2, 1, 1, 3), dtype=D), n, x_tilde="mean", sender_noise=False)
    assert torch.allclose(st.params, torch.full_like(st.params, (1 - s1**2) * c), atol=1e-12)
    K, sb = 3, 1.5
    p = torch.tensor([0.2, 0.5, 0.3], dtype=D)
    dflow = DiscreteFlow(K, sb)
    _, dst = sample(dflow, CategoricalOutput(K), lambda s, t: p.log().reshape(1, K, 1, 1).expand(2, K, 1, 1),
                    dflow.prior((2, 1, 1, 1), dtype=D), n, x_tilde="mean", sender_noise=False)
    want = torch.log_softmax(sb**2 * (K * p - 1), 0)
    assert torch.allclose(dst.params[0, 0, 0, 0], want, atol=1e-12)


def test_sampler_generator_final_mode_and_callbacks():
    """The draws come from ``generator`` (same seed, same samples); final="mode" is the argmax class of
    p_O(. | theta, 1) (the BFN code's return); the callback sees i = 1..n after each update, then n + 1."""
    K, n = 3, 4
    p = torch.tensor([0.2, 0.5, 0.3], dtype=D)
    flow, out = DiscreteFlow(K, 1.0), CategoricalOutput(K)

    def net(s, t):
        return p.log().reshape(1, K, 1, 1).expand(s.params.shape[0], K, 1, 6)

    shape = (4, 1, 1, 6)
    a, sa = sample(flow, out, net, flow.prior(shape, dtype=D), n, generator=G(5), final="sample")
    b, sb = sample(flow, out, net, flow.prior(shape, dtype=D), n, generator=G(5), final="sample")
    c, sc = sample(flow, out, net, flow.prior(shape, dtype=D), n, generator=G(6), final="sample")
    assert torch.equal(a, b) and torch.equal(sa.params, sb.params)
    assert not torch.equal(sa.params, sc.params)
    seen = []
    m, _ = sample(flow, out, net, flow.prior(shape, dtype=D), n, generator=G(7),
                  callback=lambda i, s, d: seen.append((i, float(s.t[0]), d is not None)))
    assert bool((m == 1).all())
    assert seen == [(1, 0.25, True), (2, 0.5, True), (3, 0.75, True), (4, 1.0, True), (5, 1.0, True)]
    # the discretised draws also follow the generator
    s1 = 0.3
    cflow, dout = ContinuousFlow(s1, 4), DiscretisedNormalOutput(s1, 4, noise_pred=False)

    def dnet(s, t):
        return torch.zeros(s.params.shape, dtype=D), torch.full(s.params.shape, math.log(0.5), dtype=D)

    x1, s1a = sample(cflow, dout, dnet, cflow.prior((3, 1, 2, 2), dtype=D), 3, generator=G(8), final="sample")
    x2, s1b = sample(cflow, dout, dnet, cflow.prior((3, 1, 2, 2), dtype=D), 3, generator=G(8), final="sample")
    assert torch.equal(x1, x2) and torch.equal(s1a.params, s1b.params)


def test_reverse_chain_with_noise_prediction_by_hand():
    """reverse_chain (docs/methods/paramrel.md, SepDiff Eq. 3 with the exact inverse): from mu = gamma(1) x, step s
    undoes alpha = rho(t') - rho(t) with y = x_hat_{s-1}: mu_s = (rho(t') mu_{s-1} - alpha x_hat_{s-1}) / rho(t),
    x_hat_0 = x and x_hat_s the delta output (noise prediction) at (mu_s, t); n - 1 network calls."""
    s1, n = 0.2, 3
    flow, out = ContinuousFlow(s1), DeltaOutput(s1)
    x = torch.tensor([[[[0.4, -0.6]]]], dtype=D)
    eps = torch.tensor([[[[0.2, -0.1]]]], dtype=D)
    calls = []

    def net(state, t):
        calls.append((state.params.clone(), float(t[0])))
        return eps

    sub = reverse_chain(flow, out, net, x, n)

    def rho(t):
        return s1 ** (-2 * t)

    def gam(t):
        return 1 - s1 ** (2 * t)

    mu = gam(1.0) * x
    x_hat = x
    for s in range(1, n + 1):
        t_hi, t_lo = 1 - (s - 1) / n, 1 - s / n
        mu = (rho(t_hi) * mu - (rho(t_hi) - rho(t_lo)) * x_hat) / rho(t_lo)
        if s < n:
            assert torch.allclose(calls[s - 1][0], mu, atol=1e-12) and calls[s - 1][1] == pytest.approx(t_lo)
            g = gam(t_lo)
            x_hat = (mu / g - math.sqrt((1 - g) / g) * eps).clamp(-1, 1)
    assert len(calls) == n - 1
    assert torch.allclose(sub.params, mu, atol=1e-12) and float(sub.t[0]) == 0.0
