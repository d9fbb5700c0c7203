"""Denoising multi-beta VAE recipes (Uppal et al. 2025; docs/methods/multibeta.md#recipes).

The paper's Appendix C (architectures, training lengths) is not in the text, so every setting below
is a project choice, stated in docs/methods/multibeta.md#recipes and held in a field:

- ``multibeta/cars3d``, ``multibeta/shapes3d``, ``multibeta/mpi3d``: Table 2 (MIG / DCI, the protocols
  of Locatello et al. 2019 and Khrulkov et al. 2021): 64 x 64 images, the disentanglement_lib conv
  encoder / decoder (Locatello et al. 2019 Table 1) with per-layer FiLM on beta, d = 10, batch 64, Adam
  lr 1e-4 and 300k steps (Locatello et al.'s setting) for phase 1; the residual latent MLP, batch 128,
  lr 1e-4, EMA 0.9999, 200k steps for phase 2;
- ``multibeta/celeba64``: Table 1 (TAD / FID): a residual VAE (64 x [1, 2, 2, 2], 2 blocks per level,
  FiLM through the scale-shift norm), d = 32, 200k + 200k steps;
- ``multibeta/celebahq256``, ``multibeta/ffhq256``, ``multibeta/lsun-bedrooms256``: Table 3
  (unconditional generation): spatial latents 4 x 32 x 32 (f = 8), a residual VAE 128 x [1, 2, 4, 4],
  a latent U-Net with two outputs, 300k + 500k steps;
- ``multibeta/dsprites-cpu``: procedural dSprites max-pooled to 32 x 32, the conv nets at 32 x 32,
  d = 10, N = 50, both phases in well under 30 minutes on 2 CPU cores;
- ``multibeta/shapes3d-cpu``: the same CPU settings on the procedural Shapes3D-grid (one of the Table 2
  datasets; RGB, max-pooled to 32 x 32, a fixed random subset of 30,000 of its 480,000 images).

A recipe trains its phases one after another (``phases``, default (1, 2); phase 3, the adversarial
decoder fine-tuning, when listed and ``model.adv_disc_weight > 0``) with one :class:`diffrep.train.Trainer`
run each, in the sub-folders ``phase1/``, ``phase2/``, ``phase3/`` of the run folder; the trained
pipeline is saved in ``final/``. ``phases: [2]`` with ``vae_from: RUN/final`` starts phase 2 from an
earlier run's VAE. After phase 1, ``auto_beta`` sets ``model.representation_beta`` (the beta of the
code that :meth:`MultiBeta.encode`, ``diffrep eval --model`` and the metrics use) to the largest beta of
``beta_candidates`` whose code still explains ``informative_fraction`` of the variance the beta = 0 code
explains (:func:`diffrep.analysis.multibeta.informative_beta`), measured on ``informative_images``
training images; the curve is written to ``phase1/information.json``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path
from types import MappingProxyType
from typing import Annotated

import torch

from ..config import Config, ConfigError, Ge, Gt, Le
from ..data.pooled import Pooled
from ..methods.multibeta import MultiBeta, MultiBetaConfig, multibeta_config
from ..train.config import TrainConfig
from .registry import Recipe
from .runinfo import RUN_INFO_NAME, STAGE_WEIGHTS, DataRoot, load_named, stage_weights
from .._checks import a_or_an

__all__ = ["MultiBetaRecipeConfig", "build", "build_dataset", "train_phases", "prepare_phase_folders", "choose_representation_beta",
           "dsprites_cpu", "shapes3d_cpu", "cars3d", "shapes3d", "mpi3d", "celeba64", "celebahq256", "ffhq256", "lsun_bedrooms256",
           "PHASE_DIRS", "RECIPES"]

PHASE_DIRS = {1: "phase1", 2: "phase2", 3: "phase3"}


@dataclasses.dataclass
class MultiBetaRecipeConfig(Config):
    """model + dataset by name (``diffrep.data.load(dataset, root=data.root, **dataset_options)``, max-pooled
    by ``pool``) + one :class:`TrainConfig` per phase: ``train`` (phase 1, the VAE, Algorithm 1),
    ``train_latent`` (phase 2, the latent diffusion, Eq. 19), ``train_adv`` (phase 3). ``phases`` lists the
    phases this run trains, in order; ``vae_from`` (a saved MultiBeta folder, e.g. an earlier run's
    ``final``) supplies the trained VAE when phase 1 is not listed. ``auto_beta`` / ``beta_candidates`` /
    ``informative_fraction`` / ``informative_images``: the choice of ``model.representation_beta`` after
    phase 1 (module docstring). ``vae_from_weights`` chooses which weights of ``vae_from`` are read.
    """

    # before 2026-12-07 vae_from was read with its raw weights; a study cell holding that value keeps its hash
    fields_added = MappingProxyType({"vae_from_weights": "model"})

    model: MultiBetaConfig = dataclasses.field(default_factory=MultiBetaConfig)  # the multi-beta VAE + latent denoiser (docs/methods/multibeta.md)
    dataset: str = "dsprites"  # dataset name for diffrep.data.load (docs/data.md)
    dataset_options: dict = dataclasses.field(default_factory=dict)  # keyword options for diffrep.data.load
    pool: Annotated[int, Ge(1)] = 1  # max-pool factor of the dataset's images (2: 64 px dSprites read at 32 px)
    data: DataRoot = dataclasses.field(default_factory=DataRoot)  # where the dataset's files are (data.root; empty: $DIFFREP_DATA or the generator)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)  # phase 1: the multi-beta VAE (Algorithm 1)
    train_latent: TrainConfig = dataclasses.field(default_factory=TrainConfig)  # phase 2: the latent denoiser (Eq. 19)
    train_adv: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(steps=10000, lr=4.5e-6, ema_decay=0.0))  # phase 3: the adversarial decoder fine-tuning
    train_subset: Annotated[int, Ge(0)] = 0  # > 0: train on this many images drawn once (seed train.seed); 0: all
    phases: tuple[int, ...] = (1, 2)  # the phases this run trains, in order (3 needs model.adv_disc_weight > 0)
    vae_from: str = ""  # without phase 1: a saved MultiBeta folder (an earlier run's final/) whose trained VAE phase 2 reads
    vae_from_weights: STAGE_WEIGHTS = "auto"  # which of vae_from's weights: auto (its EMA copy when it kept one), ema, model
    auto_beta: bool = True  # after phase 1 set model.representation_beta to the largest informative beta_candidates value
    beta_candidates: tuple[Annotated[float, Ge(0)], ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)  # auto_beta: increasing betas in (0, B] tried
    informative_fraction: Annotated[float, Gt(0), Le(1)] = 0.5  # auto_beta: least share of the beta = 0 code's explained variance
    informative_images: Annotated[int, Ge(2)] = 512  # auto_beta: training images the explained variance is measured on

    def validate(self) -> None:
        ph = tuple(self.phases)
        if not ph or any(p not in (1, 2, 3) for p in ph) or list(ph) != sorted(set(ph)):
            raise ConfigError("phases", f"must be increasing phases from 1, 2, 3 (e.g. [1, 2]), got {list(ph)}")
        if 3 in ph and self.model.adv_disc_weight <= 0:
            raise ConfigError("phases", "phase 3 (adversarial decoder fine-tuning) needs model.adv_disc_weight > 0")
        if 1 not in ph and not self.vae_from:
            raise ConfigError("vae_from", f"phases {list(ph)} start after phase 1: set vae_from to a trained "
                              "MultiBeta folder (an earlier run's final/)")
        if 1 in ph and self.vae_from:
            raise ConfigError("vae_from", "phase 1 trains the VAE from scratch; drop vae_from or drop phase 1")
        bmax = self.model.vae.beta_max
        cands = list(self.beta_candidates)
        if not cands or any(b <= 0 or b > bmax for b in cands) or cands != sorted(set(cands)):
            raise ConfigError("beta_candidates", f"must be increasing values in (0, B={bmax:g}], got {cands}")
        if self.model.phase != 1:
            raise ConfigError("model.phase", "a recipe starts from phase 1 (its phases are trained in order); "
                              "use phases / vae_from to choose what to train")

    def train_for(self, phase: int) -> TrainConfig:
        """The train config of phase 1 (``train``), 2 (``train_latent``) or 3 (``train_adv``)."""
        if isinstance(phase, bool) or phase not in (1, 2, 3):  # a KeyError named the bare key
            raise ValueError(f"phase must be 1, 2 or 3, got {phase!r}")
        return {1: self.train, 2: self.train_latent, 3: self.train_adv}[phase]

    def train_phases(self, model: MultiBeta, dataset, out, *, resume=None, overwrite: bool = False) -> list[dict]:
        """The multi-phase training the command line runs (``diffrep train multibeta/...``): :func:`train_phases`."""
        return train_phases(self, model, dataset, out, resume=resume, overwrite=overwrite)

    def prepare_phase_folders(self, out, *, resume=None, overwrite: bool = False) -> list[str]:
        """What the command line checks before it writes the run's record: :func:`prepare_phase_folders`."""
        return prepare_phase_folders(out, resume=resume, overwrite=overwrite)


