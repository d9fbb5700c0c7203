"""DisDiff recipes (docs/methods/disdiff.md#recipes), and the DyGA paper's Table 3 plug-in.

Paper settings (DisDiff Sec. 5 and the authors' configs ``configs/latent-diffusion/*-vq-4-16-dis.yaml``):
LDM on the f = 4 VQ latent (16 x 16 x 3 of 64 px images), U-Net base 64 x (1, 2, 4, 4), attention at
8/4/2 px (8 heads), resblock up/down, AdaGN; LDM-linear beta 0.0015..0.0155 over 1000 steps; N units of
32 dimensions (the configs: 6 on Shapes3D; 10 in the DyGA paper's Table 3); orthogonal part embeddings;
batch 128; lr 2.56e-4 = the config's base lr 2e-6 x batch 128 (the code's main.py scales it by the batch
and the GPU count by default), linear warm-up over 10k steps;
disentangling weight 0.05 (``compat_cli_weight`` reproduces the CLI's 1.0). Three stages: train the VQ
(``vq/...``), pre-train the LDM (``model.stage="pretrain"``), then disentangle with the frozen LDM
(``pretrained_path``: the pre-training run's final folder).

CPU recipe ``disdiff/shapes3d-cpu``: pixel DisDiff on the 16 px Shapes3D sub-grid, 6 units of 8
dimensions; ``disdiff/shapes3d-cpu-pretrain`` trains its eps model first; ``disdiff/shapes3d-cpu-onerun``
does both in one run (``pretrain_steps``), as a study needs.
"""

from __future__ import annotations

import dataclasses
import math
from types import MappingProxyType
from typing import Optional

from ..config import Config, ConfigError
from ..methods.disdiff import DisDiff, DisDiffConfig
from ..methods.dyga import DyGAConfig
from ..methods.dyga_schedule import recipe_anchor_data
from ..nn.encoders import HalfUNetConfig
from ..nn.unet import UNet, UNetConfig
from ..nn.vq import VQAutoencoder, VQAutoencoderConfig
from ..train.config import TrainConfig
from .encdiff import build_dataset, refuse_root_for_subgrid
from .registry import Recipe
from .runinfo import STAGE_WEIGHTS, DataRoot, stage_weights
from .._checks import a_or_an

__all__ = ["DisDiffRecipeConfig", "build", "with_dyga", "paper_model", "cpu_model", "shapes3d", "mpi3d_toy", "cars3d",
           "celeba64", "shapes3d_cpu", "RECIPES"]


@dataclasses.dataclass
class DisDiffRecipeConfig(Config):
    """model + dataset + training; ``pretrained_path``: a DisDiff (or UNet) ``save_pretrained`` folder whose
    eps model is loaded frozen (required in the disentangle stage); ``first_stage_path``: the VQ
    autoencoder's folder (LDM setting). ``pretrained_weights`` / ``first_stage_weights``: which weights of
    those folders are read (docs/methods/disdiff.md#command-line)."""

    # before 2026-12-07 both folders were read with their raw weights; a study cell holding these values keeps its hash
    fields_added = MappingProxyType({"pretrained_weights": "model", "first_stage_weights": "model"})

    model: DisDiffConfig = dataclasses.field(default_factory=DisDiffConfig)  # the DisDiff model (docs/methods/disdiff.md)
    dataset: str = "shapes3d_subgrid"  # shapes3d_subgrid (the Shapes3D sub-grid, 64 px renders average-pooled by pool) or a diffrep.data.load name (docs/data.md)
    dataset_options: dict = dataclasses.field(default_factory=dict)  # keyword options for diffrep.data.load
    data: DataRoot = dataclasses.field(default_factory=DataRoot)  # where the dataset's files are (data.root; empty: $DIFFREP_DATA or the generator)
    pool: int = 4  # shapes3d_subgrid: average-pooling factor of the 64 px renders
    pool_dataset = "shapes3d_subgrid"  # not a field: the one dataset pool applies to (run.json records 1 for others)
    pretrained_path: Optional[str] = None
    pretrained_weights: STAGE_WEIGHTS = "auto"  # which of pretrained_path's weights: auto (its EMA copy when it kept one), ema, model
    first_stage_path: Optional[str] = None
    first_stage_weights: STAGE_WEIGHTS = "auto"  # which of first_stage_path's weights (the vq/ recipes keep no EMA copy: auto reads the raw ones)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)  # optimiser, steps, EMA, logging and checkpoints (diffrep.train.TrainConfig)

    def validate(self) -> None:
        refuse_root_for_subgrid(self)
        if self.model.first_stage is None and self.first_stage_path:  # was "the VQ autoencoder's config differs"
            raise ConfigError("first_stage_path", "the model runs in pixel space (model.first_stage is None)")


