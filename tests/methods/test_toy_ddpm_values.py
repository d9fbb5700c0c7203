"""ToyDDPM (methods/toy_ddpm.py): its samplers against DDIM (Song et al. 2021, Eq. 12) and ancestral DDPM
sampling (Ho et al. 2020, Eq. 6-7) written out by hand on the cosine schedule (Nichol & Dhariwal 2021, Eq. 17),
x0 clipped to [-1, 1]; the sample dtype; the configuration bounds and messages. Written for the mutants of
benches/results/mutation_diffusion_toyddpm_vae_2026-12-07.md (``sample`` is decorated, so mutmut skips it:
it was mutated by hand)."""

import math
import re

import pytest
import torch

from diffrep.config import ConfigError
from diffrep.diffusion import NoiseScheduleConfig
from diffrep.methods.toy_ddpm import ToyDDPM, ToyDDPMConfig
from helpers import break_zero_init, ddim_decode_by_hand, tiny_unet

T = 12


def _model(dtype=torch.float64, sample_steps=3):
    torch.manual_seed(0)
    m = ToyDDPM(ToyDDPMConfig(unet=tiny_unet(in_channels=1, out_channels=1),
                              schedule=NoiseScheduleConfig(kind="cosine", num_timesteps=T), sample_steps=sample_steps))
    return break_zero_init(m, std=0.3).to(dtype)


def _cosine_abar(T, s=0.008):
    """abar_t = prod (1 - beta), beta_t = min(1 - f(t+1)/f(t), 0.999), f(t) = cos^2(((t/T + s)/(1 + s)) pi/2)."""
    f = [math.cos((k / T + s) / (1 + s) * math.pi / 2) ** 2 for k in range(T + 1)]
    betas = [min(1 - f[k + 1] / f[k], 0.999) for k in range(T)]
    return torch.tensor(betas, dtype=torch.float64), torch.cumprod(1 - torch.tensor(betas, dtype=torch.float64), 0)


def _eps(m):
    return lambda x, t: m.unet(x, t)