def prepare_phase_folders(out, *, resume=None, overwrite: bool = False) -> list[str]:
    """Before a fresh multi-phase run writes anything into ``out``: refuse when a phase folder there holds an
    earlier run (a run killed in phase 1 left only ``phase1/``, which the top folder's check did not see: the
    new config.yaml and run.json were written over the earlier run's before its phase refused), or, with
    ``overwrite``, clear every phase folder (also those of phases this run does not train, and phase 1's
    ``information.json`` and ``run.json`` copies: an earlier run's phase3/ stayed beside a new run of phases
    1 and 2). Returns what was removed; a resume is checked elsewhere (its config against config.yaml)."""
    from ..train.rundir import RunFolderError, clear_run, run_contents

    out = Path(out)
    if resume is not None:
        return []
    held = {name: run_contents(out / name) + [n for n in ("information.json",) if (out / name / n).is_file()]
            for name in PHASE_DIRS.values() if (out / name).is_dir()}
    held = {name: found for name, found in held.items() if found}
    if not held:
        return []
    if not overwrite:
        shown = ", ".join(f"{name}/{found[0]}" for name, found in held.items())
        raise RunFolderError(f"run folder {out} already holds a multi-phase run ({shown}); training into it would "
                             f"mix the two runs. Continue it with --resume latest, replace it with --overwrite "
                             f"(deletes only what diffrep wrote there), or choose another --out")
    removed = []
    for name in held:
        d = out / name
        removed += [f"{name}/{r}" for r in clear_run(d)]
        for extra in ("information.json", RUN_INFO_NAME):  # written by train_phases beside the phase's run
            if (d / extra).is_file():
                (d / extra).unlink()
                removed.append(f"{name}/{extra}")
        try:
            d.rmdir()
        except OSError:  # other files, kept
            pass
    return removed


