"""DisDiff: unsupervised disentanglement of a pre-trained diffusion model (Yang, Wang, Lu, Zheng,
NeurIPS 2023). Specification, choices and the differences from the authors' code
(ThomasMrY/DisDiff): docs/methods/disdiff.md.

Components:

1. a pre-trained, frozen noise predictor eps_theta(x_t, t) (a :class:`~diffrep.nn.unet.UNet`) on pixels
   or on the latent of a frozen VQ autoencoder (``first_stage``, the LDM setting); ``stage="pretrain"``
   trains it (L_simple), ``stage="disentangle"`` freezes it and trains the rest; ``pretrain_steps`` > 0
   runs both in one training run (steps below it pre-train, the rest disentangle);
2. an encoder E_phi(x0) -> N latent units z^1..z^N of ``unit_dim`` each (a
   :class:`~diffrep.nn.encoders.HalfUNet`, mean head, reshaped [B, N, unit_dim]);
3. the shift decoder G_psi(x_t, z^c, t): a copy of the U-Net's middle and up path reading the frozen
   down path's skips, conditioned on the time embedding plus a part embedding of c (orthogonal rows
   of exp(W - W^T), the matrix exponential of a skew-symmetric matrix, as the authors' code; or a
   learned table) and on Linear(z^c) by a second scale-shift after the time scale-shift;
4. the PDAE gradient-estimator prediction (DisDiff Sec. 4.1, PDAE Eq. 9):
   eps = eps_theta(x_t, t) + shift_coef_t * sum_c G_psi(x_t, z^c, t),
   shift_coef_t = -sqrt(alpha_t) (1 - abar_{t-1}) / sqrt(1 - abar_t)
   (= -sqrt(alpha_t) sqrt(1 - abar_t) / beta_t * beta~_t, the mean shift by the posterior variance);
   sampling and the disentangling loss use the classifier-guidance coefficient -sqrt(1 - abar_t), so that
   x0_hat = (x_t - sqrt(1 - abar_t) eps_theta) / sqrt(abar_t) + (1 - abar_t) / sqrt(abar_t) * G;
5. the loss L = L_r + dis_weight * L_d (DisDiff Sec. 4.2-4.3): L_r the mean error of the prediction
   above; L_d, per example with a unit c ~ U{1..N}: x0_hat from eps_theta alone and x0_hat^c from
   eps_theta shifted by unit c only, both re-encoded (by a gradient-free copy of the encoder), per
   unit k the distances d_k = |E(x0_hat)_k - E(x0_hat^c)_k| (invariant part) and
   |E(x0_hat)_k - z_k| - |E(x0_hat^c)_k - z_k| (variant part), each a logit vector over units, both
   scored by cross-entropy against c, and weighted per example by the mean squared difference of the
   two x0 predictions (``dis_sample_weight``; no gradient through the weight).

The DyGA paper's Table 3 (DyGA + Skip Dropout on DisDiff) is configuration of the same class:
``dyga=DyGAConfig(num_units=N, token_dim=unit_dim)`` aligns the units to their Gaussian anchors
(DyGA Eq. 6) before the shift decoder reads them (:meth:`DisDiff.refresh_anchors` runs Alg. 2 on the
encoder's units over the training set), and ``shift_skip_dropout=0.2`` drops channels of the skip
features the shift decoder reads (DyGA Eq. 7); :func:`diffrep.recipes.disdiff.with_dyga` sets both.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import finite_numbers, flag, index, non_negative_int, positive_int, training_step
from ..config import differing_fields
from ..diffusion import DDIMSampler, NoiseSchedule
from ..metrics.pca import pca1_units
from ..nn import frozen_parts
from ..nn.encoders import HalfUNet
from ..nn.images import IMAGE_RANGE, batch_images, check_images, dataset_images, module_dtype
from ..nn.pretrained import PretrainedMixin
from ..nn.unet import UNet
from ..nn.vq import TRAINING_ONLY_FIELDS, VQAutoencoder
from ..ops._full_precision import autocast_off
from ..ops.random import check_generator
from .diffusion_autoencoder import check_code, check_noise
from .disdiff_config import DisDiffConfig
from .dyga import DyGA
from .dyga_schedule import AnchorData, AnchorSchedule, Refit

__all__ = ["DisDiffConfig", "DisDiff", "shift_coefficients"]

# the refusals of a frozen part never loaded (docs/architecture.md#frozen-parts): a random eps_theta or VQ
# autoencoder would train the encoder against noise and decode noise, without a word
UNTRAINED_EPS = (
    "DisDiff: the frozen noise predictor eps_theta (unet) still holds its random initialisation; load a pre-trained "
    "one with model.load_pretrained_diffusion(unet) (the disdiff/ recipes: --pretrained_path DIR, the final/ folder "
    "of a disdiff/...-pretrain run), train it (stage='pretrain', or pretrain_steps > 0), or call "
    "model.use_untrained_frozen_parts() to run on an untrained one on purpose (tests, smoke runs)")
UNTRAINED_FIRST_STAGE = (
    "DisDiff: the first stage (the frozen VQ autoencoder of the LDM setting) still holds its random initialisation; "
    "load a trained one with model.load_pretrained_diffusion(unet, first_stage) (the disdiff/ recipes: "
    "--first_stage_path DIR, the final/ folder of a `diffrep train vq/...` run), or call "
    "model.use_untrained_frozen_parts() to run on an untrained one on purpose (tests, smoke runs)")


def shift_coefficients(schedule: NoiseSchedule) -> tuple[torch.Tensor, torch.Tensor]:
    """(shift_coef [T], guidance_coef [T]) in float64: -sqrt(alpha_t) (1 - abar_{t-1}) / sqrt(1 - abar_t)
    (training, PDAE's mean shift) and -sqrt(1 - abar_t) (sampling and the disentangling loss)."""
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"shift_coefficients: schedule must be a NoiseSchedule, got {type(schedule).__name__}")
    ab = schedule.alphas_cumprod.double()
    ab_prev = torch.cat([ab.new_ones(1), ab[:-1]])
    alpha = schedule.alphas.double()
    return -alpha.sqrt() * (1 - ab_prev) / (1 - ab).sqrt(), -(1 - ab).sqrt()


