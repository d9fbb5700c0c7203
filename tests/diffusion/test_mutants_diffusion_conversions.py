"""Schedules and samplers against hand computations, for the survivors of a mutation run
(benches/results/mutation_diffusion_followup_2026-12-07b.md): the cosine schedule's length and
clipping (Nichol & Dhariwal 2021, Eq. 17), the SNR (Kingma et al. 2021), the shape checks of the
parameterisation conversions, x0 clipping inside a DDIM step (Song et al. 2021, Eq. 12), and DDIM
inversion (DiffAE Eq. 8) with a denoiser that is exact for one image."""

import math

import pytest
import torch

from diffrep.diffusion.samplers import DDIMSampler, ddim_timesteps
from diffrep.diffusion.schedules import NoiseSchedule


def test_cosine_schedule_by_hand():
    T, s = 10, 0.008
    f = [math.cos(((t / T + s) / (1 + s)) * math.pi / 2) ** 2 for t in range(T + 1)]
    sch = NoiseSchedule(kind="cosine", num_timesteps=T)
    assert sch.betas.shape == (T,) and sch.alphas_cumprod.shape == (T,)
    abar = 1.0
    for t in range(T):
        beta = min(1 - f[t + 1] / f[t], 0.999)
        abar *= 1 - beta  # f(t + 1) / f(0) until the clip at the last step
        assert float(sch.betas[t]) == pytest.approx(beta, rel=1e-12, abs=1e-15)
        assert float(sch.alphas_cumprod[t]) == pytest.approx(abar, rel=1e-9)
        if t < T - 1:
            assert abar == pytest.approx(f[t + 1] / f[0], rel=1e-9)
    assert float(sch.betas[-1]) == 0.999  # f(T) = cos^2(pi/2) = 0: the last beta is clipped
    assert float(sch.alphas_cumprod_prev[0]) == 1.0 and sch.alphas_cumprod_prev.dtype == torch.float64


def test_snr_is_abar_over_one_minus_abar():
    sch = NoiseSchedule(kind="linear", num_timesteps=20, beta_start=0.01, beta_end=0.3)
    betas = [0.01 + k / 19 * (0.3 - 0.01) for k in range(20)]
    t = torch.tensor([0, 7, 19])
    for i, ti in enumerate(t.tolist()):
        ab = math.prod(1 - b for b in betas[:ti + 1])
        assert float(sch.snr(t)[i]) == pytest.approx(ab / (1 - ab), rel=2e-6)  # a float32 table


@pytest.mark.parametrize("fn, name", [("eps_to_x0", "eps"), ("x0_to_eps", "x0"), ("eps_to_score", "eps"),
                                      ("score_to_eps", "score"), ("eps_to_v", "eps"), ("v_to_eps", "v")])
def test_conversions_refuse_a_broadcastable_shape(fn, name):
    # elementwise conversions: a (1, 3) tensor against x_t (2, 3) would broadcast silently
    sch = NoiseSchedule(num_timesteps=10)
    x_t, t = torch.zeros(2, 3, dtype=torch.float64), torch.tensor([1, 2])
    with pytest.raises(ValueError, match=rf"^{name} has shape \(1, 3\) but x_t has shape \(2, 3\)$"):
        getattr(sch, fn)(x_t, t, torch.zeros(1, 3, dtype=torch.float64))


@pytest.mark.parametrize("prediction", ["eps", "x0", "v", "score"])
def test_to_eps_names_the_model_output(prediction):
    sch = NoiseSchedule(num_timesteps=10)
    x_t, t = torch.zeros(2, 3), torch.tensor([1, 2])
    with pytest.raises(ValueError, match=r"^output has shape \(2, 4\) but x_t has shape \(2, 3\)$"):
        sch.to_eps(torch.zeros(2, 4), x_t, t, prediction)
    with pytest.raises(ValueError, match=r"^x_t batch size \(3,\) does not match t of shape \(2,\)$"):
        sch.to_eps(torch.zeros(3, 3), torch.zeros(3, 3), t, prediction)


def test_to_eps_and_constructor_messages():
    sch = NoiseSchedule(num_timesteps=10)
    with pytest.raises(ValueError, match="^prediction must be one of eps, x0, v, score; got 'noise'$"):
        sch.to_eps(torch.zeros(2, 3), torch.zeros(2, 3), torch.tensor([1, 2]), "noise")
    from diffrep.diffusion.schedules import NoiseScheduleConfig

    with pytest.raises(TypeError, match="^NoiseSchedule: pass either a config or keyword arguments, not both$"):
        NoiseSchedule(NoiseScheduleConfig(), kind="cosine")
    with pytest.raises(TypeError, match="^NoiseSchedule: config must be a NoiseScheduleConfig, got str$"):
        NoiseSchedule("cosine")


