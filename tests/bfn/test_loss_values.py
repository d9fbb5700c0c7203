"""BFN losses against independent closed forms and brute force (issue 17, "Tests that catch wrong maths").

Every expected value here is written from the BFN paper's equations (Graves et al. 2023: Eq. 96 and 101
for continuous data, Eq. 121-122 for discretised data, Eq. 26 for L^r), in float64 with plain torch,
never through diffrep's own helpers; docs/kernels/bfn.md#losses."""

import math

import pytest
import torch

from diffrep.bfn import (CategoricalOutput, ContinuousFlow, DeltaOutput, DiscreteFlow, DiscretisedNormalOutput,
                         FlowState, continuous_time_loss, discrete_time_loss, reconstruction_loss)
from diffrep.bfn import loss_terms

G = torch.Generator().manual_seed


def _phi(v):
    return 0.5 * (1 + torch.erf(v / math.sqrt(2)))


def _bin_probs(mu_x, sigma_x, K):
    """Discretised Normal over K bins of [-1, 1], edge bins absorbing the tails (BFN Eq. 103-104)."""
    edges = torch.linspace(-1, 1, K + 1, dtype=torch.float64)
    cdf = _phi((edges - mu_x[..., None]) / sigma_x[..., None])
    cdf[..., 0], cdf[..., -1] = 0.0, 1.0
    return cdf[..., 1:] - cdf[..., :-1]


def _centres(K):
    return (2 * torch.arange(1, K + 1, dtype=torch.float64) - 1) / K - 1


def _alpha(i, n, s1):
    """alpha_i = sigma1^(-2i/n) (1 - sigma1^(2/n)) (BFN Eq. 95)."""
    return s1 ** (-2 * i / n) * (1 - s1 ** (2 / n))


@pytest.mark.parametrize("noise_pred", [False, True])
def test_delta_discrete_time_loss_is_n_alpha_over_2_times_squared_error(noise_pred):
    s1, n = 0.02, 10
    x = torch.rand(3, 1, 2, 2, generator=G(0), dtype=torch.float64) * 2 - 1
    t = torch.tensor([0.0, 0.3, 0.9], dtype=torch.float64)
    flow = ContinuousFlow(s1)
    state = flow.sample(x, t, G(1))
    out = torch.randn(3, 1, 2, 2, generator=G(2), dtype=torch.float64) * (0.3 if noise_pred else 0.6)
    got = discrete_time_loss(flow, DeltaOutput(s1, noise_pred=noise_pred), out.float(), x.float(), state, n)
    tt = t.reshape(-1, 1, 1, 1)
    if noise_pred:
        g = 1 - s1 ** (2 * tt.clamp(min=1e-6))
        x_hat = torch.where(tt < 1e-6, torch.zeros_like(out), state.params.double() / g - torch.sqrt((1 - g) / g) * out)
    else:
        x_hat = out
    x_hat = x_hat.clamp(-1, 1)
    i = tt * n + 1
    want = (n * _alpha(i, n, s1) / 2 * (x - x_hat) ** 2).reshape(3, -1).sum(1)
    assert torch.allclose(got.double(), want, rtol=2e-5)
    # the per-element term alone
    per = loss_terms.continuous_discrete_time_loss(x_hat.float(), x.float(), t.float(), s1, n)
    assert torch.allclose(per.double(), n * _alpha(i, n, s1) / 2 * (x - x_hat) ** 2, rtol=2e-5)


def test_delta_continuous_time_loss_with_noise_prediction_and_clip():
    s1 = 0.01
    x = torch.rand(2, 1, 3, 3, generator=G(3), dtype=torch.float64) * 2 - 1
    t = torch.tensor([0.25, 0.8], dtype=torch.float64)
    flow = ContinuousFlow(s1)
    state = flow.sample(x, t, G(4))
    eps = torch.randn(2, 1, 3, 3, generator=G(5), dtype=torch.float64)
    got = continuous_time_loss(flow, DeltaOutput(s1, noise_pred=True), eps.float(), x.float(), state)
    tt = t.reshape(-1, 1, 1, 1)
    g = 1 - s1 ** (2 * tt)
    x_hat = (state.params.double() / g - torch.sqrt((1 - g) / g) * eps).clamp(-1, 1)
    want = (-math.log(s1) * s1 ** (-2 * tt) * (x - x_hat) ** 2).reshape(2, -1).sum(1)
    assert torch.allclose(got.double(), want, rtol=2e-5)


