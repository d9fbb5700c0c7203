"""Faithfulness review of the BFN core against Graves et al., "Bayesian Flow Networks" (arXiv 2308.07037),
and the reference code nnaisense/bayesian-flow-networks (b62568e), written independently of diffrep's helpers.

Every expected value below is derived by hand (small closed forms with round numbers) or by Monte Carlo in
float64 with fixed seeds against the paper's distributions:

* schedules: gamma(t) = 1 - sigma1^(2t), rho(t) = sigma1^(-2t), alpha_i = sigma1^(-2i/n)(1 - sigma1^(2/n))
  (continuous, BFN §4); beta(t) = beta(1) t^2, alpha_i = beta(1)(2i - 1)/n^2 (discrete, §6);
* the Bayesian flow, the sender and the update h with injected noise (§4, §6);
* the discretised output distribution: K bins of width 2/K, centres k_c = (2k - 1)/K - 1, the clipped CDF at
  +-1, the min_prob density fallback of L^r and the 16-bin 0.7 sigma1 rule of the delta output's L^r (§5, §7.2);
* the n-step samplers (Alg. 3, 6, 9): the law of theta after each step for a network that outputs a fixed
  distribution, which pins the grid t_i = i/n, the accuracies alpha_i, the sender variance 1/alpha
  (continuous) / alpha K (discrete), and that x~ is drawn from p_O;
* L^n -> L^inf as n grows (the constants -ln sigma1 and K beta(1) t against n alpha_i / 2 and the discrete KL);
* the model-level reduction: per-example sums over the data dimensions, then the batch mean.
"""

import math

import pytest
import torch

from diffrep.bfn import (BFN, BFNConfig, CategoricalOutput, ContinuousFlow, DeltaOutput, DiscreteFlow,
                         DiscretisedNormalOutput, FlowState, continuous_time_loss, discrete_time_loss,
                         reconstruction_loss, sample, unet_io)
from diffrep.bfn import schedules
from diffrep.bfn.distributions import DeltaDist, DiscretisedNormalDist, discretised_log_prob
from diffrep.bfn.model import draw_time
from diffrep.ops import bfn as ops
from diffrep.ops.reference import bfn as ref

from helpers import tiny_bfn_data, tiny_unet

G = torch.Generator().manual_seed


def _phi(z):
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


# ----------------------------------------------------------------------------- schedules (hand values)
def test_continuous_schedule_hand_values():
    # sigma1 = 0.1: gamma(1/2) = 1 - 0.1 = 0.9, rho(1/2) = 10, rho(1) = 100
    assert float(schedules.gamma(0.5, 0.1)) == pytest.approx(0.9, rel=1e-14)
    assert float(schedules.gamma(1.0, 0.1)) == pytest.approx(0.99, rel=1e-14)
    assert float(schedules.gamma(0.0, 0.1)) == 0.0
    assert float(schedules.continuous_precision(0.5, 0.1)) == pytest.approx(10.0, rel=1e-14)
    # n = 2: alpha_1 = 0.1^-1 (1 - 0.1) = 9, alpha_2 = 0.1^-2 (1 - 0.1) = 90; sum = rho(1) - rho(0) = 99
    assert schedules.continuous_alpha(1, 2, 0.1) == pytest.approx(9.0, rel=1e-13)
    assert schedules.continuous_alpha(2, 2, 0.1) == pytest.approx(90.0, rel=1e-13)
    # the flow's gamma is beta/(1 + beta) with beta(t) = rho(t) - 1
    flow = ContinuousFlow(0.1)
    b = float(flow.beta(0.5))
    assert b == pytest.approx(9.0) and float(flow.gamma(0.5)) == pytest.approx(b / (1 + b))


