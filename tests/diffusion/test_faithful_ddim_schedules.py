"""Schedules and DDIM against hand computations: the LDM "linear" (scaled) schedule and DDPM's
linear one, alphas_cumprod indexing (t = 0 is the first noise level), DDIM Eq. 12 of Song et al.
2021 with eta, DDIM at eta = 1 on consecutive steps = DDPM's ancestral step with beta~ (Song et al.
2021 §4.1), and LDM's ``make_ddim_timesteps`` "uniform" spacing (range(0, T, c) + 1, last step to
abar_0)."""

import math

import pytest
import torch

from diffrep.diffusion.samplers import DDIMSampler, DDPMSampler, ddim_timesteps
from diffrep.diffusion.schedules import NoiseSchedule
from diffrep.methods.encdiff import ldm_ddim_pairs, ldm_schedule


def _abar(betas, t):
    out = 1.0
    for s in range(t + 1):
        out *= 1.0 - betas(s)
    return out


def test_ldm_scaled_linear_and_ddpm_linear_by_hand():
    T = 1000
    ldm = NoiseSchedule(ldm_schedule())
    b = lambda t: (math.sqrt(0.0015) + t / (T - 1) * (math.sqrt(0.0155) - math.sqrt(0.0015))) ** 2
    for t in (0, 1, 500, 999):
        assert float(ldm.betas[t]) == pytest.approx(b(t), rel=1e-12)
    assert float(ldm.betas[0]) == pytest.approx(0.0015, rel=1e-12)
    assert float(ldm.betas[-1]) == pytest.approx(0.0155, rel=1e-12)
    # the square of the linspace, not the linspace: the midpoint is ((sqrt a + sqrt b)/2)^2, not (a + b)/2
    mid = NoiseSchedule(kind="ldm_linear", num_timesteps=3, beta_start=0.0015, beta_end=0.0155).betas[1]
    assert float(mid) == pytest.approx(((math.sqrt(0.0015) + math.sqrt(0.0155)) / 2) ** 2, rel=1e-12)
    assert abs(float(mid) - 0.0085) > 1e-4
    for t in (0, 1, 999):   # abar_t = prod_{s <= t} (1 - beta_s): t = 0 already has one step of noise
        assert float(ldm.alphas_cumprod[t]) == pytest.approx(_abar(b, t), rel=1e-10)
    ddpm = NoiseSchedule(kind="linear", num_timesteps=T)
    bl = lambda t: 1e-4 + t / (T - 1) * (0.02 - 1e-4)
    for t in (0, 10, 999):
        assert float(ddpm.betas[t]) == pytest.approx(bl(t), rel=1e-12)
    assert float(ddpm.alphas_cumprod[999]) == pytest.approx(_abar(bl, 999), rel=1e-9)


def test_q_sample_at_t_zero_uses_abar_zero():
    s = NoiseSchedule(kind="linear", num_timesteps=10, beta_start=0.1, beta_end=0.5)
    x0, eps = torch.ones(1, 2, dtype=torch.float64), torch.full((1, 2), 2.0, dtype=torch.float64)
    got = s.q_sample(x0, torch.tensor([0]), eps)
    torch.testing.assert_close(got, torch.full((1, 2), math.sqrt(0.9) + 2 * math.sqrt(0.1), dtype=torch.float64))