@pytest.mark.parametrize("noise_pred", [False, True])
def test_discretised_continuous_time_loss_by_brute_force(noise_pred):
    s1, K = 0.02, 16
    x = torch.rand(2, 1, 2, 3, generator=G(6), dtype=torch.float64) * 2 - 1
    xq = _centres(K)[torch.clamp(((x + 1) / 2 * K).floor().long(), 0, K - 1)]
    t = torch.tensor([0.4, 0.95], dtype=torch.float64)
    flow = ContinuousFlow(s1, K)
    state = flow.sample(x, t, G(7))
    m = torch.randn(2, 1, 2, 3, generator=G(8), dtype=torch.float64) * 0.5
    ls = torch.randn(2, 1, 2, 3, generator=G(9), dtype=torch.float64) * 0.5 - 1
    out = DiscretisedNormalOutput(s1, K, noise_pred=noise_pred)
    got = continuous_time_loss(flow, out, (m.float(), ls.float()), x.float(), state)
    tt = t.reshape(-1, 1, 1, 1)
    if noise_pred:
        g = 1 - s1 ** (2 * tt)
        scale = torch.sqrt((1 - g) / g)
        mu_x, sigma_x = state.params.double() / g - scale * m, scale * ls.exp()
    else:
        mu_x, sigma_x = m, ls.exp()
    sigma_x = sigma_x.clamp(1e-3, 10)
    x_hat = (_bin_probs(mu_x, sigma_x, K) * _centres(K)).sum(-1)
    want = (-math.log(s1) * s1 ** (-2 * tt) * (xq - x_hat) ** 2).reshape(2, -1).sum(1)
    assert torch.allclose(got.double(), want, rtol=1e-4)


def test_discretised_discrete_time_loss_by_brute_force_with_injected_noise():
    s1, K, n, S = 0.05, 8, 5, 3
    x = _centres(K)[torch.randint(0, K, (2, 1, 2, 2), generator=G(10))]
    t = torch.tensor([0.2, 0.6], dtype=torch.float64)
    mu = torch.randn(2, 1, 2, 2, generator=G(11), dtype=torch.float64) * 0.3
    m = torch.randn(2, 1, 2, 2, generator=G(12), dtype=torch.float64) * 0.5
    ls = torch.randn(2, 1, 2, 2, generator=G(13), dtype=torch.float64) * 0.3 - 1.5
    noise = torch.randn(S, 2, 1, 2, 2, generator=G(14), dtype=torch.float64)
    got = loss_terms.discretised_discrete_time_loss(m, ls, mu, t, x, s1, K, n, S, noise_pred=False, noise=noise)
    a = _alpha(t.reshape(-1, 1, 1, 1) * n + 1, n, s1)
    y = x + noise / torch.sqrt(a)
    p = _bin_probs(m, ls.exp().clamp(1e-3, 10), K)

    def lnorm(v, mean):
        return -0.5 * math.log(2 * math.pi) + 0.5 * torch.log(a) - 0.5 * a * (v - mean) ** 2

    sender = lnorm(y, x)
    receiver = torch.logsumexp(torch.log(p) + torch.stack([lnorm(y, c) for c in _centres(K)], -1), -1)
    want = n * (sender - receiver).mean(0)
    assert torch.allclose(got, want, rtol=1e-6, atol=1e-9)
    # through the public per-example function (it draws its own noise): finite and per-example shaped
    flow = ContinuousFlow(s1, K)
    st = FlowState(mu.float(), t)
    per_ex = discrete_time_loss(flow, DiscretisedNormalOutput(s1, K, noise_pred=False), (m.float(), ls.float()),
                                x.float(), st, n, n_samples=S, generator=G(0))
    assert per_ex.shape == (2,) and bool(torch.isfinite(per_ex).all())


def test_reconstruction_loss_values():
    # discrete data: -sum ln p(x) under Bernoulli(sigmoid(l)) (K = 2)
    flow, out = DiscreteFlow(2, 3.0), CategoricalOutput(2)
    x = torch.randint(0, 2, (2, 1, 2, 2), generator=G(15))
    state = flow.sample(x, 1.0, G(16))
    l = torch.randn(2, 1, 2, 2, generator=G(17))
    got = reconstruction_loss(flow, out, l, x, state)
    p1 = torch.sigmoid(l.double())
    want = -(torch.where(x == 1, p1, 1 - p1).log()).reshape(2, -1).sum(1)
    assert torch.allclose(got.double(), want, rtol=1e-5)
    # discretised data: -sum ln p_k(x's bin) under the discretised Normal
    s1, K = 0.02, 8
    xq = _centres(K)[torch.randint(0, K, (2, 1, 2, 2), generator=G(18))]
    cflow = ContinuousFlow(s1, K)
    cstate = cflow.sample(xq, 1.0, G(19))
    m = (xq + 0.1 * torch.randn(2, 1, 2, 2, generator=G(20), dtype=torch.float64))
    ls = torch.full_like(m, math.log(0.3))
    got = reconstruction_loss(cflow, DiscretisedNormalOutput(s1, K, noise_pred=False), (m.float(), ls.float()),
                              xq.float(), cstate)
    p = _bin_probs(m, ls.exp(), K)
    idx = ((xq + 1) / 2 * K).floor().long().clamp(0, K - 1)
    want = -p.gather(-1, idx[..., None]).squeeze(-1).log().reshape(2, -1).sum(1)
    assert torch.allclose(got.double(), want, rtol=1e-4)