def test_discrete_schedule_hand_values():
    # beta(1) = 16, n = 4: alpha_i = 16 (2i - 1)/16 = 1, 3, 5, 7 (sum 16 = beta(1)); beta(1/2) = 4
    assert [schedules.discrete_alpha(i, 4, 16.0) for i in (1, 2, 3, 4)] == pytest.approx([1, 3, 5, 7], rel=1e-14)
    assert float(schedules.discrete_beta(0.5, 16.0)) == pytest.approx(4.0, rel=1e-14)
    # the config key is sqrt(beta(1)) (the reference's max_sqrt_beta): sqrt_beta1 = 3 means beta(1) = 9
    assert DiscreteFlow(2, 3.0).beta1 == pytest.approx(9.0)
    assert float(DiscreteFlow(2, 3.0).beta(1 / 3)) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- flows, senders, updates
def test_continuous_flow_sender_and_update_by_hand():
    # sigma1 = 0.1, t = 1/2: gamma = 0.9, sd = sqrt(0.9 * 0.1) = 0.3; x = 0.5, eps = 1 -> mu = 0.45 + 0.3
    flow = ContinuousFlow(0.1)
    x = torch.tensor([[0.5, -1.0]], dtype=torch.float64)
    eps = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
    st = flow.sample(x, 0.5, noise=eps)
    assert torch.allclose(st.params, torch.tensor([[0.75, -0.9 - 0.6]], dtype=torch.float64), atol=1e-12)
    # h: rho = 2, mu = 0.2, y = 1, alpha = 3 -> rho' = 5, mu' = (0.4 + 3)/5 = 0.68; and back
    mu = torch.tensor([[0.2]], dtype=torch.float64)
    y = torch.tensor([[1.0]], dtype=torch.float64)
    new_mu, new_rho = ops.continuous_update(mu, 2.0, y, 3.0)
    assert float(new_mu) == pytest.approx(0.68, abs=1e-14) and float(torch.as_tensor(new_rho).reshape(-1)[0]) == pytest.approx(5.0)
    back, rho0 = ops.continuous_update_inverse(new_mu, 5.0, y, 3.0)
    assert float(back) == pytest.approx(0.2, abs=1e-14) and float(torch.as_tensor(rho0).reshape(-1)[0]) == pytest.approx(2.0)
    # sender: y ~ N(x, 1/alpha): with alpha = 4 and unit noise 1.0, y = x + 0.5, then h from the prior
    _, _, ys = ops.continuous_sender_update(torch.zeros(1, 1, dtype=torch.float64), 1.0,
                                           torch.tensor([[0.25]], dtype=torch.float64), 4.0,
                                           noise=torch.ones(1, 1, dtype=torch.float64), return_y=True)
    assert float(ys) == pytest.approx(0.75, abs=1e-14)


