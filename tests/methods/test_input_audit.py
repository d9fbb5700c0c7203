"""Regressions from the robustness audit of the method surface (2026-12-07): a bad argument is a
ValueError/TypeError naming it, never a silent default or a torch-internal error."""

import pytest
import torch

from diffrep.diffusion import NoiseScheduleConfig
from diffrep.methods.toy_ddpm import ToyDDPM, ToyDDPMConfig

from helpers import tiny_bfn, tiny_sami, tiny_unet


def tiny_toy():
    torch.manual_seed(0)
    return ToyDDPM(ToyDDPMConfig(unet=tiny_unet(in_channels=1, out_channels=1),
                                 schedule=NoiseScheduleConfig(kind="cosine", num_timesteps=10), sample_steps=3))


@pytest.mark.parametrize("make", [tiny_toy, lambda: tiny_bfn("discrete"), lambda: tiny_sami(dtype=torch.float32)],
                         ids=["toy_ddpm", "bfn", "sami"])
def test_sample_num_steps_zero_is_refused_not_the_default(make):
    # `num_steps or config.sample_steps` turned an explicit 0 into the default step count
    m = make().eval()
    with pytest.raises(ValueError, match="num_steps|n_steps"):
        m.sample(1, num_steps=0)


def test_toy_ddpm_loss_checks_the_batch():
    m = tiny_toy()
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    assert torch.isfinite(m.loss(x, step=0, generator=torch.Generator().manual_seed(0))["loss"])
    with pytest.raises(ValueError, match=r"^ToyDDPM.loss: batch holds NaN"):
        m.loss(x * float("nan"), step=0)  # was a NaN loss
    with pytest.raises(ValueError, match=r"^ToyDDPM.loss: batch must have shape \[B, 1, 8, 8\]"):
        m.loss(torch.rand(2, 1, 16, 16), step=0)  # was trained on, silently
    with pytest.raises(TypeError, match=r"^ToyDDPM.loss: batch must be a floating-point"):
        m.loss(x.long(), step=0)  # was NotImplementedError from torch.randn
    with pytest.raises(TypeError, match=r"^ToyDDPM.loss: batch must be an image tensor"):
        m.loss([], step=0)  # was IndexError