def test_discrete_time_loss_factorised_receiver_by_brute_force():
    """The reference's receiver: per coordinate j, ln sum_k p_k N(y_j | alpha (K delta_jk - 1), alpha K)."""
    K, n, S = 3, 6, 4
    flow, out = DiscreteFlow(K, 1.5), CategoricalOutput(K)
    x = torch.randint(0, K, (2, 1, 2, 2), generator=G(21))
    t = torch.tensor([0.5, 0.0], dtype=torch.float64)
    state = flow.sample(x, t, G(22))
    net = torch.randn(2, K, 2, 2, generator=G(23))
    got = discrete_time_loss(flow, out, net, x, state, n, n_samples=S, receiver="factorised", generator=G(24))
    a = (1.5 ** 2 * (2 * (t * n + 1) - 1) / n ** 2).float().reshape(-1, 1, 1, 1, 1)  # beta(1)(2i - 1)/n^2 (BFN Eq. 182)
    eps = torch.randn((S, 2, 1, 2, 2, K), generator=G(24))
    e = torch.nn.functional.one_hot(x, K).float()
    y = a * (K * e - 1) + torch.sqrt(a * K) * eps

    def lnorm(v, mean):
        return -(v - mean) ** 2 / (2 * a * K) - 0.5 * torch.log(2 * math.pi * a * K)

    p = torch.softmax(out.logits(net, x.shape).float(), -1)
    on, off = lnorm(y, a * (K - 1)), lnorm(y, -a)
    recv = torch.log(p * on.exp() + (1 - p) * off.exp()).sum(-1)
    send = torch.where(e.bool(), on, off).sum(-1)
    want = n * (send - recv).mean(0).reshape(2, -1).sum(1)
    assert torch.allclose(got, want, rtol=1e-4)


def test_loss_terms_options_and_validation():
    s1 = 0.1
    x = torch.zeros(1, 1, 1, 2)
    t = torch.tensor([0.5])
    far = torch.tensor([[[[3.0, -5.0]]]])
    w = -math.log(s1) * s1 ** -1.0
    # clip_range=0 disables the clip; the default clips x_hat to [-1, 1]
    assert torch.allclose(loss_terms.continuous_time_loss(far, x, t, s1, clip_range=0), w * far ** 2)
    assert torch.allclose(loss_terms.continuous_time_loss(far, x, t, s1), torch.full_like(far, w))
    assert torch.allclose(loss_terms.continuous_time_loss(far, x, t, s1, clip_range=2.0), w * torch.tensor([4.0, 4.0]))
    # min_loss_variance floors sigma1^(2t) (reference C / max(sigma1^2t, floor))
    assert torch.allclose(loss_terms.continuous_time_loss(far, x, t, s1, clip_range=0, min_loss_variance=0.5),
                          -math.log(s1) / 0.5 * far ** 2)
    with pytest.raises(ValueError, match="sigma1"):
        loss_terms.continuous_time_loss(far, x, t, 1.0)
    with pytest.raises(ValueError, match="t"):
        loss_terms.continuous_time_loss(far, x, torch.tensor([1.5]), s1)
    with pytest.raises(ValueError, match="x"):
        loss_terms.continuous_time_loss(far, torch.zeros(1, 1, 1, 3), t, s1)
    with pytest.raises(ValueError, match="mu"):
        loss_terms.continuous_time_loss(far, x, t, s1, mu=torch.zeros(2), noise_pred=True)
    with pytest.raises(ValueError, match="n_steps"):
        loss_terms.continuous_discrete_time_loss(far, x, t, s1, 0)
    with pytest.raises(ValueError, match="num_bins"):
        loss_terms.discretised_discrete_time_loss(far, far, x, t, x, s1, 1, 4, noise_pred=False)
    with pytest.raises(ValueError, match="n_samples"):
        loss_terms.discretised_discrete_time_loss(far, far, x, t, x, s1, 4, 4, 0, noise_pred=False)
    with pytest.raises(ValueError, match="noise"):
        loss_terms.discretised_discrete_time_loss(far, far, x, t, x, s1, 4, 4, 2, noise_pred=False,
                                                  noise=torch.zeros(3, 1, 1, 1, 2))
    # float64 in, float64 out
    assert loss_terms.continuous_time_loss(far.double(), x.double(), t.double(), s1).dtype == torch.float64