def test_discrete_flow_sender_and_update_by_hand():
    # K = 3, beta(1) = 4, t = 1/2: beta = 1; logits = (K e_x - 1) + sqrt(K) eps, theta = softmax
    K = 3
    flow = DiscreteFlow(K, 2.0)
    x = torch.tensor([[2]])
    eps = torch.tensor([[[0.5, -1.0, 0.0]]], dtype=torch.float64)
    st = flow.sample(x, 0.5, noise=eps)
    logits = torch.tensor([-1.0, -1.0, 2.0], dtype=torch.float64) + math.sqrt(3.0) * eps[0, 0]
    want = torch.log_softmax(logits, -1)
    assert torch.allclose(st.params[0, 0].double(), want, atol=1e-6)
    # h: theta = (1/2, 1/4, 1/4), y = (ln 2, 0, 0) -> (1, 1/4, 1/4)/(3/2) = (2/3, 1/6, 1/6)
    theta = torch.tensor([[0.5, 0.25, 0.25]], dtype=torch.float64)
    y = torch.tensor([[math.log(2.0), 0.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(ops.discrete_update(theta, y), torch.tensor([[2 / 3, 1 / 6, 1 / 6]], dtype=torch.float64),
                          atol=1e-14)
    assert torch.allclose(ops.discrete_update_inverse(ops.discrete_update(theta, y), y), theta, atol=1e-14)
    # sender: y ~ N(alpha (K e_x - 1), alpha K I): alpha = 2, x = 0, unit noise -> 2 (3, 0, 0) - 2 + sqrt(6)
    prior = torch.full((1, 1, K), 1 / K, dtype=torch.float64)
    _, ys = ops.discrete_sender_update(prior, torch.tensor([[0]]), 2.0, noise=torch.ones(1, 1, K, dtype=torch.float64),
                                       return_y=True)
    assert torch.allclose(ys, torch.tensor([4.0, -2.0, -2.0], dtype=torch.float64) + math.sqrt(6.0), atol=1e-12)


def test_binary_network_input_is_minus_tanh_beta_at_the_noise_free_state():
    """K = 2: the network reads 2 theta_0 - 1 with theta_0 = p(class 0) (reference params_to_net_inputs).
    The noise-free state at t has logits beta(t)(2 e_x - 1): theta_0 = sigmoid(-+2 beta), i.e. the
    input is -tanh(beta(t)) for class 1 and +tanh(beta(t)) for class 0."""
    flow = DiscreteFlow(2, 1.2)
    x = torch.tensor([[[[0, 1]]]])
    st = flow.mean_state(x, 0.5)
    b = 1.44 * 0.25
    got = flow.network_input(st).double()
    assert torch.allclose(got, torch.tensor([[[[math.tanh(b), -math.tanh(b)]]]], dtype=torch.float64), atol=1e-6)


# ----------------------------------------------------------------------------- discretised output distribution
def test_discretised_probs_k4_by_hand():
    """K = 4 bins of width 1/2: centres -3/4, -1/4, 1/4, 3/4; interior boundaries -1/2, 0, 1/2; the
    clipped CDF puts Phi(b_0) = 0 and Phi(b_4) = 1 (edge bins absorb the tails)."""
    mu, sd = 0.1, 0.5
    bnd = [(-0.5 - mu) / sd, (0.0 - mu) / sd, (0.5 - mu) / sd]
    cdf = [0.0] + [_phi(z) for z in bnd] + [1.0]
    want = torch.tensor([cdf[k + 1] - cdf[k] for k in range(4)], dtype=torch.float64)
    d = DiscretisedNormalDist(torch.tensor([mu], dtype=torch.float64), torch.tensor([sd], dtype=torch.float64), 4)
    assert torch.allclose(d.probs[0], want, atol=1e-14)
    centres = torch.tensor([-0.75, -0.25, 0.25, 0.75], dtype=torch.float64)
    assert float(d.mean) == pytest.approx(float((want * centres).sum()), abs=1e-14)
    assert float(d.mode) == float(centres[int(want.argmax())])
    # clip=False: renormalised over [-1, 1] by R = Phi(1) - Phi(-1), boundaries -1 and 1 included
    full = [_phi((b - mu) / sd) for b in (-1.0, -0.5, 0.0, 0.5, 1.0)]
    R = full[-1] - full[0]
    want_nc = torch.tensor([(full[k + 1] - full[k]) / R for k in range(4)], dtype=torch.float64)
    d2 = DiscretisedNormalDist(torch.tensor([mu], dtype=torch.float64), torch.tensor([sd], dtype=torch.float64), 4,
                               clip=False)
    assert torch.allclose(d2.probs[0], want_nc, atol=1e-14)


def test_discretised_log_prob_edges_fallback_and_no_clip():
    K = 4
    mu = torch.tensor([0.3, 0.9, 0.3], dtype=torch.float64)
    sd = torch.tensor([0.4, 1e-3, 0.4], dtype=torch.float64)
    # x = 0.95 lies in the top bin (centre 3/4), which absorbs the upper tail: 1 - Phi((0.5 - 0.3)/0.4);
    # x = -0.75 under N(0.9, 1e-3): mass below 1e-5 -> ln N(-0.75 | 0.9, 1e-3) + ln(2/K);
    # x = -1 (bin 0) under N(0.3, 0.4): Phi((-0.5 - 0.3)/0.4)
    x = torch.tensor([0.95, -0.75, -1.0], dtype=torch.float64)
    got = discretised_log_prob(x, mu, sd, K)
    dens = -0.5 * math.log(2 * math.pi) - math.log(1e-3) - 0.5 * ((-0.75 - 0.9) / 1e-3) ** 2
    want = [math.log(1 - _phi(0.5)), dens + math.log(0.5), math.log(_phi(-2.0))]
    assert got.tolist() == pytest.approx(want, rel=1e-12)
    # clip=False: the top bin is [1/2, 1] only, renormalised by R
    g2 = discretised_log_prob(x[:1], mu[:1], sd[:1], K, clip=False)
    R = _phi(0.7 / 0.4) - _phi(-1.3 / 0.4)
    assert float(g2) == pytest.approx(math.log((_phi(0.7 / 0.4) - _phi(0.5)) / R), rel=1e-12)


@pytest.mark.parametrize("sigma1,K,scale", [(1e-3, 256, 1.0), (math.sqrt(1e-3), 16, 0.7)])
def test_delta_reconstruction_scores_under_the_reference_discretisation(sigma1, K, scale):
    """L^r of the delta output (reference CtsBayesianFlowLoss.reconstruction_loss, BFN §7.2): x is scored
    under N(x_hat, sigma1^2) discretised into 256 bins, or N(x_hat, (0.7 sigma1)^2) into 16 bins when
    sigma1^2 = 1e-3."""
    x_hat = torch.tensor([0.013], dtype=torch.float64)
    x = torch.tensor([0.02], dtype=torch.float64)
    s = scale * sigma1
    k = min(max(math.floor((0.02 + 1) / 2 * K), 0), K - 1)
    c = (2 * k + 1) / K - 1
    p = _phi((c + 1 / K - 0.013) / s) - _phi((c - 1 / K - 0.013) / s)
    got = DeltaDist(x_hat, sigma1).log_prob(x)
    assert float(got) == pytest.approx(math.log(p), rel=1e-10)


def test_discretised_sample_is_the_quantised_normal_law():
    """Sampling the discretised output (Alg. 6's k ~ p_O) gives bin centres with the bin probabilities: the
    law of quantise(N(mu_x, sigma_x)) clipped to the edge bins (reference DiscretizedCtsDistribution.sample)."""
    K, n = 4, 200000
    mu = torch.full((n,), 0.6, dtype=torch.float64)
    sd = torch.full((n,), 0.5, dtype=torch.float64)
    draws = DiscretisedNormalDist(mu, sd, K).sample(G(0))
    centres = [-0.75, -0.25, 0.25, 0.75]
    cdf = [0.0] + [_phi((b - 0.6) / 0.5) for b in (-0.5, 0.0, 0.5)] + [1.0]
    for k, c in enumerate(centres):
        p = cdf[k + 1] - cdf[k]
        freq = float((draws == c).double().mean())
        assert abs(freq - p) < 5 * math.sqrt(p * (1 - p) / n) + 1e-12
    assert bool(torch.isin(draws, torch.tensor(centres, dtype=torch.float64)).all())


# ----------------------------------------------------------------------------- samplers (Alg. 3, 6, 9)
def _check_normal(v, mean, var, n_sd=5.0):
    v = v.reshape(-1)
    N = v.numel()
    assert abs(float(v.mean()) - mean) < n_sd * math.sqrt(var / N), (float(v.mean()), mean)
    assert abs(float(v.var()) - var) < n_sd * var * math.sqrt(2.0 / N), (float(v.var()), var)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_continuous_sampler_law_alg3(dtype):
    """Alg. 3 with a network whose x_hat is the constant c: after step i, mu has the flow law at t_i = i/n,
    N(gamma(t_i) c, gamma(t_i)(1 - gamma(t_i))) (y_i ~ N(c, 1/alpha_i), alpha_i = rho(t_i) - rho(t_{i-1})).
    float32 is the models' state dtype (the lean CPU path), float64 the reference path."""
    s1, n, c = 0.3, 4, 0.4
    shape = (40000, 1, 1, 1)
    flow, out = ContinuousFlow(s1), DeltaOutput(s1, noise_pred=False)
    seen = {}

    def predict(state, t):
        return torch.full(state.params.shape, c, dtype=dtype)

    def cb(i, state, dist):
        if i <= n:
            seen[i] = state.params.double()

    x, final = sample(flow, out, predict, flow.prior(shape, dtype=dtype), n, generator=G(1), callback=cb)
    for i in range(1, n + 1):
        g = 1 - s1 ** (2 * i / n)
        _check_normal(seen[i], g * c, g * (1 - g))
    assert torch.allclose(x, torch.full_like(x, c))  # Alg. 3 returns x_hat(theta, 1)
    assert float(final.t[0]) == 1.0


def test_discretised_sampler_law_alg6():
    """Alg. 6: k ~ p_O (a bin centre), y ~ N(k_c, 1/alpha_i). After n steps mu = sum_i alpha_i y_i / rho(1):
    mean gamma(1) E[k_c], variance (Var[k_c] sum_i alpha_i^2 + beta(1)) / rho(1)^2."""
    s1, n, K = 0.5, 3, 4
    m_x, sd_x = 0.2, 0.6
    shape = (60000, 1, 1, 1)
    flow, out = ContinuousFlow(s1, K), DiscretisedNormalOutput(s1, K, noise_pred=False)

    def predict(state, t):
        p = state.params
        return torch.full(p.shape, m_x, dtype=p.dtype), torch.full(p.shape, math.log(sd_x), dtype=p.dtype)

    _, final = sample(flow, out, predict, flow.prior(shape, dtype=torch.float64), n, generator=G(2))
    cdf = [0.0] + [_phi((b - m_x) / sd_x) for b in (-0.5, 0.0, 0.5)] + [1.0]
    p = [cdf[k + 1] - cdf[k] for k in range(K)]
    c = [-0.75, -0.25, 0.25, 0.75]
    ek = sum(pk * ck for pk, ck in zip(p, c))
    vk = sum(pk * ck * ck for pk, ck in zip(p, c)) - ek**2
    alphas = [s1 ** (-2 * i / n) * (1 - s1 ** (2 / n)) for i in range(1, n + 1)]
    rho1 = s1**-2
    _check_normal(final.params, (rho1 - 1) / rho1 * ek, (vk * sum(a * a for a in alphas) + rho1 - 1) / rho1**2)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_discrete_sampler_law_alg9(dtype):
    """Alg. 9: k ~ p_O, alpha_i = beta(1)(2i - 1)/n^2, y ~ N(alpha_i (K e_k - 1), alpha_i K I), theta' ~ e^y theta.
    After n steps the log-odds l_a - l_b = sum_i (y_ia - y_ib) have mean beta(1) K (p_a - p_b) and variance
    sum_i [alpha_i^2 K^2 (p_a + p_b - (p_a - p_b)^2) + 2 alpha_i K]."""
    K, n, sqrt_b1 = 3, 4, 1.1
    b1 = sqrt_b1**2
    probs = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    shape = (60000, 1, 1, 1)
    flow, out = DiscreteFlow(K, sqrt_b1), CategoricalOutput(K)

    def predict(state, t):
        B = state.params.shape[0]
        return probs.log().reshape(1, K, 1, 1).expand(B, K, 1, 1).contiguous().to(dtype)

    cls, final = sample(flow, out, predict, flow.prior(shape, dtype=dtype), n, generator=G(3), final="sample")
    lp = final.params.reshape(-1, K).double()
    alphas = [b1 * (2 * i - 1) / n**2 for i in range(1, n + 1)]
    for a, b in ((1, 0), (2, 1)):
        pa, pb = float(probs[a]), float(probs[b])
        var = sum(al * al * K * K * (pa + pb - (pa - pb) ** 2) + 2 * al * K for al in alphas)
        _check_normal(lp[:, a] - lp[:, b], b1 * K * (pa - pb), var)
    # final="sample": a class drawn from p_O(. | theta, 1) (Alg. 9's last line)
    freq = torch.bincount(cls.reshape(-1), minlength=K).double() / cls.numel()
    assert torch.allclose(freq, probs, atol=5 * math.sqrt(0.25 / cls.numel()))


# ----------------------------------------------------------------------------- L^n -> L^inf
def test_delta_discrete_time_loss_tends_to_the_continuous_time_loss():
    """n alpha_i / 2 with alpha_i = sigma1^(-2i/n)(1 - sigma1^(2/n)) -> -ln(sigma1) sigma1^(-2t) as n grows (BFN
    Eq. 96 -> Eq. 101): at t = 1/2 on the grid the two losses agree to O(1/n)."""
    s1, n = 0.02, 20000
    flow, out = ContinuousFlow(s1), DeltaOutput(s1, noise_pred=False)
    x = torch.tensor([[[[0.3, -0.8]]]])
    pred = torch.tensor([[[[0.1, -0.5]]]])
    st = flow.sample(x, 0.5, G(4))
    ln = discrete_time_loss(flow, out, pred, x, st, n)
    linf = continuous_time_loss(flow, out, pred, x, st)
    assert float(ln / linf) == pytest.approx(1.0, abs=1e-3)
    assert float(linf) == pytest.approx(-math.log(s1) / s1 * (0.2**2 + 0.3**2), rel=1e-5)


def test_discrete_discrete_time_loss_tends_to_k_beta1_t():
    """n KL(p_S || p_R) with the exact receiver -> K beta(1) t ||e_x - e_hat||^2 (BFN Eq. 190 -> 205): a Monte-Carlo
    check at n = 1000 with many sender draws (the KL's O(alpha) correction is ~1%)."""
    K, n, sqrt_b1 = 3, 1000, 2.0
    flow, out = DiscreteFlow(K, sqrt_b1), CategoricalOutput(K)
    x = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]).reshape(1, 1, 1, 8)
    logits = torch.tensor([[0.3, -0.2, 0.5]] * 8).T.reshape(1, K, 1, 8)
    st = flow.sample(x, 0.5, G(5))
    ln = discrete_time_loss(flow, out, logits, x, st, n, n_samples=60000, generator=G(6))
    p = torch.softmax(torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64), 0)
    e = torch.eye(K, dtype=torch.float64)[x.reshape(-1)]
    linf = K * 4.0 * 0.5 * float(((e - p) ** 2).sum())
    assert float(continuous_time_loss(flow, out, logits, x, st)) == pytest.approx(linf, rel=1e-5)
    assert float(ln) == pytest.approx(linf, rel=0.05)


