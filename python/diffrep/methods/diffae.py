"""DiffAE: Diffusion Autoencoders (Preechakul, Chatthee, Wizadwongsa, Suwajanakorn, CVPR 2022).

Specification and every choice where the paper is silent: docs/methods/diffae.md. Components:

1. semantic encoder z_sem = Enc(x0) (DiffAE Sec. 3.2): a :class:`~diffrep.nn.encoders.HalfUNet`
   (the U-Net's down and middle blocks, global average pooling); its mean head is z_sem
   (deterministic; the variance head is not used);
2. conditional DDIM decoder eps_theta(x_t, t, z_sem) (Sec. 3.1): a :class:`~diffrep.nn.unet.UNet`
   with ``latent_cond="diffae"``, AdaGN(h, t, z_sem) = z_s (t_s GN(h) + t_b) (DiffAE Eq. 7) with the
   time scale-shift first and z_s = 1 + Affine(z_sem) (an affine map, so the same family as the
   paper's z_s = Affine(z_sem); the "1 +" only sets the initialisation, as the authors' code does);
3. training objective L_simple = E_t,eps ||eps_theta(x_t, t, z_sem) - eps||^2 (DiffAE Eq. 9; ``loss``
   "l2", or "l1");
4. stochastic encoding x_T by deterministic DDIM inversion (DiffAE Eq. 8;
   :meth:`diffrep.diffusion.DDIMSampler.invert`), reconstruction = DDIM decoding from (z_sem, x_T);
5. latent DDIM for unconditional sampling (Sec. 3.3): an MLP with skip connections over the
   standardised z_sem (``LatentDDIMConfig``), trained with an L1 noise loss (DiffAE Eq. 10) after the
   autoencoder (``stage="latent"``, once :meth:`DiffAE.fit_latent_stats` has stored the mean and
   standard deviation of z_sem over the training set);
6. attribute manipulation (Sec. 5.2): a linear classifier on standardised z_sem (:meth:`DiffAE.fit_attribute`)
   and z' = z + s w / |w| (:meth:`DiffAE.manipulate`); interpolation (:meth:`DiffAE.interpolate`:
   linear in z_sem, slerp in x_T, Sec. 5.1), latent swap and traversal verbs.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import finite_float, finite_numbers, index, non_negative_float, positive_float, positive_int, training_step
from ..config import Config, ConfigError, Ge, Lt
from ..diffusion import DDIMSampler, NoiseSchedule, NoiseScheduleConfig
from ..nn.derived import DerivedValue
from ..nn.encoders import HalfUNet, HalfUNetConfig
from ..nn.images import batch_images, module_dtype
from ..nn.layers import timestep_embedding
from ..nn.pretrained import PretrainedMixin
from ..nn.unet import UNet, UNetConfig
from ..ops._full_precision import autocast_off
from .diffusion_autoencoder import CodeConditionedAutoencoder, check_encoder_decoder

__all__ = ["LatentDDIMConfig", "LatentDDIMNet", "DiffAEConfig", "DiffAE", "diffae_unet"]


def diffae_unet(latent_dim: int, **fields) -> UNetConfig:
    """The conditional decoder's U-Net config: ``fields`` plus z_sem conditioning by DiffAE Eq. 7."""
    positive_int(latent_dim, "latent_dim")  # 0 built a U-Net with no z conditioning at all
    return UNetConfig(**{**fields, "latent_dim": latent_dim, "latent_cond": "diffae", "context_dim": 0,
                         "use_scale_shift_norm": True})


