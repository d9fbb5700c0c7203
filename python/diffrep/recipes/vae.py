"""VAE-family baseline recipes (docs/methods/vae.md#recipes): ``vae/<method>-<dataset>`` reproduces
disentanglement_lib's unsupervised study (Locatello et al. 2019, Sec. 5 and App. B; the
``unsupervised_study_v1`` gin configs) and ``vae/<method>-cpu`` is a CPU-sized run on procedural dSprites.

Paper recipes (every method, every dataset): the 64 x 64 conv encoder/decoder, 10 latents, Bernoulli
decoder, batch 64, Adam lr 1e-4, betas (0.9, 0.999), eps 1e-8, 300,000 steps, no EMA, no gradient
clipping; the method's hyper-parameter at its config default, one value of :data:`GRIDS`, the
study's grid (sweep it with the study runner). Datasets: ``dsprites`` (1 channel), ``shapes3d``,
``mpi3d-toy``, ``cars3d`` (3 channels), read from ``--data.root`` / ``$DIFFREP_DATA`` (dSprites and
3D Shapes fall back to diffrep's procedural renderers when no files are set).

CPU recipes: procedural dSprites max-pooled to 32 x 32 (:class:`diffrep.data.pooled.Pooled`), the
32 x 32 networks, batch 64, Adam lr 1e-3 (a choice: 1e-4 learns too slowly for minutes), 1500 steps; the
annealed VAE reaches its capacity at step 750, FactorVAE's discriminator has 256-unit layers.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

from ..config import Config, Ge
from ..data.pooled import Pooled
from ..methods.vae import (AEConfig, BetaTCVAEConfig, BetaVAEConfig, DIPVAEConfig, FactorVAEConfig, FSQAEConfig,
                           InfoVAEConfig, METHOD_CLASSES, VAEConfig)
from ..train.config import TrainConfig
from .registry import Recipe
from .runinfo import DataRoot, load_named

__all__ = ["AERecipeConfig", "VAERecipeConfig", "BetaVAERecipeConfig", "BetaTCVAERecipeConfig",
           "FactorVAERecipeConfig", "InfoVAERecipeConfig", "DIPVAERecipeConfig", "FSQAERecipeConfig", "build",
           "build_dataset", "paper_config", "cpu_config", "GRIDS", "DATASETS", "METHODS", "RECIPES"]


@dataclasses.dataclass
class _DataFields(Config):
    dataset: str = "dsprites"  # dataset name for diffrep.data.load (docs/data.md)
    dataset_options: dict = dataclasses.field(default_factory=dict)  # keyword options for diffrep.data.load
    pool: Annotated[int, Ge(1)] = 1  # max-pooling factor of the dataset's images (1: none)
    data: DataRoot = dataclasses.field(default_factory=DataRoot)  # where the dataset's files are (data.root; empty: $DIFFREP_DATA or the generator)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)  # optimiser, steps, EMA, logging and checkpoints (diffrep.train.TrainConfig)


def _recipe_config(name: str, model_config: type) -> type:
    """A recipe config: ``model`` (the method's config) + dataset by name (``diffrep.data.load(dataset,
    root=data.root, **dataset_options)``, max-pooled by ``pool``) + ``train``."""
    cls = dataclasses.make_dataclass(name, [("model", model_config, dataclasses.field(default_factory=model_config))],
                                     bases=(_DataFields,))
    cls.__module__ = __name__
    cls.__doc__ = _recipe_config.__doc__.split(": ", 1)[1]
    return cls


AERecipeConfig = _recipe_config("AERecipeConfig", AEConfig)
VAERecipeConfig = _recipe_config("VAERecipeConfig", VAEConfig)
BetaVAERecipeConfig = _recipe_config("BetaVAERecipeConfig", BetaVAEConfig)
BetaTCVAERecipeConfig = _recipe_config("BetaTCVAERecipeConfig", BetaTCVAEConfig)
FactorVAERecipeConfig = _recipe_config("FactorVAERecipeConfig", FactorVAEConfig)
InfoVAERecipeConfig = _recipe_config("InfoVAERecipeConfig", InfoVAEConfig)
DIPVAERecipeConfig = _recipe_config("DIPVAERecipeConfig", DIPVAEConfig)
FSQAERecipeConfig = _recipe_config("FSQAERecipeConfig", FSQAEConfig)

#: method name -> (recipe config class, the model-config fields that make the method)
METHODS = {
    "ae": (AERecipeConfig, {}),
    "vae": (VAERecipeConfig, {}),
    "beta-vae": (BetaVAERecipeConfig, {}),
    "annealed-vae": (BetaVAERecipeConfig, {"capacity_max": 25.0, "capacity_gamma": 1000.0, "capacity_steps": 100_000}),
    "beta-tcvae": (BetaTCVAERecipeConfig, {}),
    "factor-vae": (FactorVAERecipeConfig, {}),
    "info-vae": (InfoVAERecipeConfig, {}),
    "dip-vae-i": (DIPVAERecipeConfig, {"kind": "i"}),
    "dip-vae-ii": (DIPVAERecipeConfig, {"kind": "ii"}),
    "fsq-ae": (FSQAERecipeConfig, {}),
}

#: the hyper-parameter grids of disentanglement_lib's unsupervised study (Locatello et al. 2019, Table 2)
#: as (model field, values); InfoVAE and the FSQ autoencoder are not in that study (their grids: ours).
GRIDS = {
    "beta-vae": ("beta", (1.0, 2.0, 4.0, 6.0, 8.0, 16.0)),
    "annealed-vae": ("capacity_max", (5.0, 10.0, 25.0, 50.0, 75.0, 100.0)),
    "beta-tcvae": ("beta", (1.0, 2.0, 4.0, 6.0, 8.0, 10.0)),
    "factor-vae": ("gamma", (10.0, 20.0, 30.0, 40.0, 50.0, 100.0)),
    "dip-vae-i": ("lambda_od", (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)),
    "dip-vae-ii": ("lambda_od", (1.0, 2.0, 5.0, 10.0, 20.0, 50.0)),
    "info-vae": ("lambda_", (1.0, 10.0, 100.0, 1000.0)),
    "fsq-ae": ("levels", ((3,) * 10, (5,) * 10, (8,) * 10)),
}

#: recipe dataset name -> (diffrep.data name, channels)
DATASETS = {"dsprites": ("dsprites", 1), "shapes3d": ("shapes3d", 3), "mpi3d-toy": ("mpi3d_toy", 3),
            "cars3d": ("cars3d", 3)}


def build_dataset(cfg):
    ds = load_named(cfg.dataset, cfg.dataset_options, cfg.data)
    return Pooled(ds, cfg.pool) if cfg.pool > 1 else ds


def build(cfg):
    """(model, training set) of a VAE-family recipe config."""
    model_cls = {c.config_class: c for c in METHOD_CLASSES.values()}[type(cfg.model)]
    return model_cls(cfg.model), build_dataset(cfg)


def paper_config(method: str, dataset: str):
    """disentanglement_lib's setting of ``method`` on ``dataset`` (module docstring)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {dataset!r}")
    rcls, fields = METHODS[method]
    name, channels = DATASETS[dataset]
    model = rcls.__dataclass_fields__["model"].type(image_size=64, in_channels=channels, **fields)
    train = TrainConfig(steps=300_000, batch_size=64, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                        grad_clip=0.0, ema_decay=0.0, num_workers=4, log_every=100, ckpt_every=10_000,
                        sample_every=10_000, num_samples=16)
    return rcls(model=model, dataset=name, train=train)


