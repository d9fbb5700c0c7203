"""ParamReL / SepDiff: self-encoding parameter diffusion on Bayesian Flow Networks.

Wu, Fan, Li, Zhao, Chen, Cao, "SepDiff: Self-Encoding Parameter Diffusion for Learning Latent
Semantics" (KDD'25) and its arXiv version "ParamReL" (2405.15268); specification and corrections in
docs/methods/paramrel.md (its sections are named below). Time is Graves' forward time
(docs/methods/paramrel.md#time-convention): t = 0 is the prior, the papers' step s = T..1 is diffrep's i = n - s + 1, and the papers'
"time 100/200/300 of T = 1000" is t = 0.9/0.8/0.7.

Components (SepDiff §3.1):
1. self-encoder q_phi(z_t | theta_t, t), a diagonal Gaussian read from the BFN parameters (#eq-15-16-self-encoder):
   ``encoder="vanilla"`` (no t), ``"progressive"`` (AdaGN time embedding, default) or ``"hyper"``
   (SepDiff Eq. 15-16, progressive + the decoder's up-sampling features, read at the current step
   in training, evaluation, sampling and reverse-sampling alike);
2. conditional decoder psi(theta_t, z_t): a noise-prediction U-Net (ParamReL Eq. 10; BFN's "-" sign,
   the printed "+" is a sign slip, ``bfn.eps_sign=+1`` reproduces it) conditioned on z by the nested
   AdaGN of ParamReL Eq. 12 (``cond="adagn_eq12"``), InfoDiffusion's single-norm variant
   (``"infodiff"``) or cross-attention (SepDiff Eq. 1, ``"xattn"``: at every resolution level, down and up,
   and the bottleneck; ``xattn_levels="bottleneck"`` keeps only the bottleneck's). Correction: with one z token the
   softmax is identically 1 and cross-attention degenerates to a theta-independent bias, so z is split
   into ``xattn_tokens`` tokens with learned position embeddings (#eq-10-12-conditional-decoder-and-adagn);
3. sampling (SepDiff Eq. 2 / Alg. 1, ParamReL Eq. 4) and reverse-sampling with the exact inverse
   Bayesian update (SepDiff Eq. 3, ParamReL Eq. 5; #eq-2-5-sampling-and-reverse-sampling), run in float64;
4. the MI-regularised objective (SepDiff Eq. 4-6, 10-11, 13; ParamReL Eq. 3, 6-7), with the
   corrected signs of #eq-4-7-objective. Per example b (t_b ~ U(0, 1), theta_b ~ p_F(. | x_b; t_b), z_b ~ q):

       l_b = L^inf-integrand(x_b; theta_b, z_b, t_b) + (1 - gamma_MI) KL(q(z | theta_b, t_b) || N(0, I))
       L   = mean_b l_b + (gamma_MI + lambda_agg - 1) MMD^2({z_b}, {z~_b ~ N(0, I)})

   The printed ELBO writes -sum{KL_R - KL_z}, which flips the z-rate's sign; diffrep subtracts both.
   Eq. 6's 1/T averages the z-terms over steps (the only form with a continuous-time limit). The
   papers call the weights gamma and lambda; diffrep names them gamma_MI and lambda_agg. SepDiff's
   (gamma, lambda) = (0.9, 0.01) gives a negative MMD weight (-0.09): a literal implementation would
   maximise the MMD, so it is an error unless ``allow_negative_mmd_weight=True``. The aggregate KL is
   replaced by the MMD of InfoVAE (kernel exp(-||x - y||^2 / h), h = |z|^2, biased V-statistic, on the
   sampled z), through the fused kernel :func:`diffrep.ops.mmd.mmd2`.

Variants: ParamReL_c (``bfn.data`` = "continuous" with a delta output or "discretised" with a
categorical output over bins) and ParamReL_d (``bfn.data = "discrete"``, Bernoulli output for K = 2).

Choices where the papers are silent (config fields): the networks read t x ``time_scale`` (1000);
``encoder_logvar_init`` (the log-variance head's initial bias, 0); ``mmd_time_strata`` (1); the hyper
encoder's readings (``hyper_mixing``; paramrel_nets); ``xattn_tokens`` (4); how the
encoder reduces its last feature map (``encoder_net.pool``: "mean", DiffAE's global average pool, or
"flatten", a linear head over the whole map, which keeps where things are).

A caveat measured while building this module: the self-encoder reads theta_t, which the decoder reads
too, so z carries no information the decoder lacks; in short runs its mean collapses to a constant
(see :mod:`diffrep.recipes.paramrel`). The CPU recipes therefore use ``encoder_input="x"``.

Compatibility options (off by default; they reproduce the public code amasawa/ICLR25, #paper-versus-public-code; the
presets "iclr25" and "notebook" of :func:`diffrep.recipes.paramrel.paramrel_compat` switch them
on together):
``encoder_input="x"`` (its continuous encoder reads the clean data), ``reduction="paramrel_code"``
(BFN loss averaged over batch and data dimensions, KL summed over batch and latent dimensions),
``reduction="notebook"`` (the discrete notebooks: the BFN loss averaged over B x D x K one-hot entries),
``decoder_latent="mean"`` (its deterministic ``feats``), ``mmd_on="mean"``, ``z_source="prior_fixed"``
(one prior z for all sampling steps), ``legacy_skip_last_update=True`` and ``final="sample"`` (its
sampler), ``bfn.sqrt_beta1=sqrt(3)`` (its notebook schedule), ``sender_noise=False`` (SepDiff Eq. 2).
"""

