"""Faithfulness review of ParamReL / SepDiff (SepDiff KDD'25 §3, ParamReL arXiv 2405.15268 §3; the corrected
objective and the time convention of docs/methods/paramrel.md), with hand-derived values:

* the default weights are SepDiff Table 2's best row (gamma_MI, lambda_agg) = (1, 0.01): KL weight 1 - gamma = 0,
  MMD weight gamma + lambda - 1 = 0.01 (Eq. 6);
* the representation of discrete data: the encoder at t = 1 reads the noise-free binary state, whose network
  input is -tanh(beta(1)) x for x in {-1, 1} (closed form);
* in discrete time (L^n) the encoder and the decoder read the flow's own t = (i - 1)/n, the BFN term is
  n alpha_i / 2 ||x - x_hat||^2 at i = t n + 1, and t = 0 uses the noise-prediction guard x_hat = 0;
* reverse-sampling (SepDiff Eq. 3 with the exact inverse): the first inverse step with y = x from
  mu = gamma(1) x lands exactly on gamma(1 - 1/n) x, the second is mu = (rho(t') mu' - alpha x_hat)/rho(t) by hand,
  and z_s is the posterior mean at (theta_s, 1 - s/n) stored at index n - s.
"""

import math

import pytest
import torch

from diffrep.methods.paramrel import ParamReLConfig

from helpers import perturbed as _perturbed
from helpers import tiny_paramrel as tiny

G = torch.Generator().manual_seed




def test_default_weights_are_sepdiff_table2_best_row():
    cfg = ParamReLConfig()
    assert (cfg.gamma_mi, cfg.lambda_agg) == (1.0, 0.01)
    assert cfg.kl_weight == 0.0 and cfg.mmd_weight == pytest.approx(0.01)
    # (gamma, lambda) = (0.5, 0.7): KL weight 1/2, MMD weight 1/5 (Eq. 6 with the corrected signs)
    m = tiny(gamma_mi=0.5, lambda_agg=0.7)
    assert m.config.kl_weight == pytest.approx(0.5) and m.config.mmd_weight == pytest.approx(0.2)


def test_discrete_representation_reads_the_noise_free_state_at_t1():
    """encode(x) = E q(z | theta_1, t = 1) with theta_1 = softmax(beta(1)(K e_x - 1)); for K = 2 the network
    input 2 theta_0 - 1 is -tanh(beta(1)) x with x in {-1, 1}."""
    m = _perturbed(tiny("discrete")).eval()
    x = (torch.rand(3, 1, 8, 8, generator=G(1)) * 2 - 1).sign()
    b1 = m.config.bfn.sqrt_beta1 ** 2
    want = m.encoder.gaussian_params(-math.tanh(b1) * x, torch.full((3,), 1000.0))[:, :4]
    assert torch.allclose(m.encode(x), want, atol=1e-5)


