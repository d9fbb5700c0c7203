"""EncDiff (+ DyGA, + Skip Dropout) recipes: the DyGA paper's Tables 1-2 settings, the Table 4 ablation
arms, Tables 11-12 variants, the authors'-code compatibility arm and a CPU recipe (docs/methods/encdiff.md).

Paper recipes (App. C, Tables 7-9; the spec's section 1.4): frozen f = 4 VQ first stage (train it
first with ``vq/...`` and pass its ``final`` folder as ``first_stage_path``), Table 8 U-Net with Skip
Dropout 0.2 at the authors' placement ("reference_code": the 16 and 8 px skips), Table 9 extractor
(N = 20, 32-d tokens), L1 loss, AdamW lr 1e-4 (weight decay 0.01, no warm-up, no clipping), EMA 0.9999
with the LitEma warm-up, batch 512 (64 on CelebA), seed 42, DyGA refreshed every epoch (every 5 on
Cars3D). The paper gives no training length: 100 epochs is our choice (the authors' code runs
Lightning's default of up to 1000 epochs and evaluates a chosen one).

CPU recipe ``encdiff/shapes3d-cpu``: pixel space on a 5,120-image sub-grid of procedural Shapes3D
average-pooled to 16 x 16 (:class:`Shapes3DSubgrid`), a small U-Net and extractor; the model
``scripts/validate_dyga.py`` trains.
"""

from __future__ import annotations

import dataclasses
import math
from types import MappingProxyType
from typing import Optional

import numpy as np
import torch

from ..config import Config, ConfigError
from ..data.base import as_generator, integers
from ..data.shapes3d import Shapes3D
from ..methods.dyga import DyGAConfig
from ..methods.dyga_schedule import recipe_anchor_data
from ..methods.encdiff import EncDiff, EncDiffConfig
from ..methods.encdiff_nets import SmallExtractorConfig
from ..nn.encoders import FeatureExtractorConfig
from ..nn.unet import UNetConfig, unet_preset
from ..nn.vq import VQAutoencoder, VQAutoencoderConfig
from ..train.config import TrainConfig
from .registry import Recipe
from .runinfo import STAGE_WEIGHTS, DataRoot, load_named, stage_weights

__all__ = ["EncDiffRecipeConfig", "Shapes3DSubgrid", "build", "build_dataset", "paper_model", "cpu_model",
           "shapes3d", "mpi3d_toy", "cars3d", "celeba64", "shapes3d_cpu", "RECIPES", "SUBGRID"]


@dataclasses.dataclass
class EncDiffRecipeConfig(Config):
    """model + dataset (``"shapes3d_subgrid"`` is :class:`Shapes3DSubgrid`; any other name goes to
    ``diffrep.data.load`` with ``root=data.root``) + training. ``first_stage_path``: a
    ``VQAutoencoder.save_pretrained`` folder (the ``final`` folder of a ``vq/...`` run), loaded
    frozen, with the weights ``first_stage_weights`` chooses; required when the model has a first stage,
    unless ``allow_untrained_first_stage``."""

    # before 2026-12-07 the first stage was read with its raw weights; a study cell holding it keeps its hash
    fields_added = MappingProxyType({"first_stage_weights": "model"})

    model: EncDiffConfig = dataclasses.field(default_factory=EncDiffConfig)  # the EncDiff model (docs/methods/encdiff.md)
    dataset: str = "shapes3d"  # shapes3d_subgrid (the Shapes3D sub-grid, 64 px renders average-pooled by pool) or a diffrep.data.load name (docs/data.md)
    dataset_options: dict = dataclasses.field(default_factory=dict)  # keyword options for diffrep.data.load
    data: DataRoot = dataclasses.field(default_factory=DataRoot)  # where the dataset's files are (data.root; empty: $DIFFREP_DATA or the generator)
    first_stage_path: Optional[str] = None
    first_stage_weights: STAGE_WEIGHTS = "auto"  # which of first_stage_path's weights: auto (its EMA copy when it kept one; the vq/ recipes keep none), ema, model
    allow_untrained_first_stage: bool = False  # train on the randomly initialised first stage (smoke runs; EncDiff.use_untrained_frozen_parts)
    pool: int = 4                                 # Shapes3DSubgrid: average-pooling factor of the 64 px renders
    pool_dataset = "shapes3d_subgrid"  # not a field: the one dataset pool applies to (run.json records 1 for others)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)  # optimiser, steps, EMA, logging and checkpoints (diffrep.train.TrainConfig)

    def validate(self) -> None:
        if self.model.first_stage is None and self.first_stage_path:
            raise ConfigError("first_stage_path", "the model runs in pixel space (model.first_stage is None)")
        if self.pool not in POOLS:
            raise ConfigError("pool", f"must be 1, 2, 4 or 8, got {self.pool}")
        refuse_root_for_subgrid(self)