from __future__ import annotations

import dataclasses
import numbers
from typing import Sequence

import torch
from torch import nn

from .._checks import finite_float, finite_numbers, positive_int, training_step
from ..bfn import losses as bfn_losses
from ..bfn import sampler as bfn_sampler
from ..bfn.config import make_flow, make_output
from ..bfn.flows import FlowState
from ..bfn.model import bfn_loss, data_images, draw_time, model_dtypes
from ..nn.pretrained import PretrainedMixin
from ..nn.unet import UNet
from ..nn.gaussian import gaussian_kl
from ..nn.images import IMAGE_RANGE, check_images
from ..ops._full_precision import autocast_off
from .paramrel_config import Cond, ParamReLConfig
from .paramrel_nets import HyperFeatureHead, ParamRelEncoder, decoder_unet

__all__ = ["ParamReLConfig", "ParamReL", "decoder_unet", "ReverseSample", "Cond"]


@dataclasses.dataclass
class ReverseSample:
    """Result of reverse-sampling: ``z`` [n + 1, B, L] with z[i] encoded at t = i/n (z[n] at t = 1,
    the papers' z_0), and ``subcode``, the flow state at t = 0 (mu_T for continuous data, rho = 1)."""

    z: torch.Tensor
    subcode: FlowState

    @property
    def num_steps(self) -> int:
        return self.z.shape[0] - 1


