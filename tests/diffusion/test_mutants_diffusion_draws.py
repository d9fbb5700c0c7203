"""diffusion/schedules.py and diffusion/samplers.py: the random draws and the paths the other tests/diffusion
files did not reach, each against an independent computation: q(x_t | x_0) (Ho et al. 2020, Eq. 4) drawn
from the generator (exact) and its moments by Monte Carlo, t ~ U{0..T-1}, the DDPM (Eq. 6-7) and DDIM
(Song et al. 2021, Eq. 12) steps with their own noise draws, the DDPM step on an x0-predicting model
with clipping, the chain's dtype and callback, and every draw on the tensors' device (a meta default
device makes a misplaced draw fail). Written for benches/results/mutation_diffusion_toyddpm_vae_2026-12-07.md."""

import math

import pytest
import torch

from diffrep.diffusion import DDIMSampler, DDPMSampler, NoiseSchedule
from helpers import linear_alphas_cumprod

T = 10
ABAR = linear_alphas_cumprod(T, 1e-4, 0.02)
BETAS = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)


def _sched():
    return NoiseSchedule(num_timesteps=T)


# -- the forward process and the timestep draw ----------------------------------------------------
def test_q_sample_draws_its_noise_from_the_generator_in_the_images_dtype():
    s = _sched()
    x0 = torch.tensor([[0.5, -1.0, 2.0], [0.0, 0.25, -0.75]], dtype=torch.float64)
    t = torch.tensor([0, 7])
    got = s.q_sample(x0, t, generator=torch.Generator().manual_seed(3))
    eps = torch.randn(2, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    want = torch.stack([math.sqrt(ABAR[k]) * x0[i] + math.sqrt(1 - ABAR[k]) * eps[i] for i, k in enumerate([0, 7])])
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, want, rtol=1e-14, atol=1e-15)


def test_q_sample_moments_match_the_closed_form_by_monte_carlo():
    """mean sqrt(abar_t) x0 and variance 1 - abar_t per element, over 40000 draws (4.5 standard errors)."""
    s = _sched()
    n, t = 40000, 9
    x0 = torch.full((n, 1), 1.5, dtype=torch.float64)
    xt = s.q_sample(x0, torch.full((n,), t), generator=torch.Generator().manual_seed(0))[:, 0]
    ab = float(ABAR[t])
    assert abs(float(xt.mean()) - math.sqrt(ab) * 1.5) < 4.5 * math.sqrt((1 - ab) / n)
    assert abs(float(xt.var()) - (1 - ab)) < 4.5 * (1 - ab) * math.sqrt(2 / n)


def test_sample_timesteps_is_uniform_over_every_level():
    s = _sched()
    got = s.sample_timesteps(5000, generator=torch.Generator().manual_seed(4))
    assert torch.equal(got, torch.randint(0, T, (5000,), generator=torch.Generator().manual_seed(4)))
    counts = torch.bincount(got, minlength=T)
    assert counts.shape == (T,) and int(counts.min()) > 400  # 0 and T - 1 included, ~500 each
    assert s.sample_timesteps(3, device="cpu", generator=torch.Generator().manual_seed(4)).tolist() == got[:3].tolist()
    assert s.alpha_bar(torch.tensor([0, 4, 9])).tolist() == pytest.approx(ABAR[[0, 4, 9]].tolist(), rel=1e-6)
    with pytest.raises(ValueError, match=r"^batch_size must be a positive int, got 0$"):
        s.sample_timesteps(0)
    with pytest.raises(ValueError, match=r"^device must be a torch device"):
        s.sample_timesteps(2, device="nowhere")
    with pytest.raises(TypeError, match=r"^generator must be a torch.Generator or None, got int$"):
        s.sample_timesteps(2, generator=3)