def test_binary_discrete_time_loss_by_brute_force():
    """K = 2: the network's one logit per dimension is the class-1 logit; p = softmax([0, l])."""
    n, S = 4, 3
    flow, out = DiscreteFlow(2, 3.0), CategoricalOutput(2)
    x = torch.randint(0, 2, (2, 1, 2, 2), generator=G(30))
    t = torch.tensor([0.25, 0.75], dtype=torch.float64)
    state = flow.sample(x, t, G(31))
    l = torch.randn(2, 1, 2, 2, generator=G(32)) * 2
    got = discrete_time_loss(flow, out, l, x, state, n, n_samples=S, generator=G(33))
    a = (9.0 * (2 * (t * n + 1) - 1) / n ** 2).float().reshape(-1, 1, 1, 1)
    eps = torch.randn((S, 2, 1, 2, 2, 2), generator=G(33))
    e = torch.nn.functional.one_hot(x, 2).float()
    y = a[..., None] * (2 * e - 1) + torch.sqrt(2 * a[..., None]) * eps
    p1 = torch.sigmoid(l)
    logp = torch.stack([torch.log1p(-p1), torch.log(p1)], -1)
    # exact receiver: ln p_S - ln p_R = y_x - logsumexp_k(ln p_k + y_k)
    want = n * ((y * e).sum(-1) - torch.logsumexp(logp + y, -1)).mean(0).reshape(2, -1).sum(1)
    assert torch.allclose(got, want, rtol=1e-4)
    with pytest.raises(ValueError, match="grid"):  # t = 1 is past the last step
        discrete_time_loss(flow, out, l, x, flow.sample(x, 1.0), n)


def test_delta_eps_sign_applies_only_with_noise_prediction():
    s1 = 0.05
    x = torch.rand(2, 1, 2, 2, generator=G(34)) * 2 - 1
    flow = ContinuousFlow(s1)
    state = flow.sample(x, torch.tensor([0.3, 0.6]), G(35))
    eps = torch.randn(2, 1, 2, 2, generator=G(36)) * 0.2
    plus = DeltaOutput(s1, noise_pred=True, eps_sign=1)
    minus = DeltaOutput(s1, noise_pred=True)
    assert torch.allclose(continuous_time_loss(flow, plus, eps, x, state),
                          continuous_time_loss(flow, minus, -eps, x, state))
    direct_plus, direct = DeltaOutput(s1, noise_pred=False, eps_sign=1), DeltaOutput(s1, noise_pred=False)
    assert torch.allclose(continuous_time_loss(flow, direct_plus, eps, x, state),
                          continuous_time_loss(flow, direct, eps, x, state))
    st = flow.sample(x, torch.tensor([0.25, 0.5]), G(37))
    assert torch.allclose(discrete_time_loss(flow, plus, eps, x, st, 4), discrete_time_loss(flow, minus, -eps, x, st, 4))
    assert torch.allclose(discrete_time_loss(flow, direct_plus, eps, x, st, 4),
                          discrete_time_loss(flow, direct, eps, x, st, 4))
    # the default clip of the delta L^n
    far = torch.full((2, 1, 2, 2), 4.0)
    assert torch.allclose(loss_terms.continuous_discrete_time_loss(far, x, st.t, s1, 4),
                          loss_terms.continuous_discrete_time_loss(torch.ones_like(far), x, st.t, s1, 4))


def _bin_probs_unclipped(mu_x, sigma_x, K):
    edges = torch.linspace(-1, 1, K + 1, dtype=torch.float64)
    cdf = _phi((edges - mu_x[..., None]) / sigma_x[..., None])
    return (cdf[..., 1:] - cdf[..., :-1]) / (cdf[..., -1:] - cdf[..., :1])


