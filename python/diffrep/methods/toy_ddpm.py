"""ToyDDPM: the smallest method, an epsilon-prediction DDPM around a :class:`~diffrep.nn.unet.UNet`
(the model of the ``demo/toy-ddpm`` recipe and of the trainer's tests)."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import positive_int, training_step
from ..config import Config, ConfigError
from ..diffusion import DDIMSampler, DDPMSampler, NoiseSchedule, NoiseScheduleConfig
from ..nn.images import IMAGE_RANGE, batch_images, check_images, module_dtype
from ..nn.pretrained import PretrainedMixin
from ..nn.unet import UNet, UNetConfig

__all__ = ["ToyDDPMConfig", "ToyDDPM"]


@dataclasses.dataclass
class ToyDDPMConfig(Config):
    unet: UNetConfig = dataclasses.field(default_factory=lambda: UNetConfig(  # the noise-prediction U-Net eps_theta(x_t, t)
        image_size=16, model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(8,),
        num_heads=2, num_groups=8))
    schedule: NoiseScheduleConfig = dataclasses.field(default_factory=lambda: NoiseScheduleConfig(kind="cosine", num_timesteps=200))  # noise schedule (cosine, T = 200)
    sample_steps: int = 25  # sampling steps (DDIM by default; 1..T)

    def validate(self) -> None:
        if not 1 <= self.sample_steps <= self.schedule.num_timesteps:
            raise ConfigError("sample_steps", f"must be in [1, {self.schedule.num_timesteps}], got {self.sample_steps}")
        if self.unet.in_channels != self.unet.out_channels:
            raise ConfigError("unet.out_channels", "must equal unet.in_channels for epsilon prediction")


class ToyDDPM(PretrainedMixin, nn.Module):
    """epsilon-prediction DDPM (Ho et al. 2020, Eq. 14 "L_simple") around a :class:`UNet`."""

    config_class = ToyDDPMConfig

    def __init__(self, config: ToyDDPMConfig):
        super().__init__()
        cfg = self._init_config(config)
        self.unet = UNet(cfg.unet)
        self.schedule = NoiseSchedule(cfg.schedule)

    def loss(self, batch, *, step: int | None = None, generator: torch.Generator | None = None) -> dict:
        """L_simple on a batch of images (or (image, target) pairs); ``t`` and the noise come from
        ``generator`` (the global RNG when None). ``step`` is unused: the objective has no schedule."""
        c = self.config.unet
        x0 = check_images(batch_images(batch), channels=c.in_channels, size=c.image_size, name="batch",
                          who="ToyDDPM.loss", dtype=module_dtype(self), value_range=IMAGE_RANGE)
        training_step(step)
        t = self.schedule.sample_timesteps(x0.shape[0], device=x0.device, generator=generator)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        pred = self.unet(self.schedule._q_sample(x0, t, noise), t)  # t drawn above: no range read
        # at least float32 (a half-precision model's error is reduced in float32), float64 kept: pred.float()
        # rounded a float64 model's prediction to float32 (a relative error ~1e-7 in its loss)
        wide = torch.promote_types(pred.dtype, torch.float32)
        return {"loss": F.mse_loss(pred.to(wide), noise.to(wide))}

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None, num_steps: int | None = None,
               sampler: str = "ddim") -> torch.Tensor:
        """n samples in [-1, 1] in the weights' dtype; ``sampler`` = ``"ddim"`` (eta 0, ``num_steps``) or
        ``"ddpm"`` (all T steps; ``num_steps`` None or T)."""
        positive_int(n, "n")
        c = self.config.unet
        device = next(self.parameters()).device
        if sampler == "ddim":
            s = DDIMSampler(self.schedule, clip_x0=1.0)
            steps = self.config.sample_steps if num_steps is None else num_steps
        elif sampler == "ddpm":
            s, steps = DDPMSampler(self.schedule, clip_x0=1.0), num_steps  # all T steps: another count is refused
        else:
            raise ValueError(f"sampler must be 'ddim' or 'ddpm', got {sampler!r}")
        x = s.sample(lambda x, t: self.unet(x, t), (n, c.in_channels, c.image_size, c.image_size),
                     num_steps=steps, generator=generator, device=device, dtype=module_dtype(self))
        return x.clamp(-1, 1)
