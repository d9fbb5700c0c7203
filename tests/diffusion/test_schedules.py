import math

import pytest
import torch

from diffrep.diffusion import DDIMSampler, DDPMSampler, NoiseSchedule, NoiseScheduleConfig, ddim_timesteps


def test_linear_schedule_matches_ho_et_al():
    # Ho et al. 2020 Sec. 4: beta_1 = 1e-4 ... beta_T = 0.02, T = 1000, linear
    s = NoiseSchedule(kind="linear", num_timesteps=1000)
    assert s.betas[0].item() == pytest.approx(1e-4)
    assert s.betas[-1].item() == pytest.approx(0.02)
    assert s.betas[500].item() == pytest.approx(1e-4 + 500 * (0.02 - 1e-4) / 999)
    assert s.alphas_cumprod[-1].item() == pytest.approx(math.prod(1 - b for b in s.betas.tolist()), rel=1e-10)
    assert s.alphas_cumprod[-1].item() < 5e-5  # the chain ends near pure noise


def test_cosine_schedule_formula():
    # Nichol & Dhariwal 2021 Eq. 17: abar(t) = f(t)/f(0), f(t) = cos^2(((t/T + s)/(1+s)) pi/2)
    T, s_ = 1000, 0.008
    s = NoiseSchedule(kind="cosine", num_timesteps=T)
    f = lambda t: math.cos((t / T + s_) / (1 + s_) * math.pi / 2) ** 2
    for t in (0, 10, 500, 900):
        assert s.alphas_cumprod[t].item() == pytest.approx(f(t + 1) / f(0), rel=1e-9)
    assert s.betas.max().item() == pytest.approx(0.999)


def test_ldm_linear_schedule():
    s = NoiseSchedule(kind="ldm_linear", num_timesteps=1000, beta_start=0.0015, beta_end=0.0155)
    assert s.betas[0].item() == pytest.approx(0.0015)
    assert s.betas[-1].item() == pytest.approx(0.0155)
    mid = (math.sqrt(0.0015) + (math.sqrt(0.0155) - math.sqrt(0.0015)) * 400 / 999) ** 2
    assert s.betas[400].item() == pytest.approx(mid)


def test_conversions_round_trip_and_consistency():
    torch.manual_seed(0)
    s = NoiseSchedule(kind="cosine", num_timesteps=100)
    x0 = torch.randn(5, 3, 4, 4, dtype=torch.float64)
    eps = torch.randn_like(x0)
    t = torch.tensor([0, 10, 50, 98, 99])
    xt = s.q_sample(x0, t, eps)
    torch.testing.assert_close(s.eps_to_x0(xt, t, eps), x0)
    torch.testing.assert_close(s.x0_to_eps(xt, t, x0), eps)
    torch.testing.assert_close(s.score_to_eps(xt, t, s.eps_to_score(xt, t, eps)), eps)
    torch.testing.assert_close(s.v_to_eps(xt, t, s.eps_to_v(xt, t, eps)), eps)
    ab = s.alphas_cumprod[t].reshape(-1, 1, 1, 1)
    # score of q(x_t | x0) = -(x_t - sqrt(ab) x0) / (1 - ab)
    torch.testing.assert_close(s.x0_to_score(xt, t, x0), -(xt - ab.sqrt() * x0) / (1 - ab))


def test_schedule_rejects_bad_input():
    s = NoiseSchedule(num_timesteps=10)
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="t must lie in"):
        s.q_sample(x, torch.tensor([0, 10]))
    with pytest.raises(TypeError, match="integer"):
        s.q_sample(x, torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match="shape \\[B\\]"):
        s.q_sample(x, torch.tensor(3))
    with pytest.raises(ValueError, match="batch size"):
        s.q_sample(x, torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="beta_end"):
        NoiseScheduleConfig(beta_start=0.1, beta_end=0.01)
    with pytest.raises(ValueError, match="kind"):
        NoiseScheduleConfig(kind="quadratic")