@pytest.mark.parametrize("eta", [0.0, 0.7, 1.0])
def test_ddim_step_is_eq12_by_hand(eta):
    s = NoiseSchedule(kind="linear", num_timesteps=50)
    t, tp = 30, 10
    ab, abp = float(s.alphas_cumprod[t]), float(s.alphas_cumprod[tp])
    x = torch.tensor([[0.3, -1.2, 2.0]], dtype=torch.float64)
    eps = torch.tensor([[0.5, 0.1, -0.4]], dtype=torch.float64)
    z = torch.tensor([[1.0, -2.0, 0.25]], dtype=torch.float64)
    x0 = (x - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
    sigma = eta * math.sqrt((1 - abp) / (1 - ab)) * math.sqrt(1 - ab / abp)
    want = math.sqrt(abp) * x0 + math.sqrt(1 - abp - sigma ** 2) * eps + sigma * z
    got = DDIMSampler(s, eta=eta).step(eps, torch.tensor([t]), torch.tensor([tp]), x, noise=z)
    torch.testing.assert_close(got, want)
    # the last step (t_prev = -1) goes to abar = 1: the x0 prediction itself, whatever eta
    last = DDIMSampler(s, eta=eta).step(eps, torch.tensor([t]), torch.tensor([-1]), x, noise=z)
    torch.testing.assert_close(last, x0)


def test_ddim_with_eta_one_on_consecutive_steps_is_the_ddpm_ancestral_step():
    s = NoiseSchedule(kind="linear", num_timesteps=40)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 3, dtype=torch.float64, generator=g)
    eps = torch.randn(5, 3, dtype=torch.float64, generator=g)
    z = torch.randn(5, 3, dtype=torch.float64, generator=g)
    t = torch.tensor([1, 5, 17, 30, 39])
    ddim = DDIMSampler(s, eta=1.0).step(eps, t, t - 1, x, noise=z)
    ddpm = DDPMSampler(s, variance="fixed_small").step(eps, t, x, noise=z)
    torch.testing.assert_close(ddim, ddpm)


def test_uniform_spacing_and_the_ldm_spacing():
    # Song et al.'s "uniform" skip c = T // S: 0, c, ..., (S - 1) c; diffrep keeps exactly S steps
    assert ddim_timesteps(1000, 100) == list(range(990, -1, -10))
    assert len(ddim_timesteps(1000, 30)) == 30 and ddim_timesteps(1000, 30)[0] == 29 * 33
    # LDM make_ddim_timesteps("uniform"): range(0, T, c) + 1, alphas_prev = [abar_0] + abar[t_{i-1}]
    pairs = ldm_ddim_pairs(1000, 100)
    assert [t for t, _ in pairs] == list(range(991, 0, -10)) and pairs[-1] == (1, 0)
    assert all(tp == t - 10 for t, tp in pairs[:-1])
    # c = 33 does not divide 1000: LDM runs ceil(1000 / 33) = 31 steps, 991, 958, ..., 1
    p30 = ldm_ddim_pairs(1000, 30)
    assert [t for t, _ in p30] == [t + 1 for t in range(0, 1000, 33)][::-1] and len(p30) == 31
    assert p30[0] == (991, 958) and p30[-1] == (1, 0)
    # c = 3 divides 999: LDM would index abar[1000]
    with pytest.raises(ValueError, match="outside the schedule"):
        ldm_ddim_pairs(1000, 333)
    with pytest.raises(ValueError, match="outside the schedule"):
        ldm_ddim_pairs(1000, 999)


def test_ddim_sampler_visits_the_spacing_in_order_and_ends_at_abar_one():
    s = NoiseSchedule(kind="linear", num_timesteps=20)
    for spacing, steps, want in (("uniform", 4, [15, 10, 5, 0]), ("trailing", 4, [19, 14, 9, 4]),
                                 ("uniform", None, list(range(19, -1, -1)))):
        sampler = DDIMSampler(s, eta=0.0, spacing=spacing)
        pairs = sampler._pairs(steps)
        assert [t for t, _ in pairs] == want and [tp for _, tp in pairs] == want[1:] + [-1]
        seen = []
        sampler.sample(lambda x, t: (seen.append(int(t[0])), torch.zeros_like(x))[1], (1, 2), num_steps=steps,
                       generator=torch.Generator().manual_seed(0))
        assert seen == want
    with pytest.raises(ValueError, match="t_prev"):
        DDIMSampler(s).step(torch.zeros(1, 2), torch.tensor([5]), torch.tensor([5]), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="t_prev"):
        DDIMSampler(s).step(torch.zeros(1, 2), torch.tensor([5]), torch.tensor([-2]), torch.zeros(1, 2))