# average-pooling factors of the 64 px Shapes3D renders (divisors of 64 the recipes use)
POOLS = (1, 2, 4, 8)

# the sub-grid of the 6 Shapes3D factors (class indices of each factor kept): 4*4*4*4*4*5 = 5,120 images
SUBGRID = ((0, 2, 5, 7), (0, 3, 5, 8), (1, 4, 6, 9), (0, 3, 5, 7), (0, 1, 2, 3), (0, 4, 7, 10, 14))


class Shapes3DSubgrid(torch.utils.data.Dataset):
    """A ground-truth dataset on the :data:`SUBGRID` of procedural Shapes3D (diffrep.data.shapes3d), all
    images rendered once, average-pooled by ``pool``. Factor classes index the sub-grid values.
    Items are (image in [-1, 1] (3, S, S), factor classes); the metric interface
    (``sample_factors``, ``sample_observations_from_factors``: (n, S, S, 3) in [0, 1]) is that of
    ``diffrep.data``."""

    def __init__(self, pool: int = 4, grid=SUBGRID):
        if isinstance(pool, bool) or not isinstance(pool, (int, np.integer)) or pool not in POOLS:
            # pool 0 or -1 skipped the pooling without a word (64 px images for a 16 px model)
            raise ValueError(f"Shapes3DSubgrid: pool must be one of {', '.join(map(str, POOLS))} (divisors of the "
                             f"64 px renders), got {pool!r}")
        base = Shapes3D()
        self.factor_names = list(base.factor_names)
        self.factor_sizes = [len(g) for g in grid]
        self.num_factors = len(grid)
        idx = np.stack(np.meshgrid(*[np.arange(s) for s in self.factor_sizes], indexing="ij"), -1).reshape(-1, 6)
        self.factors = idx
        full = np.stack([np.asarray(g)[idx[:, k]] for k, g in enumerate(grid)], 1)
        imgs = []
        for s in range(0, len(full), 1024):
            x = torch.from_numpy(base.sample_observations_from_factors(full[s:s + 1024])).permute(0, 3, 1, 2)
            imgs.append(torch.nn.functional.avg_pool2d(x, pool) if pool > 1 else x)
        self.images01 = torch.cat(imgs).contiguous()                     # (n, 3, S, S) in [0, 1]
        self._strides = np.cumprod([1] + self.factor_sizes[::-1])[:-1][::-1]

    def __len__(self) -> int:
        return len(self.factors)

    def __getitem__(self, i):
        if isinstance(i, (list, tuple, np.ndarray, torch.Tensor)) and not (torch.is_tensor(i) and i.dim() == 0):
            i = np.asarray(i)
            return self.images01[i] * 2 - 1, torch.from_numpy(self.factors[i])
        return self.images01[int(i)] * 2 - 1, torch.from_numpy(self.factors[int(i)])

    def sample_factors(self, n: int, rng=None) -> np.ndarray:
        """``rng`` as every dataset takes it (a numpy Generator or RandomState, an int seed, a torch.Generator;
        docs/data.md), except that None is RandomState(0) here: the sub-grid's metric draws repeat."""
        rng = as_generator(rng if rng is not None else np.random.RandomState(0))
        return np.stack([integers(rng, s, n) for s in self.factor_sizes], 1)

    def factors_to_index(self, factors) -> np.ndarray:
        return (np.asarray(factors, dtype=np.int64) * self._strides).sum(1)

    def sample_observations_from_factors(self, factors, rng=None) -> np.ndarray:
        return self.images01[self.factors_to_index(factors)].permute(0, 2, 3, 1).numpy()


