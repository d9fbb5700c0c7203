"""SAMI recipes: the paper's Table A.5 configurations and a CPU recipe on procedural disks.

- ``sami/disks``: Table A.5 disks column (ConvNet 48 x [2, 2], U-Net 128 x [1]*6 without attention,
  T = 400 linear, d = 3, beta = 5e-6, batch 512, lr 6e-3, ~4k steps = 1000 epochs of 2000 images).
- ``sami/celeba64``: Table A.5 CelebA 64 column (Half-UNet 64 x [1]*6 ReLU bias-free, d = 256,
  cosine T = 1000, beta = 1e-3, lr 1e-3, batch 512, 5000 epochs of 60k images ~ 0.59M steps).
- ``sami/celebahq256-frozen``: Table A.5 CelebA-HQ column: a frozen DDPM (``pretrained_denoiser``,
  the Ho et al. CelebA-HQ 256 U-Net) and a Half-UNet 64 x [2,2,2,2,1,1] SiLU, d = 512, beta = 1e-8,
  lr 3e-5, Beta(4, 1) timesteps, 70 epochs of 30k images (~4.1k steps).
- ``sami/disks-cpu``: 16x16 disks (the 32x32 geometry at half resolution), 2000 images, d = 3, the
  paper's ConvNet encoder (16 base channels) and a small denoiser; trains in ~5-10 minutes on a CPU.
- ``sami/disks-cpu-frozen``: stage 2 on a ``sami/disks-cpu`` run: frozen denoiser, a new encoder
  trained on mid-noise-band timesteps (``t_sampling='band'``).
- ``sami/disks-cpu-frozen-d8``: the same stage 2 with d = 8 and a cosine lr over 24000 steps; at CPU
  scale the only configuration whose conditional samples keep the guide's disk position as well as
  its background.

The linear schedule's endpoints follow docs/methods/sami.md#schedules: 1e-4 -> 0.02 at T = 1000, scaled by 1000/T.
KL annealing (docs/methods/sami.md#eq-4-10-objective default) runs over the first 25% of the steps from beta * 1e-6.
"""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Annotated, Literal

from .. import data
from .._checks import positive_int
from ..config import Config, ConfigError, Ge
from ..data.disks import DisksTensorDataset
from ..diffusion import NoiseScheduleConfig
from ..methods.sami import SAMI, SAMIConfig, SAMIConvNetConfig
from ..nn.encoders import HalfUNetConfig
from ..nn.unet import UNetConfig, unet_preset
from ..train.config import TrainConfig
from .registry import Recipe
from .runinfo import STAGE_WEIGHTS, SUBGRID_SIZES, stage_weights, subgrid_by_name

__all__ = ["SAMIDataConfig", "SAMIRecipeConfig", "build_dataset", "build_eval_dataset", "build", "disks_config", "celeba64_config",
           "celebahq256_frozen_config", "disks_cpu_config", "disks_cpu_frozen_config", "disks_cpu_frozen_d8_config",
           "RECIPES"]


@dataclasses.dataclass
class SAMIDataConfig(Config):
    """``dataset``: ``disks`` (procedural, continuous factors: ``num_images`` uniform draws of centre
    and background, the paper's 2000-image set; seeded by ``seed``), ``celeba`` (aligned CelebA under
    ``root``, ``split``, ``size``), ``image_folder`` (any folder of images, e.g. CelebA-HQ 256) or
    ``dsprites`` (the file under ``root``, else the procedural generator) or ``shapes3d_subgrid`` (the
    procedural 5,120-image Shapes3D sub-grid at ``size`` x ``size``, docs/data.md "The Shapes3D
    sub-grid"). ``root`` defaults to ``$DIFFREP_DATA``.

    ``num_images`` is honoured for every image dataset, deterministically: disks draws that many;
    ``celeba`` takes the first ``num_images`` of ``split`` in sorted file order (000001.jpg, ...;
    ``sami/celeba64``: the first 60,000 of the 162,770 training images); ``image_folder`` the first
    ``num_images`` files in sorted path order. More than the data holds is an error. ``dsprites``
    always uses its full 737,280-image set and ``shapes3d_subgrid`` its 5,120 images (the
    disentanglement protocol samples from all of it).
    Evaluation images come from :func:`build_eval_dataset`, never from the training subset."""

    dataset: Literal["disks", "celeba", "image_folder", "dsprites", "shapes3d_subgrid"] = "disks"
    root: str = ""
    split: str = "train"
    size: Annotated[int, Ge(4)] = 32
    num_images: Annotated[int, Ge(1)] = 2000
    seed: int = 0

    def validate(self) -> None:
        if self.dataset in ("disks", "shapes3d_subgrid") and self.root:
            raise ConfigError("root", f"{self.root!r}: {self.dataset} is drawn procedurally, no files are read")
        if self.dataset == "shapes3d_subgrid" and self.size not in SUBGRID_SIZES:
            raise ConfigError("size", f"the Shapes3D sub-grid is rendered at {list(SUBGRID_SIZES)} px, got {self.size}")


