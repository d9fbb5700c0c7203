"""VQ-GAN autoencoder recipes (the first stage of latent diffusion; the DyGA paper's Table 7).

- ``vq/toy-cpu``: f = 4 on 16x16 procedural shapes (:class:`diffrep.data.toy_shapes.ToyShapes`), a
  small discriminator switched on after 100 steps, no LPIPS; runs offline on a CPU in about a minute.
- ``vq/celeba64``: DyGA Table 7 / the LDM ``configs/autoencoder`` f = 4 setting on CelebA 64x64:
  64x64x3 -> 16x16x3, ch 32 x [1, 2, 4], 2 res blocks, no attention at any level (the taming/LDM
  encoder and decoder keep their mid-block attention, as for every Table 7 first stage), codebook
  2048 x 3, taming's legacy VQ loss weighting, LPIPS weight 1,
  discriminator weight 0.75 from step 0, Adam betas (0.5, 0.9), base lr 4.5e-6 scaled by the
  effective batch 256 (128 x 2 accumulation, folded into one batch here), no EMA, no clipping.
  LPIPS needs a local weight file (``model.perceptual_weights`` or ``$DIFFREP_LPIPS_WEIGHTS``; see
  :mod:`diffrep.nn.lpips`), and CelebA is read from ``$DIFFREP_DATA``. ``vq/shapes3d64``,
  ``vq/mpi3d-toy64`` and ``vq/cars3d64`` are this setting on the other datasets, LPIPS included. The step count is not given
  by the paper or the configs; 100k is a choice.
"""

from __future__ import annotations

import dataclasses

from ..config import Config, ConfigError
from ..data.toy_shapes import ToyShapes, ToyShapesConfig
from ..nn.vq import VQAutoencoder, VQAutoencoderConfig
from ..train.config import TrainConfig
from .registry import Recipe
from .runinfo import DataRoot, load_named

__all__ = ["VQRecipeConfig", "build", "build_dataset", "toy_cpu", "celeba64", "shapes3d64", "mpi3d_toy64", "cars3d64",
           "RECIPES"]


@dataclasses.dataclass
class VQRecipeConfig(Config):
    """``model`` + dataset (``"toy_shapes"`` uses ``toy``; any other name goes to ``diffrep.data.load``
    with ``root=data.root``, ``--data.root PATH``, default ``$DIFFREP_DATA``)."""

    model: VQAutoencoderConfig = dataclasses.field(default_factory=VQAutoencoderConfig)
    dataset: str = "toy_shapes"  # dataset name for diffrep.data.load (docs/data.md)
    dataset_options: dict = dataclasses.field(default_factory=dict)  # keyword options for diffrep.data.load
    toy: ToyShapesConfig = dataclasses.field(default_factory=ToyShapesConfig)
    data: DataRoot = dataclasses.field(default_factory=DataRoot)  # where the dataset's files are (data.root; empty: $DIFFREP_DATA or the generator)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)  # optimiser, steps, EMA, logging and checkpoints (diffrep.train.TrainConfig)

    def validate(self) -> None:
        if self.dataset == "toy_shapes" and self.toy.image_size != self.model.image_size:
            raise ConfigError("toy.image_size", f"{self.toy.image_size} differs from model.image_size={self.model.image_size}")
        if self.dataset == "toy_shapes" and self.data.root:
            raise ConfigError("data.root", f"{self.data.root!r}: toy_shapes are drawn procedurally, no files are read")


def build_dataset(cfg: VQRecipeConfig):
    if cfg.dataset == "toy_shapes":
        return ToyShapes(cfg.toy)
    return load_named(cfg.dataset, cfg.dataset_options, cfg.data)


def build(cfg: VQRecipeConfig):
    return VQAutoencoder(cfg.model), build_dataset(cfg)


def toy_cpu() -> VQRecipeConfig:
    model = VQAutoencoderConfig(image_size=16, ch=16, ch_mult=(1, 2, 4), num_res_blocks=1, n_embed=64,
                                mid_attention=False, num_groups=8, disc_weight=0.75, disc_start=100,
                                disc_channels=16, disc_layers=2)
    train = TrainConfig(steps=300, batch_size=16, lr=1e-3, betas=(0.5, 0.9), grad_clip=1.0, ema_decay=0.0,
                        log_every=25, ckpt_every=100, device="auto")
    return VQRecipeConfig(model=model, toy=ToyShapesConfig(image_size=16), train=train)


def celeba64() -> VQRecipeConfig:
    model = VQAutoencoderConfig(image_size=64, ch=32, ch_mult=(1, 2, 4), num_res_blocks=2, z_channels=3, embed_dim=3,
                                n_embed=2048, mid_attention=True, codebook_weight=1.0, perceptual_weight=1.0,
                                disc_weight=0.75, disc_start=0)
    train = TrainConfig(steps=100_000, batch_size=256, lr=4.5e-6 * 256, betas=(0.5, 0.9), grad_clip=0.0,
                        ema_decay=0.0, log_every=100, ckpt_every=5000, num_workers=8, device="auto")
    return VQRecipeConfig(model=model, dataset="celeba", dataset_options={"split": "train", "size": 64}, train=train)


def _table7(dataset: str, options: dict | None = None) -> VQRecipeConfig:
    """The DyGA paper's Table 7 first stage on ``dataset``: ``celeba64``'s model (with the taming/LDM
    mid-block attention), loss and training."""
    cfg = celeba64()
    return VQRecipeConfig(model=cfg.model, dataset=dataset, dataset_options=dict(options or {}), train=cfg.train)


def shapes3d64() -> VQRecipeConfig:
    return _table7("shapes3d")


def mpi3d_toy64() -> VQRecipeConfig:
    return _table7("mpi3d_toy")


def cars3d64() -> VQRecipeConfig:
    return _table7("cars3d")


RECIPES = (
    Recipe("vq/toy-cpu", toy_cpu, build, "f=4 VQ-GAN autoencoder on 16x16 shapes, discriminator from step 100; CPU, "
           "about a minute", cpu_friendly=True),
    Recipe("vq/celeba64", celeba64, build, "DyGA Table 7 f=4 VQ-GAN (LPIPS + PatchGAN) on CelebA 64; needs LPIPS "
           "weights file and CelebA"),
    Recipe("vq/shapes3d64", shapes3d64, build, "DyGA Table 7 f=4 VQ-GAN on Shapes3D (EncDiff's first stage); "
           "needs an LPIPS weights file"),
    Recipe("vq/mpi3d-toy64", mpi3d_toy64, build, "DyGA Table 7 f=4 VQ-GAN on MPI3D-toy (EncDiff's first stage); "
           "needs an LPIPS weights file"),
    Recipe("vq/cars3d64", cars3d64, build, "DyGA Table 7 f=4 VQ-GAN on Cars3D (EncDiff's first stage); "
           "needs an LPIPS weights file"),
)