def test_ddpm_posterior_closed_form():
    s = NoiseSchedule(num_timesteps=50)
    x0 = torch.randn(3, 2, dtype=torch.float64)
    xt = torch.randn(3, 2, dtype=torch.float64)
    t = torch.tensor([1, 20, 49])
    mean, var = DDPMSampler(s).posterior(x0, xt, t)
    for i, ti in enumerate(t.tolist()):
        ab, abp, b = s.alphas_cumprod[ti], s.alphas_cumprod[ti - 1], s.betas[ti]
        m = abp.sqrt() * b / (1 - ab) * x0[i] + (1 - b).sqrt() * (1 - abp) / (1 - ab) * xt[i]
        torch.testing.assert_close(mean[i], m)
        assert var[i].item() == pytest.approx(((1 - abp) / (1 - ab) * b).item())


def test_ddpm_step_per_sample_t_equals_individual_steps():
    s = NoiseSchedule(num_timesteps=30)
    sampler = DDPMSampler(s)
    xt, out, noise = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4)
    t = torch.tensor([0, 7, 29])
    batched = sampler.step(out, t, xt, noise=noise)
    for i in range(3):
        single = sampler.step(out[i:i + 1], t[i:i + 1], xt[i:i + 1], noise=noise[i:i + 1])
        torch.testing.assert_close(batched[i:i + 1], single)
    # t = 0 adds no noise: result is the posterior mean
    mean, _ = sampler.posterior(s.eps_to_x0(xt[:1], t[:1], out[:1]), xt[:1], t[:1])
    torch.testing.assert_close(batched[:1], mean)


@pytest.mark.parametrize("num_steps", [1, 7, 50])
def test_ddim_with_oracle_recovers_x0_exactly(num_steps):
    # with eta = 0 and the true epsilon, every DDIM step lands on the same x0 (Song et al. 2021 Eq. 12)
    s = NoiseSchedule(kind="linear", num_timesteps=50)
    x0 = torch.randn(4, 3, 2, 2, dtype=torch.float64)
    xT = torch.randn_like(x0)
    ab = lambda t: s.alphas_cumprod[t].reshape(-1, 1, 1, 1).to(x0)
    oracle = lambda x, t: (x - ab(t).sqrt() * x0) / (1 - ab(t)).sqrt()
    out = DDIMSampler(s, eta=0.0).sample(oracle, None, num_steps=num_steps, x_T=xT)
    torch.testing.assert_close(out, x0)


def test_ddim_timesteps_and_determinism():
    assert ddim_timesteps(1000, 4) == [750, 500, 250, 0]
    assert ddim_timesteps(1000, 4, "trailing") == [999, 749, 499, 249]
    s = NoiseSchedule(num_timesteps=20)
    fn = lambda x, t: 0.1 * x
    a = DDIMSampler(s, eta=1.0).sample(fn, (2, 3), num_steps=5, generator=torch.Generator().manual_seed(3))
    b = DDIMSampler(s, eta=1.0).sample(fn, (2, 3), num_steps=5, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="num_steps"):
        ddim_timesteps(10, 11)
    with pytest.raises(ValueError, match="DDIMSampler"):
        DDPMSampler(s).sample(fn, (2, 3), num_steps=5)
    with pytest.raises(ValueError, match="eta"):
        DDIMSampler(s, eta=-1)


@pytest.mark.parametrize("kind", ["ddpm", "ddim"])
def test_samplers_propagate_gradients_unless_the_caller_turns_them_off(kind):
    s = NoiseSchedule(kind="linear", num_timesteps=6)
    sampler = DDPMSampler(s) if kind == "ddpm" else DDIMSampler(s, eta=0.5)
    w = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    x_T = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)

    def run(weight, start):
        return sampler.sample(lambda x, t: weight * x, None, num_steps=3 if kind == "ddim" else None, x_T=start,
                              generator=torch.Generator().manual_seed(0))

    out = run(w, x_T)
    assert out.requires_grad
    gw, gx = torch.autograd.grad(out.sum(), (w, x_T))
    assert float(gx.abs().sum()) > 0
    # the gradient w.r.t. the model's parameter is the derivative of the chain (central difference, float64)
    h = 1e-6
    with torch.no_grad():
        fd = (run(w + h, x_T).sum() - run(w - h, x_T).sum()) / (2 * h)
        assert not run(w, x_T).requires_grad  # the caller's no_grad is respected
    assert float(gw) == pytest.approx(float(fd), rel=1e-5, abs=1e-8)
