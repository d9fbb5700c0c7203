"""DiffAE recipes (docs/methods/diffae.md#recipes): the paper's settings where the authors' templates
give them, and a CPU recipe.

Paper recipes (DiffAE Sec. 4 and App. A; the authors' ``templates.py``): z_sem 512, linear beta
1e-4..0.02 over T = 1000, Adam lr 1e-4, batch 32, dropout 0.1, EMA 0.9999, attention at 16 px; 64 px:
U-Net base 64 x (1, 2, 4, 8), encoder (1, 2, 4, 8, 8), 72M images seen; 128 px: base 128 x
(1, 1, 2, 3, 4), encoder (1, 1, 2, 3, 4, 4), 130M images (FFHQ; 128 px needs a large GPU).
Shapes3D (64 px) uses the 64 px architecture. Stage 2 (``model.stage="latent"``): the latent DDIM,
10 layers x 2048 (20 for FFHQ 128), L1, constant beta 0.008, needs ``autoencoder_path`` (the stage-1
``final`` folder), whose z_sem statistics are computed over ``stats_images`` training images.

CPU recipe ``diffae/shapes3d-cpu``: 16 x 16 Shapes3D sub-grid (:class:`diffrep.recipes.encdiff.Shapes3DSubgrid`),
a small U-Net and encoder, z_sem 32.
"""

from __future__ import annotations

import dataclasses
import math
from types import MappingProxyType
from typing import Annotated, Optional

import torch

from ..config import Config, ConfigError, Ge
from ..methods.diffae import DiffAE, DiffAEConfig, LatentDDIMConfig, diffae_unet
from ..nn.encoders import HalfUNetConfig
from ..train.config import TrainConfig
from .encdiff import build_dataset, refuse_root_for_subgrid
from .registry import Recipe
from .runinfo import STAGE_WEIGHTS, DataRoot, stage_weights

__all__ = ["DiffAERecipeConfig", "build", "build_dataset", "paper_model", "cpu_model", "celeba64", "ffhq128",
           "celebahq128", "shapes3d64", "shapes3d_cpu", "RECIPES"]


@dataclasses.dataclass
class DiffAERecipeConfig(Config):
    """model + dataset (``"shapes3d_subgrid"``: the CPU sub-grid; any other name goes to
    ``diffrep.data.load``) + training; ``autoencoder_path`` (read with ``autoencoder_weights``) and
    ``stats_images`` for stage 2."""

    # before 2026-12-07 stage 2 read the raw stage-1 weights; a study cell holding that value keeps its hash
    fields_added = MappingProxyType({"autoencoder_weights": "model"})

    model: DiffAEConfig = dataclasses.field(default_factory=DiffAEConfig)  # the DiffAE model (docs/methods/diffae.md)
    dataset: str = "shapes3d_subgrid"  # shapes3d_subgrid (the Shapes3D sub-grid, 64 px renders average-pooled by pool) or a diffrep.data.load name (docs/data.md)
    dataset_options: dict = dataclasses.field(default_factory=dict)  # keyword options for diffrep.data.load
    data: DataRoot = dataclasses.field(default_factory=DataRoot)  # where the dataset's files are (data.root; empty: $DIFFREP_DATA or the generator)
    pool: int = 4  # the sub-grid's average pooling of the 64 px renders
    pool_dataset = "shapes3d_subgrid"  # not a field: the one dataset pool applies to (run.json records 1 for others)
    autoencoder_path: Optional[str] = None  # stage 2 (model.stage latent): the stage-1 run's final folder, whose encoder and decoder are loaded frozen
    autoencoder_weights: STAGE_WEIGHTS = "auto"  # which of autoencoder_path's weights: auto (its EMA copy when it kept one, as the paper's stage 2), ema, model
    stats_images: Annotated[int, Ge(2)] = 10_000
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)  # optimiser, steps, EMA, logging and checkpoints (diffrep.train.TrainConfig)

    def validate(self) -> None:
        refuse_root_for_subgrid(self)
        if self.autoencoder_path and self.model.stage != "latent":  # it was ignored: stage 1 trained from scratch
            raise ConfigError("autoencoder_path", "only stage 2 reads it: add --model.stage latent")


def _images_of(ds, n: int) -> torch.Tensor:
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))[: min(n, len(ds))].tolist()
    items = [ds[i] for i in idx]
    return torch.stack([it[0] if isinstance(it, (tuple, list)) else it for it in items])


def build(cfg: DiffAERecipeConfig):
    """(model, dataset). Stage 2 loads the autoencoder and fits the z_sem statistics first."""
    if cfg.model.stage == "latent" and not cfg.autoencoder_path:
        raise ValueError("stage 'latent' trains the latent DDIM of a trained autoencoder: pass the stage-1 run's "
                         "final folder with --autoencoder_path DIR")
    model = DiffAE(cfg.model)
    if cfg.model.stage == "latent":  # checked before the dataset is read
        # DiffAE's authors infer the training set's z_sem with the EMA model (experiment.py, infer_whole_dataset)
        # and render with it: stage 2 reads stage 1's EMA copy where it kept one (autoencoder_weights auto)
        folder, weights = stage_weights(cfg.autoencoder_path, cfg.autoencoder_weights, "autoencoder_path",
                                        "autoencoder_weights", classes=("DiffAE",),
                                        hint="give the final folder of a DiffAE stage-1 run (a diffae/ recipe)")
        ae = DiffAE.from_pretrained(folder, weights=weights)
        _check_same_autoencoder(ae.config, cfg.model, cfg.autoencoder_path)
        # only the trained parts: the latent DDIM is this stage's (its config may differ from stage 1's)
        model.encoder.load_state_dict(ae.encoder.state_dict())
        model.unet.load_state_dict(ae.unet.state_dict())
    ds = build_dataset(cfg)
    if cfg.model.stage == "latent":
        x = _images_of(ds, cfg.stats_images)
        with torch.no_grad():
            model.fit_latent_stats(torch.cat([model.encode(x[i:i + 256]) for i in range(0, len(x), 256)]))
    return model, ds