# ----------------------------------------------------------------------------- model-level reduction and times
def _tiny_bfn(kind, **bfn):
    b = tiny_bfn_data(kind, **bfn)
    return BFN(BFNConfig(bfn=b, unet=tiny_unet(**unet_io(b)), sample_steps=3))


@pytest.mark.parametrize("kind", ["continuous", "discrete"])
def test_bfn_loss_is_the_batch_mean_of_per_example_sums(kind, monkeypatch):
    """BFN.loss: mean over the batch of the loss summed over the D data dimensions (nats per example);
    loss_per_dim divides by D. With a network that outputs zeros: continuous (delta, no noise prediction)
    L_b = -ln(sigma1) sigma1^(-2 t_b) ||x_b||^2; binary data (p = 1/2) L_b = K beta(1) t_b D (1/4 + 1/4)."""
    m = _tiny_bfn(kind, **({"noise_pred": False} if kind == "continuous" else {}))
    seen = {}
    real = m.flow._sample  # the loss's flow draw (its times drawn by the loss: no range read)

    def spy(x, t, generator=None, **kw):
        st = real(x, t, generator, **kw)
        seen["t"] = st.t.clone()
        return st

    monkeypatch.setattr(m.flow, "_sample", spy)
    monkeypatch.setattr(m, "predict", lambda state, t: torch.zeros(state.params.shape[:4]))
    x = torch.rand(5, 1, 8, 8, generator=G(7)) * 2 - 1
    if kind == "discrete":
        x = x.sign()
    out = m.loss((x, None), generator=G(8))
    t = seen["t"].double()
    if kind == "continuous":
        per = -math.log(0.02) * 0.02 ** (-2 * t) * (x.double() ** 2).reshape(5, -1).sum(1)
    else:
        per = 2 * 9.0 * t * 64 * 0.5
    assert float(out["loss"]) == pytest.approx(float(per.mean()), rel=1e-5)
    assert float(out["loss_per_dim"]) == pytest.approx(float(per.mean()) / 64, rel=1e-5)