# what --pretrained_path may hold (a "unet must be a UNet, got DiffAE" named neither the flag nor the fix)
PRETRAINED_HINT = "give the final folder of a DisDiff pre-training run (disdiff/...-pretrain) or of a UNet"


def build(cfg: DisDiffRecipeConfig):
    from ..nn.pretrained import load_pretrained

    if cfg.model.stage == "disentangle" and cfg.model.pretrain_steps == 0 and not cfg.pretrained_path:
        raise ValueError("the disentangle stage reads a pre-trained eps model: pass the pre-training run's final "
                         "folder with --pretrained_path DIR (or set --model.stage pretrain)")
    if cfg.model.first_stage is not None and not cfg.first_stage_path:
        raise ValueError("the LDM setting needs the trained VQ autoencoder's folder: --first_stage_path DIR")
    model = DisDiff(cfg.model)
    if cfg.first_stage_path:
        folder, weights = stage_weights(cfg.first_stage_path, cfg.first_stage_weights, "first_stage_path",
                                        "first_stage_weights")
        vq = VQAutoencoder.from_pretrained(folder, weights=weights)
        model.load_pretrained_diffusion(model.unet, vq)
    if cfg.pretrained_path:
        # the authors' configs set load_ema_ckpt: true (the pre-trained LDM's EMA weights; note that their
        # init_model reads the raw `model.` keys under that setting: pretrained_weights model reproduces the code)
        folder, weights = stage_weights(cfg.pretrained_path, cfg.pretrained_weights, "pretrained_path",
                                        "pretrained_weights", classes=("DisDiff", "UNet", "UNet2DModel"), hint=PRETRAINED_HINT)
        pre = load_pretrained(folder, weights=weights)
        if not isinstance(pre, (DisDiff, UNet)):  # "unet must be a UNet, got DiffAE" named neither flag nor fix
            raise ValueError(f"--pretrained_path {cfg.pretrained_path} holds {a_or_an(type(pre).__name__)}; {PRETRAINED_HINT}")
        unet = pre.unet if isinstance(pre, DisDiff) else pre
        model.load_pretrained_diffusion(unet)
    ds = build_dataset(cfg)
    if model.dyga is not None:  # DyGA Alg. 1: the anchors are refitted on the training set every r epochs
        model.attach_anchor_data(ds, **recipe_anchor_data(model.dyga.config, len(ds), cfg.train.batch_size))
    return model, ds


def with_dyga(cfg: DisDiffConfig, *, skip_dropout: float = 0.2, **dyga_fields) -> DisDiffConfig:
    """The DyGA paper's Table 3 arm: DyGA on the units (DyGA Eq. 6, Alg. 2) and Skip Dropout at every
    shift-decoder skip (DyGA Eq. 7, rate 0.2; docs/methods/disdiff.md#dyga-and-skip-dropout)."""
    dyga = DyGAConfig(**{"num_units": cfg.num_units, "token_dim": cfg.unit_dim, **dyga_fields})
    return dataclasses.replace(cfg, dyga=dyga, shift_skip_dropout=skip_dropout, shift_skip_dropout_placement="all")


def paper_model(num_units: int = 6, *, image_size: int = 64) -> DisDiffConfig:
    vq = VQAutoencoderConfig(image_size=image_size, ch=32, ch_mult=(1, 2, 4), num_res_blocks=2, z_channels=3,
                             embed_dim=3, n_embed=2048, mid_attention=True)
    unet = UNetConfig(image_size=image_size // 4, in_channels=3, out_channels=3, model_channels=64,
                      channel_mult=(1, 2, 4, 4), num_res_blocks=2, attention_resolutions=(8, 4, 2), num_heads=8,
                      resblock_updown=True, use_scale_shift_norm=True)
    enc = HalfUNetConfig(image_size=image_size, in_channels=3, model_channels=64, channel_mult=(1, 2, 2, 2),
                         num_res_blocks=1, latent_dim=num_units * 32, act="relu", bias=True, variance_head="logvar")
    return DisDiffConfig(num_units=num_units, unit_dim=32, encoder=enc, unet=unet, first_stage=vq, recon_loss="l2",
                         dis_weight=0.05, sample_steps=100)