def _check_same_autoencoder(saved: DiffAEConfig, wanted: DiffAEConfig, path: str) -> None:
    """Stage 2 rebuilds the model from this run's config and loads stage 1's encoder and decoder into it: a
    field that differs gave a wall of torch's size mismatches (or, where shapes agree, a silently different
    model, e.g. another noise schedule); name the fields instead."""
    from ..config import differing_fields

    parts = ("latent_dim", "encoder", "unet", "schedule")
    diff = [f"model.{k}: {a!r} there, {b!r} here"
            for k, a, b in differing_fields({k: getattr(saved, k) for k in parts}, {k: getattr(wanted, k) for k in parts})]
    if diff:
        raise ValueError(f"--autoencoder_path {path}: the autoencoder was trained with other model settings than this "
                         f"run's ({'; '.join(diff[:6])}{'; ...' if len(diff) > 6 else ''}); give stage 2 the stage-1 "
                         "run's settings, e.g. --config RUN/config.yaml --model.stage latent --autoencoder_path RUN/final")


def paper_model(size: int, *, latent_layers: int = 10, channels: int = 3) -> DiffAEConfig:
    if size == 64:
        base, mult, enc = 64, (1, 2, 4, 8), (1, 2, 4, 8, 8)
    elif size == 128:
        base, mult, enc = 128, (1, 1, 2, 3, 4), (1, 1, 2, 3, 4, 4)
    else:
        raise ValueError(f"the paper's architectures are for 64 or 128 px, got {size}")
    unet = diffae_unet(512, image_size=size, in_channels=channels, out_channels=channels, model_channels=base,
                       channel_mult=mult, num_res_blocks=2, attention_resolutions=(16,), dropout=0.1)
    encoder = HalfUNetConfig(image_size=size, in_channels=channels, model_channels=base, channel_mult=enc,
                             num_res_blocks=2, attention_resolutions=(16,), latent_dim=512, act="silu", bias=True,
                             variance_head="logvar")
    return DiffAEConfig(latent_dim=512, encoder=encoder, unet=unet, sample_steps=100,
                        latent=LatentDDIMConfig(num_layers=latent_layers, width=2048))


def _train(samples: int, batch: int = 32) -> TrainConfig:
    return TrainConfig(steps=math.ceil(samples / batch), batch_size=batch, lr=1e-4, grad_clip=1.0, ema_decay=0.9999,
                       num_workers=8, log_every=100, ckpt_every=10000, sample_every=0)


def celeba64():
    return DiffAERecipeConfig(model=paper_model(64), dataset="celeba", dataset_options={"split": "train", "size": 64},
                              train=_train(72_000_000))


def ffhq128():
    return DiffAERecipeConfig(model=paper_model(128, latent_layers=20), dataset="image_folder",
                              dataset_options={"size": 128}, train=_train(130_000_000))


def celebahq128():
    return DiffAERecipeConfig(model=paper_model(128), dataset="image_folder", dataset_options={"size": 128},
                              train=_train(130_000_000))


def shapes3d64():
    return DiffAERecipeConfig(model=paper_model(64), dataset="shapes3d", train=_train(72_000_000))


def cpu_model(latent_dim: int = 32) -> DiffAEConfig:
    unet = diffae_unet(latent_dim, image_size=16, model_channels=16, channel_mult=(1, 2, 2), num_res_blocks=1,
                       attention_resolutions=(), num_groups=8)
    enc = HalfUNetConfig(image_size=16, in_channels=3, model_channels=16, channel_mult=(1, 2, 2), num_res_blocks=1,
                         latent_dim=latent_dim, act="silu", bias=True, num_groups=8, variance_head="logvar")
    return DiffAEConfig(latent_dim=latent_dim, encoder=enc, unet=unet, sample_steps=50,
                        latent=LatentDDIMConfig(num_layers=4, width=256, sample_steps=50))


def shapes3d_cpu(stage: str = "autoencoder") -> DiffAERecipeConfig:
    m = dataclasses.replace(cpu_model(), stage=stage)
    steps = 1000 if stage == "autoencoder" else 600
    return DiffAERecipeConfig(model=m, dataset="shapes3d_subgrid", pool=4, stats_images=5120,
                              autoencoder_path=None,
                              train=TrainConfig(steps=steps, batch_size=32, lr=1e-3, warmup_steps=50,
                                                lr_schedule="cosine", grad_clip=1.0, ema_decay=0.0, log_every=50,
                                                ckpt_every=0, sample_every=0, device="auto"))


RECIPES = tuple(Recipe(name, fn, build, desc, cpu) for name, fn, desc, cpu in (
    ("diffae/shapes3d-cpu", shapes3d_cpu, "DiffAE on the 16 px Shapes3D sub-grid, z_sem 32; CPU, minutes", True),
    ("diffae/celeba64", celeba64, "DiffAE CelebA 64 (templates: base 64 x [1,2,4,8], z 512, 72M images)", False),
    ("diffae/ffhq128", ffhq128, "DiffAE FFHQ 128 (base 128 x [1,1,2,3,4], 130M images; image_folder)", False),
    ("diffae/celebahq128", celebahq128, "DiffAE CelebA-HQ 128 (the FFHQ 128 architecture; image_folder)", False),
    ("diffae/shapes3d64", shapes3d64, "DiffAE on Shapes3D 64 (the 64 px architecture)", False),
))
