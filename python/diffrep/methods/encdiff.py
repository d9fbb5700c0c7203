"""EncDiff with Dynamic Gaussian Anchoring and Skip Dropout (Jun et al., "Disentangling Disentangled
Representations: Towards Improved Latent Units via Diffusion Models", §3, Alg. 1, Eq. 1-2, 6-7,
Tables 7-9; EncDiff: Yang et al. 2024). docs/methods/encdiff.md.

A latent diffusion model whose U-Net (Table 8) is conditioned through cross-attention on N tokens made
by a feature extractor (Table 9) from the clean image: N scalar latent units, each mapped by its own
MLP to a D-d token. Extractor and U-Net are trained jointly by the Eq. 2 loss alone (L1 or L2 on the
noise); the first stage (the f = 4 VQ autoencoder of Table 7, or none: pixel space) is frozen.
The configuration, the LDM schedule and its DDIM spacing are in :mod:`.encdiff_config` (re-exported
here); the small extractor and FSQ tokens in :mod:`.encdiff_nets`.

- DyGA (:class:`diffrep.methods.dyga.DyGA`) aligns the tokens to per-unit Gaussian anchors (Eq. 6);
  anchors are refreshed every r epochs from the whole training set with the extractor in eval mode
  (:meth:`EncDiff.refresh_anchors`; :meth:`EncDiff.attach_anchor_data` makes ``loss`` do it at the
  epoch boundaries, Alg. 1), or FSQ (Table 11) quantises them instead.
- Skip Dropout (Eq. 7) is the U-Net's ``skip_dropout`` (placement ``"reference_code"``: the 16 and
  8 px skips); backbone dropout (Table 12's BD) drops channels of the decoder's backbone input at the
  same levels (``backbone_dropout``).
- Verbs: ``encode`` (N scalars), ``tokens``, ``pca_codes`` (PCA(1) per unit, the paper's metric
  codes), ``reconstruct``, ``sample``, ``interchange`` (Figs. 3, 8), ``interpolate`` (Fig. 6),
  ``attention_maps`` (Figs. 4, 9, 10; attention probabilities recomputed from each cross-attention's
  inputs, which the fused attention kernel does not expose), ``condition_reliance``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._checks import finite_numbers, flag, indices, map_style_dataset, positive_int, training_step
from ..diffusion.samplers import DDIMSampler
from ..diffusion.schedules import NoiseSchedule
from ..metrics.pca import pca1_units
from ..nn import frozen_parts
from ..nn.derived import DerivedValue
from ..nn.encoders import FeatureExtractor
from ..nn.images import IMAGE_RANGE, batch_images, check_images, dataset_images, module_dtype
from ..nn.pretrained import PretrainedMixin
from ..nn.unet import UNet
from ..nn.vq import TRAINING_ONLY_FIELDS, VQAutoencoder
from .diffusion_autoencoder import check_code, check_noise
from .dyga import DyGA, draw_device
from .dyga_schedule import AnchorData, AnchorSchedule, Refit
from .encdiff_config import EncDiffConfig, ldm_ddim_pairs, ldm_schedule
from .encdiff_nets import FSQTokens, SmallExtractor

__all__ = ["EncDiffConfig", "EncDiff", "ldm_schedule", "ldm_ddim_pairs"]

# every verb's refusal of a first stage never loaded (it would train and encode on a random autoencoder's latents)
FIRST_STAGE_UNTRAINED = (
    "EncDiff: the first stage (the frozen VQ autoencoder, DyGA Table 7) still holds its random initialisation; load "
    "a trained one with model.load_first_stage(DIR) (the final/ folder of a `diffrep train vq/...` run; the "
    "encdiff/ recipes: --first_stage_path DIR), or call model.use_untrained_frozen_parts() to run on an untrained "
    "one on purpose (tests, smoke runs)")


class EncDiff(PretrainedMixin, nn.Module):
    """EncDiff (+ DyGA, + Skip Dropout). ``loss(batch, step=...)`` is Eq. 2 (Alg. 1)."""

    config_class = EncDiffConfig

    def __init__(self, config: EncDiffConfig):
        super().__init__()
        cfg = self._init_config(config)
        self.unet = UNet(cfg.unet)
        self.extractor = SmallExtractor(cfg.small_extractor) if cfg.small_extractor else FeatureExtractor(cfg.extractor)
        self.first_stage = VQAutoencoder(cfg.first_stage) if cfg.first_stage is not None else None
        if self.first_stage is not None:
            self.first_stage.requires_grad_(False).eval()
            # built random and never trained here: every verb refuses it until it is loaded (or chosen untrained)
            frozen_parts.track(self, "first_stage")
        self.dyga = DyGA(cfg.dyga) if cfg.conditioning == "dyga" else None
        self.fsq = FSQTokens(cfg.token_dim, cfg.fsq_levels) if cfg.conditioning == "fsq" else None
        self.schedule = NoiseSchedule(cfg.schedule)
        self.register_buffer("scale_factor", torch.ones(()))
        self.register_buffer("scale_set", torch.zeros((), dtype=torch.bool))
        self.register_buffer("token_bank", torch.zeros(cfg.token_bank_size, cfg.num_units, cfg.token_dim))
        self.register_buffer("bank_count", torch.zeros((), dtype=torch.int64))
        # scale_set's host copy: the loss tests it at every step, a host read each on CUDA (nn.derived)
        self._scale_set_host = DerivedValue()
        self._scale_is_set()
        self._bd_hooks = self._install_backbone_dropout() if cfg.backbone_dropout > 0 else []
        self._anchor_data: AnchorData | None = None  # attach_anchor_data: the images the anchors are refitted on
        self._anchor_schedule: AnchorSchedule | None = None  # ... and at which steps
        self.anchor_history: list[dict] = []

    # -- plumbing -------------------------------------------------------------------------------
    def train(self, mode: bool = True):
        super().train(mode)
        if self.first_stage is not None:
            self.first_stage.eval()              # frozen: its BatchNorm-free layers, no dropout, always eval
        return self

    def _install_backbone_dropout(self):
        """Table 12's BD: channel dropout (rate ``backbone_dropout``, inverted) on the decoder's backbone
        input h, before it is concatenated with the skip, at the Skip Dropout levels (docs page)."""
        cfg = self.config.unet
        rate = self.config.backbone_dropout
        mc = cfg.model_channels
        skips, ch = [mc], mc
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                ch = mult * mc
                skips.append(ch)
            if level != len(cfg.channel_mult) - 1:
                skips.append(ch)
        levels = dataclasses.replace(cfg, skip_dropout=0.5).skip_dropout_levels()   # SD's placement, at any rate
        hooks, r = [], cfg.resolutions[-1]
        for i, blk in enumerate(self.unet.output_blocks):
            sc = skips.pop()
            level = len(cfg.channel_mult) - 1 - i // (cfg.num_res_blocks + 1)
            r = cfg.image_size // 2 ** level
            if r not in levels:
                continue

            def pre(module, args, sc=sc):
                if not module.training:
                    return None
                h = args[0]
                ch_h = h.shape[1] - sc
                keep = 1.0 - rate
                m = torch.bernoulli(torch.full((h.shape[0], ch_h, 1, 1), keep, device=h.device, dtype=h.dtype)) / keep
                return (torch.cat([h[:, :ch_h] * m, h[:, ch_h:]], 1),) + tuple(args[1:])

            hooks.append(blk.register_forward_pre_hook(pre))
        return hooks

    def _first_stage_ready(self):
        """Refuse a first stage that still holds its random initialisation (docs/architecture.md#frozen-parts)."""
        if self.first_stage is not None:
            frozen_parts.require(self, "first_stage", FIRST_STAGE_UNTRAINED)

    def use_untrained_frozen_parts(self) -> None:
        """Run on the randomly initialised first stage on purpose (tests, smoke runs; a recipe's
        ``allow_untrained_first_stage``): saved with the weights, so a model trained so loads as it trained.
        A loaded first stage stays loaded; nothing to mark in pixel space."""
        frozen_parts.choose_untrained(self)

    def _images(self, x, name="x"):
        self._first_stage_ready()
        return check_images(x, channels=self.config.image_channels, size=self.config.image_size, name=name,
                            who="EncDiff", dtype=module_dtype(self), value_range=IMAGE_RANGE)

    def _latents(self, z, name):
        """``z`` checked as a batch of the U-Net's space (the first stage's latents, or the images)."""
        u = self.config.unet
        return check_images(z, channels=u.in_channels, size=u.image_size, name=name, who="EncDiff",
                            dtype=module_dtype(self.unet))

    def _tokens(self, c, name="tokens", batch=None):
        """``c`` checked as tokens (B, N, D) of this model's N units and token size D."""
        n, d = self.config.num_units, self.config.token_dim
        if not isinstance(c, torch.Tensor) or c.dim() != 3 or tuple(c.shape[1:]) != (n, d) or \
                (batch is not None and c.shape[0] != batch):
            raise ValueError(f"{name} must have shape ({batch or 'B'}, {n}, {d}), got {tuple(getattr(c, 'shape', ()))}"
                             + ("" if isinstance(c, torch.Tensor) else f" ({type(c).__name__})"))
        # in the U-Net's dtype, as the images: condition() returned a bf16 code as bf16, a float64 one as float64
        return check_code(c, name).to(module_dtype(self.unet))

    @staticmethod
    def _generator(generator):
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        return generator

    @torch.no_grad()
    def to_latent(self, x: torch.Tensor) -> torch.Tensor:
        """z0: the first stage's (pre-quantisation) latent times the scale factor, or x itself."""
        return self._to_latent(self._images(x))

    @torch.no_grad()
    def _to_latent(self, x):  # x checked (the loss's batch)
        if self.first_stage is None:
            return x
        return self.first_stage._encode(x) * self.scale_factor  # x checked

    @torch.no_grad()
    def from_latent(self, z: torch.Tensor) -> torch.Tensor:
        """Images from latents (decoded through the quantiser, as the LDM's ``VQModelInterface``)."""
        z = self._latents(z, "z")
        if self.first_stage is None:
            return z
        self._first_stage_ready()
        return self.first_stage.decode(z / self.scale_factor)

    def raw_tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(scalars (B, N), tokens c (B, N, D)) of the extractor, before alignment."""
        return self.extractor(self._images(x))

    def condition(self, c: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """The U-Net's condition c~ from raw tokens c: DyGA alignment (Eq. 6), FSQ, or c itself."""
        return self._condition(self._tokens(c, "c"), self._generator(generator))

    def _condition(self, c, generator):  # the loss's path: the extractor's tokens, in the trainer's precision and unread
        if self.dyga is not None:
            return self.dyga._align_tokens(c, generator)  # the extractor's own tokens: no finiteness reads
        if self.fsq is not None:
            return self.fsq(c)
        return c

    def eps(self, z_t: torch.Tensor, t: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """eps_theta(z_t, t, c~) (t integer timesteps [B] in [0, T), tokens (B, N, D))."""
        z_t = self._latents(z_t, "z_t")
        self.schedule._check_t(t, batch=z_t.shape[0], who="EncDiff.eps", of="z_t")
        return self._eps(z_t, t, self._tokens(tokens, batch=z_t.shape[0]))

    def _eps(self, z_t, t, tokens):  # unchecked: the loss, the sampling loop and the reliance measure
        return self.unet(z_t, t, context=tokens)

    # -- training (Alg. 1, Eq. 2) -----------------------------------------------------------------
    def attach_anchor_data(self, dataset, steps_per_epoch: int, *, batch_size: int = 256) -> None:
        """Make ``loss`` refresh the DyGA anchors at the end of every ``dyga.refresh_every``-th epoch
        (``steps_per_epoch`` optimiser steps each) from ``dataset``, read ``batch_size`` images at a time
        (Alg. 1; the schedule: :class:`diffrep.methods.dyga_schedule.AnchorSchedule`; the recipes do this)."""
        if self.dyga is None:
            raise ValueError("EncDiff.attach_anchor_data: this model has no DyGA (conditioning is not 'dyga')")
        self._anchor_data = AnchorData.checked(self.dyga.config, dataset, steps_per_epoch, batch_size,
                                               who="EncDiff.attach_anchor_data")
        self._anchor_schedule = AnchorSchedule(self.dyga.config, steps_per_epoch)

    def loss(self, batch, *, step: int | None = None, generator: torch.Generator | None = None) -> dict:
        """Eq. 2: mean |eps_theta(z_t, t, c~) - eps| (L1; L2 squared), t ~ U{0..T-1}, z_t = sqrt(abar) z0 +
        sqrt(1 - abar) eps (the VP form of Eq. 1). Logs the number of anchors per unit."""
        x = self._images(batch_images(batch), "batch")
        training_step(step)
        self._generator(generator)
        cfg = self.config
        if self._anchor_schedule is not None and step is not None:
            self._anchor_schedule(step, fitted=lambda: self.dyga.is_fitted, training=self.training, refit=self._refit)
        if self.first_stage is not None and cfg.scale_by_std and self.training and not self._scale_is_set():
            with torch.no_grad():
                z = self.first_stage._encode(x)  # x checked above
                self.scale_factor.fill_(1.0 / z.float().flatten().std().clamp_min(1e-8))
                self.scale_set.fill_(True)
            self._scale_set_host.put((self.scale_set,), True)   # known: no read at the next step
        z0 = self._to_latent(x)  # x checked above
        # at least float32: under the trainer's autocast (bf16 on a GPU) the frozen first stage returns bf16, and
        # the forward process, its noise and the loss stay in float32
        z0 = z0.to(torch.promote_types(z0.dtype, torch.float32))
        B = x.shape[0]
        on = draw_device(generator)
        t = torch.randint(0, self.schedule.num_timesteps, (B,), generator=generator, device=on).to(x.device)
        noise = torch.randn(z0.shape, generator=generator, device=on, dtype=z0.dtype).to(x.device)
        z_t = self.schedule._q_sample(z0, t, noise)  # t drawn in [0, T) above: no range read
        _, c = self.extractor(x)
        self._bank(c)
        c_tilde = self._condition(c, self._generator(generator))  # the extractor's tokens: unread, not cast
        err = self._eps(z_t, t, c_tilde) - noise
        per = err.abs() if cfg.loss_type == "l1" else err.pow(2)
        loss = per.mean()
        out = {"loss": loss}
        fitted, _, counts = self.dyga._host_state() if self.dyga is not None else (False, None, None)
        if fitted:
            # the counts are fixed until the next fit: host copies read once after n_anchors changes, not per step
            out["anchors_mean"], out["anchors_min"], out["anchors_max"] = counts
            for k, v in self.dyga.last_align.items():
                out[f"dyga_{k}"] = v
        return out

    def _scale_is_set(self) -> bool:
        """``scale_set`` (the LDM's scale_by_std factor taken from the first training batch) through its host copy,
        read again only after the buffer changed (a load, a move, a write: :class:`diffrep.nn.derived.DerivedValue`)."""
        return self._scale_set_host.get((self.scale_set,), lambda: bool(self.scale_set))

    def _refit(self, fit: Refit) -> None:
        """The schedule's fit: the attached dataset (its first ``fit.limit`` images under compat's fit before
        training, whose tokens are raw: nothing aligns before the first fit)."""
        s = self._anchor_data
        self.refresh_anchors(s.dataset, epoch=fit.epoch, batch_size=s.batch_size, limit=fit.limit)

    @torch.no_grad()
    def _bank(self, c):
        """Keep the latest raw tokens (a ring buffer) for ``sample(n)`` without given tokens."""
        S = self.token_bank.shape[0]
        c = c.detach()[:S]
        # the ring's position stays a device tensor: int(bank_count) would synchronise host and GPU every step
        idx = (torch.arange(c.shape[0], device=c.device) + self.bank_count) % S
        self.token_bank[idx] = c.to(self.token_bank)
        self.bank_count += c.shape[0]

    @torch.no_grad()
    def features(self, dataset, *, batch_size: int = 256, aligned: bool = False, limit: int | None = None) -> torch.Tensor:
        """Raw (or, ``aligned``, eval-mode aligned) tokens (n, N, D) of a dataset's images, extractor in eval."""
        positive_int(batch_size, "batch_size")
        flag(aligned, "aligned")
        map_style_dataset(dataset, what="of images")
        n = len(dataset) if limit is None else min(len(dataset), positive_int(limit, "limit"))
        if n == 0:  # torch.cat of no batches
            raise ValueError("dataset is empty: no images to read features from")
        was = self.training
        self.eval()
        out = []
        try:
            dev = self.token_bank.device
            for s in range(0, n, batch_size):
                x = dataset_images(dataset, range(s, min(n, s + batch_size))).to(dev)
                _, c = self.extractor(self._images(x))
                out.append(self.condition(c) if aligned else c)
        finally:
            self.train(was)
        return torch.cat(out)

    @torch.no_grad()
    def refresh_anchors(self, dataset, *, epoch: int = 0, batch_size: int = 256, limit: int | None = None) -> dict:
        """Anchor selection (Alg. 2) on the features of the whole ``dataset`` (or its first ``limit``
        images), the extractor (and its BatchNorm) in eval mode. Paper mode fits the raw tokens; compat
        ``dis-dis`` the aligned ones (aligned per extraction batch of ``batch_size``, whose statistics
        the code's alignment uses: the code's validation batch is the training batch)."""
        if self.dyga is None:
            raise ValueError("this EncDiff has no DyGA (conditioning is not 'dyga')")
        compat = self.dyga.config.compat == "dis-dis"
        feats = self.features(dataset, batch_size=batch_size, aligned=compat, limit=limit)
        stats = self.dyga.fit(feats, epoch=epoch)          # in float32, autocast off (DyGA.fit)
        self.anchor_history.append(stats)
        return stats

    # -- representation ----------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The N scalar latent units (B, N) of the extractor (eval mode)."""
        was = self.training
        self.eval()
        try:
            return self.raw_tokens(x)[0]
        finally:
            self.train(was)

    @torch.no_grad()
    def tokens(self, x: torch.Tensor, *, aligned: bool = True) -> torch.Tensor:
        """Tokens (B, N, D) in eval mode: c~ (aligned with the hard argmax) or the raw c."""
        flag(aligned, "aligned")   # aligned="no" read as True
        was = self.training
        self.eval()
        try:
            c = self.raw_tokens(x)[1]
            return self.condition(c) if aligned else c
        finally:
            self.train(was)

    @torch.no_grad()
    def pca_codes(self, x: torch.Tensor, *, aligned: bool = True, fit_on: torch.Tensor | None = None) -> torch.Tensor:
        """PCA(1) per unit of the tokens (the paper's metric codes, spec 6.1): (B, N) float64; the PCA is
        fitted on ``fit_on`` tokens (n, N, D) when given, else on these."""
        return pca1_units(self.tokens(x, aligned=aligned), fit_on=fit_on)

    def representation_fn(self, fit_observations, *, aligned: bool = True, batch: int = 256):
        """The paper's metric representation (spec 6.1) as a ``diffrep.metrics`` representation function:
        observations (n, H, W, C) in [0, 1] -> PCA(1)-per-unit codes (n, N), the PCA fitted once on the
        tokens of ``fit_observations`` (the paper fits it on the whole dataset)."""
        positive_int(batch, "batch")
        flag(aligned, "aligned")
        dev = self.token_bank.device

        def tokens(obs):
            x = torch.from_numpy(np.ascontiguousarray(obs)).permute(0, 3, 1, 2).float() * 2 - 1
            return torch.cat([self.tokens(x[i:i + batch].to(dev), aligned=aligned).cpu()
                              for i in range(0, len(x), batch)]).flatten(1).numpy()

        from ..metrics.pca import pca1_representation

        return pca1_representation(tokens, self.config.num_units, fit_observations)

    # -- generation ------------------------------------------------------------------------------------
    def _ddim(self, tokens: torch.Tensor, x_T: torch.Tensor, steps: int | None = None, callback=None,
              generator: torch.Generator | None = None) -> torch.Tensor:
        cfg = self.config
        steps = cfg.sample_steps if steps is None else positive_int(steps, "steps")
        if steps > self.schedule.num_timesteps:  # the spacing's own check named its "num_steps", not this argument
            raise ValueError(f"steps must be at most the schedule's {self.schedule.num_timesteps} timesteps (DDIM skips "
                             f"steps, it adds none), got {steps}")
        sampler = DDIMSampler(self.schedule, eta=cfg.eta)
        if cfg.ddim_spacing == "ldm":
            pairs = ldm_ddim_pairs(self.schedule.num_timesteps, steps)
        else:
            pairs = sampler._pairs(steps)
        x = x_T
        B = x.shape[0]
        for i, (t, tp) in enumerate(pairs):
            tt = torch.full((B,), t, device=x.device, dtype=torch.long)
            out = self._eps(x, tt, tokens)
            # eta > 0 adds noise at each step: drawn as x_T is (from ``generator``, on its device) so a seeded call repeats
            noise = (torch.randn(x.shape, generator=generator, dtype=x.dtype, device=draw_device(generator)).to(x.device)
                     if cfg.eta > 0 else None)
            x = sampler._step(out, tt, torch.full_like(tt, tp), x, None, noise)  # the chain's own pair: no host read
            if callback is not None:
                callback(i, x)
        return x

    def _noise(self, n, generator):
        u = self.config.unet
        dev = self.token_bank.device
        return torch.randn((n, u.in_channels, u.image_size, u.image_size), generator=generator,
                           device=draw_device(generator)).to(dev)

    @torch.no_grad()
    def generate(self, tokens: torch.Tensor, *, generator: torch.Generator | None = None, x_T: torch.Tensor | None = None,
                 steps: int | None = None) -> torch.Tensor:
        """Images conditioned on given U-Net tokens (B, N, D) (already aligned), DDIM from x_T."""
        tokens = self._tokens(tokens)
        self._generator(generator)
        steps = None if steps is None else positive_int(steps, "steps")
        if x_T is not None:
            u = self.config.unet
            x_T = check_noise(x_T, (tokens.shape[0], u.in_channels, u.image_size, u.image_size), module_dtype(self.unet),
                              "EncDiff.generate")
        was = self.training
        self.eval()
        try:
            x_T = self._noise(tokens.shape[0], generator) if x_T is None else x_T
            return self.from_latent(self._ddim(tokens.to(x_T.device), x_T, steps, generator=generator))
        finally:
            self.train(was)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, *, generator: torch.Generator | None = None, steps: int | None = None) -> torch.Tensor:
        """Generate from x's own (aligned) tokens and fresh x_T: what the tokens carry of x."""
        return self.generate(self.tokens(x), generator=generator, steps=steps)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None, tokens: torch.Tensor | None = None,
               steps: int | None = None) -> torch.Tensor:
        """n images, each conditioned on raw tokens drawn uniformly with replacement from ``tokens``
        (M, N, D) or from the token bank of the latest training batches (spec 6.2's FID protocol)."""
        positive_int(n, "n")
        self._generator(generator)
        bank = tokens if tokens is None else self._tokens(tokens)
        if bank is None:
            m = min(int(self.bank_count), self.token_bank.shape[0])
            if m == 0:
                raise ValueError("EncDiff.sample: no tokens to condition on; pass tokens= (e.g. model.features(ds)) "
                                 "or train the model first (training fills the token bank)")
            bank = self.token_bank[:m]
        idx = torch.randint(0, bank.shape[0], (n,), generator=generator, device=draw_device(generator))
        was = self.training
        self.eval()
        try:
            cond = self.condition(bank[idx.to(bank.device)])
        finally:
            self.train(was)
        # images in [-1, 1] as every model's sample() (methods/base.py); the DDIM output overshoots them
        return self.generate(cond, generator=generator, steps=steps).clamp(-1, 1)

    @torch.no_grad()
    def interchange(self, source: torch.Tensor, target: torch.Tensor, *, units=None,
                    generator: torch.Generator | None = None, steps: int | None = None) -> torch.Tensor:
        """Latent interchange (§4.4, Figs. 3, 8): for each unit u, source's tokens with unit u taken
        from target, generated with one x_T per column (shared by every row). Returns
        (len(units), B, C, H, W)."""
        a, b = self.tokens(self._images(source, "source")), self.tokens(self._images(target, "target"))
        if a.shape != b.shape:
            raise ValueError(f"source and target must be batches of the same size, got {a.shape[0]} and {b.shape[0]}")
        units = list(range(self.config.num_units)) if units is None else indices(units, self.config.num_units, "units")
        self._generator(generator)
        x_T = self._noise(a.shape[0], generator)
        rows = []
        for u in units:
            c = a.clone()
            c[:, u] = b[:, u]
            rows.append(c)
        return self._grid(rows, x_T, steps, generator)

    @torch.no_grad()
    def interpolate(self, xa: torch.Tensor, xb: torch.Tensor, alphas=(0.0, 0.25, 0.5, 0.75, 1.0), *,
                    generator: torch.Generator | None = None, steps: int | None = None) -> torch.Tensor:
        """Linear interpolation of all units' tokens (App. D.3, Fig. 6), shared x_T: (len(alphas), B, C, H, W)."""
        a, b = self.tokens(self._images(xa, "xa")), self.tokens(self._images(xb, "xb"))
        if a.shape != b.shape:
            raise ValueError("xa and xb must be batches of the same size")
        alphas = finite_numbers(alphas, "alphas")
        x_T = self._noise(a.shape[0], self._generator(generator))
        return self._grid([(1 - al) * a + al * b for al in alphas], x_T, steps, generator)

    def _grid(self, conditions, x_T, steps, generator):
        """One generation per row of tokens from one x_T and, for eta > 0, the same per-step DDIM noise: the
        stream (``generator``, else the global CPU one) is rewound before each row, so rows differ only in
        their tokens (Figs. 3, 6, 8) and a seeded call repeats."""
        get, put = ((generator.get_state, generator.set_state) if generator is not None
                    else (torch.get_rng_state, torch.set_rng_state))
        start = get()
        rows = []
        for c in conditions:
            put(start)
            rows.append(self.generate(c, x_T=x_T, steps=steps, generator=generator))
        return torch.stack(rows)

    @torch.no_grad()
    def attention_maps(self, x: torch.Tensor, *, generator: torch.Generator | None = None, steps: int | None = None,
                       size: int | None = None) -> torch.Tensor:
        """Per-token cross-attention maps (§4.4, Figs. 4, 9, 10; spec 8): the attention probabilities
        A[head, position, token] of every cross-attention (input, middle, output blocks) at every DDIM
        step, reshaped to h x w, upsampled bicubically to ``size`` (default the image size) and averaged
        over heads, layers and steps. Returns (B, N, size, size), not normalised."""
        size = self.config.image_size if size is None else positive_int(size, "size")
        steps = None if steps is None else positive_int(steps, "steps")
        tokens = self.tokens(x)
        self._generator(generator)
        acc = torch.zeros(tokens.shape[0], tokens.shape[1], size, size, device=tokens.device)
        count = [0]

        def hook(module, args):
            h, ctx = args[0], args[1]
            B, L, _ = h.shape
            heads = module.heads
            q = module.to_q(h).reshape(B, L, heads, -1).transpose(1, 2)
            k = module.to_k(ctx).reshape(B, ctx.shape[1], heads, -1).transpose(1, 2)
            p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1)    # (B, heads, L, N)
            side = int(round(math.sqrt(L)))
            m = p.mean(1).transpose(1, 2).reshape(B, -1, side, side).float()
            acc.add_(F.interpolate(m, size=(size, size), mode="bicubic", align_corners=False))
            count[0] += 1

        handles = [blk.attn2.register_forward_pre_hook(hook) for mod in self.unet.modules()
                   if type(mod).__name__ == "SpatialTransformer" for blk in mod.blocks]
        if not handles:
            raise ValueError("this U-Net has no cross-attention layers")
        try:
            was = self.training
            self.eval()
            try:
                self._ddim(tokens, self._noise(tokens.shape[0], generator), steps, generator=generator)
            finally:
                self.train(was)
        finally:
            for hd in handles:
                hd.remove()
        return acc / max(count[0], 1)

    @torch.no_grad()
    def condition_reliance(self, x: torch.Tensor, *, t_range=(200, 800), generator: torch.Generator | None = None,
                           repeats: int = 1) -> dict:
        """Eq. 2 loss with tokens shuffled across the batch over the loss with the true tokens, t uniform
        in ``t_range`` (the validation script's condition-reliance measure; eval mode)."""
        x = self._images(x)
        if x.shape[0] < 2:
            raise ValueError("condition_reliance needs a batch of at least 2 images")
        T = self.schedule.num_timesteps
        if not (isinstance(t_range, (tuple, list)) and len(t_range) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in t_range)
                and 0 <= t_range[0] < t_range[1] <= T):
            raise ValueError(f"t_range must be two ints (lo, hi) with 0 <= lo < hi <= {T}, got {t_range!r}")
        lo, hi = t_range
        repeats = positive_int(repeats, "repeats")
        self._generator(generator)
        was = self.training
        self.eval()
        try:
            tok = self.tokens(x)
            z0 = self.to_latent(x)
            true, shuf = 0.0, 0.0
            for _ in range(repeats):
                B = x.shape[0]
                on = draw_device(generator)
                t = torch.randint(lo, hi, (B,), generator=generator, device=on).to(x.device)
                noise = torch.randn(z0.shape, generator=generator, device=on).to(x.device)
                z_t = self.schedule._q_sample(z0, t, noise)  # t drawn in [lo, hi) within [0, T)
                perm = (torch.arange(B) + 1 + int(torch.randint(0, B - 1, (1,), generator=generator, device=on))) % B
                f = (lambda e: e.abs().mean()) if self.config.loss_type == "l1" else (lambda e: e.pow(2).mean())
                true += float(f(self._eps(z_t, t, tok) - noise))
                shuf += float(f(self._eps(z_t, t, tok[perm.to(x.device)]) - noise))
        finally:
            self.train(was)
        return {"loss_true": true / repeats, "loss_shuffled": shuf / repeats, "reliance": shuf / max(true, 1e-12)}

    def load_first_stage(self, directory, *, weights: str = "model") -> None:
        """Load frozen first-stage weights from a ``VQAutoencoder.save_pretrained`` directory: its raw
        weights (``weights="model"``) or its EMA copy (``"ema"``)."""
        if self.first_stage is None:
            raise ValueError("this EncDiff runs in pixel space (first_stage=None)")
        vq = VQAutoencoder.from_pretrained(directory, weights=weights)
        mine = dataclasses.replace(self.config.first_stage, **{f: getattr(vq.config, f) for f in TRAINING_ONLY_FIELDS})
        if vq.config != mine:
            raise ValueError(f"{directory}: its VQAutoencoderConfig differs from this model's first_stage config "
                             "(other than the training-only loss and discriminator settings)")
        state = {k: v for k, v in vq.state_dict().items() if not k.startswith("discriminator.")}
        self.first_stage.load_state_dict(state)
        self.first_stage.requires_grad_(False).eval()
        frozen_parts.mark(self, "first_stage", frozen_parts.LOADED)
