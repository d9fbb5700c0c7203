"""SAMI: a score-based VAE whose decoder is a diffusion model guided by the exact score of the
encoder's Gaussian posterior (Lyo, Simoncelli & Savin, arXiv 2512.17127; docs/methods/sami.md).
The model is here; its configuration in :mod:`.sami_config`, the disks inference network in
:mod:`.sami_nets`, the posterior maths of the guidance in :mod:`.sami_guidance`.

One inference network f_phi(x) = (mu, sigma) encodes the clean image x_0 and every noisy x_t (it is
never told t). The guidance score is g_t = grad_{x_t} log q_phi(z | x_t) with z ~ q_phi(z | x_0)
(Eq. 9, docs/methods/sami.md#eq-9-and-11-guidance-score), computed through the fused op :func:`diffrep.ops.guidance.log_posterior`
and one vector-Jacobian product. Training minimises beta-SAMI (Eq. 10, docs/methods/sami.md#eq-4-10-objective, #algorithms-1-and-2)

    L = E_{z, eps, t}[lambda_t ||eps - eps_theta(x_t, t) + gamma_t g_t(x_t, z)||^2] + beta KL(q(z|x_0) || N(0, I)),

gamma_t = sqrt(1 - abar_t), which differentiates g (a gradient) again (double backward, docs/methods/sami.md#double-backward).
Generation runs the ordinary DDPM/DDIM step on the guided noise estimate
eps_hat = eps_theta - gamma_t g (Eq. 8), i.e. the guided mean mu_theta + (1 - alpha_t)/sqrt(alpha_t) g
of A.2 with its sign corrected (docs/methods/sami.md#a1-a2-guided-transition).

Errata of the paper that this module does NOT reproduce (docs/methods/sami.md#eq-9-and-11-guidance-score, #monte-carlo-placement, #a1-a2-guided-transition):
  * Algorithm 2 prints ``- sqrt(1 - abar_t) g`` in the loss; Eq. 8/10's ``+ gamma_t g`` is used.
  * A.2 lines 3-4 subtract the guidance from the mean; it is added.
  * Algorithms 1-2 write the log-determinant as log|sigma I| (half the Gaussian's); log|Sigma| =
    sum_j log sigma_j^2 is used (the op computes the correct Gaussian).
  * Eq. 9 puts the Monte Carlo average over z inside the square; Algorithm 2 (and the ELBO) keeps
    it outside. Default ``mc_placement="outside"``: S draws give S loss terms, averaged.

Open choices (config fields, each documented on :class:`SAMIConfig`): the loss reductions behind
beta, lambda_t, the timestep sampler, KL annealing, free bits, the number of Monte Carlo samples
and where their average sits, the generation z-mode, the Algorithm 1 literal step, the guidance
scale and the rigid/sloppy guidance axes.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable, Literal

import torch
from torch import nn

from .._checks import finite_float, non_negative_int, positive_int, training_step
from ..diffusion import ChainDivergedError, DDIMSampler, DDPMSampler, NoiseSchedule
from ..nn import frozen_parts
from ..nn.encoders import HalfUNet
from ..nn.gaussian import gaussian_kl
from ..nn.images import IMAGE_RANGE, batch_images, check_images, module_dtype
from ..nn.pretrained import PretrainedMixin, load_pretrained
from ..nn.unet import UNet
from ..ops import DeferredChecks
from ..ops._full_precision import autocast_off
from .sami_config import SAMIConfig
from .sami_divergence import _ChainWatch
from .sami_guidance import check_axes, expected_log_posterior, log_posterior, log_q
from .sami_nets import SAMIConvNet, SAMIConvNetConfig

__all__ = ["SAMIConvNetConfig", "SAMIConvNet", "SAMIConfig", "SAMI", "log_posterior", "gaussian_kl",
           "expected_log_posterior", "check_count"]


class SAMI(PretrainedMixin, nn.Module):
    """Denoiser eps_theta(x_t, t) + inference network f_phi(x) trained by beta-SAMI (Eq. 10).

    Surface: :meth:`loss` (Algorithm 2), :meth:`encode` (posterior means, the representation),
    :meth:`posterior`, :meth:`guidance` (g_t, Eq. 9), :meth:`guided_eps` (Eq. 8),
    :meth:`generate` (Algorithm 1 / DDIM for given latents), :meth:`conditional_sample`,
    :meth:`reconstruct`, :meth:`sample` (z ~ N(0, I)) and :meth:`sample_unconditional` (g = 0).
    Images are in [-1, 1].
    """

    config_class = SAMIConfig

    def __init__(self, config: SAMIConfig):
        super().__init__()
        cfg = self._init_config(config)
        self.denoiser = UNet(cfg.denoiser)
        self.encoder = SAMIConvNet(cfg.convnet) if cfg.encoder == "convnet" else HalfUNet(cfg.half_unet)
        self.schedule = NoiseSchedule(cfg.schedule)
        self.register_load_state_dict_pre_hook(_drop_train_step)
        if cfg.freeze_denoiser:
            self.denoiser.requires_grad_(False)
            # the pretrained-denoiser mode trains the encoder against it: refused until load_denoiser (or chosen)
            frozen_parts.track(self, "denoiser")

    # -- small helpers ------------------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def image_shape(self) -> tuple[int, int, int]:
        d = self.config.denoiser
        return (d.in_channels, d.image_size, d.image_size)

    def _device_dtype(self):
        p = next(self.encoder.parameters())
        return p.device, p.dtype

    def _check_images(self, x, name: str = "x", *, finite: bool = True, noisy: bool = False) -> torch.Tensor:
        """``x`` (or a batch's first entry) checked as a float image batch of the model's shape; clean images
        in [-1, 1] unless ``noisy`` (x_t, x_T: any real values)."""
        C, H, _ = self.image_shape
        return check_images(batch_images(x), channels=C, size=H, finite=finite, name=name, dtype=module_dtype(self),
                            value_range=None if noisy else IMAGE_RANGE)

    def _check_latents(self, z, name: str = "z", allow_samples: bool = True) -> torch.Tensor:
        if not isinstance(z, torch.Tensor) or not z.dtype.is_floating_point:
            raise TypeError(f"{name} must be a floating-point tensor, got "
                            f"{f'dtype {z.dtype}' if isinstance(z, torch.Tensor) else type(z).__name__}")
        ok = (z.dim() == 2 or (allow_samples and z.dim() == 3)) and z.shape[-1] == self.latent_dim and z.numel() > 0
        if not ok:
            shapes = "[B, d] or [S, B, d]" if allow_samples else "[B, d]"
            raise ValueError(f"{name} must have shape {shapes} with d={self.latent_dim}, got {tuple(z.shape)}")
        # in the model's dtype, as the images: a bf16 mu drew its noise in bf16, a float64 z gave float64 log q
        return z.to(module_dtype(self))

    def _check_t(self, t, x_t, who: str) -> torch.Tensor:
        """``t`` checked as integer timesteps [B] in [0, T), one per image of ``x_t``."""
        return self.schedule._check_t(t, batch=x_t.shape[0], who=f"SAMI.{who}")

    @staticmethod
    def _check_generator(generator):
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        return generator

    def _axes(self, axes) -> tuple[int, ...]:
        return check_axes(self.config.guidance_axes if axes is None else axes, self.latent_dim, "axes")

    # -- inference network ----------------------------------------------------------------------
    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu, logvar) of q_phi(z | x), each [B, d], for clean or noisy images (no t input)."""
        x = self._check_images(x, finite=False, noisy=True)
        mu, logvar = self.encoder(x)
        if self.config.sigma_min > 0:
            # soft floor sigma^2 -> sigma^2 + sigma_min^2: unlike a clamp it keeps the gradient, so an
            # encoder whose variance reached the floor can still widen it (a hard clamp traps it there)
            logvar = torch.logaddexp(logvar, torch.full_like(logvar, 2 * math.log(self.config.sigma_min)))
        return mu, logvar

    @autocast_off  # the representation in the model's own precision, not the caller's autocast (bf16 codes otherwise)
    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Posterior means mu_phi(x) [B, d]: the deterministic representation that metrics read."""
        return self.posterior(self._check_images(x))[0]  # posterior() admits non-finite x_t; codes of NaN are NaN

    def draw_latents(self, mu: torch.Tensor, logvar: torch.Tensor, num: int | None = None,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """Reparameterised z = mu + sigma * eps: [B, d] (``num`` None) or [num, B, d]."""
        mu, logvar = (self._check_latents(v, name, allow_samples=False) for name, v in (("mu", mu), ("logvar", logvar)))
        for name, v in (("mu", mu), ("logvar", logvar)):
            if not bool(torch.isfinite(v).all()):
                raise ValueError(f"{name} holds NaN or infinite values")
        if logvar.shape != mu.shape:
            raise ValueError(f"logvar must have mu's shape {tuple(mu.shape)}, got {tuple(logvar.shape)}")
        num = None if num is None else positive_int(num, "num")
        self._check_generator(generator)
        shape = mu.shape if num is None else (num, *mu.shape)
        eps = torch.randn(shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + (0.5 * logvar).exp() * eps

    # -- guidance (docs/methods/sami.md#eq-9-and-11-guidance-score) -----------------------------------------------------------------
    def guidance(self, x_t: torch.Tensor, z: torch.Tensor | None = None, *, analytic: tuple | None = None,
                 axes=None, logdet: str | None = None, create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """g = grad_{x_t} log q_phi(z | x_t) (Eq. 9) and log q [B].

        ``z`` [B, d] (one latent per example) or [S, B, d] (Monte Carlo average inside the log-density,
        Eq. 9/11); or ``analytic = (mu0, logvar0)`` for the S -> infinity limit. ``axes`` restricts
        the Mahalanobis term to those latent axes (rigid/sloppy, A.4); ``logdet`` (default
        ``config.guidance_logdet``) keeps the log-determinant over ``all`` axes (the paper) or masks
        it to the ``axes`` too. ``create_graph`` keeps the graph of g so
        that a loss on g can be differentiated w.r.t. phi (training). ``x_t`` itself is not modified:
        if it does not require grad, a detached leaf is used.
        """
        x_t = self._check_images(x_t, "x_t", finite=False, noisy=True)
        if (z is None) == (analytic is None):
            raise ValueError("give exactly one of z or analytic=(mu0, logvar0)")
        if z is not None:
            z = self._check_latents(z)
            if z.shape[-2] != x_t.shape[0]:
                raise ValueError(f"z batch {z.shape[-2]} != x_t batch {x_t.shape[0]}")
        else:
            analytic = tuple(self._check_latents(a, "analytic", allow_samples=False) for a in analytic)
        axes = self._axes(axes)
        logdet = self.config.guidance_logdet if logdet is None else logdet
        leaf = x_t if x_t.requires_grad else x_t.detach().requires_grad_(True)
        with torch.enable_grad():
            mu, logvar = self.posterior(leaf)
            lq = log_q(z, mu, logvar, axes, analytic, logdet)
            (g,) = torch.autograd.grad(lq.sum(), leaf, create_graph=create_graph)
        return g, lq

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The unconditional noise estimate eps_theta(x_t, t) (never sees z)."""
        x_t = self._check_images(x_t, "x_t", noisy=True)
        return self.denoiser(x_t, self._check_t(t, x_t, "denoise"))

    def guidance_coefficient(self, t: torch.Tensor, like: torch.Tensor, literal: bool | None = None) -> torch.Tensor:
        """k_t with eps_hat = eps_theta - k_t g: gamma_t = sqrt(1 - abar_t) (Eq. 8, A.2), or with
        ``literal`` the k_t giving Algorithm 1's printed mean shift sqrt(1 - alpha_t) g."""
        self.schedule._check_t(t)
        return self._guidance_coefficient(t, like, literal)

    def _guidance_coefficient(self, t, like, literal):  # t known in [0, T) (drawn or checked): no host read
        ab = self.schedule._gather("alphas_cumprod", t, like)
        k = (1 - ab).sqrt()
        if self.config.alg1_literal if literal is None else literal:
            beta = self.schedule._gather("betas", t, like)
            k = k * (1 - beta).sqrt() / beta.sqrt()
        return k

    @autocast_off  # eps_hat without graph, an inference quantity: in the model's own precision
    def guided_eps(self, x_t: torch.Tensor, t: torch.Tensor, z: torch.Tensor, *, axes=None,
                   scale: float = 1.0) -> torch.Tensor:
        """eps_hat(x_t, z) = eps_theta(x_t, t) - scale gamma_t g_t(x_t, z) (Eq. 8), without graph."""
        x_t = self._check_images(x_t, "x_t", noisy=True)
        self._check_t(t, x_t, "guided_eps")
        scale = finite_float(scale, "scale")
        g, _ = self.guidance(x_t, z, axes=axes)
        with torch.no_grad():
            return self.denoiser(x_t, t) - scale * self._guidance_coefficient(t, x_t, literal=False) * g  # t checked

    # -- loss (Eq. 10, Algorithm 2) -------------------------------------------------------------
    def lambda_weights(self, t: torch.Tensor) -> torch.Tensor:
        """Per-sample lambda_t [B] (``lambda_t``; docs/methods/sami.md#eq-4-10-objective)."""
        self.schedule._check_t(t)
        return self._lambda_weights(t)

    def _lambda_weights(self, t):  # t known in [0, T): no host read
        cfg = self.config
        if cfg.lambda_t == "simple":
            return torch.ones(t.shape, dtype=torch.float32, device=t.device)
        if cfg.lambda_t == "custom":
            return torch.tensor(cfg.lambda_values, dtype=torch.float32, device=t.device)[t]
        s = self.schedule
        beta, alpha, ab, ab_prev = (getattr(s, n).to(t.device)[t] for n in ("betas", "alphas", "alphas_cumprod",
                                                                             "alphas_cumprod_prev"))
        if cfg.sample_variance == "fixed_large":
            var = beta
        else:
            var = beta * (1 - ab_prev) / (1 - ab)
            var = torch.where(t == 0, beta, var)  # the t = 0 posterior variance is 0; use beta there
        return (beta**2 / (2 * var * alpha * (1 - ab))).float()

    def sample_timesteps(self, n: int, device=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """t [n] from ``t_sampling``: uniform on {0..T-1}, floor(T u) with u ~ Beta(a, 1), or the
        band mixture (uniform on [lo, hi) with probability ``t_band_frac``, else uniform)."""
        positive_int(n, "n")
        self._check_generator(generator)
        T = self.schedule.num_timesteps
        cfg = self.config
        if cfg.t_sampling == "uniform":
            return self.schedule.sample_timesteps(n, device=device, generator=generator)
        if cfg.t_sampling == "band":
            everywhere = torch.randint(0, T, (n,), device=device, generator=generator)
            in_band = torch.randint(cfg.t_band[0], cfg.t_band[1], (n,), device=device, generator=generator)
            pick = torch.rand(n, device=device, generator=generator) < cfg.t_band_frac
            return torch.where(pick, in_band, everywhere)
        # Beta(a, 1) by inversion: u = v^(1/a), v ~ U(0, 1)
        v = torch.rand(n, generator=generator, device=device, dtype=torch.float64)
        return (v.pow(1.0 / self.config.t_beta_a) * T).long().clamp_(0, T - 1)

    def kl_weight_at(self, step: int) -> float:
        """beta_k = beta r^(1 - k/K) for k < K, then beta (exponential KL annealing, docs/methods/sami.md#eq-4-10-objective)."""
        cfg = self.config
        step = non_negative_int(step, "step")
        K = cfg.kl_anneal_steps
        if K == 0 or step >= K:
            return cfg.kl_weight
        return cfg.kl_weight * cfg.kl_anneal_start ** (1.0 - step / K)

    def _reduce_pixels(self, sq: torch.Tensor) -> torch.Tensor:
        sq = sq.flatten(1)
        sq = sq.to(torch.promote_types(sq.dtype, torch.float32))  # at least float32 (bf16 autocast)
        return sq.mean(1) if self.config.pixel_reduction == "mean" else sq.sum(1)

    def loss(self, batch, *, step: int | None = None, generator: torch.Generator | None = None,
             t: torch.Tensor | None = None, noise: torch.Tensor | None = None,
             z_noise: torch.Tensor | None = None) -> dict:
        """beta-SAMI (Eq. 10) as Algorithm 2 with the corrected sign (docs/methods/sami.md#algorithms-1-and-2).

        ``batch``: images [B, C, H, W] in [-1, 1] or a tuple whose first item they are. ``t``,
        ``noise`` (eps_x, image-shaped) and ``z_noise`` (eps_z, [S, B, d]) may be given for
        reproducible evaluation; otherwise drawn (from ``generator`` when given). ``step`` is the
        0-based training step that sets the annealed KL weight (:meth:`kl_weight_at`); None (evaluation)
        uses the full ``kl_weight``. Returns ``loss``, ``loss_x``, ``kl``, ``kl_weight``, ``mse_uncond``
        (||eps - eps_theta||^2, the unguided error) and ``mse_guided`` (the guided error).
        """
        cfg = self.config
        x0 = self._check_images(batch, "batch")
        training_step(step)
        B = x0.shape[0]
        S = cfg.train_samples
        drawn = t is None  # a drawn t lies in [0, T): only a given one costs a range read (a host sync on CUDA)
        if drawn:
            t = self.sample_timesteps(B, device=x0.device, generator=generator)
        elif not isinstance(t, torch.Tensor) or t.shape != (B,):
            raise ValueError(f"t must be an integer tensor of shape [{B}]")
        if noise is None:
            noise = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        elif noise.shape != x0.shape:
            raise ValueError(f"noise must have shape {tuple(x0.shape)}, got {tuple(noise.shape)}")
        if z_noise is None:
            z_noise = torch.randn((S, B, self.latent_dim), generator=generator, device=x0.device, dtype=x0.dtype)
        elif tuple(z_noise.shape) != (S, B, self.latent_dim):
            raise ValueError(f"z_noise must have shape {(S, B, self.latent_dim)}, got {tuple(z_noise.shape)}")
        grad_on = torch.is_grad_enabled()
        self.schedule._check_t(t, in_range=drawn)
        x_t = self.schedule._q_sample(x0, t, noise).detach()
        # the denoiser does not need d/dx_t; in pretrained mode it needs no graph at all
        if cfg.freeze_denoiser:
            frozen_parts.require(self, "denoiser", UNTRAINED_DENOISER)
            with torch.no_grad():
                eps_theta = self.denoiser(x_t, t)
        else:
            eps_theta = self.denoiser(x_t, t)
        with torch.enable_grad():
            x_t_leaf = x_t.detach().requires_grad_(True)
            # one batched encoder call on [x_0; x_t] (per-sample networks: no cross-sample coupling)
            mu, logvar = self.posterior(torch.cat([x0, x_t_leaf], 0))
            # z, log q(z | x_t) and the KL in at least float32: under the trainer's bf16 autocast the encoder's
            # heads return bf16, and exp(logvar / 2), the Mahalanobis term and the KL's cancellation
            # exp(lv) - lv - 1 ran in bf16 (CUDA's autocast runs exp in float32, CPU's leaves it in bf16)
            mu, logvar = (v.to(torch.promote_types(v.dtype, torch.float32)) for v in (mu, logvar))
            mu0, lv0, mut, lvt = mu[:B], logvar[:B], mu[B:], logvar[B:]
            z = mu0 + (0.5 * lv0).exp() * z_noise
            if cfg.detach_z:
                z = z.detach()
            if cfg.mc_placement == "inside" or S == 1:
                zs = [z if S > 1 else z[0]]
            else:
                zs = list(z)
            gs = []
            for i, zi in enumerate(zs):
                lq = log_posterior(zi, mut, lvt)
                (g,) = torch.autograd.grad(lq.sum(), x_t_leaf, create_graph=grad_on, retain_graph=grad_on or i < len(zs) - 1)
                gs.append(g)
        gamma = self._guidance_coefficient(t, x0, literal=False)
        resid = noise - eps_theta
        per_example = torch.stack([self._reduce_pixels((resid + gamma * g) ** 2) for g in gs]).mean(0)
        lam = self._lambda_weights(t).to(per_example.dtype)
        loss_x = (lam * per_example).mean()
        kl_dims = gaussian_kl(mu0, lv0)
        if cfg.free_bits > 0:
            kl_dims = kl_dims.mean(0).clamp_min(cfg.free_bits)
        else:
            kl_dims = kl_dims.mean(0)
        kl = kl_dims.sum() if cfg.kl_reduction == "sum" else kl_dims.mean()
        beta = cfg.kl_weight if step is None else self.kl_weight_at(int(step))
        with torch.no_grad():
            mse_uncond = self._reduce_pixels(resid ** 2).mean()
            mse_guided = per_example.mean()
        return {"loss": loss_x + beta * kl, "loss_x": loss_x.detach(), "kl": kl.detach(),
                "kl_weight": torch.tensor(beta), "mse_uncond": mse_uncond, "mse_guided": mse_guided}

    # -- generation (Algorithm 1, docs/methods/sami.md#a1-a2-guided-transition, #algorithms-1-and-2) -------------------------------------------------
    def _sampler(self, sampler: str | None, clip: float | None = None):
        cfg = self.config
        name = sampler or cfg.sampler
        clip = cfg.clip_x0 if clip is None else clip
        clip = clip if clip > 0 else None
        if name == "ddpm":
            return DDPMSampler(self.schedule, variance=cfg.sample_variance, clip_x0=clip)
        if name == "ddim":
            return DDIMSampler(self.schedule, eta=cfg.ddim_eta, clip_x0=clip)
        raise ValueError(f"sampler must be 'ddpm' or 'ddim', got {sampler!r}")

    def _chain(self, guide: Callable | None, n: int, *, sampler: str | None, num_steps: int | None,
               generator: torch.Generator | None, x_T: torch.Tensor | None, scale: float,
               callback: Callable | None) -> torch.Tensor:
        """Reverse chain of :class:`DDPMSampler` / :class:`DDIMSampler` on the guided noise estimate
        eps_hat = eps_theta - scale k_t g(x_t) (g from ``guide``; None = unguided). A ``num_steps``
        below T with no ``sampler`` named (and ``config.sampler="ddpm"``) runs DDIM. The chain itself
        carries no graph; only ``guide`` differentiates (the encoder w.r.t. x_t)."""
        device, dtype = self._device_dtype()
        s = self._sampler(self._pick_sampler(sampler, num_steps))
        T = self.schedule.num_timesteps
        if x_T is None:
            x = torch.randn((n, *self.image_shape), generator=generator, device=device, dtype=dtype)
        else:
            x = self._check_images(x_T, "x_T", noisy=True).to(device=device, dtype=dtype)
            if x.shape[0] != n:
                raise ValueError(f"x_T has batch {x.shape[0]}, expected {n}")
        literal = self.chain_uses_literal_step(sampler, num_steps)
        if isinstance(s, DDPMSampler):
            if num_steps not in (None, T):
                raise ValueError(f"the DDPM sampler runs all {T} steps; use sampler='ddim' for num_steps={num_steps}")
            steps = None
        else:
            steps = self.config.sample_steps if num_steps is None else num_steps
        last: dict = {"step": 0}
        what = f"{'guided' if guide is not None else 'unguided'} {'DDPM' if steps is None else 'DDIM'} chain"
        ts = [t for t, _ in s._pairs(steps)]  # the chain's timesteps, known here: none is read back from tt
        # the states' divergence check: every step on the CPU (a chain stops at the step that diverged), at a
        # fixed number of points on CUDA (no per-step host synchronisation); both name the first bad step
        watch = _ChainWatch(what, ts, scale if guide is not None else None, x.device)

        def guided_eps(x_t: torch.Tensor, tt: torch.Tensor) -> torch.Tensor:
            last["step"] += 1
            watch.state(x_t)  # entering step last["step"]
            g = guide(x_t) if guide is not None else None
            eps = self.denoiser(x_t, tt)
            last.update(t=ts[last["step"] - 1], eps=eps, g=g)
            return eps if g is None else eps - scale * self._guidance_coefficient(tt, x_t, literal=literal) * g  # tt: the chain's

        # the guidance op's input checks: on CUDA read at the chain's end (and before each callback), not per step
        # (docs/kernels/bfn.md#host-reads-on-cuda); left unread when the chain diverged, which explains them
        checks = DeferredChecks()

        def step_done(i: int, x_next: torch.Tensor) -> None:
            checks.check()
            callback(i, last["t"], x_next, last["eps"], last["g"])

        try:
            with torch.no_grad(), checks.active():
                x = s.sample(guided_eps, None, num_steps=steps, generator=generator, x_T=x,
                             callback=step_done if callback is not None else None)
            checks.check()
        except ChainDivergedError:
            raise
        except Exception as exc:  # a diverged state fails later checks (log q(z | x_t)'s NaN message): name the chain
            watch.flush(cause=exc)
            checks.check_after(exc)
            raise
        watch.state(x)  # the result: the last read point
        return x.clamp(-1, 1)

    def chain_uses_literal_step(self, sampler: str | None = None, num_steps: int | None = None) -> bool:
        """Whether a reverse chain with these settings uses Algorithm 1's printed step
        (``config.alg1_literal``; the DDPM chain only), i.e. which k_t :meth:`guidance_coefficient` it applies."""
        return self.config.alg1_literal and (self._pick_sampler(sampler, num_steps) or self.config.sampler) == "ddpm"

    @autocast_off  # the guided chain (and its encoder-gradient guidance) in the model's own precision
    def generate(self, z: torch.Tensor | None = None, *, analytic: tuple | None = None, sampler: str | None = None,
                 num_steps: int | None = None, generator: torch.Generator | None = None, x_T: torch.Tensor | None = None,
                 guidance_scale: float | None = None, axes=None, logdet: str | None = None,
                 callback: Callable | None = None) -> torch.Tensor:
        """Images [B, C, H, W] from p_{theta,phi}(x_0 | z) (Algorithm 1 with ``sampler="ddpm"``).

        ``z`` [B, d]: one fixed latent per chain; [S, B, d]: the Monte Carlo guidance of Eq. 9/11;
        ``analytic=(mu0, logvar0)``: its S -> infinity limit. ``axes`` / ``logdet``: the rigid/sloppy
        guidance of :meth:`guidance`. ``callback(i, t, x, eps, g)`` is called after every step (g None
        when unguided).
        """
        if (z is None) == (analytic is None):
            raise ValueError("give exactly one of z or analytic=(mu0, logvar0)")
        if z is not None:
            z = self._check_latents(z)
            n = z.shape[-2]
        else:
            analytic = tuple(self._check_latents(a, "analytic", allow_samples=False) for a in analytic)
            n = analytic[0].shape[0]
        axes = self._axes(axes)
        # a NaN or infinite scale made the chain diverge, blamed on the model (ChainDivergedError)
        scale = self.config.guidance_scale if guidance_scale is None else finite_float(guidance_scale, "guidance_scale")
        if scale < 0:
            raise ValueError(f"guidance_scale must be >= 0, got {scale}")

        if logdet is not None and logdet not in ("all", "axes"):
            raise ValueError(f"logdet must be 'all' or 'axes', got {logdet!r}")

        def guide(x):
            return self.guidance(x, z, analytic=analytic, axes=axes, logdet=logdet)[0]

        return self._chain(guide, n, sampler=sampler, num_steps=num_steps, generator=generator, x_T=x_T,
                           scale=scale, callback=callback)

    @autocast_off  # the chain in the model's own precision, not the caller's autocast
    @torch.no_grad()
    def sample_unconditional(self, n: int, *, generator: torch.Generator | None = None, sampler: str | None = None,
                             num_steps: int | None = None, x_T: torch.Tensor | None = None,
                             callback: Callable | None = None) -> torch.Tensor:
        """n images from the denoiser alone (g = 0): the unconditional model p_theta(x_0)."""
        check_count(n, "n")
        return self._chain(None, n, sampler=sampler, num_steps=num_steps, generator=generator, x_T=x_T, scale=0.0,
                           callback=callback)

    @autocast_off  # the prior draw and the chain in the model's own precision
    def sample(self, n: int, *, generator: torch.Generator | None = None, num_steps: int | None = None,
               sampler: str | None = None, condition: Literal["prior", "none"] = "prior") -> torch.Tensor:
        """n images; ``condition="prior"``: z ~ N(0, I) then guided generation (the VAE's generative
        model); ``"none"``: :meth:`sample_unconditional`. ``num_steps`` below T without a ``sampler``
        selects DDIM."""
        check_count(n, "n")
        if condition == "none":
            return self.sample_unconditional(n, generator=generator, sampler=sampler, num_steps=num_steps)
        if condition != "prior":
            raise ValueError(f"condition must be 'prior' or 'none', got {condition!r}")
        device, dtype = self._device_dtype()
        z = torch.randn((n, self.latent_dim), generator=generator, device=device, dtype=dtype)
        return self.generate(z, sampler=sampler, num_steps=num_steps, generator=generator)

    def _pick_sampler(self, sampler: str | None, num_steps: int | None) -> str | None:
        # a step count below T with no sampler named means DDIM (the DDPM chain runs all T steps)
        if sampler is None and self.config.sampler == "ddpm" and num_steps not in (None, self.schedule.num_timesteps):
            return "ddim"
        return sampler

    @autocast_off  # the posterior, its latent draws and the chain in the model's own precision
    def conditional_sample(self, x0: torch.Tensor, num_samples: int = 1, *,
                           z_mode: Literal["fixed", "posterior_mean", "mc_average", "analytic"] | None = None,
                           mc_samples: int | None = None, generator: torch.Generator | None = None, **kwargs) -> torch.Tensor:
        """``num_samples`` images per guide image, [B * num_samples, C, H, W] (guide-major order).

        ``z_mode`` (default ``config.z_mode``): ``fixed`` draws z ~ q(z | x_0) once per chain
        (Algorithm 1); ``posterior_mean`` uses z = mu_0; ``mc_average`` averages ``mc_samples`` draws
        inside log q; ``analytic`` the S -> infinity limit. Other keywords go to :meth:`generate`.
        """
        x0 = self._check_images(x0, "x0")
        check_count(num_samples, "num_samples")
        mode = z_mode or self.config.z_mode
        with torch.no_grad():
            mu0, lv0 = self.posterior(x0)
        mu0, lv0 = mu0.repeat_interleave(num_samples, 0), lv0.repeat_interleave(num_samples, 0)
        if mode == "fixed":
            return self.generate(self.draw_latents(mu0, lv0, generator=generator), generator=generator, **kwargs)
        if mode == "posterior_mean":
            return self.generate(mu0, generator=generator, **kwargs)
        if mode == "mc_average":
            S = self.config.mc_samples if mc_samples is None else mc_samples
            check_count(S, "mc_samples")
            return self.generate(self.draw_latents(mu0, lv0, S, generator=generator), generator=generator, **kwargs)
        if mode == "analytic":
            return self.generate(analytic=(mu0, lv0), generator=generator, **kwargs)
        raise ValueError(f"z_mode must be fixed, posterior_mean, mc_average or analytic, got {mode!r}")

    @autocast_off  # as conditional_sample
    def reconstruct(self, x: torch.Tensor, *, generator: torch.Generator | None = None, **kwargs) -> torch.Tensor:
        """Generation guided by the posterior mean of each image (z = mu_0): one sample per input."""
        x = self._check_images(x)
        return self.conditional_sample(x, 1, z_mode="posterior_mean", generator=generator, **kwargs)

    # -- pretrained-denoiser mode (docs/methods/sami.md#pretrained-denoiser-mode) -------------------------------------------------------
    def load_denoiser(self, source, *, freeze: bool | None = None,
                      weights: Literal["auto", "model", "ema"] = "auto") -> "SAMI":
        """Copy a trained eps-prediction U-Net into ``self.denoiser`` and (by default, per
        ``config.freeze_denoiser``) freeze it. ``source``: a :class:`UNet`, a module with a ``denoiser``
        or ``unet`` U-Net attribute, or a ``save_pretrained`` directory of any of them. From a
        directory, ``weights`` picks the file: ``auto`` takes the EMA weights when the directory has
        them (a trainer's ``final``; they are what it samples with), else the raw ones."""
        if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
            from ..nn.pretrained import EMA_WEIGHTS_NAME

            if weights not in ("auto", "model", "ema"):
                raise ValueError(f"weights must be 'auto', 'model' or 'ema', got {weights!r}")
            if weights == "auto":
                weights = "ema" if (Path(os.fsdecode(source)) / EMA_WEIGHTS_NAME).is_file() else "model"
            source = load_pretrained(source, weights=weights)
        unet = source if isinstance(source, UNet) else getattr(source, "denoiser", getattr(source, "unet", None))
        if not isinstance(unet, UNet):
            raise TypeError(f"load_denoiser: {type(source).__name__} is not a UNet and holds no 'denoiser'/'unet' UNet")
        if unet.config != self.config.denoiser:
            raise ValueError(f"load_denoiser: U-Net config differs from config.denoiser:\n  given {unet.config}\n"
                             f"  expected {self.config.denoiser}")
        self.denoiser.load_state_dict(unet.state_dict())
        if self.config.freeze_denoiser:
            frozen_parts.mark(self, "denoiser", frozen_parts.LOADED)
        if self.config.freeze_denoiser if freeze is None else freeze:
            self.denoiser.requires_grad_(False)
        return self

    def use_untrained_frozen_parts(self) -> None:
        """Train the encoder against the randomly initialised frozen denoiser on purpose (pretrained-denoiser mode;
        tests, smoke runs): saved with the weights. Nothing to mark when the denoiser trains (freeze_denoiser off)."""
        frozen_parts.choose_untrained(self)


# the pretrained-denoiser mode's refusal of a denoiser never loaded (docs/architecture.md#frozen-parts): the encoder
# would learn to guide a random network, without a word
UNTRAINED_DENOISER = (
    "SAMI (freeze_denoiser): the frozen denoiser still holds its random initialisation; load a trained one with "
    "model.load_denoiser(DIR) (the sami/ recipes: --pretrained_denoiser DIR), or call "
    "model.use_untrained_frozen_parts() to run on an untrained one on purpose (tests, smoke runs)")


def check_count(n, name: str) -> None:
    """Raise ValueError unless ``n`` is a positive int (not a bool); :func:`diffrep._checks.positive_int`."""
    positive_int(n, name)


def _drop_train_step(module, state_dict, prefix, *args) -> None:
    # weights saved before the trainer passed ``step`` hold the old KL-annealing counter; it is ignored
    state_dict.pop(prefix + "train_step", None)