class TrainSubset(torch.utils.data.Dataset):
    """A fixed subset of a dataset (``indices`` into ``base``), with batched fetching: the training set of a
    recipe with ``train_subset > 0``. A procedural dataset that caches what it renders (dSprites) then renders
    each training image once."""

    def __init__(self, base, indices):
        self.base, self.indices = base, [int(i) for i in indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i):
        return self.base[self.indices[i]]

    def __getitems__(self, idx):
        picked = [self.indices[i] for i in idx]
        if hasattr(self.base, "__getitems__"):
            return self.base.__getitems__(picked)
        return [self.base[j] for j in picked]


def build_dataset(cfg: MultiBetaRecipeConfig, *, subset: bool = True):
    """The recipe's dataset (max-pooled by ``pool``); with ``subset`` and ``train_subset > 0`` the fixed random
    training subset of that many images (``torch.randperm`` seeded by ``train.seed``)."""
    ds = load_named(cfg.dataset, cfg.dataset_options, cfg.data)
    ds = Pooled(ds, cfg.pool) if cfg.pool > 1 else ds
    if subset and cfg.train_subset:
        if cfg.train_subset > len(ds):
            raise ValueError(f"train_subset={cfg.train_subset} but {cfg.dataset} holds only {len(ds)} images")
        g = torch.Generator().manual_seed(int(cfg.train.seed))
        ds = TrainSubset(ds, torch.randperm(len(ds), generator=g)[: cfg.train_subset].tolist())
    return ds