def test_training_times_continuous_uniform_and_discrete_grid():
    """L^inf: t ~ U(0, 1); L^n: t = (i - 1)/n with i ~ U{1..n} (reference BFN.sample_t), never t = 1."""
    b = tiny_bfn_data("discrete", time_loss="discrete", loss_steps=4)
    t = draw_time(b, 40000, "cpu", G(9))
    assert set((t * 4).round().long().tolist()) == {0, 1, 2, 3}
    assert torch.equal(t * 4, (t * 4).round())
    freq = torch.bincount((t * 4).round().long(), minlength=4).double() / t.numel()
    assert torch.allclose(freq, torch.full((4,), 0.25, dtype=torch.float64), atol=0.01)
    tc = draw_time(tiny_bfn_data("discrete"), 40000, "cpu", G(10))
    assert 0 <= float(tc.min()) and float(tc.max()) < 1 and abs(float(tc.mean()) - 0.5) < 0.01
    assert abs(float(tc.var()) - 1 / 12) < 0.003


def test_reconstruction_loss_discretised_uses_t1_state_and_bin_mass():
    """L^r = -ln p_O(x | theta, 1) summed over dimensions, x in its bin (BFN Eq. 26 with the discretised output)."""
    s1, K = 0.02, 4
    flow, out = ContinuousFlow(s1, K), DiscretisedNormalOutput(s1, K, noise_pred=False)
    x = torch.tensor([[[[-0.75, 0.25]]]], dtype=torch.float64)
    st = FlowState(torch.zeros_like(x), torch.ones(1, dtype=torch.float64))
    m = torch.tensor([[[[-0.6, 0.0]]]], dtype=torch.float64)
    ls = torch.full_like(m, math.log(0.5))
    got = reconstruction_loss(flow, out, (m, ls), x, st)
    want = -(math.log(_phi((-0.5 + 0.6) / 0.5))
             + math.log(_phi((0.5 - 0.0) / 0.5) - _phi((0.0 - 0.0) / 0.5)))
    assert float(got) == pytest.approx(want, rel=1e-10)
    # the twin's bin geometry agrees with the paper: centres (2k - 1)/K - 1, boundaries 2j/K - 1
    assert ref.bin_centres(K).tolist() == [-0.75, -0.25, 0.25, 0.75]
    assert ref.bin_boundaries(K).tolist() == [-0.5, 0.0, 0.5]