def refuse_root_for_subgrid(cfg) -> None:
    """ConfigError when ``data.root`` is set for the procedural sub-grid (no files are read, so a root
    would be silently ignored). Shared by the recipes that train on :class:`Shapes3DSubgrid`."""
    if cfg.dataset == "shapes3d_subgrid" and cfg.data.root:
        raise ConfigError("data.root", f"{cfg.data.root!r}: the Shapes3D sub-grid is drawn procedurally, no files are read")


def build_dataset(cfg):
    """The dataset of a recipe config with ``dataset``/``dataset_options``/``data``/``pool`` fields:
    :class:`Shapes3DSubgrid` for ``"shapes3d_subgrid"``, else ``diffrep.data.load`` by name."""
    if cfg.dataset == "shapes3d_subgrid":
        return Shapes3DSubgrid(cfg.pool)
    return load_named(cfg.dataset, cfg.dataset_options, cfg.data)


def build(cfg: EncDiffRecipeConfig):
    """(model, dataset); loads the frozen first stage and makes the model refresh its DyGA anchors
    at the epoch boundaries (Alg. 1)."""
    mcfg = cfg.model
    folder = weights = None
    if mcfg.first_stage is not None and cfg.first_stage_path:
        # taming's VQ first stage keeps no EMA copy, nor do the vq/ recipes: auto reads the raw weights there
        folder, weights = stage_weights(cfg.first_stage_path, cfg.first_stage_weights, "first_stage_path",
                                        "first_stage_weights")
        # the first stage is whatever the checkpoint holds (its discriminator and LPIPS are training-only)
        fs = VQAutoencoder.from_pretrained(folder, weights=weights).config
        mcfg = dataclasses.replace(mcfg, first_stage=dataclasses.replace(fs, disc_weight=0.0, perceptual_weight=0.0))
    model = EncDiff(mcfg)
    if model.first_stage is not None:
        if cfg.first_stage_path:
            model.load_first_stage(folder, weights=weights)
        elif cfg.allow_untrained_first_stage:
            model.use_untrained_frozen_parts()  # recorded in the weights: the model's verbs then read it as chosen
        else:
            raise ValueError("this recipe's model has a VQ first stage: train one (diffrep train vq/...) and pass its "
                             "final folder with --first_stage_path DIR (or set allow_untrained_first_stage=true)")
    ds = build_dataset(cfg)
    if model.dyga is not None:
        model.attach_anchor_data(ds, **recipe_anchor_data(model.dyga.config, len(ds), cfg.train.batch_size))
    return model, ds


def paper_model(*, refresh_every: int = 1, conditioning: str = "dyga", skip_dropout: float = 0.2,
                backbone_dropout: float = 0.0, compat: str = "paper") -> EncDiffConfig:
    """Tables 7-9 (the spec's section 1) with the given ablation switches."""
    unet = unet_preset("dyga-table8", skip_dropout_placement="reference_code", skip_dropout=skip_dropout)
    return EncDiffConfig(unet=unet, extractor=FeatureExtractorConfig(preset="dyga", num_units=20),
                         first_stage=VQAutoencoderConfig(image_size=64, mid_attention=True),
                         conditioning=conditioning, dyga=DyGAConfig(refresh_every=refresh_every, compat=compat),
                         backbone_dropout=backbone_dropout, loss_type="l1", sample_steps=100)


def _paper_train(n: int, batch: int, epochs: int = 100) -> TrainConfig:
    return TrainConfig(steps=math.ceil(epochs * n / batch), batch_size=batch, lr=1e-4, weight_decay=0.01, grad_clip=0.0,
                       ema_decay=0.9999, ema_warmup=True, seed=42, num_workers=8, log_every=100, ckpt_every=5000,
                       sample_every=0, device="auto")


def _recipe(dataset: str, n: int, batch: int, options=None, **model_kw) -> EncDiffRecipeConfig:
    return EncDiffRecipeConfig(model=paper_model(**model_kw), dataset=dataset, dataset_options=dict(options or {}),
                               train=_paper_train(n, batch))


def shapes3d():
    return _recipe("shapes3d", 480_000, 512)


def mpi3d_toy():
    return _recipe("mpi3d_toy", 1_036_800, 512)


def cars3d():
    return _recipe("cars3d", 17_568, 512, refresh_every=5)