class ParamReL(PretrainedMixin, nn.Module):
    """ParamReL / SepDiff (see the module docstring). ``encode(x)`` is the representation metrics read."""

    config_class = ParamReLConfig

    def __init__(self, config: ParamReLConfig):
        super().__init__()
        cfg = self._init_config(config)
        self.flow, self.output = make_flow(cfg.bfn), make_output(cfg.bfn)
        self.encoder = ParamRelEncoder(cfg.encoder_net, cfg.latent_dim, time_conditioned=cfg.encoder != "vanilla")
        with torch.no_grad():
            self.encoder.head.bias[cfg.latent_dim:].fill_(cfg.encoder_logvar_init)
        self.decoder = UNet(cfg.unet)
        if cfg.cond == "xattn":
            self.token_pos = nn.Parameter(torch.randn(cfg.xattn_tokens, cfg.latent_dim // cfg.xattn_tokens) * 0.02)
        self._captured: list | None = None
        if cfg.encoder == "hyper":
            ends = self._level_end_blocks()
            chans = [self._block_out_channels(i) for i in ends]
            self.hyper = HyperFeatureHead(chans, cfg.encoder_net.model_channels, cfg.latent_dim, cfg.bfn.image_size,
                                          cfg.encoder_net.num_groups, cfg.hyper_mixing)
            for i in ends:
                self.decoder.output_blocks[i].register_forward_hook(self._capture_hook)

    # ------------------------------------------------------------------ networks
    def _level_end_blocks(self) -> list[int]:
        """Indices of the decoder output blocks that end a resolution level (the up-sampling features)."""
        per = self.config.unet.num_res_blocks + 1
        return [per * (k + 1) - 1 for k in range(len(self.config.unet.channel_mult))]

    def _block_out_channels(self, i: int) -> int:
        mults = self.config.unet.channel_mult[::-1]
        return self.config.unet.model_channels * mults[i // (self.config.unet.num_res_blocks + 1)]

    def _capture_hook(self, module, inputs, output):
        if self._captured is not None:
            self._captured.append(output.detach())

    def _t_net(self, t: torch.Tensor) -> torch.Tensor:
        return t.float() * self.config.time_scale

    def decode_net(self, state: FlowState, t: torch.Tensor, z: torch.Tensor, *, check_time: bool = True):
        """psi(theta_t, z_t): the decoder's raw output (eps-hat, or logits for discrete data). ``check_time=False``:
        the chains' grid times, not read back (docs/architecture.md "Host synchronisation and the non-finite-loss check")."""
        net_in = self.flow.network_input(state, model_dtypes(self)[0])
        z = z.to(net_in.dtype)
        run = self.decoder if check_time else self.decoder._forward_grid
        if self.config.cond == "xattn":
            tokens = z.reshape(z.shape[0], self.config.xattn_tokens, -1) + self.token_pos
            return run(net_in, self._t_net(t), context=tokens)
        return run(net_in, self._t_net(t), z=z)

    def decoder_features(self, state: FlowState, t: torch.Tensor, z: torch.Tensor, *, check_time: bool = True) -> list[torch.Tensor]:
        """The decoder's level-end up-sampling feature maps u_l at (theta, t, z), no gradient."""
        self._captured = []
        try:
            with torch.no_grad():
                self.decode_net(state, t, z, check_time=check_time)
            return self._captured
        finally:
            self._captured = None

    def posterior(self, state: FlowState | None, t: torch.Tensor, *, features: list | None = None,
                  x: torch.Tensor | None = None, check_time: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean, logvar) of q_phi(z_t | theta_t, t). ``features``: the decoder feature maps the hyper
        encoder reads (None: computed at theta_t itself with the theta branch's mean, the reading used
        everywhere). ``x``: the data (encoder_input='x'). ``check_time``: as in :meth:`decode_net`."""
        cfg = self.config
        net = model_dtypes(self)[0]
        if cfg.encoder_input == "x":
            if x is None:
                raise ValueError("encoder_input='x' encodes the clean data, which generation does not have; "
                                 "use z_source='prior_per_step' or 'prior_fixed'")
            # the data as the flow reads them: the BFN reference quantises in its data transform, so the
            # x-encoder too sees discretised data at the bin centres (docs/kernels/bfn.md#quantisation)
            inp = (self.flow.prepare_data(x) if self.flow.kind == "continuous" else x).to(net)
        else:
            inp = self.flow.network_input(state, net)
        raw = (self.encoder.gaussian_params if check_time else self.encoder._gaussian_params_grid)(inp, self._t_net(t) if cfg.encoder != "vanilla" else None)
        if cfg.encoder != "hyper":
            return raw.chunk(2, dim=1)
        if features is None:
            features = self.decoder_features(state, t, raw.chunk(2, dim=1)[0].detach(), check_time=check_time)
        return self.hyper(features, raw)

    # ------------------------------------------------------------------ objective
    def _mmd(self, z: torch.Tensor, t: torch.Tensor, generator=None) -> torch.Tensor:
        from ..ops.mmd import mmd2  # owned by another module: imported lazily
        from . import paramrel_strata

        cfg = self.config
        prior = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
        # bandwidth None: h = |z|^2 (rbf, InfoVAE) or C = 2|z| (imq, WAE)
        kw = dict(kernel=cfg.mmd_kernel, estimator=cfg.mmd_estimator, bandwidth=cfg.mmd_bandwidth or None)
        if cfg.mmd_time_strata == 1:
            return mmd2(z, prior, **kw)
        G = cfg.mmd_time_strata
        # t in [0, 1] drawn here: its bins lie in [0, G) and are not read back. The mean over the bins with >= 2
        # codes of their MMD^2, without a per-bin mask (a host read per bin on CUDA; diffrep.methods.paramrel_strata)
        bins = (t * G).long().clamp(max=G - 1)
        return paramrel_strata._stratified_mmd2(z, prior, bins, G, **kw)

    def _draw_z(self, mean: torch.Tensor, logvar: torch.Tensor, generator=None) -> torch.Tensor:
        """z ~ q = N(mean, e^logvar) by the reparameterisation z = mean + e^(logvar / 2) eps, eps from ``generator``,
        in the flow state's dtype."""
        mean, logvar = mean.to(model_dtypes(self)[1]), logvar.to(model_dtypes(self)[1])
        return mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=generator, device=mean.device,
                                                            dtype=mean.dtype)

    def loss(self, batch, *, step: int | None = None, generator: torch.Generator | None = None) -> dict:
        """The MI-regularised ELBO of SepDiff Eq. 5-6 / ParamReL Eq. 6-7 with the corrections above.
        ``step`` (the trainer's 0-based step) is accepted and unused."""
        cfg = self.config
        flow_dtype = model_dtypes(self)[1]
        x = data_images(batch, cfg.bfn, "ParamReL.loss", dtype=flow_dtype)
        training_step(step)
        data = self.flow.prepare_data(x)
        t = draw_time(cfg.bfn, x.shape[0], x.device, generator)
        # the hyper encoder reads the decoder at theta_t itself
        state = self.flow._sample(data, t, generator, dtype=flow_dtype, drawn=True)  # as BFN.loss: no host read
        mean, logvar = self.posterior(state, t, x=x)
        # the sampled z, its KL and its MMD in the flow state's dtype: under the trainer's bf16 autocast the
        # encoder's heads return bf16, and z's noise was drawn and the MMD's codes rounded in bf16 (the
        # decoder reads z in its own dtype either way)
        mean, logvar = mean.to(flow_dtype), logvar.to(flow_dtype)
        z = self._draw_z(mean, logvar, generator)
        net_out = self.decode_net(state, t, z if cfg.decoder_latent == "sample" else mean)
        l_bfn = bfn_loss(cfg.bfn, self.flow, self.output, net_out, data, state, generator)
        kl = gaussian_kl(mean, logvar, reduction="sum")
        w_kl, w_mmd = cfg.kl_weight, cfg.mmd_weight
        mmd = (self._mmd(z if cfg.mmd_on == "sample" else mean, t, generator) if w_mmd != 0
               else kl.new_zeros(()))
        if cfg.reduction == "per_example":
            loss = (l_bfn + w_kl * kl).mean() + w_mmd * mmd
        else:  # the public code: BFN loss averaged over B x D (the notebooks: B x D x K), KL summed over B x |z|
            denom = cfg.bfn.num_dims * (cfg.bfn.num_classes if cfg.reduction == "notebook" else 1)
            loss = l_bfn.mean() / denom + w_kl * kl.sum() + w_mmd * mmd
        out = {"loss": loss, "bfn_loss": l_bfn.mean().detach(), "bfn_loss_per_dim": l_bfn.mean().detach() / cfg.bfn.num_dims,
               "kl": kl.mean().detach(), "mmd": mmd.detach()}
        if cfg.report_reconstruction:
            out["recon_loss"] = self.reconstruction_loss(x, generator).mean()
        return out

    @autocast_off  # the L^r statistic in the model's own precision: under bf16 autocast it moved by up to 248 nats (discretised)
    @torch.no_grad()
    def reconstruction_loss(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        """L^r per example (nats), the distortion term of SepDiff Eq. 4 / ParamReL Eq. 3: -ln p_O(x | psi(theta_1, z_1))
        with theta_1 ~ p_F(. | x; 1) and z_1 ~ q(z | theta_1, 1) (the papers' z_0 and theta_0), both from ``generator``."""
        x = self._check_x(x, "reconstruction_loss")
        data = self.flow.prepare_data(x)
        state = self.flow.sample(data, 1.0, generator, dtype=model_dtypes(self)[1])
        z = self._draw_z(*self.posterior(state, state.t, x=x), generator)
        return bfn_losses.reconstruction_loss(self.flow, self.output, self.decode_net(state, state.t, z), data, state)

    # ------------------------------------------------------------------ representation
    @autocast_off  # the representation in the model's own precision, not the caller's autocast (bf16 codes otherwise)
    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The representation z_0 of the papers: the posterior mean at t = 1 with theta the noise-free flow
        state (mu = gamma(1) x; discrete: softmax(beta(1)(K e_x - 1))) (SepDiff §4.2, docs/methods/paramrel.md#eq-15-16-self-encoder)."""
        x = self._check_x(x, "encode")
        data = self.flow.prepare_data(x)
        state = self.flow.mean_state(data, 1.0, dtype=model_dtypes(self)[1])
        return self.posterior(state, state.t, x=x)[0]

    def _check_dims(self, dims, name: str, *, distinct: bool = False) -> list[int]:
        """Latent dimensions: a non-empty list of ints in [0, latent_dim) (a float was truncated by int())."""
        L = self.config.latent_dim
        if isinstance(dims, torch.Tensor) and dims.dim() == 1 and not dims.is_floating_point():
            dims = dims.tolist()
        dims = list(dims) if isinstance(dims, (list, tuple, range)) else dims
        if (not isinstance(dims, list) or not dims or (distinct and len(set(dims)) != len(dims))
                or any(isinstance(d, bool) or not isinstance(d, numbers.Integral) or not 0 <= d < L for d in dims)):
            what = "distinct ints" if distinct else "ints"
            raise ValueError(f"{name} must be a non-empty list of {what} in [0, {L}), got {dims!r}")
        return [int(d) for d in dims]

    def _check_x(self, x, who: str, name: str = "x") -> torch.Tensor:
        """x checked (floating images in [-1, 1]), floating images cast to the flow state's dtype
        (docs/architecture.md#inputs)."""
        b = self.config.bfn
        x = check_images(x, channels=b.channels, size=b.image_size, floating=False, name=name, who=f"ParamReL.{who}",
                         dtype=model_dtypes(self)[1], value_range=IMAGE_RANGE)
        if x.is_complex():  # integer class maps pass floating=False; complex data would reach the flow
            raise TypeError(f"ParamReL.{who}: {name} must be real, got {x.dtype}")
        return x

    # ------------------------------------------------------------------ generation
    def _steps(self, num_steps) -> int:
        return positive_int(self.config.sample_steps if num_steps is None else num_steps, "num_steps")

    def _device(self):
        return next(self.parameters()).device

    def _data_shape(self, n: int) -> tuple:
        b = self.config.bfn
        return (n, b.channels, b.image_size, b.image_size)

    def _to_images(self, x: torch.Tensor) -> torch.Tensor:
        """Images in the flow state's dtype (float64 for a float64 model, float32 otherwise)."""
        return self.flow.data_to_float(x, model_dtypes(self)[1])

    @autocast_off  # the n-step chain in the model's own precision: bf16 networks flipped discrete pixels
    @torch.no_grad()
    def sample(self, n: int, *, generator=None, num_steps: int | None = None, z_source: str | None = None,
               z: torch.Tensor | None = None, final: str | None = None) -> torch.Tensor:
        """Unconditional generation (SepDiff Alg. 1 / Eq. 2; ParamReL Eq. 4): n images in [-1, 1].

        ``z_source``: ``"encoder"`` (re-encode theta at every step and draw z_t ~ q(z_t | theta_t, t), the final
        decode's z_0 too; SepDiff Eq. 2, Alg. 1), ``"encoder_mean"`` (the posterior mean instead of a draw),
        ``"prior_per_step"`` (a fresh N(0, I) draw per step; ParamReL Eq. 4), ``"prior_fixed"`` (one draw for all
        steps; the public code), or ``"given"`` with ``z`` [n, L] (fixed) or [steps + 1, n, L]. The prior is
        deterministic (mu = 0; SepDiff Alg. 1's theta_T ~ N(0, I) is out of distribution); the sender noise and
        the final mode are documented in docs/methods/paramrel.md#faithfulness-review.
        """
        n = positive_int(n, "n")
        cfg = self.config
        steps = self._steps(num_steps)
        source = z_source or ("given" if z is not None else cfg.z_source)
        L, dev, flow_dtype = cfg.latent_dim, self._device(), model_dtypes(self)[1]
        if source not in ("encoder", "encoder_mean", "prior_per_step", "prior_fixed", "given"):
            raise ValueError("z_source must be encoder, encoder_mean, prior_per_step, prior_fixed or given, "
                             f"got {source!r}")
        if source == "given":
            z = self._check_z(z, n, steps)
        elif source == "prior_fixed":
            z = torch.randn((n, L), generator=generator, device=dev, dtype=flow_dtype)

        def predict(state, t):  # t: the sampler's own grid times i/n, finite: no reads (as bfn.sample's steps)
            if source == "encoder":
                zt = self._draw_z(*self.posterior(state, t, check_time=False), generator)
            elif source == "encoder_mean":
                zt = self.posterior(state, t, check_time=False)[0]
            elif source == "prior_per_step":
                zt = torch.randn((n, L), generator=generator, device=dev, dtype=flow_dtype)
            else:
                zt = z if z.dim() == 2 else bfn_sampler.at_grid_time(z, t, steps)
            return self.decode_net(state, t, zt, check_time=False)

        prior = self.flow.prior(self._data_shape(n), dev, dtype=flow_dtype)
        x, _ = bfn_sampler.sample(self.flow, self.output, predict, prior, steps,
                                  generator=generator, final=final or cfg.final, sender_noise=cfg.sender_noise,
                                  legacy_skip_last_update=cfg.legacy_skip_last_update)
        return self._to_images(x)

    def _check_z(self, z, n: int, steps: int) -> torch.Tensor:
        L = self.config.latent_dim
        if not isinstance(z, torch.Tensor) or not (tuple(z.shape) == (n, L) or tuple(z.shape) == (steps + 1, n, L)):
            raise ValueError(f"z must have shape [{n}, {L}] or [{steps + 1}, {n}, {L}], got "
                             f"{tuple(getattr(z, 'shape', ())) or type(z).__name__}")
        return self._check_code(z, "z")

    def _check_code(self, z: torch.Tensor, name: str) -> torch.Tensor:
        """Latents a verb is given (``sample``'s z, ``decode``'s stored {z_s} and override values), their shape
        checked by the caller: floating (an integer tensor was silently rounded into a code) and finite, in the
        flow state's dtype on the model's device (decode_net casts them to the network's dtype)."""
        if not z.dtype.is_floating_point:
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {z.dtype}")
        if not bool(torch.isfinite(z).all()):
            raise ValueError(f"{name} must be finite, got NaN or infinite values")
        return z.to(self._device(), model_dtypes(self)[1])

    @autocast_off  # the inverse chain in the model's own precision: under bf16 autocast z and mu_T moved by units
    @torch.no_grad()
    def reverse_sample(self, x: torch.Tensor, num_steps: int | None = None) -> ReverseSample:
        """Reverse-sampling (SepDiff Eq. 3, ParamReL Eq. 5) with the exact inverse update h^-1, in
        ``reverse_dtype`` (float64 by default: a full chain amplifies round-off by sigma1^-2, docs/kernels/bfn.md#inverse-update).

        From the noise-free flow state at t = 1, for s = 1..n: theta_s = h^-1(theta_{s-1}, E[y | x-hat_{s-1}]),
        z_s = the posterior mean at (theta_s, 1 - s/n), x-hat_s = E[p_O(psi(theta_s, z_s))]. The hyper encoder
        reads decoder features at theta_s itself, as in training and sampling."""
        x = self._check_x(x, "reverse_sample")
        steps = self._steps(num_steps)
        dtype = torch.float64 if self.config.reverse_dtype == "float64" else torch.float32
        data = self.flow.prepare_data(x)
        start = self.flow.mean_state(data, 1.0, dtype=dtype)
        zs = torch.empty((steps + 1, x.shape[0], self.config.latent_dim), device=x.device, dtype=model_dtypes(self)[1])
        zs[steps] = self.posterior(start, start.t, x=x)[0]
        # z_s is recorded inside the network call of step s (s = 1..n-1), not by a callback: the chain reads its ops'
        # pending flags before each callback (a host read per step on CUDA, docs/kernels/bfn.md#host-reads-on-cuda);
        # z_0 comes from the returned state, after the chain's one read. Same values as a callback (same inputs).
        slot = iter(range(steps - 1, 0, -1))

        def predict(state, t):  # t: reverse_chain's own grid times: no reads
            z = zs[next(slot)] = self.posterior(state, t, x=x, check_time=False)[0]
            return self.decode_net(state, t, z, check_time=False)

        sub = bfn_sampler.reverse_chain(self.flow, self.output, predict, data, steps, dtype=dtype)
        t0 = torch.zeros(sub.params.shape[0], dtype=torch.float64, device=sub.params.device)  # the chain's t_0 = 0
        zs[0] = self.posterior(sub, t0, x=x, check_time=False)[0]
        return ReverseSample(zs, sub)

    @autocast_off  # the chain in the model's own precision, not the caller's autocast
    @torch.no_grad()
    def decode(self, rev: ReverseSample, *, z_override: tuple[Sequence[int], torch.Tensor] | None = None,
               fixed_time: float | None = None) -> torch.Tensor:
        """Deterministic decoding from the subcode with the stored latents (y = E[y | x-hat_s], no sender
        noise; docs/methods/paramrel.md#eq-2-5-sampling-and-reverse-sampling). ``z_override=(dims, values [B, len(dims)])`` overwrites those latent
        dimensions at every step (SepDiff's traversal hook); ``fixed_time=t*`` uses z at t* for every step
        (the time-varying generation task)."""
        if not isinstance(rev, ReverseSample):
            raise TypeError(f"decode: rev must be the ReverseSample of reverse_sample(x), got {type(rev).__name__}")
        L = self.config.latent_dim
        if not isinstance(rev.z, torch.Tensor) or rev.z.dim() != 3 or rev.z.shape[0] < 2 or rev.z.shape[2] != L:
            raise ValueError(f"decode: rev.z must be latents [steps + 1, B, {L}] (steps >= 1), got "
                             f"{tuple(getattr(rev.z, 'shape', ())) or type(rev.z).__name__}")
        steps = rev.num_steps
        zs = self._check_code(rev.z, "rev.z")
        if fixed_time is not None:
            if not 0 <= finite_float(fixed_time, "fixed_time") <= 1:
                raise ValueError(f"fixed_time must be in [0, 1], got {fixed_time}")
            zs = zs[int(round(fixed_time * steps))].expand_as(zs)
        if z_override is not None:
            if not isinstance(z_override, (tuple, list)) or len(z_override) != 2:
                raise ValueError("z_override must be a pair (dims, values [B, len(dims)])")
            dims, values = z_override
            dims = self._check_dims(dims, "z_override dims", distinct=True)
            B = zs.shape[1]
            if not isinstance(values, torch.Tensor) or tuple(values.shape) != (B, len(dims)):
                raise ValueError(f"z_override values must be a tensor of shape [B={B}, len(dims)={len(dims)}], got "
                                 f"{tuple(getattr(values, 'shape', ())) or type(values).__name__}")
            zs = zs.clone()
            zs[:, :, dims] = self._check_code(values, "z_override values")

        def predict(state, t):  # t: the sampler's own grid times: no reads
            return self.decode_net(state, t, bfn_sampler.at_grid_time(zs, t, steps), check_time=False)

        x, _ = bfn_sampler.sample(self.flow, self.output, predict, rev.subcode, steps, final=self.config.final,
                                  x_tilde="mean", sender_noise=False)
        return self._to_images(x)

    @autocast_off  # reverse-sampling and decoding in the model's own precision (their own guards; the lerp/slerp too)
    def reconstruct(self, x: torch.Tensor, num_steps: int | None = None) -> torch.Tensor:
        """Reverse-sample then decode (docs/methods/paramrel.md#eq-2-5-sampling-and-reverse-sampling): images in [-1, 1]."""
        return self.decode(self.reverse_sample(x, num_steps))

    @autocast_off  # as reconstruct
    def time_varying(self, x: torch.Tensor, times: Sequence[float] = (0.9, 0.8, 0.7),
                     num_steps: int | None = None) -> torch.Tensor:
        """Time-varying generation (SepDiff §4.3, ParamReL §5.2.2): regenerate x with z_{t*} fixed at every
        step, for each t* in ``times`` (papers' s* = 100/200/300 of T = 1000 -> t* = 0.9/0.8/0.7).
        Returns [len(times), B, C, H, W]."""
        if isinstance(times, (str, bytes)) or not hasattr(times, "__len__") or not len(times):
            raise ValueError(f"times must hold at least one t* in [0, 1], got {times!r}")  # torch.stack raised
        times = finite_numbers(times, "times")
        if any(not 0 <= t <= 1 for t in times):
            raise ValueError(f"times must lie in [0, 1], got {times}")
        rev = self.reverse_sample(x, num_steps)
        return torch.stack([self.decode(rev, fixed_time=float(t)) for t in times])

    @autocast_off  # as reconstruct
    @torch.no_grad()
    def attributes_encoding(self, x: torch.Tensor, num_subcodes: int = 4, *, generator=None,
                            num_steps: int | None = None) -> torch.Tensor:
        """Attributes encoding (SepDiff §4.3, ParamReL §5.2.1): keep the latents {z_s} of x, draw
        ``num_subcodes`` subcodes. diffrep's subcode here is the seed of the per-step sender noise (a
        stochastic pass from the prior with the stored z; docs/methods/paramrel.md#eq-2-5-sampling-and-reverse-sampling). Returns [j, B, C, H, W]."""
        num_subcodes = positive_int(num_subcodes, "num_subcodes")  # torch.stack([]) raised a RuntimeError
        rev = self.reverse_sample(x, num_steps)
        steps = rev.num_steps
        outs = []
        for _ in range(num_subcodes):
            x_s = self.sample(x.shape[0], generator=generator, num_steps=steps, z_source="given", z=rev.z)
            outs.append(x_s)
        return torch.stack(outs)

    @autocast_off  # as reconstruct
    @torch.no_grad()
    def interpolate(self, x_a: torch.Tensor, x_b: torch.Tensor, num: int = 6, *,
                    num_steps: int | None = None) -> torch.Tensor:
        """Latent interpolation (SepDiff Eq. 14, ParamReL Eq. 13) between image pairs, following DiffAE:
        lerp the latents {z_s}, slerp the subcode (discrete data: its centred logits), weights k/(num-1)
        (num = 6: the papers' four interpolants plus the endpoints). Returns [num, B, C, H, W]."""
        from ..viz import lerp, slerp

        if isinstance(num, bool) or not isinstance(num, int) or num < 2:
            raise ValueError(f"num must be an int >= 2, got {num!r}")
        self._check_x(x_a, "interpolate", "x_a")
        self._check_x(x_b, "interpolate", "x_b")
        if x_a.shape != x_b.shape:  # lerp raised about the latents' shapes
            raise ValueError(f"interpolate: x_a and x_b must hold the same number of images, got "
                             f"{tuple(x_a.shape)} and {tuple(x_b.shape)}")
        ra, rb = self.reverse_sample(x_a, num_steps), self.reverse_sample(x_b, num_steps)
        w = torch.linspace(0, 1, num, dtype=torch.float64, device=x_a.device)
        za, zb = ra.z, rb.z
        pa, pb = ra.subcode.params, rb.subcode.params
        if self.flow.kind == "discrete":
            pa, pb = pa - pa.mean(-1, keepdim=True), pb - pb.mean(-1, keepdim=True)
        outs = []
        for k in range(num):
            zk = lerp(za, zb, w[k:k + 1].to(za.dtype))[0]
            pk = slerp(pa, pb, w[k:k + 1], batched=True)[0]  # each example on its own angle
            if self.flow.kind == "discrete":
                pk = torch.log_softmax(pk, -1)
            outs.append(self.decode(ReverseSample(zk, FlowState(pk, ra.subcode.t))))
        return torch.stack(outs)

    @autocast_off  # as reconstruct
    @torch.no_grad()
    def traverse(self, x: torch.Tensor, dims: Sequence[int] | None = None, values: Sequence[float] | None = None,
                 *, num_values: int = 7, num_steps: int | None = None) -> torch.Tensor:
        """Latent traversal (ParamReL §5.2.4, SepDiff §4.6) of one image x [1, C, H, W]: dimension d set to
        each of ``values`` (default ``num_values`` points on [-3, 3]) at every step, other dimensions as
        reverse-sampled. Returns [len(dims), len(values), C, H, W]."""
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[0] != 1:
            raise ValueError(f"traverse: x must be a single image [1, C, H, W], got {tuple(getattr(x, 'shape', ()))}")
        L = self.config.latent_dim
        dims = list(range(L)) if dims is None else self._check_dims(dims, "dims")
        flow_dtype = model_dtypes(self)[1]
        if values is None:
            vals = torch.linspace(-3, 3, positive_int(num_values, "num_values"), dtype=flow_dtype)
        else:
            try:
                vals = torch.as_tensor(values, dtype=flow_dtype).reshape(-1)
            except (TypeError, ValueError, RuntimeError):
                raise TypeError(f"values must be a list of finite numbers, got {values!r}") from None
            if not vals.numel() or not bool(torch.isfinite(vals).all()):
                raise ValueError(f"values must be a non-empty list of finite numbers, got {vals.tolist()}")
        rev = self.reverse_sample(x, num_steps)
        M = len(vals)
        rep = ReverseSample(rev.z.expand(-1, M, -1).contiguous(),
                            FlowState(rev.subcode.params.expand(M, *rev.subcode.params.shape[1:]).contiguous(),
                                      rev.subcode.t.expand(M).contiguous()))
        rows = [self.decode(rep, z_override=([d], vals.reshape(M, 1).to(rev.z.device))) for d in dims]
        return torch.stack(rows)
