"""EncDiff and DisDiff (LDM) under the trainer's bf16 autocast (its default on a GPU): the frozen first stage
returns bf16 latents, and the forward process z_t = sqrt(abar) z0 + sqrt(1 - abar) eps, its noise draw and the L1 loss ran in bf16
(noise drawn as bf16, a loss of 3 significant digits). They stay in float32 now; only the networks run in bf16.
CPU autocast stands in for CUDA's here (the first stage's last op, a convolution, is bf16 under both)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from diffrep.diffusion.schedules import NoiseScheduleConfig
from diffrep.methods.disdiff import DisDiff, DisDiffConfig
from diffrep.methods.dyga import DyGAConfig
from diffrep.methods.encdiff import EncDiff, EncDiffConfig
from diffrep.methods.encdiff_nets import SmallExtractorConfig
from diffrep.nn.unet import UNetConfig
from diffrep.nn.vq import VQAutoencoderConfig

from helpers import untrained_on_purpose


def _model():
    un = UNetConfig(image_size=8, in_channels=3, out_channels=3, model_channels=16, channel_mult=(1, 2),
                    num_res_blocks=1, attention_resolutions=(4,), num_heads=2, num_groups=8, context_dim=8)
    sx = SmallExtractorConfig(image_size=16, num_units=4, token_dim=8, channels=(8, 16), hidden=16, mlp_hidden=(8,))
    vq = VQAutoencoderConfig(image_size=16, ch=8, ch_mult=(1, 2), num_res_blocks=1, n_embed=16, num_groups=4)
    torch.manual_seed(0)
    return untrained_on_purpose(EncDiff(EncDiffConfig(unet=un, small_extractor=sx, first_stage=vq, conditioning="none",
                                 dyga=DyGAConfig(num_units=4, token_dim=8),
                                 schedule=NoiseScheduleConfig(kind="ldm_linear", num_timesteps=40, beta_start=0.0015,
                                                              beta_end=0.0155)))).eval()


def _disdiff(stage):
    vq = VQAutoencoderConfig(image_size=16, ch=8, ch_mult=(1, 2), num_res_blocks=1, embed_dim=3, z_channels=3,
                             n_embed=16, num_groups=4)
    torch.manual_seed(0)
    return untrained_on_purpose(DisDiff(DisDiffConfig(first_stage=vq, unet=dataclasses.replace(DisDiffConfig().unet, image_size=8),
                                 stage=stage))).eval()


@pytest.mark.parametrize("method", ["encdiff", "disdiff-pretrain", "disdiff-disentangle"])
def test_the_forward_process_and_the_loss_stay_float32_under_bf16_autocast(method):
    m = _model() if method == "encdiff" else _disdiff(method.split("-")[1])
    latent = m.to_latent if method == "encdiff" else m.to_diffusion_space
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert latent(x).dtype == torch.bfloat16  # what the first stage gives under autocast
        low = m.loss(x, step=1, generator=torch.Generator().manual_seed(3))["loss"]
    with torch.no_grad():
        full = m.loss(x, step=1, generator=torch.Generator().manual_seed(3))["loss"]
    assert low.dtype == torch.float32 == full.dtype
    # the same t and float32 noise draws: only the networks' bf16 rounding separates the two losses
    assert abs(float(low) - float(full)) < 0.03 * float(full)
