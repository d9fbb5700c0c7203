"""InfoDiffusion recipes (docs/methods/infodiffusion.md#recipes).

Paper settings as in the authors' scripts (``run.sh``, ``run.py`` defaults): Adam lr 1e-4, batch 64,
linear beta 1e-5..1e-2 over T = 1000, U-Net and encoder base 64 with multipliers (1, 2, 2, 2) at 32/64 px
((1, 2, 4) at 28 px), MMD weight 0.1, no KL, Gaussian prior, 50 epochs on CelebA (latent 32), latent
10 on dSprites (our choice: the paper's dSprites latent size is not in the scripts); a CPU recipe on the
16 px Shapes3D sub-grid.
"""

from __future__ import annotations

import dataclasses
import math

from ..config import Config
from ..methods.infodiffusion import InfoDiffusion, InfoDiffusionConfig, infodiffusion_unet
from ..nn.encoders import HalfUNetConfig
from ..train.config import TrainConfig
from .encdiff import build_dataset, refuse_root_for_subgrid
from .registry import Recipe
from .runinfo import DataRoot

__all__ = ["InfoDiffusionRecipeConfig", "build", "paper_model", "cpu_model", "celeba64", "dsprites64", "shapes3d_cpu",
           "RECIPES"]


@dataclasses.dataclass
class InfoDiffusionRecipeConfig(Config):
    model: InfoDiffusionConfig = dataclasses.field(default_factory=InfoDiffusionConfig)  # the InfoDiffusion model (docs/methods/infodiffusion.md)
    dataset: str = "shapes3d_subgrid"  # shapes3d_subgrid (the Shapes3D sub-grid, 64 px renders average-pooled by pool) or a diffrep.data.load name (docs/data.md)
    dataset_options: dict = dataclasses.field(default_factory=dict)  # keyword options for diffrep.data.load
    data: DataRoot = dataclasses.field(default_factory=DataRoot)  # where the dataset's files are (data.root; empty: $DIFFREP_DATA or the generator)
    pool: int = 4  # shapes3d_subgrid: average-pooling factor of the 64 px renders
    pool_dataset = "shapes3d_subgrid"  # not a field: the one dataset pool applies to (run.json records 1 for others)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)  # optimiser, steps, EMA, logging and checkpoints (diffrep.train.TrainConfig)

    def validate(self) -> None:
        refuse_root_for_subgrid(self)


def build(cfg: InfoDiffusionRecipeConfig):
    ds = build_dataset(cfg)
    return InfoDiffusion(cfg.model), ds


def paper_model(size: int, channels: int, latent_dim: int, **fields) -> InfoDiffusionConfig:
    mult = (1, 2, 4) if size == 28 else (1, 2, 2, 2)
    unet = infodiffusion_unet(latent_dim, image_size=size, in_channels=channels, out_channels=channels, model_channels=64,
                              channel_mult=mult, num_res_blocks=2, attention_resolutions=(size // 2,), dropout=0.1)
    enc = HalfUNetConfig(image_size=size, in_channels=channels, model_channels=64, channel_mult=mult, num_res_blocks=2,
                         latent_dim=latent_dim, act="silu", bias=True, variance_head="logvar")
    return InfoDiffusionConfig(latent_dim=latent_dim, encoder=enc, unet=unet, **fields)


def _train(n: int, epochs: int, batch: int = 64) -> TrainConfig:
    return TrainConfig(steps=math.ceil(epochs * n / batch), batch_size=batch, lr=1e-4, grad_clip=1.0, ema_decay=0.0,
                       num_workers=8, log_every=100, ckpt_every=5000, sample_every=0)


def celeba64():
    return InfoDiffusionRecipeConfig(model=paper_model(64, 3, 32), dataset="celeba",
                                     dataset_options={"split": "train", "size": 64}, train=_train(162_770, 50))


def dsprites64():
    return InfoDiffusionRecipeConfig(model=paper_model(64, 1, 10), dataset="dsprites", train=_train(737_280, 20))


def cpu_model(latent_dim: int = 10) -> InfoDiffusionConfig:
    unet = infodiffusion_unet(latent_dim, image_size=16, model_channels=16, channel_mult=(1, 2, 2), num_res_blocks=1,
                              attention_resolutions=(), num_groups=8)
    enc = HalfUNetConfig(image_size=16, in_channels=3, model_channels=16, channel_mult=(1, 2, 2), num_res_blocks=1,
                         latent_dim=latent_dim, act="silu", bias=True, num_groups=8, variance_head="logvar")
    return InfoDiffusionConfig(latent_dim=latent_dim, encoder=enc, unet=unet, sample_steps=50)


def shapes3d_cpu() -> InfoDiffusionRecipeConfig:
    return InfoDiffusionRecipeConfig(model=cpu_model(), train=TrainConfig(
        steps=1000, batch_size=32, lr=1e-3, warmup_steps=50, lr_schedule="cosine", grad_clip=1.0, ema_decay=0.0,
        log_every=50, ckpt_every=0, sample_every=0, device="auto"))


RECIPES = tuple(Recipe(name, fn, build, desc, cpu) for name, fn, desc, cpu in (
    ("infodiffusion/shapes3d-cpu", shapes3d_cpu, "InfoDiffusion on the 16 px Shapes3D sub-grid, z 10; CPU, minutes", True),
    ("infodiffusion/celeba64", celeba64, "InfoDiffusion CelebA 64: z 32, MMD 0.1, batch 64, lr 1e-4, 50 epochs", False),
    ("infodiffusion/dsprites64", dsprites64, "InfoDiffusion dSprites 64: z 10, MMD 0.1, batch 64, 20 epochs", False),
))