def test_documented_choices_float_classes_and_t_min():
    """docs/kernels/bfn.md: floats map to c = round((x + 1)(K - 1)/2) (the inverse of data_to_float), which
    agrees with the BFN code's bin index on {-1, 1} (K = 2) and on the bin centres; the noise-prediction guard
    is the code's t_min = 1e-6 (x_hat = 0 below it, the conversion at and above it)."""
    f2, f4 = DiscreteFlow(2, 3.0), DiscreteFlow(4, 3.0)
    assert f2.prepare_data(torch.tensor([[-1.0, 1.0, 0.0]])).tolist() == [[0, 1, 0]]
    centres = torch.tensor([[-0.75, -0.25, 0.25, 0.75]])
    assert f4.prepare_data(centres).tolist() == [[0, 1, 2, 3]]
    assert f4.data_to_float(torch.tensor([[0, 1, 2, 3]]))[0].tolist() == pytest.approx([-1.0, -1 / 3, 1 / 3, 1.0])
    s1 = 1e-3
    eps = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    mu = torch.tensor([[1e-7, 1e-7]], dtype=torch.float64)
    t = torch.tensor([9.9e-7], dtype=torch.float64)
    x_hat, _ = ref.noise_pred_to_data_pred(eps, mu, t, s1)
    assert x_hat.tolist() == [[0.0, 0.0]]
    t = torch.tensor([1e-6], dtype=torch.float64)
    g = -math.expm1(2e-6 * math.log(s1))
    x_hat, _ = ref.noise_pred_to_data_pred(eps, mu, t, s1)
    assert float(x_hat[0, 0]) == pytest.approx(1e-7 / g - math.sqrt((1 - g) / g) * 0.5, rel=1e-12)


