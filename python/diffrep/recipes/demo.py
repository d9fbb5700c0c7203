"""``demo/toy-ddpm``: a DDPM on procedurally drawn coloured shapes.

It exists so that ``diffrep train demo/toy-ddpm`` and ``diffrep sample`` run end to end on a CPU in
well under a minute, and as the smallest example of a recipe: a config dataclass with ``model``,
``data`` and ``train`` sections, and a ``build(config) -> (model, dataset)``.
"""

from __future__ import annotations

import dataclasses

from ..config import Config, ConfigError
from ..data.toy_shapes import ToyShapes, ToyShapesConfig
from ..methods.toy_ddpm import ToyDDPM, ToyDDPMConfig
from ..train.config import TrainConfig
from .registry import Recipe

__all__ = ["DemoConfig", "build", "RECIPES"]


@dataclasses.dataclass
class DemoConfig(Config):
    model: ToyDDPMConfig = dataclasses.field(default_factory=ToyDDPMConfig)  # the toy DDPM
    data: ToyShapesConfig = dataclasses.field(default_factory=ToyShapesConfig)  # the procedural toy-shapes dataset
    train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(  # optimiser, steps, EMA, logging and checkpoints (diffrep.train.TrainConfig)
        steps=300, batch_size=32, lr=2e-3, warmup_steps=20, grad_clip=1.0, ema_decay=0.99, log_every=25,
        ckpt_every=100, sample_every=150, num_samples=16, device="auto"))

    def validate(self) -> None:
        if self.data.image_size != self.model.unet.image_size:
            raise ConfigError("data.image_size", f"{self.data.image_size} differs from model.unet.image_size={self.model.unet.image_size}")


def build(cfg: DemoConfig):
    return ToyDDPM(cfg.model), ToyShapes(cfg.data)


RECIPES = (
    Recipe("demo/toy-ddpm", DemoConfig, build, "tiny DDPM on 16x16 procedural shapes; CPU, under a minute",
           cpu_friendly=True),
)