def test_discretised_losses_without_clip_and_through_the_public_functions():
    s1, K, n, S = 0.05, 8, 5, 2
    x = _centres(K)[torch.randint(0, K, (2, 1, 2, 2), generator=G(40))]
    t = torch.tensor([0.2, 0.6], dtype=torch.float64)
    flow = ContinuousFlow(s1, K)
    state = flow.sample(x, t, G(41))
    eps = torch.randn(2, 1, 2, 2, generator=G(42), dtype=torch.float64) * 0.3
    ls = torch.randn(2, 1, 2, 2, generator=G(43), dtype=torch.float64) * 0.2 - 0.5
    out = DiscretisedNormalOutput(s1, K, noise_pred=True, clip=False)
    tt = t.reshape(-1, 1, 1, 1)
    g = 1 - s1 ** (2 * tt)
    scale = torch.sqrt((1 - g) / g)
    mu_x, sigma_x = state.params.double() / g - scale * eps, (scale * ls.exp()).clamp(1e-3, 10)
    p = _bin_probs_unclipped(mu_x, sigma_x, K)
    # L^inf, clip = False
    got = continuous_time_loss(flow, out, (eps.float(), ls.float()), x.float(), state)
    x_hat = (p * _centres(K)).sum(-1)
    want = (-math.log(s1) * s1 ** (-2 * tt) * (x - x_hat) ** 2).reshape(2, -1).sum(1)
    assert torch.allclose(got.double(), want, rtol=1e-4)
    # L^n, clip = False, noise prediction: the public function equals the per-element term with the
    # same generator, which equals the brute force with the same Philox draws
    from diffrep.ops.random import fill_normal, philox_key

    got_n = discrete_time_loss(flow, out, (eps.float(), ls.float()), x.float(), state, n, n_samples=S, generator=G(44))
    seed, offset = philox_key(G(44))
    noise = fill_normal(torch.empty((S, 2, 1, 2, 2)), seed, offset).double()
    a = _alpha(tt * n + 1, n, s1)
    y = x + noise / torch.sqrt(a)

    def lnorm(v, mean):
        return -0.5 * torch.log(2 * math.pi / a) - 0.5 * a * (v - mean) ** 2

    recv = torch.logsumexp(torch.log(p) + torch.stack([lnorm(y, c) for c in _centres(K)], -1), -1)
    want_n = n * (lnorm(y, x) - recv).mean(0).reshape(2, -1).sum(1)
    assert torch.allclose(got_n.double(), want_n, rtol=1e-3)
    again = discrete_time_loss(flow, out, (eps.float(), ls.float()), x.float(), state, n, n_samples=S, generator=G(44))
    assert torch.equal(got_n, again)


@pytest.mark.parametrize("clip,noise_pred", [(True, False), (True, True), (False, False)])
def test_public_discretised_time_losses_pass_the_output_options(clip, noise_pred):
    """discrete_time_loss = per-example sum of the per-element term called with the output's clip and
    noise_pred (same Philox draws); the delta output's clip_range reaches L^inf and L^n."""
    s1, K, n = 0.05, 8, 5
    x = _centres(K)[torch.randint(0, K, (2, 1, 2, 2), generator=G(50))].float()
    flow = ContinuousFlow(s1, K)
    st = flow.sample(x, torch.tensor([0.2, 0.4]), G(51))
    m = torch.randn(2, 1, 2, 2, generator=G(52)) * 0.3
    ls = torch.randn(2, 1, 2, 2, generator=G(53)) * 0.2 - 0.5
    out = DiscretisedNormalOutput(s1, K, noise_pred=noise_pred, clip=clip)
    got = discrete_time_loss(flow, out, (m, ls), x, st, n, n_samples=2, generator=G(54))
    want = loss_terms.discretised_discrete_time_loss(m, ls, st.params, st.t.float(), x, s1, K, n, 2, clip=clip,
                                                     noise_pred=noise_pred, generator=G(54)).reshape(2, -1).sum(1)
    assert torch.allclose(got, want)
    other = loss_terms.discretised_discrete_time_loss(m, ls, st.params, st.t.float(), x, s1, K, n, 2, clip=not clip,
                                                      noise_pred=noise_pred, generator=G(54)).reshape(2, -1).sum(1)
    assert not torch.allclose(got, other)
    # delta output: clip_range 0.5
    d = DeltaOutput(s1, noise_pred=False, clip_range=0.5)
    pred = torch.full_like(x, 0.9)
    w = -math.log(s1) * s1 ** (-2 * st.t.reshape(-1, 1, 1, 1))
    assert torch.allclose(continuous_time_loss(flow, d, pred, x, st).double(), (w * (x.double() - 0.5) ** 2).reshape(2, -1).sum(1), rtol=1e-5)
    a = _alpha(st.t.reshape(-1, 1, 1, 1) * n + 1, n, s1)
    assert torch.allclose(discrete_time_loss(flow, d, pred, x, st, n).double(),
                          (n * a / 2 * (x.double() - 0.5) ** 2).reshape(2, -1).sum(1), rtol=1e-5)