def build(cfg: MultiBetaRecipeConfig):
    return MultiBeta(cfg.model), build_dataset(cfg)


def _sample_images(dataset, n: int, seed: int):
    g = torch.Generator().manual_seed(int(seed))
    idx = torch.randperm(len(dataset), generator=g)[: min(n, len(dataset))].tolist()
    return torch.stack([dataset[i][0] for i in idx]).float()


def choose_representation_beta(cfg: MultiBetaRecipeConfig, model: MultiBeta, dataset, device=None) -> dict:
    """The information curve of the trained VAE on ``informative_images`` training images at beta = 0 and each
    of ``beta_candidates`` (and B), and the beta it picks (:func:`diffrep.analysis.multibeta.informative_beta`)."""
    from .._checks import device as check_device
    from ..analysis.multibeta import information_curve, informative_beta

    if not isinstance(cfg, MultiBetaRecipeConfig):
        raise TypeError(f"choose_representation_beta: cfg must be a MultiBetaRecipeConfig, got {type(cfg).__name__}")
    if not isinstance(model, MultiBeta):
        raise TypeError(f"choose_representation_beta: model must be a MultiBeta, got {type(model).__name__}")
    if isinstance(dataset, (str, bytes)) or not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")) \
            or len(dataset) < 2:  # information_curve reads at least 2 images
        raise ValueError(f"choose_representation_beta: dataset must be a map-style dataset of at least 2 images, got "
                         f"{type(dataset).__name__}")
    device = check_device(device) if device is not None else next(model.parameters()).device
    x = _sample_images(dataset, cfg.informative_images, cfg.train.seed).to(device)
    cands = list(cfg.beta_candidates)
    betas = [0.0] + cands + ([] if cands[-1] == cfg.model.vae.beta_max else [cfg.model.vae.beta_max])
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            curve = information_curve(model.vae, x, betas)
    finally:
        model.train(was)
    k = len(cands)
    try:
        curve["chosen_beta"] = informative_beta({"betas": curve["betas"][1:1 + k],
                                                 "explained": curve["explained"][1:1 + k]}, cfg.informative_fraction)
    except ValueError:
        curve["chosen_beta"] = None
    curve["informative_fraction"] = cfg.informative_fraction
    return curve


def _load_vae_from(model: MultiBeta, path: str, weights: str) -> None:
    from ..nn import load_pretrained

    # a run folder or a missing one is refused naming the folder to pass (runinfo.check_model_folder)
    folder, weights = stage_weights(path, weights, "vae_from", "vae_from_weights")
    src = load_pretrained(folder, weights=weights)
    if not isinstance(src, MultiBeta):
        raise ValueError(f"vae_from={path} holds {a_or_an(type(src).__name__)}, not a MultiBeta model")
    if src.config.vae != model.config.vae:
        raise ValueError(f"vae_from={path}: its VAE config differs from this recipe's model.vae; train phase 2 with "
                         "the recipe (and overrides) that trained it")
    model.load_vae(src.vae)
    model.config = dataclasses.replace(model.config, representation_beta=src.config.representation_beta)