def build_dataset(cfg: SAMIDataConfig):
    """The training dataset of a :class:`SAMIDataConfig`."""
    root = cfg.root or None
    if cfg.dataset == "disks":
        return DisksTensorDataset(cfg.num_images, cfg.size, cfg.seed)
    if cfg.dataset == "shapes3d_subgrid":
        return subgrid_by_name({"size": cfg.size}, "data")
    flag = "--data.root"
    if cfg.dataset == "celeba":
        return data.load("celeba", root=root, source="file", split=cfg.split, size=cfg.size, num_images=cfg.num_images,
                         root_flag=flag)
    if cfg.dataset == "image_folder":
        if root is None:
            raise ValueError("data.root must name the image folder for dataset='image_folder'")
        return data.load("image_folder", root=root, source="file", size=cfg.size, num_images=cfg.num_images,
                         root_flag=flag)
    return data.load("dsprites", root=root, root_flag=flag)


EVAL_SEED_OFFSET = 1000  # held-out disks: seed + 1000 + the evaluation seed, disjoint draws from training's


def build_eval_dataset(cfg: SAMIDataConfig, num_images: int = 256, seed: int = 0, *, root_flag: str = "--data.root"):
    """``(dataset, description)``: held-out images for evaluation (guides, reference images, FID,
    global axes), never the training subset of :func:`build_dataset`:

    - ``disks``: ``num_images`` fresh draws with seed ``cfg.seed + 1000 + seed``;
    - ``celeba``: the official ``test`` split (19,962 images; all of it);
    - ``image_folder``: the files after the training subset (sorted path order, from index
      ``cfg.num_images``); a folder with no files left is an error (hold some out by lowering
      ``data.num_images``);
    - ``dsprites``: the full set (it has no split; its factor metrics sample from the generator);
    - ``shapes3d_subgrid``: the full 5,120-image set (no split, as dsprites).

    ``root_flag``: the setting ``cfg.root`` came from, named in the loader's messages (``diffrep sami``:
    ``--root``, or the run's ``data.root``).
    """
    positive_int(num_images, "num_images")
    if not isinstance(root_flag, str) or not root_flag:
        raise TypeError(f"build_eval_dataset: root_flag must name a setting (a non-empty str), got {root_flag!r}")
    root = cfg.root or None
    if cfg.dataset == "disks":
        s = cfg.seed + EVAL_SEED_OFFSET + int(seed)
        return DisksTensorDataset(max(num_images, 2), cfg.size, s), f"disks: {max(num_images, 2)} held-out draws, seed {s}"
    if cfg.dataset == "celeba":
        if cfg.split in ("test", "all"):
            raise ValueError(f"data.split={cfg.split!r} trains on the CelebA test split; evaluation reads the test "
                             "split, so it would not be held out")
        return (data.load("celeba", root=root, source="file", split="test", size=cfg.size, root_flag=root_flag),
                "celeba: the official test split")
    if cfg.dataset == "image_folder":
        if root is None:
            raise ValueError(f"{root_flag} must name the image folder for dataset='image_folder'")
        from ..data.image_folder import ImageFolder

        n_files = len(ImageFolder(root, size=cfg.size))
        if n_files <= cfg.num_images:
            raise ValueError(f"image_folder {root!r} holds {n_files} images and training uses the first "
                             f"data.num_images={cfg.num_images}: none is left for evaluation; train on fewer")
        return (data.load("image_folder", root=root, source="file", size=cfg.size, start=cfg.num_images,
                          root_flag=root_flag),
                f"image_folder: files {cfg.num_images}..{n_files - 1} (after the training subset)")
    if cfg.dataset == "shapes3d_subgrid":
        return subgrid_by_name({"size": cfg.size}, "data"), "shapes3d_subgrid: the full set (no split)"
    return data.load("dsprites", root=root, root_flag=root_flag), "dsprites: the full set (no split)"


