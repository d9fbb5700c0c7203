"""A tiny built-in recipe, ``demo/toy-ddpm``: a DDPM on procedurally drawn coloured shapes.

It exists so that ``diffrep train demo/toy-ddpm`` and ``diffrep sample`` run end to end on a CPU in
well under a minute, and as the smallest example of a recipe: a config dataclass with ``model``,
``data`` and ``train`` sections, and a ``build(config) -> (model, dataset)``.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ..config import Config, ConfigError, register_recipe
from ..diffusion import DDIMSampler, DDPMSampler, NoiseSchedule, NoiseScheduleConfig
from ..nn.pretrained import PretrainedMixin, register_model
from ..nn.unet import UNet, UNetConfig
from .config import TrainConfig

__all__ = ["ToyShapesConfig", "ToyShapes", "ToyDDPMConfig", "ToyDDPM", "DemoConfig"]


@dataclasses.dataclass
class ToyShapesConfig(Config):
    """``num_images`` images of one filled square or disk each, random colour, size and position."""

    num_images: int = 1024
    image_size: int = 16
    seed: int = 0

    def validate(self) -> None:
        if self.num_images < 1:
            raise ConfigError("num_images", f"must be >= 1, got {self.num_images}")
        if self.image_size < 8:
            raise ConfigError("image_size", f"must be >= 8, got {self.image_size}")


class ToyShapes(Dataset):
    """Deterministic toy images in [-1, 1], shape [3, S, S]; image i depends only on (seed, i)."""

    def __init__(self, config: ToyShapesConfig | None = None):
        self.config = config or ToyShapesConfig()
        c = self.config
        g = torch.Generator().manual_seed(c.seed)
        S = c.image_size
        n = c.num_images
        kind = torch.randint(0, 2, (n,), generator=g)
        color = torch.rand(n, 3, generator=g) * 1.6 - 0.8
        radius = torch.rand(n, generator=g) * (S / 4 - S / 8) + S / 8
        cx = torch.rand(n, generator=g) * (S - 2 * radius) + radius
        cy = torch.rand(n, generator=g) * (S - 2 * radius) + radius
        ys, xs = torch.meshgrid(torch.arange(S) + 0.5, torch.arange(S) + 0.5, indexing="ij")
        dx, dy = xs[None] - cx[:, None, None], ys[None] - cy[:, None, None]
        disk = (dx**2 + dy**2) <= radius[:, None, None] ** 2
        square = (dx.abs() <= radius[:, None, None]) & (dy.abs() <= radius[:, None, None])
        mask = torch.where(kind[:, None, None] == 0, disk, square).float()
        self.images = (-1 + mask[:, None] * (color[:, :, None, None] + 1)).contiguous()

    def __len__(self) -> int:
        return self.config.num_images

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


@dataclasses.dataclass
class ToyDDPMConfig(Config):
    unet: UNetConfig = dataclasses.field(default_factory=lambda: UNetConfig(
        image_size=16, model_channels=32, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(8,),
        num_heads=2, num_groups=8))
    schedule: NoiseScheduleConfig = dataclasses.field(default_factory=lambda: NoiseScheduleConfig(kind="cosine", num_timesteps=200))
    sample_steps: int = 25

    def validate(self) -> None:
        if not 1 <= self.sample_steps <= self.schedule.num_timesteps:
            raise ConfigError("sample_steps", f"must be in [1, {self.schedule.num_timesteps}], got {self.sample_steps}")
        if self.unet.in_channels != self.unet.out_channels:
            raise ConfigError("unet.out_channels", "must equal unet.in_channels for epsilon prediction")


@register_model
class ToyDDPM(PretrainedMixin, nn.Module):
    """epsilon-prediction DDPM (Ho et al. 2020, Eq. 14 "L_simple") around a :class:`UNet`."""

    config_class = ToyDDPMConfig

    def __init__(self, config: ToyDDPMConfig):
        super().__init__()
        cfg = self._init_config(config)
        self.unet = UNet(cfg.unet)
        self.schedule = NoiseSchedule(cfg.schedule)

    def loss(self, batch, *, step: int | None = None, generator: torch.Generator | None = None) -> dict:
        x0 = batch[0] if isinstance(batch, (tuple, list)) else batch
        t = self.schedule.sample_timesteps(x0.shape[0], device=x0.device)
        noise = torch.randn_like(x0)
        pred = self.unet(self.schedule.q_sample(x0, t, noise), t)
        return {"loss": F.mse_loss(pred.float(), noise)}

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None, num_steps: int | None = None,
               sampler: str = "ddim") -> torch.Tensor:
        """n samples in [-1, 1]; ``sampler`` = ``"ddim"`` (eta 0, ``num_steps``) or ``"ddpm"`` (all steps)."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive int, got {n!r}")
        c = self.config.unet
        device = next(self.parameters()).device
        if sampler == "ddim":
            s = DDIMSampler(self.schedule, clip_x0=1.0)
            steps = num_steps or self.config.sample_steps
        elif sampler == "ddpm":
            s, steps = DDPMSampler(self.schedule, clip_x0=1.0), None
        else:
            raise ValueError(f"sampler must be 'ddim' or 'ddpm', got {sampler!r}")
        x = s.sample(lambda x, t: self.unet(x, t), (n, c.in_channels, c.image_size, c.image_size),
                     num_steps=steps, generator=generator, device=device)
        return x.clamp(-1, 1)


@dataclasses.dataclass
class DemoConfig(Config):
    model: ToyDDPMConfig = dataclasses.field(default_factory=ToyDDPMConfig)
    data: ToyShapesConfig = dataclasses.field(default_factory=ToyShapesConfig)
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(
        steps=300, batch_size=32, lr=2e-3, warmup_steps=20, grad_clip=1.0, ema_decay=0.99, log_every=25,
        ckpt_every=100, sample_every=150, num_samples=16, device="auto"))

    def validate(self) -> None:
        if self.data.image_size != self.model.unet.image_size:
            raise ConfigError("data.image_size", f"{self.data.image_size} differs from model.unet.image_size={self.model.unet.image_size}")


def _build(cfg: DemoConfig):
    return ToyDDPM(cfg.model), ToyShapes(cfg.data)


register_recipe("demo/toy-ddpm", DemoConfig, _build,
                "tiny DDPM on 16x16 procedural shapes; CPU, under a minute", cpu_friendly=True)