def train_phases(cfg: MultiBetaRecipeConfig, model: MultiBeta, dataset, out, *, resume=None,
                 overwrite: bool = False) -> list[dict]:
    """Train the phases ``cfg.phases`` in order, each with its own Trainer run in ``out/phase<k>``, then save
    the pipeline to ``out/final`` (save_pretrained, with the EMA copy of the last phase when it kept one).
    ``resume`` ("latest" or None) and ``overwrite`` apply to every phase's folder. Returns the logged
    records of all phases, each tagged with its ``phase``."""
    from ..train import Trainer

    out = Path(out)
    main = int(os.environ.get("RANK", "0")) == 0
    if not isinstance(model, MultiBeta):
        raise TypeError(f"train_phases needs a MultiBeta model, got {type(model).__name__}")
    if resume is not None and str(resume) != "latest":
        raise ValueError("a multi-phase recipe resumes with --resume latest (each phase from its newest checkpoint); "
                         "a checkpoint path names only one phase")
    history: list[dict] = []
    if 1 not in cfg.phases:
        _load_vae_from(model, cfg.vae_from, cfg.vae_from_weights)
    last_ema = None
    for phase in cfg.phases:
        if phase != model.phase:
            model.set_phase(phase)
        tcfg = cfg.train_for(phase)
        trainer = Trainer(model, dataset, tcfg, out / PHASE_DIRS[phase])
        print(f"multibeta: phase {phase} ({tcfg.steps} steps) in {out / PHASE_DIRS[phase]}", file=sys.stderr, flush=True)
        history += [{"phase": phase, **rec} for rec in trainer.train(resume=resume, overwrite=overwrite)]
        last_ema = tcfg.ema_decay
        info = out / RUN_INFO_NAME
        if main and info.is_file():  # the model verbs read a phase's final/ with the run's data settings
            for d in (out / PHASE_DIRS[phase], out / PHASE_DIRS[phase] / "final"):
                if d.is_dir():
                    shutil.copyfile(info, d / RUN_INFO_NAME)
        if phase == 1 and cfg.auto_beta:
            curve = choose_representation_beta(cfg, model, dataset)
            where = out / PHASE_DIRS[1] / "information.json"
            if main:
                where.write_text(json.dumps(curve, indent=1), encoding="utf-8")
            if curve["chosen_beta"] is None:
                print(f"multibeta: warning: no beta of {list(cfg.beta_candidates)} explains >= "
                      f"{cfg.informative_fraction:g} of the beta = 0 code's variance ({where}); representation_beta "
                      f"stays at {model.config.representation_beta:g}", file=sys.stderr, flush=True)
            else:
                model.config = dataclasses.replace(model.config, representation_beta=curve["chosen_beta"])
                print(f"multibeta: representation_beta = {curve['chosen_beta']:g} (the largest of "
                      f"{list(cfg.beta_candidates)} explaining >= {cfg.informative_fraction:g} of the beta = 0 code's "
                      f"variance; {where})", file=sys.stderr, flush=True)
    ema_state = None
    if last_ema and last_ema > 0:  # the last phase's EMA weights, from its final folder
        from safetensors.torch import load_file

        p = out / PHASE_DIRS[cfg.phases[-1]] / "final" / "ema.safetensors"
        if p.is_file():
            ema_state = load_file(str(p))
    if main:
        model.save_pretrained(out / "final", ema_state=ema_state)
    return history


# ---------------------------------------------------------------------------------------------------------
# The paper recipes (choices: docs/methods/multibeta.md#recipes)

N_PAPER = 1000  # grid size N (tau = 1 / N); footnote 3 gives tau = T / N but not N


def _vae_train(steps: int, batch: int, lr: float = 1e-4) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=batch, lr=lr, betas=(0.9, 0.999), grad_clip=1.0, ema_decay=0.0,
                       num_workers=4, log_every=100, ckpt_every=10000, sample_every=0)


def _latent_train(steps: int, batch: int, lr: float = 1e-4) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=batch, lr=lr, betas=(0.9, 0.999), grad_clip=1.0, ema_decay=0.9999,
                       num_workers=4, log_every=100, ckpt_every=10000, sample_every=20000, num_samples=16)


def _table2(dataset: str, channels: int, options: dict | None = None) -> MultiBetaRecipeConfig:
    model = multibeta_config(image_size=64, in_channels=channels, latent_dim=10, num_steps=N_PAPER, arch="conv",
                             vae={"conditioning": "film", "hidden": 256},
                             denoiser={"hidden": 256, "depth": 4})
    return MultiBetaRecipeConfig(model=model, dataset=dataset, dataset_options=dict(options or {}),
                                 train=_vae_train(300_000, 64), train_latent=_latent_train(200_000, 128))


def cars3d():
    """Table 2, Cars3D (17,568 images, 64 x 64 RGB)."""
    return _table2("cars3d", 3)