@dataclasses.dataclass
class SAMIRecipeConfig(Config):
    """A SAMI run: ``model`` (:class:`SAMIConfig`), ``data``, ``train``; ``pretrained_denoiser``: a
    ``save_pretrained`` directory whose U-Net initialises the denoiser (frozen when
    ``model.freeze_denoiser``; docs/methods/sami.md#pretrained-denoiser-mode), read with the weights
    ``pretrained_denoiser_weights`` chooses. Empty with ``freeze_denoiser`` is an error at build time."""

    # the field added 2026-12-07, and the rule pretrained_denoiser was read with before (auto): cells keep their hashes
    fields_added = MappingProxyType({"pretrained_denoiser_weights": "auto"})

    model: SAMIConfig = dataclasses.field(default_factory=SAMIConfig)
    data: SAMIDataConfig = dataclasses.field(default_factory=SAMIDataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    pretrained_denoiser: str = ""
    pretrained_denoiser_weights: STAGE_WEIGHTS = "auto"  # which of pretrained_denoiser's weights: auto (its EMA copy when it kept one), ema, model

    def validate(self) -> None:
        if self.data.size != self.model.denoiser.image_size:
            raise ConfigError("data.size", f"{self.data.size} differs from model.denoiser.image_size="
                                           f"{self.model.denoiser.image_size}")


def build(cfg: SAMIRecipeConfig):
    """``(model, dataset)`` for the trainer; the frozen-denoiser mode needs ``pretrained_denoiser``."""
    if cfg.model.freeze_denoiser and not cfg.pretrained_denoiser:
        raise ConfigError("pretrained_denoiser", "model.freeze_denoiser=true needs a save_pretrained directory holding "
                                                 "the trained denoiser (e.g. --pretrained_denoiser path/to/ddpm)")
    model = SAMI(cfg.model)
    if cfg.pretrained_denoiser:
        folder, weights = stage_weights(cfg.pretrained_denoiser, cfg.pretrained_denoiser_weights, "pretrained_denoiser",
                                        "pretrained_denoiser_weights")
        model.load_denoiser(folder, weights=weights)
    return model, build_dataset(cfg.data)


def _linear(T: int) -> NoiseScheduleConfig:
    return NoiseScheduleConfig(kind="linear", num_timesteps=T, beta_start=1e-4 * 1000 / T, beta_end=0.02 * 1000 / T)


def _paper_train(steps: int, lr: float, **kw) -> TrainConfig:
    # Table A.5: Adam without weight decay, batch 512; EMA and clipping are diffrep defaults
    return TrainConfig(steps=steps, batch_size=512, lr=lr, weight_decay=0.0, **kw)


def disks_config() -> SAMIRecipeConfig:
    steps = 4000
    model = SAMIConfig(
        denoiser=unet_preset("sami-celeba64", image_size=32, in_channels=1, out_channels=1, channel_mult=(1, 1, 1, 1, 1, 1)),
        encoder="convnet", convnet=SAMIConvNetConfig(image_size=32, in_channels=1, base_channels=48, channel_mult=(2, 2),
                                                     latent_dim=3),
        schedule=_linear(400), kl_weight=5e-6, kl_anneal_steps=steps // 4)
    return SAMIRecipeConfig(model=model, data=SAMIDataConfig("disks", size=32, num_images=2000),
                            train=_paper_train(steps, 6e-3, ckpt_every=1000))


def celeba64_config() -> SAMIRecipeConfig:
    steps = 590_000
    model = SAMIConfig(
        denoiser=unet_preset("sami-celeba64"), encoder="half_unet",
        half_unet=HalfUNetConfig(image_size=64, in_channels=3, model_channels=64, channel_mult=(1, 1, 1, 1, 1, 1),
                                 latent_dim=256, act="relu", bias=False),
        schedule=NoiseScheduleConfig(kind="cosine", num_timesteps=1000), kl_weight=1e-3, kl_anneal_steps=steps // 4,
        sampler="ddim", sample_steps=100)
    return SAMIRecipeConfig(model=model, data=SAMIDataConfig("celeba", size=64, num_images=60000),
                            train=_paper_train(steps, 1e-3, ckpt_every=10000))


def celebahq256_frozen_config() -> SAMIRecipeConfig:
    steps = 4100
    model = SAMIConfig(
        denoiser=unet_preset("ddpm-celebahq256", in_channels=3, out_channels=3), encoder="half_unet",
        half_unet=HalfUNetConfig(image_size=256, in_channels=3, model_channels=64, channel_mult=(2, 2, 2, 2, 1, 1),
                                 latent_dim=512, act="silu", bias=True),
        schedule=_linear(1000), kl_weight=1e-8, kl_anneal_steps=steps // 4, t_sampling="beta", t_beta_a=4.0,
        freeze_denoiser=True, sampler="ddim", sample_steps=100)
    return SAMIRecipeConfig(model=model, data=SAMIDataConfig("image_folder", size=256, num_images=30000),
                            train=_paper_train(steps, 3e-5, ckpt_every=1000))


def disks_cpu_config() -> SAMIRecipeConfig:
    """``sami/disks-cpu``: SAMI on procedural disks sized for a CPU (about 5-10 minutes on one core).

    What differs from the Table A.5 disks column (``sami/disks``) and why:

    - **16x16 images** (not 32x32): the 32x32 disks geometry scaled by 1/2 (:func:`diffrep.data.disks.disks_geometry`:
      radius 3 with a 1-px edge, centres in [3, 13]^2, background U[0, 1], foreground 0.5), i.e. the
      same three factors and the same semantics at half the resolution. At 32x32 a trainable-on-CPU
      denoiser stayed too weak within the budget (unconditional samples 3x the data's variability
      after 500 steps); at 16x16 a step costs about half as much and the denoiser matches the
      data's variability within ~1k steps.
    - **Denoiser**: a small U-Net (16 channels x [1, 2, 2], one res block per level, no attention)
      instead of 128 x [1]*6; the inference net is the paper's ConvNet (two 3x3 stride-2 convs, ReLU,
      no biases, softplus-squared variance) at 16 instead of 48 base channels (48 doubles the step
      time on a CPU; in short diagnostic runs it learned no more than 16).
    - **Optimisation**: batch 128, lr 2e-3, 1500 steps (~96 epochs) instead of batch 512, lr 6e-3,
      ~4k steps: lr 6e-3 at batch 128 made the encoder's KL oscillate (41 -> 164 -> 0.7 nats) and
      collapse; EMA 0.995 (the run is short); KL annealing over the first 25% of the steps, as in the
      paper recipe. beta = 5e-6 (Table A.5); a smaller beta (1e-7) let the encoder inflate sigma and
      switch the guidance off instead.
    - T = 400 linear (Table A.5), DDPM over all 400 steps for Algorithm 1; DDIM 50 steps for quick
      previews only (``sampler``).
    """
    steps = 1500
    size = 16
    model = SAMIConfig(
        denoiser=UNetConfig(image_size=size, in_channels=1, out_channels=1, model_channels=16, channel_mult=(1, 2, 2),
                            num_res_blocks=1, attention_resolutions=(), middle_attention=False,
                            use_scale_shift_norm=False, num_groups=8),
        encoder="convnet", convnet=SAMIConvNetConfig(image_size=size, in_channels=1, base_channels=16, channel_mult=(2, 2),
                                                     latent_dim=3),
        schedule=_linear(400), kl_weight=5e-6, kl_anneal_steps=steps // 4, sampler="ddim", sample_steps=50)
    return SAMIRecipeConfig(model=model, data=SAMIDataConfig("disks", size=size, num_images=2000),
                            train=TrainConfig(steps=steps, batch_size=128, lr=2e-3, warmup_steps=50, grad_clip=1.0,
                                              ema_decay=0.995, log_every=100, ckpt_every=1000, device="cpu"))


def disks_cpu_frozen_config() -> SAMIRecipeConfig:
    """``sami/disks-cpu-frozen``: a second stage on top of a ``sami/disks-cpu`` run: its denoiser
    frozen (the paper's pretrained-denoiser mode, A.5 / docs/methods/sami.md#pretrained-denoiser-mode) and a fresh inference network
    trained for 6000 steps with most timesteps drawn from the mid-noise band ``t_band = (100, 260)``
    (``t_sampling='band'``, 75% in the band, 25% uniform), where on these disks the background and then
    the disk position become identifiable (:mod:`diffrep.analysis.disks_bayes`). A.5 oversamples high
    noise for its frozen CelebA-HQ denoiser for the same reason: there the guidance matters most.

    On the same stage-1 denoiser (1500 steps) the variability ratio goes from 3.6 (uniform t, 3000
    steps) to 10.1-10.2 (this recipe, two seeds; 8.5-10.7 over three seeds at 3000 steps), all of
    it from the background: the disk position is still not carried
    (benches/results/sami_position_transfer_cpu_2026-11-30.md). Set ``pretrained_denoiser`` to the
    first run's ``final`` directory (its EMA weights are used). About 6-7 minutes on one core.
    ``sami/disks-cpu-frozen-d8`` is the stage 2 that carries the position too.
    """
    cfg = disks_cpu_config()
    steps = 6000
    model = dataclasses.replace(cfg.model, freeze_denoiser=True, t_band=(100, 260), t_band_frac=0.75,
                                t_sampling="band", kl_anneal_steps=steps // 4)
    return dataclasses.replace(cfg, model=model, train=dataclasses.replace(cfg.train, steps=steps))


def disks_cpu_frozen_d8_config() -> SAMIRecipeConfig:
    """``sami/disks-cpu-frozen-d8``: ``sami/disks-cpu-frozen`` with a wider latent and a decaying
    learning rate, the CPU-scale stage 2 that carries the disk position as well as the background.

    What differs from ``sami/disks-cpu-frozen`` and why:

    - **d = 8** instead of Table A.5's d = 3. At d = 3 no CPU-scale run (6000-12000 steps, uniform,
      band or cosine) moved the conditional samples' disk position towards the guide's by more than
      about 10% (centre error 3.3-3.6 px against 3.8 px unconditional): the encoder pins the
      background and leaves position to the prior. At d = 8 the position is encoded along a rotated
      direction rather than one latent axis (best-axis |rho| 0.74-0.88 along sweeps, rho 0.91-0.95 on
      the read-out direction, :func:`~diffrep.analysis.disks_probes.posterior_mean_monotonicity`).
    - **Half-cosine lr** (2e-3 to 0) over 24000 steps: at a constant lr the stage-2 loss keeps
      jumping late in training and the position the guidance carries stalls at the level of a
      background-only denoiser; with the decay the band's guided eps-MSE goes below that level.

    Three seeds (two on one 1500-step stage-1 denoiser, one with its own): variability ratio
    11.6-14.8, position sweeps rho 0.91-0.95 on the read-out direction, conditional centre error
    0.58-0.61x the unconditional one, against 0.95x for ``sami/disks-cpu-frozen``
    (benches/results/sami_position_transfer_cpu_2026-11-30.md). About 27 minutes on one core. Set
    ``pretrained_denoiser`` to the ``sami/disks-cpu`` run's ``final`` directory, or let
    ``scripts/validate_sami.py`` train both stages.
    """
    cfg = disks_cpu_frozen_config()
    steps = 24000
    model = dataclasses.replace(cfg.model, convnet=dataclasses.replace(cfg.model.convnet, latent_dim=8),
                                kl_anneal_steps=steps // 4)
    return dataclasses.replace(cfg, model=model, train=dataclasses.replace(cfg.train, steps=steps, lr_schedule="cosine"))


RECIPES = (
    Recipe("sami/disks", disks_config, build, "SAMI on procedural disks, Table A.5 (GPU scale)"),
    Recipe("sami/celeba64", celeba64_config, build, "SAMI on CelebA 64, Table A.5 (needs CelebA files)"),
    Recipe("sami/celebahq256-frozen", celebahq256_frozen_config, build,
           "SAMI on CelebA-HQ 256 with a frozen pretrained DDPM (set pretrained_denoiser=DIR)"),
    Recipe("sami/disks-cpu", disks_cpu_config, build, "SAMI on 16x16 procedural disks (the 32x32 set at half "
           "resolution); CPU, ~5-10 minutes", cpu_friendly=True),
    Recipe("sami/disks-cpu-frozen", disks_cpu_frozen_config, build, "stage 2 of sami/disks-cpu: its denoiser "
           "frozen (set pretrained_denoiser=RUN/final), a new encoder trained on mid-noise-band timesteps; CPU, ~7 minutes",
           cpu_friendly=True),
    Recipe("sami/disks-cpu-frozen-d8", disks_cpu_frozen_d8_config, build, "stage 2 of sami/disks-cpu with d = 8 and a "
           "cosine lr: carries the disk position as well as the background (set pretrained_denoiser=RUN/final); "
           "CPU, ~27 minutes", cpu_friendly=True),
)