def test_twin_functions_by_hand():
    """The pure-PyTorch twin (diffrep.ops.reference.bfn) defines what the native kernels compute: pin it directly
    to the paper's formulas on hand-derived values (the twin tests then carry this to the kernels)."""
    d = torch.float64
    # flow (BFN §4): sigma1 = 0.1, t = 1/2 -> gamma = 0.9, sd 0.3
    mu = ref.continuous_flow(torch.tensor([[0.5]], dtype=d), torch.tensor([0.5], dtype=d), 0.1,
                             torch.tensor([[1.0]], dtype=d))
    assert float(mu) == pytest.approx(0.75, abs=1e-14)
    # discrete flow (§6): beta(1) = 4, t = 1/2 -> beta = 1, K = 2, x = 1, eps = 0 -> softmax(-1, 1)
    th = ref.discrete_flow(torch.tensor([[1]]), torch.tensor([0.5], dtype=d), 4.0, 2, torch.zeros(1, 1, 2, dtype=d))
    assert th[0, 0].tolist() == pytest.approx([1 / (1 + math.e**2), 1 / (1 + math.e**-2)], abs=1e-14)
    # senders and updates
    assert float(ref.continuous_sender_sample(torch.tensor([[0.2]], dtype=d), torch.tensor([4.0], dtype=d),
                                              torch.tensor([[1.0]], dtype=d))) == pytest.approx(0.7)
    ys = ref.discrete_sender_sample(torch.tensor([[0]]), torch.tensor([2.0], dtype=d), 3, torch.zeros(1, 1, 3, dtype=d))
    assert ys[0, 0].tolist() == pytest.approx([4.0, -2.0, -2.0])
    m1, r1 = ref.continuous_update(torch.tensor([[0.2]], dtype=d), torch.tensor([2.0], dtype=d),
                                   torch.tensor([[1.0]], dtype=d), torch.tensor([3.0], dtype=d))
    assert (float(m1), float(r1)) == pytest.approx((0.68, 5.0))
    # discretised probs, K = 4, mu_x = 0, sd = 0.5: Phi(-1), Phi(0) - Phi(-1), ... (symmetric), mean 0
    p = ref.discretised_probs(torch.tensor([0.0], dtype=d), torch.tensor([0.5], dtype=d), 4)
    a = _phi(-1.0)
    assert p[0].tolist() == pytest.approx([a, 0.5 - a, 0.5 - a, a], abs=1e-15)
    # L^inf, discretised (§5): -ln(sigma1) sigma1^(-2t) (x - x_hat)^2; x_hat = sum_k p_k k_c
    s1, t = 0.1, torch.tensor([0.5], dtype=d)
    mx, ls = torch.tensor([[0.1]], dtype=d), torch.tensor([[math.log(0.5)]], dtype=d)
    x = torch.tensor([[0.25]], dtype=d)
    cdf = [0.0] + [_phi((b - 0.1) / 0.5) for b in (-0.5, 0.0, 0.5)] + [1.0]
    xh = sum((cdf[k + 1] - cdf[k]) * c for k, c in enumerate((-0.75, -0.25, 0.25, 0.75)))
    got = ref.discretised_continuous_time_loss(mx, ls, None, t, x, s1, 4, noise_pred=False)
    assert float(got) == pytest.approx(-math.log(0.1) * 10.0 * (0.25 - xh) ** 2, rel=1e-12)
    # L^inf, discrete (§6): K beta(1) t ||e_x - p||^2 with K = 2, beta(1) = 4, t = 1/2, p = (1/2, 1/2): 4 * 1/2 * 2 * 1/4
    got = ref.discrete_continuous_time_loss(torch.zeros(1, 1, 2, dtype=d), torch.tensor([[1]]), t, 4.0)
    assert float(got) == pytest.approx(2.0 * 4.0 * 0.5 * 0.5, rel=1e-14)
    # loss weight -ln(sigma1)/sigma1^(2t): at t = 1/2, sigma1 = 0.1: 10 ln 10
    assert float(ref.loss_weight(t, 0.1, -1.0, x)) == pytest.approx(10 * math.log(10.0), rel=1e-14)