def test_ddim_step_clips_x0_and_recomputes_eps():
    sch = NoiseSchedule(kind="linear", num_timesteps=20, beta_start=0.01, beta_end=0.3)
    g = torch.Generator().manual_seed(0)
    x_t = 3 * torch.randn(2, 6, generator=g, dtype=torch.float64)
    out = torch.randn(2, 6, generator=g, dtype=torch.float64)
    t, t_prev = torch.tensor([9, 9]), torch.tensor([4, 4])
    ab, ab_prev = float(sch.alphas_cumprod[9]), float(sch.alphas_cumprod[4])
    a, s = math.sqrt(ab), math.sqrt(1 - ab)
    x0 = (x_t - s * out) / a
    assert bool((x0 > 1).any()) and bool((x0 < -1).any())
    x0c = x0.clamp(-1.0, 1.0)
    eps_c = (x_t - a * x0c) / s
    want = math.sqrt(ab_prev) * x0c + math.sqrt(1 - ab_prev) * eps_c
    got = DDIMSampler(sch, clip_x0=1.0).step(out, t, t_prev, x_t)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_ddim_step_messages_name_the_model_output_and_the_sample():
    sampler = DDIMSampler(NoiseSchedule(num_timesteps=10))
    t, t_prev = torch.tensor([5, 5]), torch.tensor([2, 2])
    with pytest.raises(ValueError, match=r"^model_output has shape \(2, 4\) but x_t \(the sample\) has shape \(2, 3\)$"):
        sampler.step(torch.zeros(2, 4), t, t_prev, torch.zeros(2, 3))
    with pytest.raises(TypeError, match="^model_output must be a floating-point tensor"):
        sampler.step([0.0], t, t_prev, torch.zeros(2, 3))
    with pytest.raises(TypeError, match="^x_t must be a floating-point tensor"):
        sampler.step(torch.zeros(2, 3), t, t_prev, [0.0])


@pytest.mark.parametrize("num_steps", [4, 20])
@pytest.mark.parametrize("prediction", ["x0", "eps"])
@pytest.mark.parametrize("shape", [(2, 6), (5,)])
def test_ddim_inversion_with_a_denoiser_exact_for_the_image(num_steps, prediction, shape):
    # a denoiser exact for the image X0: x0-prediction returns X0; eps-prediction returns
    # (x - sqrt(abar_t) X0) / sqrt(1 - abar_t), which needs the right t. Starting from x = X0 at t_0,
    # every state is c_k X0 with c_{k+1} = a_{k+1} + s_{k+1} (c_k - a_k) / s_k; sampling back from x_T
    # returns X0.
    T = 20
    sch = NoiseSchedule(kind="linear", num_timesteps=T, beta_start=0.01, beta_end=0.3)
    betas = [0.01 + k / (T - 1) * (0.3 - 0.01) for k in range(T)]
    abar = [math.prod(1 - b for b in betas[:k + 1]) for k in range(T)]
    X0 = torch.linspace(-0.9, 0.8, math.prod(shape), dtype=torch.float64).reshape(shape)

    def model(x, tt):
        if prediction == "x0":
            return X0.expand_as(x).clone()
        ab = torch.tensor([abar[int(k)] for k in tt], dtype=x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
        return (x - ab.sqrt() * X0) / (1 - ab).sqrt()

    sampler = DDIMSampler(sch, prediction=prediction)
    seq = sorted(ddim_timesteps(T, num_steps, "uniform"))
    c = 1.0
    for t, t_next in zip(seq[:-1], seq[1:]):
        a, s = math.sqrt(abar[t]), math.sqrt(1 - abar[t])
        c = math.sqrt(abar[t_next]) + math.sqrt(1 - abar[t_next]) * (c - a) / s
    seen = []
    x_T = sampler.invert(model, X0, num_steps=num_steps, callback=lambda i, x: seen.append((i, x.clone())))
    assert [i for i, _ in seen] == list(range(len(seq) - 1))
    torch.testing.assert_close(x_T, c * X0, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(seen[-1][1], x_T, rtol=0, atol=0)
    back = sampler.sample(model, None, x_T=x_T, num_steps=num_steps)
    torch.testing.assert_close(back, X0, rtol=0, atol=1e-11)


def test_ddim_inversion_messages():
    sampler = DDIMSampler(NoiseSchedule(num_timesteps=10))
    model = lambda x, t: torch.zeros_like(x)  # noqa: E731
    with pytest.raises(ValueError, match=r"^DDIM inversion is deterministic: it needs eta = 0, got eta = 0.5$"):
        DDIMSampler(NoiseSchedule(num_timesteps=10), eta=0.5).invert(model, torch.zeros(1, 2))
    with pytest.raises(TypeError, match=r"^model_fn must be callable as model_fn\(x_t, t\)$"):
        sampler.invert(None, torch.zeros(1, 2))
    with pytest.raises(TypeError, match="^x0 must be a floating-point tensor$"):
        sampler.invert(model, torch.zeros(1, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"^x0 must be a non-empty batch, got shape \(0, 2\)$"):
        sampler.invert(model, torch.zeros(0, 2))
    with pytest.raises(ValueError, match="^x0 contains NaN or infinite values$"):
        sampler.invert(model, torch.tensor([[0.0, math.inf]]))
    with pytest.raises(TypeError, match="^callback must be None or callable, got int$"):
        sampler.invert(model, torch.zeros(1, 2), callback=3)