def celeba64():
    return _recipe("celeba", 202_599, 64, {"split": "train", "size": 64})


def _mpi(**kw):
    return lambda: _recipe("mpi3d_toy", 1_036_800, 512, **kw)


def cpu_model(*, conditioning: str = "dyga", skip_dropout: float = 0.2, num_units: int = 10, token_dim: int = 16,
              compat: str = "paper") -> EncDiffConfig:
    """The CPU model: pixel space 16 x 16, U-Net base 16 x [1, 2, 2] with cross-attention at 8 and 4 px and
    the middle block (so "reference_code" drops the 16 and 8 px skips, as in Table 8), a small extractor
    (N = 10 units, 16-d tokens), LDM schedule, DDIM 50 steps."""
    unet = UNetConfig(image_size=16, in_channels=3, out_channels=3, model_channels=16, channel_mult=(1, 2, 2),
                      num_res_blocks=1, attention_resolutions=(8, 4), num_heads=2, num_groups=8, context_dim=token_dim,
                      resblock_updown=True, dropout=0.1, skip_dropout=skip_dropout,
                      skip_dropout_placement="reference_code")
    ext = SmallExtractorConfig(image_size=16, num_units=num_units, token_dim=token_dim, channels=(16, 32, 32),
                               hidden=64, mlp_hidden=(64,))
    return EncDiffConfig(unet=unet, small_extractor=ext, first_stage=None, conditioning=conditioning,
                         dyga=DyGAConfig(num_units=num_units, token_dim=token_dim, compat=compat), sample_steps=50)


def shapes3d_cpu(**kw) -> EncDiffRecipeConfig:
    train = TrainConfig(steps=800, batch_size=32, lr=1e-3, weight_decay=0.01, grad_clip=1.0, ema_decay=0.0,
                        log_every=50, ckpt_every=0, sample_every=0, device="auto")
    return EncDiffRecipeConfig(model=cpu_model(**kw), dataset="shapes3d_subgrid", pool=4, train=train)


RECIPES = tuple(Recipe(name, fn, build, desc, cpu) for name, fn, desc, cpu in (
    ("encdiff/shapes3d-cpu", shapes3d_cpu, "EncDiff + DyGA + SD, pixel space, 16 px Shapes3D sub-grid; CPU, minutes",
     True),
    ("encdiff/shapes3d-cpu-baseline", lambda: shapes3d_cpu(conditioning="none", skip_dropout=0.0),
     "the CPU recipe without DyGA and Skip Dropout (validate_dyga.py's baseline arm)", True),
    ("encdiff/shapes3d", shapes3d, "DyGA Tables 1/7-9: EncDiff + DyGA + SD on Shapes3D (needs a vq first stage)", False),
    ("encdiff/mpi3d-toy", mpi3d_toy, "DyGA Tables 1/7-9 on MPI3D-toy (Table 4 '+DyGA, SD')", False),
    ("encdiff/cars3d", cars3d, "DyGA Tables 1/7-9 on Cars3D, anchors refreshed every 5 epochs", False),
    ("encdiff/celeba64", celeba64, "DyGA Table 2 on CelebA 64, batch 64", False),
    ("encdiff/mpi3d-toy-baseline", _mpi(conditioning="none", skip_dropout=0.0), "Table 4 baseline: no DyGA, no SD",
     False),
    ("encdiff/mpi3d-toy-dyga", _mpi(skip_dropout=0.0), "Table 4 '+DyGA' (no Skip Dropout)", False),
    ("encdiff/mpi3d-toy-sd", _mpi(conditioning="none"), "Table 4 '+SD' (no DyGA)", False),
    ("encdiff/mpi3d-toy-fsq", _mpi(conditioning="fsq"), "Table 11 '+FSQ, SD' (levels [8, 5, 5])", False),
    ("encdiff/mpi3d-toy-bd", _mpi(conditioning="none", skip_dropout=0.0, backbone_dropout=0.1),
     "Table 12 '+BD-0.1' (backbone dropout instead of Skip Dropout)", False),
    ("encdiff/mpi3d-toy-disdis", _mpi(compat="dis-dis"), "DyGA in the authors' code's behaviour (compat='dis-dis')",
     False),
))