def shapes3d():
    """Table 2, Shapes3D (480,000 images, 64 x 64 RGB)."""
    return _table2("shapes3d", 3)


def mpi3d():
    """Table 2, MPI3D (the ``mpi3d_toy`` reader: the layout is inferred from the file)."""
    return _table2("mpi3d_toy", 3)


def celeba64():
    """Table 1 (TAD, FID), CelebA 64 x 64 (the DiffAE crop), vector latent d = 32."""
    model = multibeta_config(image_size=64, in_channels=3, latent_dim=32, num_steps=N_PAPER, arch="resnet",
                             vae={"model_channels": 64, "channel_mult": (1, 2, 2, 2), "num_res_blocks": 2,
                                  "num_groups": 32},
                             denoiser={"hidden": 512, "depth": 6})
    return MultiBetaRecipeConfig(model=model, dataset="celeba", dataset_options={"split": "train", "size": 64},
                                 train=_vae_train(200_000, 64), train_latent=_latent_train(200_000, 128))


def _table3(dataset: str, options: dict) -> MultiBetaRecipeConfig:
    model = multibeta_config(image_size=256, in_channels=3, num_steps=N_PAPER, arch="resnet", latent="spatial",
                             latent_channels=4,
                             vae={"model_channels": 128, "channel_mult": (1, 2, 4, 4), "num_res_blocks": 2,
                                  "num_groups": 32},
                             unet={"model_channels": 224, "channel_mult": (1, 2, 4), "num_res_blocks": 2,
                                   "attention_resolutions": (16, 8), "num_head_channels": 32, "num_groups": 32})
    return MultiBetaRecipeConfig(model=model, dataset=dataset, dataset_options=options,
                                 train=_vae_train(300_000, 32), train_latent=_latent_train(500_000, 64),
                                 beta_candidates=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9), informative_images=256)


def celebahq256():
    """Table 3, CelebA-HQ 256 (a folder of the 30,000 images at 256 x 256, ``image_folder``)."""
    return _table3("image_folder", {"size": 256})


def ffhq256():
    """Table 3, FFHQ 256 (a folder of the 70,000 images, ``image_folder``, resized to 256)."""
    return _table3("image_folder", {"size": 256})


def lsun_bedrooms256():
    """Table 3, LSUN Bedrooms 256 (the release's ``bedroom_train_lmdb``: centre square, bicubic to 256)."""
    return _table3("lsun", {"category": "bedroom", "split": "train", "size": 256})


# ---------------------------------------------------------------------------------------------------------
# The CPU recipe (measured choices: docs/methods/multibeta.md#recipes)

CPU_STEPS_VAE = 3000
CPU_STEPS_LATENT = 3000
CPU_TRAIN_IMAGES = 30000  # a fixed subset, rendered once, then cached (docs/methods/multibeta.md#the-settings)


CPU_LOG_S2 = -0.6931  # log s^2 of the fixed decoder scale: s^2 = 0.5 (benches/results/multibeta_validation_cpu_2026-12-06b.md)
CPU_BETA_CANDIDATES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.92, 0.94, 0.96, 0.98)


def _cpu(dataset: str, channels: int) -> MultiBetaRecipeConfig:
    """The CPU settings shared by ``dsprites-cpu`` and ``shapes3d-cpu`` (docs/methods/multibeta.md#the-settings)."""
    model = multibeta_config(image_size=32, in_channels=channels, latent_dim=10, num_steps=50, arch="conv",
                             vae={"conditioning": "film", "hidden": 256, "learn_s": False,
                                  "log_s2_init": CPU_LOG_S2, "sigma_table": "monotone_pinned"},
                             denoiser={"hidden": 128, "depth": 3})
    cpu = dict(batch_size=64, lr=1e-3, warmup_steps=100, lr_schedule="cosine", grad_clip=1.0, ema_decay=0.0,
               log_every=100, ckpt_every=1000, sample_every=0, device="auto")
    return MultiBetaRecipeConfig(model=model, dataset=dataset, pool=2, train_subset=CPU_TRAIN_IMAGES,
                                 beta_candidates=CPU_BETA_CANDIDATES,
                                 train=TrainConfig(steps=CPU_STEPS_VAE, **cpu),
                                 train_latent=TrainConfig(steps=CPU_STEPS_LATENT, **cpu))