def _first_x0_leaves_the_box(m, x_T, steps):
    """Whether the first DDIM step's x0 prediction leaves [-1, 1] (so the x0 clip changes the chain)."""
    t = (steps - 1) * (T // steps)
    a = _cosine_abar(T)[1][t]
    x0 = (x_T - (1 - a).sqrt() * m.unet(x_T, torch.full((x_T.shape[0],), t, dtype=torch.long))) / a.sqrt()
    return bool((x0.abs() > 1).any())


@pytest.mark.parametrize("steps", [None, 4])
def test_ddim_sampling_is_eq12_by_hand_with_x0_clipped(steps):
    m = _model()
    _, abar = _cosine_abar(T)
    got = m.sample(3, generator=torch.Generator().manual_seed(5), num_steps=steps)
    n_steps = 3 if steps is None else steps  # None: config.sample_steps
    with torch.no_grad():
        xT = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
        assert _first_x0_leaves_the_box(m, xT, n_steps)  # the x0 clip changes this chain
        want = ddim_decode_by_hand(_eps(m), xT, n_steps, abar, clip=True).clamp(-1, 1)
        other = ddim_decode_by_hand(_eps(m), xT, 7 - n_steps, abar, clip=True)
        assert (other - want).abs().max() > 1e-3  # the step count matters
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_ddpm_sampling_is_ancestral_by_hand_with_x0_clipped():
    """x_{t-1} = mu~_t(x0, x_t) + sigma_t z, sigma_t^2 = beta~_t (fixed_small), z = 0 at t = 0; x0 from the
    eps prediction, clipped to [-1, 1]; x_T then one draw per step from the generator (Ho et al. 2020 Alg. 2)."""
    m = _model()
    betas, abar = _cosine_abar(T)
    got = m.sample(2, generator=torch.Generator().manual_seed(6), sampler="ddpm")
    g = torch.Generator().manual_seed(6)
    with torch.no_grad():
        x = torch.randn(2, 1, 8, 8, generator=g, dtype=torch.float64)
        for t in range(T - 1, -1, -1):
            ab, ab_prev, beta = abar[t], (abar[t - 1] if t > 0 else torch.tensor(1.0, dtype=torch.float64)), betas[t]
            e = m.unet(x, torch.full((2,), t, dtype=torch.long))
            x0 = ((x - (1 - ab).sqrt() * e) / ab.sqrt()).clamp(-1, 1)
            mean = ab_prev.sqrt() * beta / (1 - ab) * x0 + (1 - beta).sqrt() * (1 - ab_prev) / (1 - ab) * x
            z = torch.randn(x.shape, generator=g, dtype=torch.float64)
            x = mean + (t > 0) * (beta * (1 - ab_prev) / (1 - ab)).sqrt() * z
    torch.testing.assert_close(got, x.clamp(-1, 1), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_samples_come_in_the_weights_dtype(dtype):
    """A float64 (or bfloat16) model sampled float32 noise into its U-Net and failed with torch's dtype error."""
    m = _model(dtype)
    for sampler in ("ddim", "ddpm"):
        x = m.sample(2, generator=torch.Generator().manual_seed(0), sampler=sampler)
        assert x.dtype == dtype and x.shape == (2, 1, 8, 8)
        assert bool(torch.isfinite(x).all()) and float(x.abs().max()) <= 1


def test_sample_arguments_are_checked_by_name():
    m = _model()
    with pytest.raises(ValueError, match=r"^sampler must be 'ddim' or 'ddpm', got 'euler'$"):
        m.sample(1, sampler="euler")
    with pytest.raises(ValueError, match=r"^n must be a positive int, got 0$"):
        m.sample(0)
    # the DDPM chain runs all T steps: another count was ignored silently, now it is refused
    with pytest.raises(ValueError, match=r"^DDPMSampler runs all 12 steps; got num_steps=3 "):
        m.sample(1, sampler="ddpm", num_steps=3)
    a = m.sample(1, sampler="ddpm", num_steps=T, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, m.sample(1, sampler="ddpm", generator=torch.Generator().manual_seed(1)), rtol=0, atol=0)


def test_config_bounds_and_messages():
    for steps in (1, T):
        assert ToyDDPMConfig(schedule=NoiseScheduleConfig(kind="cosine", num_timesteps=T), sample_steps=steps).sample_steps == steps
    for steps in (0, T + 1):
        with pytest.raises(ConfigError, match=re.escape(f"config field 'sample_steps': must be in [1, {T}], got {steps}")):
            ToyDDPMConfig(schedule=NoiseScheduleConfig(kind="cosine", num_timesteps=T), sample_steps=steps)
    with pytest.raises(ConfigError, match=r"^config field 'unet.out_channels': must equal unet.in_channels for epsilon prediction$"):
        ToyDDPMConfig(unet=tiny_unet(in_channels=1, out_channels=2))
    d = ToyDDPMConfig()  # the demo recipe's model: cosine, T = 200, 25 DDIM steps
    assert (d.schedule.kind, d.schedule.num_timesteps, d.sample_steps) == ("cosine", 200, 25)


def test_the_objectives_draws_follow_the_images_device():
    """t and the noise are drawn on the images' device, not the default one (a meta default device makes a
    misplaced draw fail); the value is L_simple (Ho et al. 2020 Eq. 14) from the generator's draws, in the float64
    model's precision (the loss widens to at least float32 and keeps float64)."""
    m = _model()
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 2 - 1
    with torch.device("meta"):
        out = m.loss(x, step=0, generator=torch.Generator().manual_seed(3))
    assert out["loss"].device.type == "cpu"
    g = torch.Generator().manual_seed(3)
    t = torch.randint(0, T, (2,), generator=g)
    eps = torch.randn(x.shape, generator=g, dtype=torch.float64)
    ab = _cosine_abar(T)[1][t].reshape(-1, 1, 1, 1)
    with torch.no_grad():
        pred = m.unet(ab.sqrt() * x + (1 - ab).sqrt() * eps, t)
    assert float(out["loss"].detach()) == pytest.approx(float(((pred - eps) ** 2).mean()), rel=1e-12)


def test_samples_are_drawn_on_the_weights_device():
    m = _model()
    with torch.device("meta"):
        x = m.sample(2, generator=torch.Generator().manual_seed(0))
    assert x.device.type == "cpu"
    torch.testing.assert_close(x, m.sample(2, generator=torch.Generator().manual_seed(0)), rtol=0, atol=0)
