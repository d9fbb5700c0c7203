"""The beta-conditioned VAE of the denoising multi-beta VAE (Uppal et al. 2025, Sec. 3.1, Eq. 2-4, Algorithm 1;
docs/methods/multibeta.md#phase-1-the-multi-beta-vae).

One encoder f_phi(x, beta) and one decoder g_theta(z, beta) serve every beta in [0, B]:

    p_theta(x | z_beta; beta) = N(x | g_theta(z_beta, beta), s_beta^2 I_D)          (Eq. 2)
    q_phi(z_beta | x; beta)   = N(z_beta | f_phi(x, beta), sigma_beta^2 I_d)         (Eq. 3)
    L_beta = E_x[(B - beta) E_q log p_theta(x | z_beta) - beta KL(q || N(0, I))]    (Eq. 4, maximised)

trained on beta drawn per example (Algorithm 1). Per example, with z = f + sigma_beta eps,

    nll = ||x - g(z, beta)||^2 / (2 s_beta^2) + (D / 2) log(2 pi s_beta^2)
    kl  = (||f||^2 + d sigma_beta^2 - d log sigma_beta^2 - d) / 2

and ``loss`` = mean over the batch of (B - beta) nll + beta kl (``weighting="eq4"``), i.e. -L.

sigma_beta and s_beta depend on beta only (Sec. 3.1) and live on the grid of Algorithm 1,
beta_i = i B / N, i = 0..N (N + 1 values including 0 and B):

- ``sigma_table="monotone"`` (default): sigma_i^2 = sigma2_min + sum_{k<=i} softplus(eta_k) + i sigma2_min_step,
  increasing by construction, each step at least ``sigma2_min_step`` (so the schedule stays strictly increasing
  in float32) (the diffusion of Sec. 4.2 needs sigma_{t|t-tau}^2 = sigma_t^2 - sigma_{t-tau}^2 > 0);
  ``"monotone_pinned"``: the same, rescaled so that sigma_B^2 = ``sigma2_init_top`` (1) exactly, the optimum of
  Prop. 3.2 (in the cumulative table the top entry otherwise follows the lower increments, which the
  reconstruction pulls down, and only the beta = B examples pull it back);
  ``"free"``: a free table of log sigma_i^2, floored at log sigma2_min (monotonicity then checked by
  :meth:`MultiBetaVAE.sigma_is_increasing` before phase 2);
- log s_i^2: a free table, floored at ``log_s2_min`` (``learn_s=False`` keeps it at ``log_s2_init``).

beta off the grid (``off_grid``): ``"linear"`` interpolates log sigma^2 and log s^2 linearly between the two
neighbouring grid values (exact on the grid; keeps the monotone table monotone), ``"nearest"`` takes the
nearest grid value, ``"error"`` refuses. The default beta prior (``beta_prior="grid"``) draws beta uniformly
from the grid, the grid the sampler uses; ``"uniform"`` draws beta ~ U[0, B] as Algorithm 1 prints it.

Degenerate ends (Props. 3.1-3.2): at beta = 0 the KL has weight 0, so sigma_0 -> 0 and, once
reconstructions are exact, s_0 -> 0 and the loss is unbounded below; the floors sigma2_min and
log_s2_min stop both (``floors()`` reports where they bind). At beta = B the reconstruction has weight 0:
g(., B) and s_B get no gradient (they stay at what the shared network and the initial table give);
the beta = B term still trains f(x, B) -> 0 and sigma_B -> 1, which the prior of Algorithm 2 needs, so
the endpoint stays in training (``train_top=False`` drops it and draws beta only below B).

``posterior_scale`` (docs/methods/multibeta.md#departures-from-the-paper): ``"isotropic"`` (default) is Eq. 3,
one sigma_beta per beta. ``"per_unit"`` gives every latent unit k its own sigma_{beta,k} (q = N(f, diag(sigma_{beta,
1..d}^2)), a departure from Eq. 3): each unit has its own column of the same table (same grid, initialisation,
floors, ``sigma_table`` rule, pinning and ``off_grid`` rule), the KL becomes
(||f||^2 + sum_k (sigma_{beta,k}^2 - log sigma_{beta,k}^2 - 1)) / 2 and z = f + sigma_beta (.) eps elementwise. With
the isotropic sigma, Eq. 4 with the N(0, I) prior is invariant to rotations of the latent space (no beta prefers
axis-aligned units); unequal per-unit sigmas break that symmetry. Shapes: the isotropic tables and ``sigma(beta)``
are [N + 1] and [B]; per_unit adds the latent's shape: [N + 1, *latent_shape] and [B, *latent_shape] ([B, d] for a
vector latent). :meth:`MultiBetaVAE.sigma_latent` returns either, shaped to broadcast against latents [B, ...].
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import device as check_device
from .._checks import positive_int, training_step
from ..config import Config, ConfigError, Ge, Gt, Lt
from ..nn.encoders import CONV_KERNELS_BEFORE_2026_12_07, DLIB_CONV_KERNELS, check_conv_kernels
from ..nn.images import IMAGE_RANGE, batch_images, check_images, module_dtype
from ..nn.layers import check_groups, check_levels
from ..nn.pretrained import PretrainedMixin
from ..ops.random import check_generator
from .multibeta_nets import BetaConvDecoder, BetaConvEncoder, BetaResDecoder, BetaResEncoder

__all__ = ["MultiBetaVAEConfig", "MultiBetaVAE", "beta_grid"]


def beta_grid(num_steps: int, beta_max: float = 1.0, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """The Algorithm 1 / 2 grid beta_i = i B / N, i = 0..N (N + 1 values; footnote 3: tau = T / N)."""
    num_steps = positive_int(num_steps, "num_steps")
    if isinstance(beta_max, bool) or not isinstance(beta_max, numbers.Real) or not (math.isfinite(beta_max)
                                                                                   and beta_max > 0):
        raise ValueError(f"beta_max must be a finite number > 0, got {beta_max!r}")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):  # an int grid rounds the betas away
        raise TypeError(f"beta_grid: dtype must be a floating torch dtype, got {dtype!r}")
    if device is not None:
        device = check_device(device)
    return torch.arange(num_steps + 1, device=device, dtype=torch.float64).mul(beta_max / num_steps).to(dtype)


@dataclasses.dataclass
class MultiBetaVAEConfig(Config):
    """Every choice the paper leaves open is a field (docs/methods/multibeta.md#choices-where-the-paper-is-silent)."""

    image_size: int = 64  # height = width of the input images
    in_channels: Annotated[int, Ge(1)] = 3  # input image channels
    arch: Literal["conv", "resnet"] = "conv"  # conv: Locatello et al. (2019) nets (Table 2); resnet: ADM blocks
    latent: Literal["vector", "spatial"] = "vector"  # spatial needs arch="resnet" (Table 3's latent U-Net)
    latent_dim: Annotated[int, Ge(1)] = 10  # d of a vector latent
    latent_channels: Annotated[int, Ge(1)] = 4  # channels of a spatial latent
    conditioning: Literal["film", "concat"] = "film"  # how beta enters the conv nets (resnet: FiLM in every ResBlock)
    hidden: Annotated[int, Ge(1)] = 256  # conv nets' FC width
    conv_kernels: tuple[int, ...] = DLIB_CONV_KERNELS  # conv encoder: each stride-2 conv's kernel (disentanglement_lib conv_encoder: 4, 4, 2, 2; models saved before 2026-12-07 had 4, 4, 4, 4 and load with it)
    model_channels: Annotated[int, Ge(1)] = 64  # resnet
    channel_mult: tuple[Annotated[int, Ge(1)], ...] = (1, 2, 2, 2)  # resnet: width multiplier of each resolution level
    num_res_blocks: Annotated[int, Ge(1)] = 1  # resnet: residual blocks per level
    num_groups: Annotated[int, Ge(1)] = 32  # resnet: GroupNorm groups
    beta_embed_dim: Annotated[int, Ge(2)] = 128  # width of the sinusoidal embedding of beta (read like a diffusion time)
    beta_embed_scale: Annotated[float, Gt(0)] = 1000.0  # the nets read beta x this (as a diffusion time)
    beta_max: Annotated[float, Gt(0)] = 1.0  # B (= T)
    num_steps: Annotated[int, Ge(1)] = 1000  # N: the grid has N + 1 values
    beta_prior: Literal["grid", "uniform"] = "grid"  # training betas: uniform over the N + 1 grid values, or U[0, B] as Alg. 1 prints
    train_top: bool = True  # draw beta = B too (trains f(x, B) -> 0, sigma_B -> 1)
    off_grid: Literal["linear", "nearest", "error"] = "linear"  # beta off the grid: interpolate log sigma^2 and log s^2 linearly, take the nearest value, or refuse
    sigma_table: Literal["monotone", "monotone_pinned", "free"] = "monotone"  # pinned: sigma_B^2 = sigma2_init_top
    sigma2_min: Annotated[float, Gt(0), Lt(1)] = 1e-4  # floor of sigma_beta^2 (Prop. 3.1 guard)
    sigma2_init_top: Annotated[float, Gt(0)] = 1.0  # initial sigma_i^2 = sigma2_min + (i / N) x this
    sigma2_min_step: Annotated[float, Ge(0)] = 1e-6  # monotone table: sigma_i^2 - sigma_{i-1}^2 >= this (i >= 1)
    learn_s: bool = True  # learn the decoder scale table log s_beta^2 (Eq. 2); False keeps it at log_s2_init
    log_s2_init: float = 0.0  # initial log s_beta^2 of every grid value
    log_s2_min: float = -9.0  # floor of log s_beta^2 (guard of the beta = 0 end)
    weighting: Literal["eq4", "beta_vae"] = "eq4"  # beta_vae: nll + beta / (B - beta) kl (Sec. 3.1's mapping)
    max_kl_weight: Annotated[float, Gt(0)] = 1e3  # cap of beta / (B - beta) with weighting="beta_vae"
    posterior_scale: Literal["isotropic", "per_unit"] = "isotropic"  # Eq. 3's sigma_beta^2 I, or diag(sigma_{beta,k}^2) per latent unit (a departure: breaks the rotation symmetry)

    fields_added = {"conv_kernels": CONV_KERNELS_BEFORE_2026_12_07}

    def validate(self) -> None:
        check_conv_kernels(self.conv_kernels)
        if self.arch == "conv":
            if self.image_size not in (32, 64):
                raise ConfigError("image_size", f"the conv nets read 32x32 or 64x64 images, got {self.image_size}")
            if self.latent == "spatial":
                raise ConfigError("latent", "a spatial latent needs arch='resnet'")
        else:
            check_levels(self.image_size, self.channel_mult)
            check_groups([self.model_channels * m for m in self.channel_mult] + [self.model_channels], self.num_groups)
        if self.sigma2_min_step + 1e-6 >= self.sigma2_init_top / self.num_steps:
            raise ConfigError("sigma2_min_step", f"must be below the initial step sigma2_init_top / num_steps - 1e-6 = "
                              f"{self.sigma2_init_top / self.num_steps - 1e-6:.3g}, got {self.sigma2_min_step}")
        if self.sigma_table == "monotone_pinned" and self.sigma2_init_top <= self.sigma2_min:
            raise ConfigError("sigma2_init_top", f"the pinned table needs sigma_B^2 = sigma2_init_top above sigma2_min="
                              f"{self.sigma2_min}, got {self.sigma2_init_top}")
        if self.log_s2_init < self.log_s2_min:
            raise ConfigError("log_s2_init", f"{self.log_s2_init} is below the floor log_s2_min={self.log_s2_min}")
        if self.weighting == "beta_vae" and self.train_top:
            raise ConfigError("train_top", "weighting='beta_vae' has an infinite KL weight at beta = B; set train_top=False")

    @property
    def latent_shape(self) -> tuple[int, ...]:
        if self.latent == "vector":
            return (self.latent_dim,)
        side = self.image_size // 2 ** (len(self.channel_mult) - 1)
        return (self.latent_channels, side, side)

    @property
    def tau(self) -> float:
        return self.beta_max / self.num_steps

    @property
    def sigma_shape(self) -> tuple[int, ...]:
        """The shape of sigma_beta at one beta: () isotropic (Eq. 3), the latent's shape per_unit."""
        return () if self.posterior_scale == "isotropic" else self.latent_shape


def _at_least_f32(t: torch.Tensor) -> torch.Tensor:
    """t in float32 or wider (bf16 activations under autocast are summed in float32; float64 stays float64)."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def _check_latents(z, shape: tuple[int, ...], who: str, *, finite: bool = True) -> torch.Tensor:
    """``z`` as a batch [B, *shape] (B >= 1) of finite floating latents, the codes the VAE decodes and the
    denoiser denoises; ``finite=False`` (the library's own encoder output) skips the finiteness read, a host
    sync on CUDA."""
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"{who}: z must be a tensor [B, {', '.join(map(str, shape))}], got {type(z).__name__}")
    if not z.dtype.is_floating_point:  # an integer code is a mistake (indices, labels), not a code to round
        raise TypeError(f"{who}: z must be a floating-point tensor, got dtype {z.dtype}")
    if z.dim() != 1 + len(shape) or tuple(z.shape[1:]) != shape or z.shape[0] < 1:
        raise ValueError(f"{who}: z must have shape [B, {', '.join(map(str, shape))}], got {tuple(z.shape)}")
    if finite and not bool(torch.isfinite(z).all()):  # NaN codes decoded/denoised to NaN images silently
        raise ValueError(f"{who}: z holds NaN or infinite values")
    return z


def _inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    return y + torch.log(-torch.expm1(-y))


class MultiBetaVAE(PretrainedMixin, nn.Module):
    """The multi-beta VAE: ``encode(x, beta)``, ``sigma(beta)``, ``decode(z, beta)``, ``loss`` (Eq. 4)."""

    config_class = MultiBetaVAEConfig

    def __init__(self, config: MultiBetaVAEConfig):
        super().__init__()
        cfg = self._init_config(config)
        if cfg.arch == "conv":
            args = (cfg.in_channels, cfg.image_size, cfg.latent_dim, cfg.hidden, cfg.beta_embed_dim, cfg.conditioning,
                    cfg.beta_embed_scale)
            self.encoder, self.decoder = BetaConvEncoder(*args, cfg.conv_kernels), BetaConvDecoder(*args)
        else:
            args = (cfg.in_channels, cfg.image_size, cfg.model_channels, cfg.channel_mult, cfg.num_res_blocks, cfg.num_groups,
                    cfg.beta_embed_dim, cfg.beta_embed_scale, cfg.latent, cfg.latent_dim, cfg.latent_channels)
            self.encoder, self.decoder = BetaResEncoder(*args), BetaResDecoder(*args)
        n = cfg.num_steps
        frac = torch.arange(n + 1, dtype=torch.float64) / n
        init_s2 = cfg.sigma2_min + frac * cfg.sigma2_init_top  # sigma_i^2 at initialisation
        if cfg.sigma_table in ("monotone", "monotone_pinned"):
            inc = torch.diff(init_s2, prepend=torch.tensor([cfg.sigma2_min], dtype=torch.float64))
            inc[0] = 1e-6  # sigma_0^2 starts just above its floor ...
            inc[1] -= 1e-6  # ... and the others where init_s2 puts them
            inc[1:] -= cfg.sigma2_min_step
            self.sigma_eta = nn.Parameter(self._per_unit(_inverse_softplus(inc).float()))
        else:
            init_s2[0] = cfg.sigma2_min + 1e-6
            self.log_sigma2_table = nn.Parameter(self._per_unit(torch.log(init_s2).float()))
        log_s2 = torch.full((n + 1,), float(cfg.log_s2_init))
        if cfg.learn_s:
            self.log_s2_table = nn.Parameter(log_s2)
        else:
            self.register_buffer("log_s2_table", log_s2)

    def _per_unit(self, column: torch.Tensor) -> torch.Tensor:
        """A table column [N + 1] as the table's parameter: itself (isotropic), or one copy per latent unit
        [N + 1, d] (per_unit; every unit starts where the isotropic table starts)."""
        if self.config.posterior_scale == "isotropic":
            return column
        d = math.prod(self.config.latent_shape)
        return column.unsqueeze(1).repeat(1, d).contiguous()

    # -- the beta-only tables ---------------------------------------------------------------
    def grid(self) -> torch.Tensor:
        """beta_i = i B / N, i = 0..N."""
        return beta_grid(self.config.num_steps, self.config.beta_max, device=self.log_s2_table.device)

    def log_sigma2_grid(self) -> torch.Tensor:
        """log sigma_i^2 on the grid [N + 1] (per_unit: [N + 1, *latent_shape], each unit its own column with the
        same rules), floored at log sigma2_min."""
        cfg = self.config
        if cfg.sigma_table in ("monotone", "monotone_pinned"):
            inc = F.softplus(self.sigma_eta)
            if cfg.sigma2_min_step:
                step = torch.full_like(inc, cfg.sigma2_min_step)
                step[0] = 0.0
                inc = inc + step
            cum = torch.cumsum(inc, 0)
            if cfg.sigma_table == "monotone_pinned":  # the same shape, rescaled so that sigma_B^2 = sigma2_init_top
                cum = cum * ((cfg.sigma2_init_top - cfg.sigma2_min) / cum[-1])
            out = torch.log(cfg.sigma2_min + cum)
        else:
            out = self.log_sigma2_table.clamp_min(math.log(cfg.sigma2_min))
        return out.reshape((cfg.num_steps + 1,) + cfg.sigma_shape)

    def log_s2_grid(self) -> torch.Tensor:
        """log s_i^2 on the grid [N + 1] (floored at log_s2_min)."""
        return self.log_s2_table.clamp_min(self.config.log_s2_min)

    def sigma_grid(self) -> torch.Tensor:
        """sigma_i on the grid [N + 1] (per_unit: [N + 1, *latent_shape]): the latent std, and the noise schedule of
        the latent diffusion (beta == t)."""
        return torch.exp(0.5 * self.log_sigma2_grid())

    def sigma_is_increasing(self) -> bool:
        """Whether sigma_i strictly increases along the grid, for every unit (needed by phase 2: sigma_{t|t-tau}^2 > 0)."""
        return bool((torch.diff(self.log_sigma2_grid().detach(), dim=0) > 0).all())

    def floors(self) -> dict:
        """How many grid entries sit at a floor: ``sigma2`` (sigma_i^2 at sigma2_min; per_unit counts every (grid value,
        unit) entry) and ``log_s2``."""
        cfg = self.config
        with torch.no_grad():
            s2 = self.log_sigma2_grid().exp()
            counts = torch.stack([(s2 <= cfg.sigma2_min * (1 + 1e-4)).sum(), (self.log_s2_table <= cfg.log_s2_min).sum()])
            sigma2, log_s2 = counts.tolist()  # one host read for both counts (the loss logs them every step)
            return {"sigma2": sigma2, "log_s2": log_s2}

    def _at(self, table: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """A grid table [N + 1, ...] read at beta [B] (``off_grid`` rule): [B, ...]; per unit for a per-unit table."""
        cfg = self.config
        pos = beta.to(torch.float64) * (cfg.num_steps / cfg.beta_max)
        if cfg.off_grid == "error":
            near = pos.round()
            if bool(((pos - near).abs() > 1e-4).any()):
                raise ValueError(f"beta must lie on the grid i * {cfg.tau:g} (off_grid='error'), got "
                                 f"{beta[(pos - near).abs() > 1e-4][:4].tolist()}")
            return table[near.long()]
        if cfg.off_grid == "nearest":
            return table[pos.round().long()]
        i0 = pos.floor().clamp(0, cfg.num_steps - 1)
        frac = (pos - i0).to(table.dtype).reshape((-1,) + (1,) * (table.dim() - 1))
        i0 = i0.long()
        return (1 - frac) * table[i0] + frac * table[i0 + 1]

    def log_sigma2(self, beta) -> torch.Tensor:
        return self._at(self.log_sigma2_grid(), self._beta(beta, None, "beta"))

    def sigma(self, beta) -> torch.Tensor:
        """sigma_beta [B] (Eq. 3's latent std) at beta [B] (or a number); ``posterior_scale="per_unit"``: one per
        latent unit, [B, *latent_shape] ([B, d] for a vector latent)."""
        return torch.exp(0.5 * self.log_sigma2(beta))

    def sigma_latent(self, beta) -> torch.Tensor:
        """sigma_beta shaped to broadcast against latents [B, *latent_shape]: [B, 1, ..] isotropic, [B, *latent_shape]
        per_unit (z = f + sigma_latent(beta) * eps is a draw of q(z_beta | x), Eq. 3)."""
        s = self.sigma(beta)
        return s.reshape(s.shape[:1] + (1,) * (len(self.config.latent_shape) - len(self.config.sigma_shape)) + s.shape[1:])

    def log_s2(self, beta) -> torch.Tensor:
        return self._at(self.log_s2_grid(), self._beta(beta, None, "beta"))

    def s(self, beta) -> torch.Tensor:
        """s_beta [B] (Eq. 2's decoder std)."""
        return torch.exp(0.5 * self.log_s2(beta))

    # -- validation --------------------------------------------------------------------------
    def _beta(self, beta, n: int | None, name: str = "beta", *, drawn: bool = False) -> torch.Tensor:
        """beta as a float tensor [n] on the model's device, checked to lie in [0, B] with one host read (a
        host-device sync on CUDA); ``drawn``: beta came from :meth:`sample_beta`, in range by construction, and
        skips that read."""
        device, dtype = self.log_s2_table.device, self.log_s2_table.dtype
        if isinstance(beta, bool) or not isinstance(beta, (numbers.Real, torch.Tensor)):
            raise TypeError(f"{name} must be a number or a tensor of shape [B], got {type(beta).__name__}")
        if isinstance(beta, torch.Tensor) and (beta.is_complex() or beta.dtype == torch.bool):  # cast dropped the imaginary part
            raise TypeError(f"{name} must hold real numbers, got a {beta.dtype} tensor")
        b = torch.as_tensor(beta, dtype=dtype, device=device) if not isinstance(beta, torch.Tensor) \
            else beta.to(device=device, dtype=dtype)
        if b.dim() == 0:
            b = b.expand(n if n is not None else 1)
        if b.dim() != 1 or (n is not None and b.shape[0] != n):
            raise ValueError(f"{name} must be a number or a tensor of shape [{n if n is not None else 'B'}], "
                             f"got shape {tuple(b.shape)}")
        if not drawn and bool(~torch.isfinite(b).all() | (b < 0).any() | (b > self.config.beta_max * (1 + 1e-6)).any()):
            bmax = self.config.beta_max
            if not bool(torch.isfinite(b).all()):  # min / max read "got values in [nan, nan]" for one NaN among others
                raise ValueError(f"{name} must be finite numbers in [0, B={bmax:g}], got NaN or infinite values")
            got = f"{b[0].item():.4g}" if (not isinstance(beta, torch.Tensor) or beta.numel() == 1) else \
                f"values in [{b.min().item():.4g}, {b.max().item():.4g}]"  # a number read "got values in [2, 2]"
            raise ValueError(f"{name} must lie in [0, B={bmax:g}], got {got}")
        return b.clamp(0, self.config.beta_max)

    def _check_x(self, x, who: str) -> torch.Tensor:
        c = self.config
        # NaN images were encoded to NaN codes silently (MultiBeta.encode and both losses already refused them)
        return check_images(x, channels=c.in_channels, size=c.image_size, who=who, dtype=module_dtype(self),
                            value_range=IMAGE_RANGE)

    def _check_z(self, z, who: str) -> torch.Tensor:
        # in the model's dtype, as the images: a bf16 or float64 code failed deep inside F.linear
        return _check_latents(z, self.config.latent_shape, who).to(module_dtype(self))

    # -- the networks ------------------------------------------------------------------------
    def encode(self, x: torch.Tensor, beta) -> torch.Tensor:
        """f_phi(x, beta): the encoder mean, [B, d] (spatial latents: [B, c, s, s]) (Eq. 3)."""
        x = self._check_x(x, "MultiBetaVAE.encode")
        return self.encoder(x, self._beta(beta, x.shape[0]))

    def _encode_checked_images(self, x: torch.Tensor, beta) -> torch.Tensor:
        """:meth:`encode` of images the caller has already checked (shape, finite): phase 2's frozen-encoder pass on
        the 2B pairs (:meth:`MultiBeta.loss` checks the batch once), where a second finiteness scan cost ~5 % of the
        encoder forward. Its betas are the denoiser's grid times i tau, in [0, B] by construction: their range is not
        read back either (a host sync per step on CUDA)."""
        return self.encoder(x.to(module_dtype(self)), self._beta(beta, x.shape[0], drawn=True))

    def decode(self, z: torch.Tensor, beta) -> torch.Tensor:
        """g_theta(z, beta): the decoder mean, images [B, C, S, S] (Eq. 2)."""
        z = self._check_z(z, "MultiBetaVAE.decode")
        return self.decoder(z, self._beta(beta, z.shape[0]))

    def sample_beta(self, n: int, *, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """beta [n] from the beta prior of Algorithm 1 (``beta_prior``; ``train_top=False`` excludes B)."""
        cfg = self.config
        positive_int(n, "n")
        check_generator(generator)
        device = device or self.log_s2_table.device
        if cfg.beta_prior == "grid":
            top = cfg.num_steps + (1 if cfg.train_top else 0)
            i = torch.randint(0, top, (n,), device=device, generator=generator)
            return i.to(torch.float64).mul(cfg.beta_max / cfg.num_steps).to(self.log_s2_table.dtype)
        u = torch.rand(n, device=device, generator=generator, dtype=self.log_s2_table.dtype)
        return u * cfg.beta_max if cfg.train_top else u * (cfg.beta_max * (1 - 1.0 / (2 * cfg.num_steps)))

    def weights(self, beta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction weight, KL weight) per example: (B - beta, beta) for Eq. 4; (1, min(beta / (B - beta),
        max_kl_weight)) for ``weighting="beta_vae"``."""
        if not isinstance(beta, torch.Tensor):
            raise TypeError(f"beta must be a tensor [B], got {type(beta).__name__}")
        return self._weights(self._beta(beta, None))

    def _weights(self, beta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # beta checked (or drawn)
        cfg = self.config
        if cfg.weighting == "eq4":
            return cfg.beta_max - beta, beta
        gap = (cfg.beta_max - beta).clamp_min(0)
        kl_w = torch.where(gap > 0, beta / gap.clamp_min(1e-30), torch.full_like(beta, cfg.max_kl_weight))
        return torch.ones_like(beta), kl_w.clamp_max(cfg.max_kl_weight)

    def loss(self, batch, *, step: int | None = None, generator: torch.Generator | None = None,
             beta: torch.Tensor | None = None, noise: torch.Tensor | None = None) -> dict:
        """-L of Eq. 4 on a batch, beta drawn per example (Algorithm 1) unless given as a tensor [B].

        ``noise`` fixes eps of z = f + sigma_beta eps (a tensor of the latent's shape). ``step`` is unused (no
        schedule). Returns ``loss`` (mean over the batch of (B - beta) nll + beta kl), ``recon`` (mean nll,
        unweighted), ``kl`` (mean kl, unweighted) and ``mse`` (mean squared error per pixel), all but ``loss``
        detached.
        """
        cfg = self.config
        x = check_images(batch_images(batch), channels=cfg.in_channels, size=cfg.image_size, who="MultiBetaVAE.loss",
                         name="batch", dtype=module_dtype(self), value_range=IMAGE_RANGE)
        training_step(step)
        check_generator(generator)  # sample_beta checks it only when beta is drawn
        n = x.shape[0]
        drawn = beta is None
        if drawn:
            beta = self.sample_beta(n, device=x.device, generator=generator)
        elif not isinstance(beta, torch.Tensor):
            raise TypeError(f"MultiBetaVAE.loss: beta must be a tensor of shape [{n}], got {type(beta).__name__}")
        beta = self._beta(beta, n, "MultiBetaVAE.loss: beta", drawn=drawn)
        f = self.encoder(x, beta)
        if noise is None:
            noise = torch.randn(f.shape, device=f.device, dtype=f.dtype, generator=generator)
        elif not isinstance(noise, torch.Tensor) or noise.shape != f.shape:
            raise ValueError(f"MultiBetaVAE.loss: noise must have shape {tuple(f.shape)}, got {tuple(getattr(noise, 'shape', ()))}")
        log_var = self._at(self.log_sigma2_grid(), beta)  # [n] isotropic, [n, *latent_shape] per_unit
        bshape = (n,) + (1,) * (f.dim() - log_var.dim())
        z = f + torch.exp(0.5 * log_var).reshape(bshape + log_var.shape[1:]).to(f.dtype) * noise
        rec = self.decoder(z, beta)
        log_s2 = self._at(self.log_s2_grid(), beta)
        D = x[0].numel()
        d = f[0].numel()
        sq = _at_least_f32(x - rec).pow(2).flatten(1).sum(1)
        nll = 0.5 * sq * torch.exp(-log_s2) + 0.5 * D * (math.log(2 * math.pi) + log_s2)
        if log_var.dim() == 1:  # isotropic (Eq. 3): d equal terms
            kl_var = d * (log_var.exp() - log_var - 1)
        else:  # per_unit: one term per unit
            kl_var = (log_var.exp() - log_var - 1).flatten(1).sum(1)
        kl = 0.5 * (_at_least_f32(f).pow(2).flatten(1).sum(1) + kl_var)
        w_rec, w_kl = self._weights(beta)
        loss = (w_rec * nll + w_kl * kl).mean()
        at_floor = self.floors()
        return {"loss": loss, "recon": nll.mean().detach(), "kl": kl.mean().detach(), "mse": (sq / D).mean().detach(),
                "sigma2_floor": at_floor["sigma2"], "log_s2_floor": at_floor["log_s2"]}