def test_discrete_time_objective_reads_the_grid_time(monkeypatch):
    """time_loss="discrete": t = (i - 1)/n, the encoder and decoder read that t, and the BFN term is
    n alpha_i / 2 ||x - x_hat||^2 with alpha_i = sigma1^(-2i/n)(1 - sigma1^(2/n)) (BFN Eq. for L^n, delta output)."""
    n = 5
    m = _perturbed(tiny("continuous", bfn={"time_loss": "discrete", "loss_steps": n}, gamma_mi=1.0,
                        lambda_agg=0.0))
    rec = {}
    post, dec = m.posterior, m.decode_net

    def spy_post(state, t, **kw):
        out = post(state, t, **kw)
        rec["post"] = (state, t)
        return out

    def spy_dec(state, t, z, **kw):
        out = dec(state, t, z, **kw)
        rec["dec"] = (t, out.detach())
        return out

    monkeypatch.setattr(m, "posterior", spy_post)
    monkeypatch.setattr(m, "decode_net", spy_dec)
    x = torch.rand(16, 1, 8, 8, generator=G(2)) * 2 - 1
    out = m.loss((x, None), generator=G(3))
    state, t = rec["post"]
    assert torch.equal(t, state.t) and torch.equal(rec["dec"][0], t)
    i = t * n + 1
    assert torch.equal(i, i.round()) and bool((i >= 1).all()) and bool((i <= n).all())
    assert bool((t == 0).any())  # the guard case is exercised (16 draws over 5 grid points)
    s1 = m.config.bfn.sigma1
    tt = t.double().reshape(-1, 1, 1, 1)
    eps = rec["dec"][1].double()
    g = 1 - s1 ** (2 * tt.clamp(min=1e-6))
    x_hat = torch.where(tt < 1e-6, torch.zeros_like(eps), state.params.double() / g - torch.sqrt((1 - g) / g) * eps)
    x_hat = x_hat.clamp(-1, 1)
    ii = i.double().reshape(-1, 1, 1, 1)
    alpha = s1 ** (-2 * ii / n) * (1 - s1 ** (2 / n))
    l_bfn = (n * alpha / 2 * (x.double() - x_hat) ** 2).reshape(16, -1).sum(1)
    assert float(out["bfn_loss"]) == pytest.approx(float(l_bfn.mean()), rel=1e-4)
    assert float(out["loss"].detach()) == pytest.approx(float(l_bfn.mean()), rel=1e-4)  # weights 0 and 0


def test_reverse_sampling_steps_by_hand(monkeypatch):
    n = 4
    m = _perturbed(tiny("continuous", steps=n), 0.2).eval()
    s1 = m.config.bfn.sigma1
    calls = []
    post, dec = m.posterior, m.decode_net

    def spy_post(state, t, **kw):
        out = post(state, t, **kw)
        calls.append((state.params.clone(), float(t[0]), out[0].detach()))
        return out

    decs = []

    def spy_dec(state, t, z, **kw):
        out = dec(state, t, z, **kw)
        decs.append((state.params.clone(), float(t[0]), out.detach()))
        return out

    monkeypatch.setattr(m, "posterior", spy_post)
    monkeypatch.setattr(m, "decode_net", spy_dec)
    x = torch.rand(2, 1, 8, 8, generator=G(4), dtype=torch.float64) * 2 - 1
    rev = m.reverse_sample(x.float())

    def rho(t):
        return s1 ** (-2 * t)

    def gam(t):
        return 1 - s1 ** (2 * t)

    xf = x.float().double()
    # start: the noise-free state at t = 1, mu = gamma(1) x, z_0 (index n) encoded there
    assert calls[0][1] == 1.0 and torch.allclose(calls[0][0], gam(1.0) * xf, atol=1e-12)
    assert torch.equal(rev.z[n], calls[0][2])
    # s = 1: h^-1 with y = x and alpha = rho(1) - rho(3/4) lands on gamma(3/4) x exactly
    assert calls[1][1] == pytest.approx(0.75) and torch.allclose(calls[1][0], gam(0.75) * xf, atol=1e-10)
    assert torch.equal(rev.z[n - 1], calls[1][2])
    # s = 2: mu = (rho(3/4) mu_1 - alpha_2 x_hat_1)/rho(1/2), x_hat_1 the decoder's delta output at t = 3/4
    st1, t1, eps1 = decs[0]
    assert t1 == pytest.approx(0.75) and torch.allclose(st1, calls[1][0])
    x_hat1 = (st1 / gam(0.75) - math.sqrt((1 - gam(0.75)) / gam(0.75)) * eps1.double()).clamp(-1, 1)
    mu2 = (rho(0.75) * st1 - (rho(0.75) - rho(0.5)) * x_hat1) / rho(0.5)
    assert calls[2][1] == pytest.approx(0.5) and torch.allclose(calls[2][0], mu2, atol=1e-9)
    assert torch.equal(rev.z[n - 2], calls[2][2])
    # n inverse steps: the subcode sits at t = 0 with rho = 1
    assert float(rev.subcode.t[0]) == 0.0 and len(calls) == n + 1
