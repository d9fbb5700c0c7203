"""Regression from the robustness audit (2026-12-07): a sampler given x_T of another shape than ``shape``
took x_T's shape silently."""

import pytest
import torch

from diffrep.diffusion import DDIMSampler, NoiseSchedule, NoiseScheduleConfig


def test_x_T_must_match_shape():
    s = DDIMSampler(NoiseSchedule(NoiseScheduleConfig(kind="linear", num_timesteps=10)))
    zero = lambda x, t: torch.zeros_like(x)  # noqa: E731
    x_T = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    # eps = 0: one uniform DDIM step runs at t = 0 and returns x_0 = x_T / sqrt(abar_0)
    want = x_T / s.schedule.alphas_cumprod[0].sqrt().float()
    assert torch.allclose(s.sample(zero, None, num_steps=1, x_T=x_T), want, atol=1e-5)
    assert torch.allclose(s.sample(zero, (2, 1, 4, 4), num_steps=1, x_T=x_T), want, atol=1e-5)
    with pytest.raises(ValueError, match=r"x_T has shape \(2, 1, 4, 4\) but shape is \(2, 1, 8, 8\)"):
        s.sample(zero, (2, 1, 8, 8), num_steps=1, x_T=x_T)
    with pytest.raises(TypeError, match="x_T must be a tensor"):
        s.sample(zero, None, num_steps=1, x_T=[0.0])