def _wide(x: torch.Tensor) -> torch.Tensor:
    """Half-precision errors are reduced in float32; float32/float64 stay as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _as_vector(values, like: torch.Tensor, name: str, *, floating: bool = False) -> torch.Tensor:
    """``values`` (a tensor, array or list of numbers) flattened, in ``like``'s dtype and on its device.
    ``floating``: integer and boolean values are refused, as the codes' check refuses them (a direction
    in code space; the labels of fit_attribute may be integers)."""
    if values is None or isinstance(values, (str, bytes)):
        raise TypeError(f"{name} must be a tensor of numbers, got {type(values).__name__}")
    try:
        v = torch.as_tensor(values, device=like.device)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be a tensor of numbers, got {type(values).__name__}") from None
    if floating and not v.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {v.dtype}")
    return v.to(like.dtype).reshape(-1)


def slerp(a: torch.Tensor, b: torch.Tensor, alpha: float) -> torch.Tensor:
    """Deprecated: ``diffrep.viz.slerp(a, b, [alpha], batched=True)[0]`` (per-example spherical
    interpolation, DiffAE Sec. 5.1); this name goes in the next release."""
    import warnings

    from ..viz import slerp as viz_slerp

    warnings.warn("diffrep.methods.diffae.slerp(a, b, alpha) moved to diffrep.viz.slerp(a, b, [alpha], batched=True)[0]; "
                  "the old name goes in the next release", DeprecationWarning, stacklevel=2)
    return viz_slerp(a, b, torch.tensor([float(alpha)], dtype=torch.float64), batched=True)[0]


@dataclasses.dataclass
class LatentDDIMConfig(Config):
    """The latent DDIM's network (DiffAE Sec. 3.3, App. A): ``num_layers`` linear layers of width
    ``width``, each hidden layer Linear -> scale by (1 + Affine(time embedding)) -> LayerNorm -> SiLU,
    the input z_t concatenated to the input of every layer after the first (skip connections); the
    last layer linear. 10 layers of width 2048 (the authors' CelebA and FFHQ templates; 20 layers for Horse
    and Bedroom). Schedule: the authors' constant beta = 0.008 over T = 1000
    (docs/methods/diffae.md#latent-ddim)."""

    num_layers: Annotated[int, Ge(2)] = 10
    width: Annotated[int, Ge(1)] = 2048
    time_channels: Annotated[int, Ge(2)] = 64  # width of the sinusoidal time embedding (even)
    dropout: Annotated[float, Ge(0), Lt(1)] = 0.0  # dropout probability in each hidden layer
    schedule: NoiseScheduleConfig = dataclasses.field(  # noise schedule of the latent DDIM (constant beta = 0.008, T = 1000)
        default_factory=lambda: NoiseScheduleConfig(kind="linear", num_timesteps=1000, beta_start=0.008, beta_end=0.008))
    loss: Literal["l1", "l2"] = "l1"  # error of the latent eps prediction (DiffAE Sec. 3.3, Eq. 10: L1)
    sample_steps: Annotated[int, Ge(1)] = 100  # DDIM steps when sampling z_sem

    def validate(self) -> None:
        if self.time_channels % 2:
            raise ConfigError("time_channels", f"must be even (sinusoidal embedding), got {self.time_channels}")
        if not 1 <= self.sample_steps <= self.schedule.num_timesteps:
            raise ConfigError("sample_steps", f"must be in [1, {self.schedule.num_timesteps}], got {self.sample_steps}")


class _MLPLayer(nn.Module):
    def __init__(self, cin: int, cout: int, cond: int, dropout: float):
        super().__init__()
        self.linear = nn.Linear(cin, cout)
        self.cond = nn.Sequential(nn.SiLU(), nn.Linear(cond, cout))
        self.norm = nn.LayerNorm(cout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h, emb):
        h = self.linear(h) * (1 + self.cond(emb))
        return self.dropout(F.silu(self.norm(h)))


class LatentDDIMNet(nn.Module):
    """eps_omega(z_t, t) for the latent DDIM: [B, D] x [B] -> [B, D] (see :class:`LatentDDIMConfig`)."""

    def __init__(self, cfg: LatentDDIMConfig, dim: int):
        super().__init__()
        self.cfg, self.dim = cfg, dim
        self.time_embed = nn.Sequential(nn.Linear(cfg.time_channels, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.layers = nn.ModuleList([_MLPLayer(dim, cfg.width, dim, cfg.dropout)])
        for _ in range(cfg.num_layers - 2):
            self.layers.append(_MLPLayer(cfg.width + dim, cfg.width, dim, cfg.dropout))
        self.out = nn.Linear(cfg.width + dim, dim)

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.dim or t.shape != (z.shape[0],):
            raise ValueError(f"LatentDDIMNet: z must be [B, {self.dim}] and t [B], got {tuple(z.shape)}, {tuple(t.shape)}")
        emb = self.time_embed(timestep_embedding(t, self.cfg.time_channels).to(z.dtype))
        h = self.layers[0](z, emb)
        for layer in self.layers[1:]:
            h = layer(torch.cat([h, z], 1), emb)
        return self.out(torch.cat([h, z], 1))


@dataclasses.dataclass
class DiffAEConfig(Config):
    """Every open choice of the paper is a field (docs/methods/diffae.md). ``unet`` is built with
    :func:`diffae_unet`; ``encoder.latent_dim`` must equal ``latent_dim`` (512 in the paper)."""

    latent_dim: Annotated[int, Ge(1)] = 32
    encoder: HalfUNetConfig = dataclasses.field(default_factory=lambda: HalfUNetConfig(  # the semantic encoder Enc(x0) -> z_sem (its latent_dim must equal latent_dim)
        image_size=16, in_channels=3, model_channels=16, channel_mult=(1, 2), num_res_blocks=1, latent_dim=32,
        act="silu", bias=True, num_groups=8, variance_head="logvar"))
    unet: UNetConfig = dataclasses.field(default_factory=lambda: diffae_unet(
        32, image_size=16, model_channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(),
        num_groups=8))
    schedule: NoiseScheduleConfig = dataclasses.field(default_factory=lambda: NoiseScheduleConfig(kind="linear", num_timesteps=1000))  # noise schedule of the conditional DDIM decoder
    loss: Literal["l2", "l1"] = "l2"  # error of the decoder's eps prediction (DiffAE Eq. 9, L_simple: L2)
    sample_steps: Annotated[int, Ge(1)] = 100  # DDIM steps of decoding and of the inversion
    stage: Literal["autoencoder", "latent"] = "autoencoder"  # train the autoencoder, or the latent DDIM on frozen z_sem (DiffAE Sec. 3.3)
    latent: LatentDDIMConfig = dataclasses.field(default_factory=lambda: LatentDDIMConfig(num_layers=4, width=128))  # the latent DDIM over z_sem used for unconditional sampling (DiffAE Sec. 3.3)
    clip_x0: bool = False  # clip the x0 prediction to [-1, 1] during decoding (off: exact inversion)

    def validate(self) -> None:
        if self.encoder.latent_dim != self.latent_dim:
            raise ConfigError("encoder.latent_dim", f"must equal latent_dim={self.latent_dim}, got {self.encoder.latent_dim} "
                              "(z_sem's size: set latent_dim, encoder.latent_dim and unet.latent_dim together)")
        check_encoder_decoder(self.encoder, self.unet, self.latent_dim, "diffae", "diffae_unet")
        if not 1 <= self.sample_steps <= self.schedule.num_timesteps:
            raise ConfigError("sample_steps", f"must be in [1, {self.schedule.num_timesteps}], got {self.sample_steps}")


class DiffAE(CodeConditionedAutoencoder, PretrainedMixin, nn.Module):
    """Diffusion autoencoder: ``encode(x)`` = z_sem, ``encode_stochastic(x)`` = x_T,
    ``decode(z_sem, x_T)``, ``reconstruct(x)``, ``sample(n)`` (latent DDIM then decoder)."""

    config_class = DiffAEConfig
    _who, _code_name = "DiffAE", "z_sem"

    def __init__(self, config: DiffAEConfig):
        super().__init__()
        cfg = self._init_config(config)
        self.encoder = HalfUNet(cfg.encoder)
        self.unet = UNet(cfg.unet)
        self.schedule = NoiseSchedule(cfg.schedule)
        self.latent_net = LatentDDIMNet(cfg.latent, cfg.latent_dim)
        self.latent_schedule = NoiseSchedule(cfg.latent.schedule)
        # standardisation of z_sem (Sec. 3.3) and the attribute directions (Sec. 5.2); saved with the weights
        self.register_buffer("z_mean", torch.zeros(cfg.latent_dim))
        self.register_buffer("z_std", torch.ones(cfg.latent_dim))
        self.register_buffer("z_stats_fitted", torch.zeros((), dtype=torch.bool))
        # z_stats_fitted's host copy: the latent stage's loss tests it at every step, a host read each on CUDA
        # (nn.derived)
        self._z_stats_fitted_host = DerivedValue()
        self._stats_are_fitted()
        self._apply_stage()

    def _apply_stage(self) -> None:
        """Stage "autoencoder" trains the encoder and decoder; "latent" only the latent DDIM."""
        latent = self.config.stage == "latent"
        for m in (self.encoder, self.unet):
            m.requires_grad_(not latent)
        self.latent_net.requires_grad_(latent)

    def set_stage(self, stage: str) -> None:
        """Switch between ``"autoencoder"`` (DiffAE Eq. 9) and ``"latent"`` (Eq. 10, autoencoder frozen)."""
        if stage not in ("autoencoder", "latent"):
            raise ValueError(f"stage must be 'autoencoder' or 'latent', got {stage!r}")
        self.config.stage = stage
        self._apply_stage()

    # -- representation ----------------------------------------------------------------------
    @autocast_off  # the representation in the model's own precision: under bf16 autocast the codes came out bf16,
    # and decode's chain, which runs in the code's dtype, ran them into NaN
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """z_sem = Enc(x0) [B, latent_dim] (the mean head of the semantic encoder; DiffAE Sec. 3.2)."""
        return self._encode(self._images(x, "encode"))

    def _encode(self, x):  # the losses' encoder pass on their checked images, in the trainer's precision (autocast lowers it)
        return self.encoder(x)[0]

    def eps(self, x_t: torch.Tensor, t: torch.Tensor, z_sem: torch.Tensor) -> torch.Tensor:
        """eps_theta(x_t, t, z_sem) (t integer timesteps [B] in [0, T))."""
        return self._checked_eps(x_t, t, z_sem)

    def _sampler(self, clip: bool | None = None) -> DDIMSampler:  # DiffAE's decoding may clip x0 (config.clip_x0)
        clip = self.config.clip_x0 if clip is None else clip
        return DDIMSampler(self.schedule, clip_x0=1.0 if clip else None)

    @autocast_off  # DDIM inversion in the model's own precision, not the caller's autocast
    def encode_stochastic(self, x: torch.Tensor, z_sem: torch.Tensor | None = None, *,
                          num_steps: int | None = None) -> torch.Tensor:
        """x_T by deterministic DDIM inversion conditioned on z_sem (DiffAE Eq. 8)."""
        return self._invert(x, z_sem, num_steps)

    @autocast_off  # the DDIM chain in the model's own precision, not the caller's autocast
    def decode(self, z_sem: torch.Tensor, x_T: torch.Tensor | None = None, *, num_steps: int | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """DDIM decoding p(x_0 | x_T, z_sem) (eta = 0); x_T ~ N(0, I) from ``generator`` when None."""
        return self._decode(z_sem, x_T, num_steps, generator)

    @autocast_off  # the encoder and the chains in the model's own precision
    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, *, num_steps: int | None = None, stochastic: bool = True,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """Decode (z_sem, x_T) with x_T from DDIM inversion (``stochastic=True``, DiffAE Sec. 3.2) or
        x_T ~ N(0, I) (``False``: what z_sem alone keeps, Sec. 5.1)."""
        return self._reconstruct(self._images(x, "reconstruct"), num_steps, stochastic, generator)

    # -- objectives --------------------------------------------------------------------------
    def loss(self, batch, *, step: int | None = None, generator: torch.Generator | None = None) -> dict:
        """``stage="autoencoder"``: L_simple of DiffAE Eq. 9 (encoder and decoder trained jointly);
        ``stage="latent"``: the latent DDIM's noise loss on standardised z_sem (DiffAE Eq. 10, the
        autoencoder frozen). ``step`` is unused (no schedule in the objective)."""
        x0 = self._images(batch_images(batch), "loss", "batch")
        training_step(step)
        if self.config.stage == "latent":
            self._need_stats("latent_loss")
            return self._latent_loss(x0, generator)  # x0 checked above
        t = self.schedule.sample_timesteps(x0.shape[0], device=x0.device, generator=generator)
        noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        pred = self._eps(self.schedule._q_sample(x0, t, noise), t, self._encode(x0))  # t drawn, x0 checked
        err = _wide(pred - noise)
        per = (err.pow(2) if self.config.loss == "l2" else err.abs()).flatten(1).mean(1)
        return {"loss": per.mean(), "diffusion": per.mean().detach()}

    def normalize_z(self, z: torch.Tensor) -> torch.Tensor:
        return self._normalize_z(self._check_z(z, name="z"))

    def _normalize_z(self, z):  # z checked, or the encoder's own output in latent_loss: no finiteness read
        return (z.to(module_dtype(self)) - self.z_mean) / self.z_std

    def denormalize_z(self, z: torch.Tensor) -> torch.Tensor:
        return self._check_z(z, name="z") * self.z_std + self.z_mean

    @torch.no_grad()
    def fit_latent_stats(self, z_sem: torch.Tensor) -> None:
        """Store the per-dimension mean and standard deviation of z_sem over the training set
        (``z_sem`` [N, latent_dim], N >= 2); the latent DDIM models the standardised codes."""
        z = self._check_z(z_sem)
        if z.shape[0] < 2:
            raise ValueError("fit_latent_stats needs at least 2 codes")
        self.z_mean.copy_(z.mean(0))
        self.z_std.copy_(z.std(0).clamp_min(1e-8))
        self.z_stats_fitted.fill_(True)
        self._z_stats_fitted_host.put((self.z_stats_fitted,), True)   # known: no read at the next step

    def _stats_are_fitted(self) -> bool:
        """``z_stats_fitted`` through its host copy, read again only after the buffer changed (a load, a move, a
        write: :class:`diffrep.nn.derived.DerivedValue`)."""
        return self._z_stats_fitted_host.get((self.z_stats_fitted,), lambda: bool(self.z_stats_fitted))

    def _need_stats(self, who: str) -> None:
        if not self._stats_are_fitted():
            raise ValueError(f"DiffAE.{who}: the z_sem statistics are not fitted; call fit_latent_stats(encode(train images)) "
                             "after training the autoencoder (from the command line: train stage 2, which fits them: "
                             "diffrep train RECIPE --config RUN/config.yaml --model.stage latent --autoencoder_path RUN/final)")

    def latent_loss(self, x0: torch.Tensor, *, generator: torch.Generator | None = None) -> dict:
        """DiffAE Eq. 10: E ||eps_omega(z_t, t) - eps||_1 with z_t noised from the standardised z_sem."""
        self._need_stats("latent_loss")
        return self._latent_loss(self._images(x0, "latent_loss", "x0"), generator)

    def _latent_loss(self, x0, generator):  # x0 checked, the statistics fitted
        with torch.no_grad():
            z = self._normalize_z(self._encode(x0))
        s = self.latent_schedule
        t = s.sample_timesteps(z.shape[0], device=z.device, generator=generator)
        noise = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
        err = _wide(self.latent_net(s._q_sample(z, t, noise), t) - noise)  # t drawn above
        per = (err.abs() if self.config.latent.loss == "l1" else err.pow(2)).mean(1)
        return {"loss": per.mean(), "latent": per.mean().detach()}

    # -- generation and manipulation ----------------------------------------------------------
    @autocast_off  # as reconstruct
    @torch.no_grad()
    def sample_latent(self, n: int, *, generator: torch.Generator | None = None, num_steps: int | None = None) -> torch.Tensor:
        """n codes z_sem from the latent DDIM (de-standardised; in the dtype and on the device of the statistics)."""
        positive_int(n, "n")
        self._need_stats("sample_latent")
        num_steps = None if num_steps is None else positive_int(num_steps, "num_steps")
        z = DDIMSampler(self.latent_schedule).sample(self.latent_net, (n, self.config.latent_dim), generator=generator,
                                                     num_steps=self.config.latent.sample_steps if num_steps is None else num_steps,
                                                     device=self.z_mean.device, dtype=self.z_mean.dtype)
        return self.denormalize_z(z)

    @autocast_off  # as reconstruct
    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None, num_steps: int | None = None) -> torch.Tensor:
        """Unconditional samples in [-1, 1]: z_sem from the latent DDIM, then x_T ~ N(0, I) decoded (Sec. 3.3)."""
        z = self.sample_latent(n, generator=generator)  # num_steps is the decoder's, the latent DDIM takes its own
        return self.decode(z, generator=generator, num_steps=num_steps).clamp(-1, 1)

    @autocast_off  # as reconstruct
    @torch.no_grad()
    def interpolate(self, x_a: torch.Tensor, x_b: torch.Tensor, alphas, *, num_steps: int | None = None) -> torch.Tensor:
        """Images along the path from x_a to x_b (DiffAE Sec. 5.1): z_sem linearly, x_T by slerp.
        Returns [len(alphas), B, C, H, W]."""
        from ..viz import slerp

        x_a, x_b = self._images(x_a, "interpolate", "x_a"), self._images(x_b, "interpolate", "x_b")
        if x_b.shape[0] != x_a.shape[0]:
            raise ValueError(f"DiffAE.interpolate: x_a and x_b must have the same batch size, got {x_a.shape[0]} and {x_b.shape[0]}")
        try:
            weights = torch.as_tensor(alphas, dtype=torch.float64).reshape(-1)
        except (TypeError, ValueError, RuntimeError):  # None, a str: no weights
            weights = torch.empty(0, dtype=torch.float64)
        if not weights.numel() or not bool(torch.isfinite(weights).all()):
            raise ValueError(f"interpolate: alphas must be a non-empty sequence of finite weights, got {alphas!r}")
        za, zb = self.encode(x_a), self.encode(x_b)
        ta, tb = self.encode_stochastic(x_a, za, num_steps=num_steps), self.encode_stochastic(x_b, zb, num_steps=num_steps)
        x_t = slerp(ta, tb, weights, batched=True)  # each example's x_T on its own great circle
        out = [self.decode(za + float(a) * (zb - za), x, num_steps=num_steps) for a, x in zip(weights.tolist(), x_t)]
        return torch.stack(out).clamp(-1, 1)

    @autocast_off  # as reconstruct
    @torch.no_grad()
    def swap(self, x: torch.Tensor, source: torch.Tensor, dims, *, num_steps: int | None = None) -> torch.Tensor:
        """Latent swap: z_sem of ``x`` with the dimensions ``dims`` taken from ``source``'s z_sem,
        decoded with x's own x_T."""
        return self._swap(x, source, dims, num_steps)

    @autocast_off  # as reconstruct
    @torch.no_grad()
    def traverse(self, x: torch.Tensor, dim: int, values, *, num_steps: int | None = None) -> torch.Tensor:
        """Latent traversal: standardised z_sem[dim] set to each of ``values`` (needs the z statistics),
        decoded with x's x_T. Returns [len(values), B, C, H, W]."""
        self._need_stats("traverse")
        dim, values = index(dim, self.config.latent_dim, "dim"), finite_numbers(values, "values")
        z = self.encode(x)
        xT = self.encode_stochastic(x, z, num_steps=num_steps)
        zn = self.normalize_z(z)
        out = []
        for v in values:
            zv = zn.clone()
            zv[:, int(dim)] = finite_float(v, "value")
            out.append(self.decode(self.denormalize_z(zv), xT, num_steps=num_steps))
        return torch.stack(out).clamp(-1, 1)

    @autocast_off  # the logistic fit's z @ w in float32: under bf16 autocast the direction moved by ~1
    @torch.no_grad()
    def fit_attribute(self, z_sem: torch.Tensor, labels: torch.Tensor, *, steps: int = 500, lr: float = 0.1,
                      weight_decay: float = 0.0) -> torch.Tensor:
        """A linear (logistic) classifier on standardised z_sem for a binary attribute (DiffAE Sec. 5.2);
        returns its weight w [latent_dim] (the manipulation direction). Full-batch Adam, ``steps`` steps."""
        self._need_stats("fit_attribute")
        z = self.normalize_z(self._check_z(z_sem)).detach()
        y = _as_vector(labels, z, "labels")
        if y.shape[0] != z.shape[0] or not bool(((y == 0) | (y == 1)).all()):
            raise ValueError(f"labels must be N binary (0/1) values, one per code: got {y.shape[0]} labels with values "
                             f"{sorted(set(y.unique().tolist()))[:5]} for {z.shape[0]} codes")
        if bool((y == y[0]).all()):  # the fit then only grows the bias: a direction that separates nothing
            raise ValueError(f"labels are all {int(y[0])}: the classifier needs codes of both classes (0 and 1)")
        positive_int(steps, "steps")
        w = torch.zeros(z.shape[1], dtype=z.dtype, device=z.device, requires_grad=True)
        b = torch.zeros((), dtype=z.dtype, device=z.device, requires_grad=True)
        opt = torch.optim.Adam([w, b], lr=positive_float(lr, 'lr'),
                               weight_decay=non_negative_float(weight_decay, "weight_decay"))
        with torch.enable_grad():
            for _ in range(steps):
                opt.zero_grad()
                F.binary_cross_entropy_with_logits(z @ w + b, y).backward()
                opt.step()
        return w.detach()

    @autocast_off  # as reconstruct
    @torch.no_grad()
    def manipulate(self, x: torch.Tensor, direction: torch.Tensor, scale: float, *, num_steps: int | None = None) -> torch.Tensor:
        """Attribute manipulation (DiffAE Sec. 5.2): standardised z + scale * w / |w|, decoded with x's x_T."""
        self._need_stats("manipulate")
        z = self.encode(x)
        w = _as_vector(direction, z, "direction", floating=True)
        if w.shape[0] != z.shape[1] or not math.isfinite(float(w.norm())) or not float(w.norm()) > 0:
            raise ValueError(f"direction must be a finite non-zero vector of length {z.shape[1]}")
        xT = self.encode_stochastic(x, z, num_steps=num_steps)
        z2 = self.denormalize_z(self.normalize_z(z) + finite_float(scale, "scale") * w / w.norm())
        return self.decode(z2, xT, num_steps=num_steps).clamp(-1, 1)