def test_ddpm_variances_and_no_noise_at_t_zero():
    s = NoiseSchedule(kind="linear", num_timesteps=10, beta_start=0.1, beta_end=0.5)
    x = torch.tensor([[0.4, -0.3]], dtype=torch.float64)
    eps = torch.tensor([[0.2, 0.1]], dtype=torch.float64)
    z = torch.tensor([[1.0, -1.0]], dtype=torch.float64)
    t = torch.tensor([4])
    ab, abp, beta = (float(v) for v in (s.alphas_cumprod[4], s.alphas_cumprod[3], s.betas[4]))
    x0 = (x - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
    mean = math.sqrt(abp) * beta / (1 - ab) * x0 + math.sqrt(1 - beta) * (1 - abp) / (1 - ab) * x
    small = DDPMSampler(s, variance="fixed_small").step(eps, t, x, noise=z)
    large = DDPMSampler(s, variance="fixed_large").step(eps, t, x, noise=z)
    torch.testing.assert_close(small, mean + math.sqrt(beta * (1 - abp) / (1 - ab)) * z)
    torch.testing.assert_close(large, mean + math.sqrt(beta) * z)
    # t = 0: the posterior mean, no noise, with either variance (fixed_large's beta_0 > 0 too)
    t0 = torch.tensor([0])
    for var in ("fixed_small", "fixed_large"):
        out = DDPMSampler(s, variance=var).step(eps, t0, x, noise=z)
        x0_0 = (x - math.sqrt(0.1) * eps) / math.sqrt(0.9)
        torch.testing.assert_close(out, x0_0)


def test_q_sample_draws_from_the_generator():
    s = NoiseSchedule(kind="linear", num_timesteps=10)
    x0, t = torch.zeros(3, 4), torch.tensor([9, 9, 9])
    a = s.q_sample(x0, t, generator=torch.Generator().manual_seed(5))
    b = torch.randn(3, 4, generator=torch.Generator().manual_seed(5)) * float(1 - s.alphas_cumprod[9]) ** 0.5
    torch.testing.assert_close(a, b)


def test_defaults_and_the_ddpm_chain_visits_every_step():
    s = NoiseSchedule(kind="linear", num_timesteps=6)
    assert DDIMSampler(s).eta == 0.0 and DDIMSampler(s).spacing == "uniform"
    assert DDPMSampler(s).variance == "fixed_small"
    seen = []
    DDPMSampler(s).sample(lambda x, t: (seen.append(int(t[0])), torch.zeros_like(x))[1], (1, 2),
                          generator=torch.Generator().manual_seed(0))
    assert seen == [5, 4, 3, 2, 1, 0]


@pytest.mark.parametrize("prediction", ["eps", "x0", "v", "score"])
def test_every_parameterisation_converts_to_the_true_eps(prediction):
    """x_t = a x0 + s eps with a = sqrt(abar_t), s = sqrt(1 - abar_t); v = a eps - s x0 (Salimans & Ho);
    score = -eps / s. Each exact output must convert back to eps, in to_eps and in a DDIM step."""
    s = NoiseSchedule(kind="linear", num_timesteps=30)
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(3, 2, dtype=torch.float64, generator=g)
    eps = torch.randn(3, 2, dtype=torch.float64, generator=g)
    t = torch.tensor([3, 11, 29])
    ab = s.alphas_cumprod[t][:, None]
    a, sd = ab.sqrt(), (1 - ab).sqrt()
    xt = a * x0 + sd * eps
    out = {"eps": eps, "x0": x0, "v": a * eps - sd * x0, "score": -eps / sd}[prediction]
    torch.testing.assert_close(s.to_eps(out, xt, t, prediction), eps)
    tp = torch.tensor([1, 5, 20])
    abp = s.alphas_cumprod[tp][:, None]
    want = abp.sqrt() * x0 + (1 - abp).sqrt() * eps
    torch.testing.assert_close(DDIMSampler(s, prediction=prediction).step(out, t, tp, xt), want)
