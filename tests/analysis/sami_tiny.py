"""Tiny SAMI models and images for the analysis tests."""

import torch

from diffrep.diffusion import NoiseScheduleConfig
from diffrep.methods.sami import SAMI, SAMIConfig, SAMIConvNetConfig
from diffrep.nn import UNetConfig


def tiny_config(**kw) -> SAMIConfig:
    base = dict(
        denoiser=UNetConfig(image_size=8, in_channels=1, out_channels=1, model_channels=8, channel_mult=(1, 2),
                            num_res_blocks=1, attention_resolutions=(), middle_attention=False, num_groups=4,
                            use_scale_shift_norm=False),
        convnet=SAMIConvNetConfig(image_size=8, in_channels=1, base_channels=2, channel_mult=(2, 2), latent_dim=3),
        schedule=NoiseScheduleConfig(kind="linear", num_timesteps=20, beta_start=1e-3, beta_end=0.2),
        sigma_min=0.0, kl_weight=0.1, sample_steps=5)
    base.update(kw)
    return SAMIConfig(**base)


def tiny_model(seed=0, dtype=torch.float64, **kw) -> SAMI:
    torch.manual_seed(seed)
    m = SAMI(tiny_config(**kw)).to(dtype)
    # a zero-initialised output conv makes eps_theta == 0; randomise it so the denoiser matters
    with torch.no_grad():
        for p in m.denoiser.out.parameters():
            p.normal_(0, 0.1)
    return m


def images(n=3, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((n, 1, 8, 8), generator=g, dtype=dtype) * 2 - 1)