# -- the steps' own noise -------------------------------------------------------------------------
def test_ddpm_step_draws_its_noise_in_the_samples_dtype_and_adds_none_at_t0():
    s = _sched()
    g = torch.Generator().manual_seed(1)
    x_t = torch.randn(2, 3, generator=g, dtype=torch.float64)
    eps = torch.randn(2, 3, generator=g, dtype=torch.float64)
    t = torch.tensor([6, 0])
    got = DDPMSampler(s).step(eps, t, x_t, generator=torch.Generator().manual_seed(2))
    z = torch.randn(2, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for i, k in enumerate([6, 0]):
        ab, ab_prev, beta = ABAR[k], (ABAR[k - 1] if k else torch.tensor(1.0, dtype=torch.float64)), BETAS[k]
        x0 = (x_t[i] - (1 - ab).sqrt() * eps[i]) / ab.sqrt()
        mean = ab_prev.sqrt() * beta / (1 - ab) * x0 + (1 - beta).sqrt() * (1 - ab_prev) / (1 - ab) * x_t[i]
        want = mean + (k > 0) * (beta * (1 - ab_prev) / (1 - ab)).sqrt() * z[i]
        torch.testing.assert_close(got[i], want, rtol=1e-12, atol=1e-14)


def test_ddim_step_with_eta_draws_its_noise_and_without_eta_draws_nothing():
    s = _sched()
    g = torch.Generator().manual_seed(1)
    x_t = torch.randn(2, 3, generator=g, dtype=torch.float64)
    eps = torch.randn(2, 3, generator=g, dtype=torch.float64)
    t, tp = torch.tensor([8, 5]), torch.tensor([4, -1])
    got = DDIMSampler(s, eta=0.7).step(eps, t, tp, x_t, generator=torch.Generator().manual_seed(2))
    z = torch.randn(2, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for i, (k, kp) in enumerate([(8, 4), (5, -1)]):
        ab, ab_prev = ABAR[k], (ABAR[kp] if kp >= 0 else torch.tensor(1.0, dtype=torch.float64))
        sigma = 0.7 * ((1 - ab_prev) / (1 - ab)).sqrt() * (1 - ab / ab_prev).sqrt()
        x0 = (x_t[i] - (1 - ab).sqrt() * eps[i]) / ab.sqrt()
        want = ab_prev.sqrt() * x0 + (1 - ab_prev - sigma ** 2).clamp(min=0).sqrt() * eps[i] + sigma * z[i]
        torch.testing.assert_close(got[i], want, rtol=1e-12, atol=1e-14)
    # eta = 0: deterministic, and the generator is left where it was (a caller's next draw is unchanged)
    gen = torch.Generator().manual_seed(9)
    DDIMSampler(s).step(eps, t, tp, x_t, generator=gen)
    assert torch.equal(torch.randn(4, generator=gen), torch.randn(4, generator=torch.Generator().manual_seed(9)))


def test_ddpm_step_on_an_x0_predicting_model_clips_its_prediction():
    s = _sched()
    x_t = torch.tensor([[0.3, -0.2], [1.0, 0.5]], dtype=torch.float64)
    out = torch.tensor([[2.5, -0.4], [-3.0, 0.9]], dtype=torch.float64)  # x0 predictions, some outside [-1, 1]
    t = torch.tensor([3, 1])
    z = torch.tensor([[0.1, -0.3], [0.7, 0.2]], dtype=torch.float64)
    for clip, x0 in ((None, out), (1.0, out.clamp(-1, 1))):
        got = DDPMSampler(s, prediction="x0", clip_x0=clip).step(out, t, x_t, noise=z)
        for i, k in enumerate([3, 1]):
            ab, ab_prev, beta = ABAR[k], ABAR[k - 1], BETAS[k]
            mean = ab_prev.sqrt() * beta / (1 - ab) * x0[i] + (1 - beta).sqrt() * (1 - ab_prev) / (1 - ab) * x_t[i]
            want = mean + (beta * (1 - ab_prev) / (1 - ab)).sqrt() * z[i]
            torch.testing.assert_close(got[i], want, rtol=1e-12, atol=1e-14)


# -- the chain: its dtype and its callback ---------------------------------------------------------
def test_the_chain_starts_in_the_requested_dtype_and_reports_every_state():
    s = _sched()
    seen = []
    got = DDIMSampler(s).sample(lambda x, t: 0.3 * x, (2, 3), num_steps=3, dtype=torch.float64,
                                generator=torch.Generator().manual_seed(5), callback=lambda i, x: seen.append((i, x.clone())))
    x = torch.randn(2, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    states = []
    seq = [6, 3, 0]
    for k, t in enumerate(seq):  # eps = 0.3 x, x0 = (x - sqrt(1 - abar) eps) / sqrt(abar)
        ab, ab_prev = ABAR[t], (ABAR[seq[k + 1]] if k + 1 < len(seq) else torch.tensor(1.0, dtype=torch.float64))
        e = 0.3 * x
        x = ab_prev.sqrt() * (x - (1 - ab).sqrt() * e) / ab.sqrt() + (1 - ab_prev).sqrt() * e
        states.append(x)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, states[-1], rtol=1e-12, atol=1e-14)
    assert [i for i, _ in seen] == [0, 1, 2]
    for (_, a), b in zip(seen, states):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


# -- every draw and index on the tensors' device ---------------------------------------------------
def test_draws_follow_the_tensors_device_not_the_default_one():
    s = _sched()
    x = torch.randn(2, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t = torch.tensor([5, 2])
    with torch.device("meta"):
        outs = [s.q_sample(x, t, generator=torch.Generator().manual_seed(1)),
                DDPMSampler(s).step(0.1 * x, t, x, generator=torch.Generator().manual_seed(1)),
                DDIMSampler(s, eta=1.0).step(0.1 * x, t, t - 2, x, generator=torch.Generator().manual_seed(1)),
                DDIMSampler(s).sample(lambda xx, tt: 0.1 * xx, (2, 3), num_steps=2, device="cpu", dtype=torch.float64,
                                      generator=torch.Generator().manual_seed(1)),
                DDIMSampler(s).sample(lambda xx, tt: 0.1 * xx, None, x_T=x, num_steps=2),
                DDPMSampler(s).sample(lambda xx, tt: 0.1 * xx, None, x_T=x, generator=torch.Generator().manual_seed(1)),
                DDIMSampler(s).invert(lambda xx, tt: 0.1 * xx, x, num_steps=3)]
        outs.append(s.sample_timesteps(3, device="cpu", generator=torch.Generator().manual_seed(1)))
    assert [o.device.type for o in outs] == ["cpu"] * len(outs)
    torch.testing.assert_close(outs[0], s.q_sample(x, t, generator=torch.Generator().manual_seed(1)), rtol=0, atol=0)