def _train(n: int, epochs: int = 100, batch: int = 128) -> TrainConfig:
    return TrainConfig(steps=math.ceil(epochs * n / batch), batch_size=batch, lr=2e-6 * batch, warmup_steps=10_000,
                       grad_clip=0.0, ema_decay=0.9999, num_workers=8, log_every=100, ckpt_every=5000, sample_every=0)


def shapes3d():
    return DisDiffRecipeConfig(model=paper_model(6), dataset="shapes3d", train=_train(480_000))


def mpi3d_toy():
    return DisDiffRecipeConfig(model=paper_model(7), dataset="mpi3d_toy", train=_train(1_036_800))


def cars3d():
    return DisDiffRecipeConfig(model=paper_model(10), dataset="cars3d", train=_train(17_568))


def celeba64():
    return DisDiffRecipeConfig(model=paper_model(10), dataset="celeba", dataset_options={"split": "train", "size": 64},
                               train=_train(162_770, batch=64))


def shapes3d_dyga():
    """DyGA Table 3: DisDiff (N = 10) + DyGA + Skip Dropout."""
    return DisDiffRecipeConfig(model=with_dyga(paper_model(10)), dataset="shapes3d", train=_train(480_000))


def cpu_model(num_units: int = 6, unit_dim: int = 8) -> DisDiffConfig:
    unet = UNetConfig(image_size=16, in_channels=3, out_channels=3, model_channels=16, channel_mult=(1, 2, 2),
                      num_res_blocks=1, attention_resolutions=(), num_groups=8)
    enc = HalfUNetConfig(image_size=16, in_channels=3, model_channels=16, channel_mult=(1, 2, 2), num_res_blocks=1,
                         latent_dim=num_units * unit_dim, act="silu", bias=True, num_groups=8, variance_head="logvar")
    return DisDiffConfig(num_units=num_units, unit_dim=unit_dim, encoder=enc, unet=unet, sample_steps=50)


def _cpu_train(steps: int, batch: int = 32) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=batch, lr=1e-3, warmup_steps=50, lr_schedule="cosine", grad_clip=1.0,
                       ema_decay=0.0, log_every=50, ckpt_every=0, sample_every=0, device="auto")


def shapes3d_cpu_pretrain():
    return DisDiffRecipeConfig(model=dataclasses.replace(cpu_model(), stage="pretrain"), train=_cpu_train(1500))


def shapes3d_cpu():
    return DisDiffRecipeConfig(model=cpu_model(), train=_cpu_train(800, batch=16))


def shapes3d_cpu_onerun():
    """Both CPU stages in one run (``pretrain_steps``): what a study runs, no pre-trained folder needed."""
    return DisDiffRecipeConfig(model=dataclasses.replace(cpu_model(), pretrain_steps=1500),
                               train=_cpu_train(2300, batch=16))


RECIPES = tuple(Recipe(name, fn, build, desc, cpu) for name, fn, desc, cpu in (
    ("disdiff/shapes3d-cpu-pretrain", shapes3d_cpu_pretrain, "DisDiff CPU stage 1: the pixel eps model, 16 px Shapes3D", True),
    ("disdiff/shapes3d-cpu", shapes3d_cpu, "DisDiff CPU stage 2 (needs --pretrained_path): 6 units x 8 dims", True),
    ("disdiff/shapes3d-cpu-onerun", shapes3d_cpu_onerun, "DisDiff CPU, both stages in one run (for studies)", True),
    ("disdiff/shapes3d", shapes3d, "DisDiff on Shapes3D: LDM on the f=4 VQ latent, 6 units x 32", False),
    ("disdiff/mpi3d-toy", mpi3d_toy, "DisDiff on MPI3D-toy, LDM, 7 units x 32", False),
    ("disdiff/cars3d", cars3d, "DisDiff on Cars3D, LDM, 10 units x 32", False),
    ("disdiff/celeba64", celeba64, "DisDiff on CelebA 64, LDM, 10 units x 32, batch 64", False),
    ("disdiff/shapes3d-dyga", shapes3d_dyga, "DyGA Table 3: DisDiff + DyGA + Skip Dropout 0.2 (N = 10)", False),
))
