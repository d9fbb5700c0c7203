"""Noise schedules and DDPM/DDIM samplers: small stateless objects taking a per-sample ``t``."""

from .samplers import ChainDivergedError, DDIMSampler, DDPMSampler, ddim_timesteps
from .schedules import NoiseSchedule, NoiseScheduleConfig, expand_like

__all__ = ["NoiseSchedule", "NoiseScheduleConfig", "DDPMSampler", "DDIMSampler", "ddim_timesteps", "expand_like",
           "ChainDivergedError"]
