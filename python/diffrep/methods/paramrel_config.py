"""The configuration of a ParamReL / SepDiff model: every open choice of the papers is a field (defaults follow
the papers with the corrections of docs/methods/paramrel.md; the model is :class:`diffrep.methods.paramrel.ParamReL`)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

from ..bfn.config import BFNDataConfig, check_unet, make_flow
from ..bfn.model import check_sampler_fields
from ..config import Config, ConfigError, Ge, Gt
from ..nn.unet import UNetConfig
from .paramrel_nets import ParamRelEncoderConfig, decoder_unet, xattn_resolutions

__all__ = ["ParamReLConfig", "Cond"]

Cond = Literal["adagn_eq12", "infodiff", "xattn"]


@dataclasses.dataclass
class ParamReLConfig(Config):
    """Every open choice of the papers is a field; defaults follow the papers with the corrections of
    docs/methods/paramrel.md (see the module docstring). ``unet`` is the decoder; build it with :func:`decoder_unet`."""

    bfn: BFNDataConfig = dataclasses.field(default_factory=BFNDataConfig)  # data type, accuracy schedule and BFN loss (docs/kernels/bfn.md)
    latent_dim: Annotated[int, Ge(1)] = 32  # dimension of z (the learned representation)
    encoder: Literal["vanilla", "progressive", "hyper"] = "progressive"  # self-encoder q_phi(z_t | theta_t, t): vanilla (no t), progressive (AdaGN on t) or hyper (SepDiff Eq. 15-16)
    encoder_net: ParamRelEncoderConfig = dataclasses.field(default_factory=ParamRelEncoderConfig)  # the self-encoder's down-path network
    encoder_input: Literal["theta", "x"] = "theta"  # "x": the public code's continuous encoder (compat)
    hyper_mixing: Literal["softmax", "raw"] = "softmax"  # encoder="hyper": mix the decoder's feature readings by softmax weights or raw scalars
    # Ignored: kept so that configs saved before the hyper encoder read the current step's features
    # (docs/methods/paramrel.md#eq-15-16-self-encoder) still load.
    hyper_steps: Annotated[int, Ge(0)] = 0  # ignored; kept so that older saved configs still load
    cond: Cond = "adagn_eq12"  # how the decoder reads z: nested AdaGN (ParamReL Eq. 12), InfoDiffusion's AdaGN, or cross-attention (SepDiff Eq. 1)
    xattn_tokens: Annotated[int, Ge(1)] = 4  # cond="xattn": z is split into this many tokens with position embeddings
    xattn_levels: Literal["all", "bottleneck"] = "all"  # cond="xattn": every level (SepDiff Eq. 1) or the bottleneck
    unet: UNetConfig = dataclasses.field(default_factory=lambda: decoder_unet(
        BFNDataConfig(), 32, model_channels=32, channel_mult=(1, 2, 4), attention_resolutions=(), num_groups=8))
    decoder_latent: Literal["sample", "mean"] = "sample"  # "mean": the public code's deterministic feats
    gamma_mi: Annotated[float, Ge(0)] = 1.0  # SepDiff Table 2 (gamma = 1, lambda = 0.01)
    lambda_agg: Annotated[float, Ge(0)] = 0.01  # lambda of the MMD weight (gamma_MI + lambda_agg - 1) (SepDiff Eq. 13; Table 2: 0.01)
    allow_negative_mmd_weight: bool = False  # permit gamma_MI + lambda_agg < 1 (a loss that maximises the MMD)
    mmd_kernel: Literal["rbf", "imq"] = "rbf"  # MMD kernel: rbf exp(-|x-y|^2/h) or inverse multiquadric
    mmd_bandwidth: Annotated[float, Ge(0)] = 0.0  # rbf: h of exp(-||x-y||^2/h), imq: C; 0: |z|^2 (InfoVAE, the authors' code) / 2|z|
    mmd_estimator: Literal["biased", "unbiased"] = "biased"  # MMD^2 estimator: biased (V-statistic) or unbiased (U-statistic)
    mmd_on: Literal["sample", "mean"] = "sample"  # the codes in the MMD: samples z ~ q or the encoder means
    mmd_time_strata: Annotated[int, Ge(1)] = 1  # G > 1: average the MMD over G time bins (Eq. 6's per-step sum)
    reduction: Literal["per_example", "paramrel_code", "notebook"] = "per_example"  # loss reduction: per example, or the public code's / the discrete notebooks' (compat)
    report_reconstruction: bool = False  # log L^r (reported, never optimised, as in the BFN code)
    time_scale: Annotated[float, Gt(0)] = 1000.0  # the networks read t * time_scale
    sample_steps: Annotated[int, Ge(1)] = 100  # n of the n-step sampler (SepDiff Alg. 1)
    final: Literal["mode", "sample"] = "mode"  # sampler output: mode of the final output distribution, or a sample
    legacy_skip_last_update: bool = False  # the public code's loop with n - 1 Bayesian updates (compat)
    z_source: Literal["encoder", "encoder_mean", "prior_per_step", "prior_fixed"] = "encoder"  # z in sampling: a draw from q re-encoded each step (SepDiff Eq. 2, Alg. 1), its mean, a prior draw per step (ParamReL Eq. 4), or one prior draw (code)
    sender_noise: bool = True  # sampling draws the sender sample y ~ p_S (False: its mean E[y | x~], the public code, SepDiff Eq. 2)
    reverse_dtype: Literal["float64", "float32"] = "float64"  # dtype of reverse-sampling's exact inverse updates (float64: round-off grows as sigma1^-2)
    encoder_logvar_init: float = 0.0  # initial bias of the log-variance head (unspecified by the papers)

    @property
    def kl_weight(self) -> float:
        return 1.0 - self.gamma_mi

    @property
    def mmd_weight(self) -> float:
        return self.gamma_mi + self.lambda_agg - 1.0

    def validate(self) -> None:
        check_unet(self.bfn, self.unet)
        check_sampler_fields(self)
        flow_in = make_flow(self.bfn).input_channels(self.bfn.channels)
        if self.encoder_input == "theta" and self.encoder_net.in_channels != flow_in:
            raise ConfigError("encoder_net.in_channels", f"must be {flow_in} (the flow's network input), "
                              f"got {self.encoder_net.in_channels}")
        if self.encoder_input == "x" and self.encoder_net.in_channels != self.bfn.channels:
            raise ConfigError("encoder_net.in_channels", f"must be {self.bfn.channels} with encoder_input='x'")
        if self.encoder_net.image_size != self.bfn.image_size:
            raise ConfigError("encoder_net.image_size", f"must equal bfn.image_size={self.bfn.image_size}")
        if self.cond == "xattn":
            if self.latent_dim % self.xattn_tokens:
                raise ConfigError("xattn_tokens", f"{self.xattn_tokens} does not divide latent_dim={self.latent_dim}")
            if self.unet.context_dim != self.latent_dim // self.xattn_tokens or self.unet.latent_dim:
                raise ConfigError("unet.context_dim", f"cond='xattn' needs unet.context_dim = latent_dim / "
                                  f"xattn_tokens = {self.latent_dim // self.xattn_tokens} and unet.latent_dim = 0")
            want = (xattn_resolutions(self.unet.image_size, self.unet.channel_mult)
                    if self.xattn_levels == "all" else ())
            if set(self.unet.attention_resolutions) != set(want) or not self.unet.middle_attention:
                raise ConfigError("unet.attention_resolutions", f"cond='xattn' with xattn_levels={self.xattn_levels!r} "
                                  f"needs unet.attention_resolutions = {want} and unet.middle_attention = True, got "
                                  f"{self.unet.attention_resolutions} and {self.unet.middle_attention} "
                                  "(use decoder_unet())")
        elif self.unet.latent_dim != self.latent_dim or self.unet.latent_cond != self.cond or self.unet.context_dim:
            raise ConfigError("unet.latent_dim", f"cond={self.cond!r} needs unet.latent_dim={self.latent_dim}, "
                              f"unet.latent_cond={self.cond!r}, unet.context_dim=0 (use decoder_unet())")
        if self.kl_weight < 0:
            raise ConfigError("gamma_mi", f"the KL weight 1 - gamma_mi = {self.kl_weight:.4g} is negative "
                              f"(gamma_mi = {self.gamma_mi:.4g} > 1): minimising the loss would maximise the "
                              "KL to the prior. gamma_mi must lie in [0, 1]")
        if self.mmd_weight < 0 and not self.allow_negative_mmd_weight:
            raise ConfigError("lambda_agg", f"the MMD weight gamma_mi + lambda_agg - 1 = {self.mmd_weight:.4g} is "
                              f"negative (gamma_mi = {self.gamma_mi:.4g}, lambda_agg = {self.lambda_agg:.4g}; e.g. "
                              "SepDiff's (0.9, 0.01)): minimising the loss would maximise the MMD. "
                              "Set allow_negative_mmd_weight=True to train it literally (docs/methods/paramrel.md#eq-4-7-objective)")
        if self.reduction == "notebook" and self.bfn.data != "discrete":
            raise ConfigError("reduction", "'notebook' averages the BFN loss over the B x D x K one-hot entries "
                              f"of discrete data; bfn.data is {self.bfn.data!r} (use 'paramrel_code')")
        if self.encoder == "hyper" and self.encoder_input == "x":
            raise ConfigError("encoder", "the hyper-feature encoder reads theta; it cannot be combined with "
                              "encoder_input='x'")