def dsprites_cpu():
    """Procedural dSprites max-pooled to 32 x 32, a fixed random subset of 30,000 images (rendered once); the conv
    nets at 32 x 32 (three convs), d = 10, N = 50; a fixed decoder scale s^2 = 0.5 (``learn_s=False``: a learned
    s_beta keeps every code below beta ~ 0.95 informative) and the pinned sigma table (sigma_B = 1, Prop. 3.2),
    representation-beta candidates up to 0.98; both phases 3000 steps at batch 64, Adam lr 1e-3 with a
    half-cosine decay, no EMA (docs/methods/multibeta.md#the-settings)."""
    return _cpu("dsprites", 1)


def shapes3d_cpu():
    """The CPU recipe moved to a Table 2 dataset: the procedural Shapes3D-grid (docs/data.md#shapes3d: the exact
    6-factor grid of ``3dshapes.h5``, 480,000 images, a simplified renderer), max-pooled from 64 to 32 x 32,
    a fixed random subset of 30,000 images (seed ``train.seed``, rendered once, then cached) as the training
    set. Everything else is :func:`dsprites_cpu`'s (conv nets with per-layer FiLM at 32 x 32, d = 10, N = 50,
    s^2 = 0.5 fixed, the pinned sigma table, beta* candidates up to 0.98, 3000 + 3000 steps at batch 64, Adam
    lr 1e-3 with a half-cosine decay). What differs and why (docs/methods/multibeta.md#the-settings):

    - the data: Shapes3D is one of the paper's Table 2 datasets (dSprites is not); its six factors are all
      visible at 32 px, and at CPU scale its codes are far more informative than dSprites' (DCI
      informativeness 0.72 against 0.33);
    - three input / output channels (RGB), instead of one;
    - the full 480,000-image grid with a 30,000-image training subset rather than the 5,120-image sub-grid
      (``shapes3d_subgrid``): gate 2 of scripts/validate_multibeta.py measures the distance to the nearest
      TRAINING image of held-out inputs; on the sub-grid every image is a training image (no held-out input
      exists), and a sampler that returns training images would score 0;
    - max-pooling (the recipes' ``Pooled`` default) rather than the sub-grid's average-pooling: the procedural
      renders are flat colour regions, so the two differ only on the one-pixel borders of the object, wall
      corner and shadow; training, held-out inputs, the reference set and the metrics all see the same view.
    """
    return _cpu("shapes3d", 3)


RECIPES = tuple(Recipe(name, fn, build, desc, cpu) for name, fn, desc, cpu in (
    ("multibeta/dsprites-cpu", dsprites_cpu, "multi-beta VAE + latent diffusion on dSprites 32x32; CPU, both phases "
     "in ~7 minutes", True),
    ("multibeta/shapes3d-cpu", shapes3d_cpu, "multi-beta VAE + latent diffusion on procedural Shapes3D 32x32 RGB "
     "(30,000 training images); CPU", True),
    ("multibeta/cars3d", cars3d, "Table 2: Cars3D 64, disentanglement_lib conv nets, d=10", False),
    ("multibeta/shapes3d", shapes3d, "Table 2: Shapes3D 64, disentanglement_lib conv nets, d=10", False),
    ("multibeta/mpi3d", mpi3d, "Table 2: MPI3D 64, disentanglement_lib conv nets, d=10", False),
    ("multibeta/celeba64", celeba64, "Table 1: CelebA 64 (TAD, FID), residual VAE, d=32", False),
    ("multibeta/celebahq256", celebahq256, "Table 3: CelebA-HQ 256, spatial latents 4x32x32 (image_folder)", False),
    ("multibeta/ffhq256", ffhq256, "Table 3: FFHQ 256, spatial latents 4x32x32 (image_folder)", False),
    ("multibeta/lsun-bedrooms256", lsun_bedrooms256, "Table 3: LSUN Bedrooms 256 from the release LMDB, spatial "
     "latents 4x32x32", False),
))