CPU_STEPS = 1500


def cpu_config(method: str):
    """``method`` on procedural dSprites at 32 x 32, a few minutes on one CPU core."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
    rcls, fields = METHODS[method]
    if method == "annealed-vae":
        fields = {**fields, "capacity_steps": CPU_STEPS // 2}
    if method == "factor-vae":  # 1000-unit layers cost ~4x the VAE step on one core; 256 keeps it minutes
        fields = {**fields, "disc_hidden": 256}
    model = rcls.__dataclass_fields__["model"].type(image_size=32, in_channels=1, **fields)
    train = TrainConfig(steps=CPU_STEPS, batch_size=64, lr=1e-3, grad_clip=0.0, ema_decay=0.0, log_every=50,
                        ckpt_every=0, sample_every=0, device="auto")
    return rcls(model=model, dataset="dsprites", pool=2, train=train)


def _maker(fn, *args):
    def make():
        return fn(*args)
    make.__name__ = f"{fn.__name__}_{'_'.join(a.replace('-', '_') for a in args)}"
    return make


_PAPER = tuple(Recipe(f"vae/{m}-{d}", _maker(paper_config, m, d), build,
                      f"{m} on {d} 64x64, disentanglement_lib's unsupervised study setting", False)
               for m in METHODS for d in DATASETS)
_CPU = tuple(Recipe(f"vae/{m}-cpu", _maker(cpu_config, m), build,
                    f"{m} on procedural dSprites 32x32; CPU, a few minutes", True) for m in METHODS)
RECIPES = _PAPER + _CPU