# VQAutoencoderConfig fields that shape only the first stage's own training loss (codebook, LPIPS, discriminator):
# a frozen first stage reads none of them. The vq/ recipes train with disc_weight 0.75 and LPIPS, which the
# DisDiff paper recipes' first_stage (and so `diffrep train vq/shapes3d64`, then disdiff/shapes3d) refused.
def _differences(given, wanted, section: str) -> str:
    """The fields of two configs that differ, as ``section.field: given (this model's: wanted)``: which setting of
    the pre-training run to repeat (or which override to drop)."""
    diff = [f"{section}.{k}: {a!r} (this model's: {b!r})" for k, a, b in differing_fields(given, wanted)]
    return "; ".join(diff[:6]) + ("; ..." if len(diff) > 6 else "")


class DisDiff(PretrainedMixin, nn.Module):
    """``encode(x)`` = PCA-1 per unit [B, N] (after :meth:`fit_code_pca`); ``encode_units(x)`` = [B, N, unit_dim]."""

    config_class = DisDiffConfig
    # the method encode needs first (its PCA-1 per unit): a study's eval.calibrate, diffrep eval --calibrate
    encode_calibration = "fit_code_pca"

    def __init__(self, config: DisDiffConfig):
        super().__init__()
        cfg = self._init_config(config)
        self.encoder = HalfUNet(cfg.encoder)
        self.unet = UNet(cfg.unet)
        self.first_stage = VQAutoencoder(cfg.first_stage) if cfg.first_stage is not None else None
        # built random: refused until loaded, trained by the pre-training stage, or chosen untrained
        frozen_parts.track(self, "unet")
        if self.first_stage is not None:
            frozen_parts.track(self, "first_stage")
        self.shift = UNet(cfg.shift_unet())
        # the shift decoder reads the frozen down path and time embedding: its own are not used
        self.shift.input_blocks = nn.ModuleList()
        self.shift.time_embed = nn.Identity()
        emb = cfg.unet.time_embed_dim or 4 * cfg.unet.model_channels
        self.repre_embed = nn.Linear(cfg.unit_dim, emb)
        if cfg.part_embedding == "orthogonal":
            self.part_latents = nn.Parameter(torch.randn(emb // 2, emb // 2))
            self.part_proj = nn.Linear(emb // 2, emb)
        elif cfg.part_embedding == "learned":
            self.part_latents = nn.Parameter(torch.randn(cfg.num_units, cfg.unit_dim))
            self.part_proj = nn.Linear(cfg.unit_dim, emb)
        self.dyga = DyGA(cfg.dyga) if cfg.dyga is not None else None
        self.schedule = NoiseSchedule(cfg.schedule)
        self._coefs = dict(zip(("shift_coef", "guidance_coef"), shift_coefficients(self.schedule)))  # float64, cast on use
        self.register_buffer("pca_mean", torch.zeros(cfg.num_units, cfg.unit_dim))
        self.register_buffer("pca_components", torch.zeros(cfg.num_units, cfg.unit_dim))
        self.register_buffer("pca_fitted", torch.zeros((), dtype=torch.bool))
        self._anchor_data: AnchorData | None = None  # attach_anchor_data: the images the anchors are refitted on
        self._anchor_schedule: AnchorSchedule | None = None  # ... and at which steps
        self._apply_stage()

    # -- stages --------------------------------------------------------------------------------
    def _frozen(self) -> list[nn.Module]:
        mods = [self.first_stage] if self.first_stage is not None else []
        c = self.config
        return mods + ([self.unet] if c.stage == "disentangle" and c.pretrain_steps == 0 else [])

    def _apply_stage(self) -> None:
        for p in self.parameters():
            p.requires_grad_(True)
        for m in self._frozen():
            m.requires_grad_(False)
        if self.config.stage == "pretrain":
            for m in (self.encoder, self.shift, self.repre_embed):
                m.requires_grad_(False)
            for name in ("part_latents",):
                if hasattr(self, name):
                    getattr(self, name).requires_grad_(False)
            if hasattr(self, "part_proj"):
                self.part_proj.requires_grad_(False)

    def set_stage(self, stage: str) -> None:
        """Switch between ``"pretrain"`` (train eps_theta) and ``"disentangle"`` (freeze it, train the rest)."""
        if stage not in ("pretrain", "disentangle"):
            raise ValueError(f"stage must be 'pretrain' or 'disentangle', got {stage!r}")
        self.config.stage = stage
        self._apply_stage()
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        for m in self._frozen():  # frozen parts always run in evaluation mode (no dropout)
            m.train(False)
        return self

    def use_untrained_frozen_parts(self) -> None:
        """Run on the randomly initialised eps_theta and first stage on purpose (tests, smoke runs): saved with
        the weights. A part already loaded (or trained by the pre-training stage) stays so."""
        frozen_parts.choose_untrained(self)

    def _eps_ready(self) -> None:
        frozen_parts.require(self, "unet", UNTRAINED_EPS)

    def _first_stage_ready(self) -> None:
        if self.first_stage is not None:
            frozen_parts.require(self, "first_stage", UNTRAINED_FIRST_STAGE)

    def load_pretrained_diffusion(self, unet: UNet, first_stage: VQAutoencoder | None = None) -> None:
        """Copy the weights of a trained noise predictor (and VQ autoencoder) into the frozen parts."""
        if not isinstance(unet, UNet):
            raise TypeError(f"load_pretrained_diffusion: unet must be a UNet, got {type(unet).__name__}")
        if first_stage is not None and not isinstance(first_stage, VQAutoencoder):
            raise TypeError(f"load_pretrained_diffusion: first_stage must be a VQAutoencoder or None, got "
                            f"{type(first_stage).__name__}")
        # its own U-Net (the pre-training recipe loads the first stage only) keeps its weights and state: copied onto
        # itself, random weights would be marked trained
        own_unet = unet is self.unet
        if (first_stage is not None and first_stage is self.first_stage) or (own_unet and first_stage is None):
            raise ValueError("load_pretrained_diffusion: nothing to load: give a trained model's parts, not this "
                             "DisDiff's own first stage (or its own U-Net alone)")
        if unet.config != self.config.unet:
            raise ValueError(f"the pre-trained U-Net's config differs from DisDiffConfig.unet: "
                             f"{_differences(unet.config, self.config.unet, 'unet')}")
        if not own_unet:
            self.unet.load_state_dict(unet.state_dict())
            frozen_parts.mark(self, "unet", frozen_parts.LOADED)
        if first_stage is not None:
            if self.first_stage is None:
                raise ValueError("load_pretrained_diffusion: a VQ autoencoder was given, but this DisDiff runs in pixel "
                                 "space (DisDiffConfig.first_stage is None)")
            given = first_stage.config
            mine = dataclasses.replace(self.config.first_stage, **{f: getattr(given, f) for f in TRAINING_ONLY_FIELDS})
            if given != mine:
                raise ValueError(f"the VQ autoencoder's config differs from DisDiffConfig.first_stage: "
                                 f"{_differences(given, mine, 'first_stage')}")
            # its discriminator trained it; this model's first stage (disc_weight 0) has none
            self.first_stage.load_state_dict({k: v for k, v in first_stage.state_dict().items()
                                              if not k.startswith("discriminator.")})
            frozen_parts.mark(self, "first_stage", frozen_parts.LOADED)

    # -- spaces --------------------------------------------------------------------------------
    def _images(self, x, who, name="x"):
        c = self.config.encoder
        return check_images(x, channels=c.in_channels, size=c.image_size, who=f"DisDiff.{who}", name=name,
                            dtype=module_dtype(self), value_range=IMAGE_RANGE)

    def _diffusion_space(self, x, who, name):
        """``x`` checked as a batch of the space eps_theta lives in (the images, or the VQ latents)."""
        u = self.config.unet
        return check_images(x, channels=u.in_channels, size=u.image_size, who=f"DisDiff.{who}", name=name,
                            dtype=module_dtype(self.unet))

    def to_diffusion_space(self, x: torch.Tensor) -> torch.Tensor:
        """Images -> the space eps_theta lives in (identity, or the scaled VQ latent)."""
        return self._to_diffusion_space(self._images(x, "to_diffusion_space"))

    def _to_diffusion_space(self, x):  # x checked (the loss's batch)
        if self.first_stage is None:
            return x
        self._first_stage_ready()
        with torch.no_grad():
            return self.first_stage._encode(x) * self.config.latent_scale  # x checked

    def to_images(self, x0: torch.Tensor, *, quantize: bool = True) -> torch.Tensor:
        """The diffusion space -> images (VQ decoding of latent / scale)."""
        return self._to_images(self._diffusion_space(x0, "to_images", "x0"), quantize)

    def _to_images(self, x0, quantize: bool):  # the loss's own x0 estimates: no finiteness read (a host sync on CUDA)
        x0 = x0.to(module_dtype(self.unet))  # as _diffusion_space
        if self.first_stage is None:
            return x0
        self._first_stage_ready()
        return self.first_stage.decode(x0 / self.config.latent_scale, quantize=quantize)

    # -- representation ---------------------------------------------------------------------------
    @autocast_off  # the units in the model's own precision, not the caller's autocast (bf16 otherwise)
    def encode_units(self, x: torch.Tensor) -> torch.Tensor:
        """The N latent units [B, N, unit_dim] of images x (the encoder's mean head)."""
        return self._encode_units(self._images(x, "encode"))

    def _encode_units(self, x):  # the loss's and the anchor refresh's pass on checked images, in the trainer's precision
        c = self.config
        return self.encoder(x)[0].reshape(x.shape[0], c.num_units, c.unit_dim)

    @autocast_off  # the units and their PCA in the model's own precision
    @torch.no_grad()
    def fit_code_pca(self, x: torch.Tensor) -> None:
        """Fit PCA(1) per unit on the units of images ``x`` (at least 2; DisDiff's evaluation;
        :func:`diffrep.metrics.pca.pca1_units`)."""
        units = self.encode_units(x)
        if units.shape[0] < 2:  # one image has no spread: its "component" would be an arbitrary axis
            raise ValueError(f"DisDiff.fit_code_pca needs at least 2 images, got {units.shape[0]}")
        _, mean, comp = pca1_units(units, return_components=True)
        self.pca_mean.copy_(mean.to(self.pca_mean))
        self.pca_components.copy_(comp.to(self.pca_components))
        self.pca_fitted.fill_(True)

    def align_units(self, units: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """The units the shift decoder reads: DyGA-aligned (Eq. 6) when ``dyga`` is configured and fitted,
        else unchanged."""
        units = self._check_units(units, units.shape[0] if isinstance(units, torch.Tensor) else 0)
        return self._align_units(units, generator)

    def _align_units(self, units, generator):  # checked units, or the loss's own codes: no finiteness read
        check_generator(generator)
        units = units.to(module_dtype(self.unet))  # as _check_units
        # DyGA's unchecked path: the public forward re-checked the units' finiteness and read max d_k (three host
        # reads per training step with fitted anchors)
        return units if self.dyga is None else self.dyga._align_tokens(units, generator)

    def attach_anchor_data(self, dataset, steps_per_epoch: int, *, batch_size: int = 256) -> None:
        """Make ``loss`` refresh the DyGA anchors (Alg. 2 on the units of every image of ``dataset``, read
        ``batch_size`` at a time) after every ``dyga.refresh_every``-th epoch of disentangling, an epoch being
        ``steps_per_epoch`` optimiser steps (DyGA Alg. 1; the schedule, EncDiff's:
        :class:`diffrep.methods.dyga_schedule.AnchorSchedule`; :func:`diffrep.recipes.disdiff.build` does this).
        Without it nothing fits the anchors during training and the alignment stays the identity."""
        if self.dyga is None:
            raise ValueError("DisDiff.attach_anchor_data: this model has no DyGA (set DisDiffConfig.dyga)")
        self._anchor_data = AnchorData.checked(self.dyga.config, dataset, steps_per_epoch, batch_size,
                                               who="DisDiff.attach_anchor_data")
        self._anchor_schedule = AnchorSchedule(self.dyga.config, steps_per_epoch)

    def _refit(self, fit: Refit) -> None:
        """The schedule's fit: the attached dataset (its first ``fit.limit`` images under compat's fit before
        disentangling), read in batches."""
        s = self._anchor_data
        n = len(s.dataset) if fit.limit is None else min(len(s.dataset), fit.limit)
        dev = self.pca_mean.device
        batches = (dataset_images(s.dataset, range(i, min(n, i + s.batch_size))).to(dev)
                   for i in range(0, n, s.batch_size))  # read one at a time: the whole set need not fit in memory
        self._fit_anchors(batches, fit.epoch)

    @torch.no_grad()
    def _fit_anchors(self, batches, epoch: int) -> dict:
        """DyGA's fit (Alg. 2) on the units of the image batches ``batches`` (an iterable), encoder in eval mode:
        raw units, or under compat the units aligned per batch (row 11 of docs/methods/dyga.md#compat: the
        authors' code fits the aligned tokens; before the first fit the alignment is the identity)."""
        was = self.training
        self.eval()  # the encoder's units as the metrics read them (no dropout)
        try:
            compat = self.dyga.config.compat == "dis-dis"
            units = torch.cat([self.dyga(u) if compat else u
                               for u in (self._encode_units(self._images(x, "encode")) for x in batches)])
        finally:
            self.train(was)
        return self.dyga.fit(units, epoch=epoch)  # in float32 with autocast off (DyGA.fit), as a bf16 encoder needs

    @autocast_off  # the units in the model's own precision, as DyGA.fit's maths (the trainer's refresh keeps its own)
    @torch.no_grad()
    def refresh_anchors(self, x: torch.Tensor, *, epoch: int = 0) -> dict:
        """DyGA anchor selection (Alg. 2) on the encoder's raw units of images ``x`` (the training set,
        encoder in eval mode); returns DyGA's fit report."""
        if self.dyga is None:
            raise ValueError("DisDiff.refresh_anchors: this model has no DyGA (set DisDiffConfig.dyga)")
        epoch = non_negative_int(epoch, "epoch")  # checked before the whole set is encoded
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[0] == 0:  # encode checks the rest per batch
            raise ValueError(f"DisDiff.refresh_anchors: x must be a non-empty batch of images [N, C, H, W], got "
                             f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
        return self._fit_anchors([x[i:i + 256] for i in range(0, x.shape[0], 256)], epoch)

    @autocast_off  # the representation in the model's own precision (bf16 units otherwise)
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """PCA-1 code per unit [B, N] (what the metrics read); needs :meth:`fit_code_pca` first."""
        if not bool(self.pca_fitted):
            raise ValueError("DisDiff.encode: the per-unit PCA is not fitted; call fit_code_pca(images) first "
                             "(or read the raw units with encode_units; diffrep eval --model and diffrep encode: "
                             "--calibrate fit_code_pca; a study: eval.calibrate)")
        u = self.encode_units(x)
        return ((u - self.pca_mean) * self.pca_components).sum(-1)

    # -- the networks ---------------------------------------------------------------------------
    def part_embeddings(self) -> torch.Tensor:
        """[N, time_embed_dim] part embeddings (zeros with ``part_embedding="none"``)."""
        c = self.config
        if c.part_embedding == "none":
            return self.repre_embed.weight.new_zeros(c.num_units, self.repre_embed.out_features)
        if c.part_embedding == "orthogonal":
            w = self.part_latents
            rows = torch.linalg.matrix_exp(w - w.transpose(0, 1))[: c.num_units]
        else:
            rows = self.part_latents
        return self.part_proj(rows)

    def _check_units(self, units, batch):
        c = self.config
        if not isinstance(units, torch.Tensor):  # "must have shape [0, N, D], got None" named neither
            raise TypeError(f"units must be a tensor [B, {c.num_units}, {c.unit_dim}], got {type(units).__name__}")
        if units.shape != (batch, c.num_units, c.unit_dim):
            raise ValueError(f"units must have shape [{batch}, {c.num_units}, {c.unit_dim}], got {tuple(units.shape)}")
        return check_code(units, "units").to(module_dtype(self.unet))  # the chain runs in the units' dtype

    def _check_xt(self, x_t, t, who):
        x_t = self._diffusion_space(x_t, who, "x_t")
        self.schedule._check_t(t, batch=x_t.shape[0], who=f"DisDiff.{who}")
        return x_t

    def predict(self, x_t: torch.Tensor, t: torch.Tensor, units: torch.Tensor | None = None,
                which: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(eps_theta(x_t, t) [no gradient], G [B, N, C, H, W] the shifts of every unit, or None).
        ``which`` [B, N] bool limits the units evaluated (others are zero)."""
        x_t = self._check_xt(x_t, t, "predict")
        if which is not None and (not isinstance(which, torch.Tensor) or which.dtype != torch.bool
                                  or tuple(which.shape) != (x_t.shape[0], self.config.num_units)):
            raise ValueError(f"which must be a bool tensor [{x_t.shape[0]}, {self.config.num_units}], "
                             f"got {getattr(which, 'dtype', type(which).__name__)} {tuple(getattr(which, 'shape', ()))}")
        return self._predict(x_t, t, None if units is None else self._check_units(units, x_t.shape[0]), which)

    def _predict(self, x_t, t, units=None, which=None):  # unchecked (units checked or the loss's): the loss and the sampling loops
        self._eps_ready()
        B = x_t.shape[0]
        was = self.unet.training
        self.unet.train(False)  # the frozen role: no dropout, no gradient
        try:
            with torch.no_grad():
                hs, emb = self.unet.forward_down(x_t, t)
                eps = self.unet.forward_up(hs[-1], hs, emb)
        finally:
            self.unet.train(was)
        if units is None:
            return eps, None
        c = self.config
        units = units.to(module_dtype(self.unet))  # as _check_units
        parts = self.part_embeddings()                                   # [N, D]
        if which is None:  # every (example, unit) pair, in nonzero()'s row-major order: nonzero() of an all-True
            # mask would read its count back to the host (a synchronisation per training step on CUDA)
            pair = torch.arange(B * c.num_units, device=x_t.device)
            bi, ui = pair // c.num_units, pair % c.num_units
        else:
            bi, ui = which.nonzero(as_tuple=True)
        shape = (B, c.num_units) + tuple(x_t.shape[1:])
        if not bi.numel():
            return eps, x_t.new_zeros(shape)
        hsel = [h[bi] for h in hs]
        out = self.shift.forward_up(hsel[-1], hsel, emb[bi] + parts[ui], self.repre_embed(units[bi, ui]))
        return eps, out.new_zeros(shape).index_put((bi, ui), out)  # out's dtype (bf16 under autocast)

    # -- objective ---------------------------------------------------------------------------
    def _gather(self, name, t, like):
        return self._coefs[name].to(like.device)[t.to(like.device)].to(like.dtype).reshape((-1,) + (1,) * (like.dim() - 1))

    def loss(self, batch, *, step: int | None = None, generator: torch.Generator | None = None) -> dict:
        """``stage="pretrain"`` (or ``step < pretrain_steps``): L_simple of eps_theta; ``"disentangle"``:
        L_r + dis_weight L_d (module docstring; eps_theta gets no gradient). Draws: t, the noise, then the sampled unit per example, from ``generator``."""
        c = self.config
        x = self._images(batch_images(batch), "loss", "batch")
        training_step(step)
        x0 = self._to_diffusion_space(x)  # x checked above
        # at least float32: under the trainer's autocast (bf16 on a GPU) the frozen first stage returns bf16, and
        # the forward process, its noise and the loss stay in float32
        x0 = x0.to(torch.promote_types(x0.dtype, torch.float32))
        B, dev = x0.shape[0], x0.device
        t = self.schedule.sample_timesteps(B, device=dev, generator=generator)
        noise = torch.randn(x0.shape, generator=generator, device=dev, dtype=x0.dtype)
        x_t = self.schedule._q_sample(x0, t, noise)  # t drawn above: no range read
        if c.stage == "pretrain" or (step is not None and step < c.pretrain_steps):
            if frozen_parts.state(self, "unet") != frozen_parts.LOADED:  # trained here: the later stage may read it
                frozen_parts.mark(self, "unet", frozen_parts.LOADED)
            err = self.unet(x_t, t) - noise
            per = (err.pow(2) if c.recon_loss == "l2" else err.abs()).flatten(1).mean(1)
            return {"loss": per.mean(), "diffusion": per.mean().detach()}
        if self._anchor_schedule is not None and step is not None:  # steps of disentangling: the pre-training ones do not count
            self._anchor_schedule(step - c.pretrain_steps, fitted=lambda: bool(self.dyga.fitted), training=self.training,
                                  refit=self._refit)
        units = self._encode_units(x)
        eps, g = self._predict(x_t, t, self._align_units(units, generator))  # the encoder's own units
        pred = eps + self._gather("shift_coef", t, x0) * g.sum(1)
        err = pred - noise
        rec = (err.pow(2) if c.recon_loss == "l2" else err.abs()).flatten(1).mean(1).mean()
        out = {"reconstruction": rec.detach()}
        loss = rec
        w = c.effective_dis_weight
        if w > 0 and c.num_units > 1:
            concept = torch.randint(0, c.num_units, (B,), generator=generator, device=dev)
            dl = self._disentangling_loss(x_t, t, eps, g[torch.arange(B, device=dev), concept], units, concept)
            loss = loss + w * dl
            out["disentangling"] = dl.detach()
        out["loss"] = loss
        return out

    def _reencode(self, x0_hat: torch.Tensor, grad: bool) -> torch.Tensor:
        img = self._to_images(x0_hat, quantize=False)
        c = self.config
        if grad:
            z = self.encoder(img)[0]
        else:  # a gradient-free copy of the encoder: gradients reach x0_hat only
            params = {k: v.detach() for k, v in self.encoder.named_parameters()}
            z = torch.func.functional_call(self.encoder, params, (img,))[0]
        return z.reshape(img.shape[0], c.num_units, c.unit_dim)

    def disentangling_loss(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, g_c: torch.Tensor,
                           units: torch.Tensor, concept: torch.Tensor) -> torch.Tensor:
        """L_d (module docstring, item 5) for the sampled units ``concept`` [B] (integers in [0, N)) with their
        shifts ``g_c`` [B, C, H, W]; ``eps`` the frozen prediction at (x_t, t), the shape of ``x_t``; ``units``
        [B, N, unit_dim] the codes of the clean images."""
        who = "DisDiff.disentangling_loss"
        x_t = self._check_xt(x_t, t, "disentangling_loss")
        eps = check_noise(eps, tuple(x_t.shape), x_t.dtype, who, "eps")
        g_c = check_noise(g_c, tuple(x_t.shape), x_t.dtype, who, "g_c")
        units = self._check_units(units, x_t.shape[0])
        n = self.config.num_units
        if (not isinstance(concept, torch.Tensor) or concept.dtype.is_floating_point or concept.dtype == torch.bool
                or tuple(concept.shape) != (x_t.shape[0],) or bool(((concept < 0) | (concept >= n)).any())):
            raise ValueError(f"{who}: concept must be an integer tensor [{x_t.shape[0]}] of units in [0, {n}), got "
                             f"{concept.tolist() if isinstance(concept, torch.Tensor) and concept.numel() <= 8 else type(concept).__name__}")
        return self._disentangling_loss(x_t, t, eps, g_c, units, concept.to(device=x_t.device, dtype=torch.long))

    def _disentangling_loss(self, x_t, t, eps, g_c, units, concept):  # unchecked: the objective's own call
        c = self.config
        s = self.schedule
        x0_hat = s._eps_to_x0(x_t, t, eps).detach()  # t drawn by loss or checked by disentangling_loss
        x0_hat_c = s._eps_to_x0(x_t, t, eps + self._gather("guidance_coef", t, x_t) * g_c)
        with torch.no_grad():
            z_hat = self._reencode(x0_hat, False)
        z_hat_c = self._reencode(x0_hat_c, c.dis_encoder_grad)
        z = units.detach()
        logits_variant = (z_hat - z).norm(dim=-1) - (z_hat_c - z).norm(dim=-1)
        logits_invariant = (z_hat - z_hat_c).norm(dim=-1)
        ce = F.cross_entropy(logits_variant, concept, reduction="none") + F.cross_entropy(logits_invariant, concept, reduction="none")
        if c.dis_sample_weight == "none":
            weight = torch.ones_like(ce)
        elif c.dis_sample_weight == "latent" or self.first_stage is None:
            weight = (x0_hat - x0_hat_c.detach()).pow(2).flatten(1).mean(1)
        else:
            with torch.no_grad():
                weight = (self._to_images(x0_hat, False) - self._to_images(x0_hat_c, False)).pow(2).flatten(1).mean(1)
        return (weight * ce).mean()

    # -- decoding and verbs -------------------------------------------------------------------
    def eps_with_units(self, x_t, t, units):
        """The sampling prediction eps_theta - sqrt(1 - abar_t) sum_c G(x_t, z^c, t)."""
        x_t = self._check_xt(x_t, t, "eps_with_units")
        return self._eps_with_units(x_t, t, self._check_units(units, x_t.shape[0]))

    def _eps_with_units(self, x_t, t, units):  # unchecked: the sampling loops
        eps, g = self._predict(x_t, t, self._align_units(units, None))  # units checked by the caller
        return eps + self._gather("guidance_coef", t, x_t) * g.sum(1)

    def _shape(self, n):
        u = self.config.unet
        return (n, u.in_channels, u.image_size, u.image_size)

    @autocast_off  # the chains in the model's own precision: under bf16 autocast reconstruct's DDIM chain ran into NaN
    @torch.no_grad()
    def decode(self, units: torch.Tensor, x_T: torch.Tensor | None = None, *, num_steps: int | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """DDIM decoding (eta = 0) conditioned on the units; images (VQ-decoded in the LDM setting)."""
        n = units.shape[0] if isinstance(units, torch.Tensor) else 0
        units = self._check_units(units, n)
        shape = self._shape(n)
        if x_T is not None:
            x_T = check_noise(x_T, shape, units.dtype, "DisDiff.decode")
        x0 = DDIMSampler(self.schedule).sample(lambda xt, t: self._eps_with_units(xt, t, units), shape, x_T=x_T,
                                               generator=generator, num_steps=self.config.sample_steps if num_steps is None else num_steps,
                                               device=units.device, dtype=units.dtype)
        return self.to_images(x0).clamp(-1, 1)

    @autocast_off  # as decode
    @torch.no_grad()
    def encode_stochastic(self, x: torch.Tensor, units: torch.Tensor | None = None, *, num_steps: int | None = None) -> torch.Tensor:
        """x_T by DDIM inversion of the unit-conditioned prediction."""
        x = self._images(x, "encode_stochastic")
        units = self.encode_units(x) if units is None else self._check_units(units, x.shape[0])
        return DDIMSampler(self.schedule).invert(lambda xt, t: self._eps_with_units(xt, t, units), self.to_diffusion_space(x),
                                                 num_steps=self.config.sample_steps if num_steps is None else num_steps)

    @autocast_off  # as decode
    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, *, num_steps: int | None = None, stochastic: bool = True,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode x's units from x_T by inversion (``stochastic``) or from x_T ~ N(0, I)."""
        stochastic = flag(stochastic, "stochastic")   # "no" read as True
        x = self._images(x, "reconstruct")   # the checks' messages named encode
        units = self._encode_units(x)
        xT = self.encode_stochastic(x, units, num_steps=num_steps) if stochastic else None
        return self.decode(units, xT, num_steps=num_steps, generator=generator)

    @autocast_off  # as decode
    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None, num_steps: int | None = None) -> torch.Tensor:
        """Unconditional samples of the pre-trained model (DDIM, eta = 0; x_T in the weights' dtype); images in [-1, 1]."""
        self._eps_ready()
        w = next(self.unet.parameters())
        x0 = DDIMSampler(self.schedule).sample(lambda xt, t: self.unet(xt, t), self._shape(positive_int(n, "n")),
                                               generator=generator, num_steps=self.config.sample_steps if num_steps is None else num_steps,
                                               device=w.device, dtype=w.dtype)
        return self.to_images(x0).clamp(-1, 1)

    @autocast_off  # as decode
    @torch.no_grad()
    def swap(self, x: torch.Tensor, source: torch.Tensor, unit: int, *, num_steps: int | None = None,
             x_T: torch.Tensor | None = None) -> torch.Tensor:
        """Latent swap (DisDiff Sec. 5): x's units with unit ``unit`` taken from ``source``, decoded from
        x's x_T (DDIM inversion unless ``x_T`` is given)."""
        x, source = self._images(x, "swap"), self._images(source, "swap", "source")
        u, us = self.encode_units(x), self.encode_units(source)
        if us.shape != u.shape:
            raise ValueError("x and source must have the same batch size")
        unit = index(unit, self.config.num_units, "unit")
        xT = self.encode_stochastic(x, u, num_steps=num_steps) if x_T is None else x_T
        u2 = u.clone()
        u2[:, int(unit)] = us[:, int(unit)]
        return self.decode(u2, xT, num_steps=num_steps)

    @autocast_off  # as decode
    @torch.no_grad()
    def traverse(self, x: torch.Tensor, unit: int, values, *, num_steps: int | None = None) -> torch.Tensor:
        """Move unit ``unit`` along its PCA direction to each PCA coordinate in ``values`` (needs
        :meth:`fit_code_pca`): [len(values), B, C, H, W]."""
        if not bool(self.pca_fitted):
            raise ValueError("DisDiff.traverse: call fit_code_pca(images) first")
        unit, values = index(unit, self.config.num_units, "unit"), finite_numbers(values, "values")
        u = self.encode_units(x)
        xT = self.encode_stochastic(x, u, num_steps=num_steps)
        k, comp, mean = int(unit), self.pca_components[int(unit)], self.pca_mean[int(unit)]
        cur = ((u[:, k] - mean) * comp).sum(-1, keepdim=True)
        out = []
        for v in values:
            u2 = u.clone()
            u2[:, k] = u[:, k] + (float(v) - cur) * comp
            out.append(self.decode(u2, xT, num_steps=num_steps))
        return torch.stack(out)
