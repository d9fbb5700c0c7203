"""A plain Bayesian Flow Network: a U-Net Psi(theta, t) with a flow, an output distribution, the
training loss and the n-step sampler (BFN Algorithms 1-9 in the reference semantics).

``BFN.loss(batch)`` draws t ~ U(0, 1) (L^inf) or t = randint(0, n)/n (L^n), theta ~ p_F(. | x; t),
and returns the mean over the batch of the per-example loss (nats per example); ``loss_per_dim``
divides by the number of data dimensions (the reference's reporting unit). ``BFN.sample(n)`` runs
:func:`diffrep.bfn.sampler.sample`. The network reads t scaled by ``time_scale`` (a sinusoidal
embedding of t in [0, 1] would resolve time poorly; the choice is ours, the reference's U-Nets
embed t through their own adapters).

Precision follows the parameters (docs/architecture.md#inputs, docs/kernels/bfn.md#precision): the flow
state is :func:`diffrep.bfn.flows.state_dtype` of their dtype (float64 for ``model.double()``, float32
otherwise, half precision included), floating images are cast to it, the networks read it in the
parameters' dtype and the losses are computed in the network output's dtype, at least float32.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

import torch
from torch import nn

from .._checks import device as checked_device
from .._checks import positive_int
from ..config import Config, ConfigError, Ge, Gt
from ..nn.images import IMAGE_RANGE, batch_images, check_images as _check_images, module_dtype
from ..nn.pretrained import PretrainedMixin
from ..nn.unet import UNet, UNetConfig
from ..ops._full_precision import autocast_off
from . import losses, sampler
from .config import BFNDataConfig, check_unet, checked_config, make_flow, make_output
from .flows import FlowState, state_dtype

__all__ = ["BFNConfig", "BFN", "draw_time", "bfn_loss", "batch_images", "data_images", "model_dtypes"]


def model_dtypes(module: nn.Module) -> tuple[torch.dtype, torch.dtype]:
    """(the network's dtype, the flow state's dtype) of a BFN-based model: its parameters' dtype
    (:func:`diffrep.nn.images.module_dtype`) and :func:`diffrep.bfn.flows.state_dtype` of it."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    net = module_dtype(module)
    if net is None:
        raise TypeError(f"module {type(module).__name__} has no floating-point parameters to take its dtype from")
    return net, state_dtype(net)


def data_images(batch, cfg: BFNDataConfig, who: str, name: str = "batch",
                dtype: torch.dtype | None = None) -> torch.Tensor:
    """The image tensor of ``batch`` (see :func:`diffrep.nn.images.batch_images`), checked against the data
    configuration: [B, channels, image_size, image_size], finite; integer class maps are accepted (the
    discrete flow reads them as classes) and keep their dtype, floating images must lie in [-1, 1] (every
    flow reads them so; the discrete one clamps, so 0..255 data became one class) and are cast to ``dtype``
    (the model's flow-state dtype, docs/architecture.md#inputs)."""
    checked_config(cfg)
    images = _check_images(batch_images(batch), channels=cfg.channels, size=cfg.image_size, floating=False,
                           name=name, who=who, dtype=dtype, value_range=IMAGE_RANGE)
    if images.is_complex():  # the image check takes any numeric dtype
        raise TypeError(f"{who}: {name} must hold real images, got {images.dtype}")
    return images


def draw_time(cfg: BFNDataConfig, batch: int, device, generator=None) -> torch.Tensor:
    """Training times (B,) float64: U(0, 1) for L^inf, randint(0, n)/n for L^n (reference ``BFN.sample_t``)."""
    checked_config(cfg)
    batch, device = positive_int(batch, "batch"), checked_device(device)
    if cfg.time_loss == "continuous":
        return torch.rand(batch, generator=generator, device=device, dtype=torch.float64)
    n = cfg.loss_steps
    return torch.randint(0, n, (batch,), generator=generator, device=device).double() / n


def bfn_loss(cfg: BFNDataConfig, flow, output, net_out, x: torch.Tensor, state: FlowState, generator=None):
    """The configured BFN loss per example (B,)."""
    if checked_config(cfg).time_loss == "continuous":
        return losses.continuous_time_loss(flow, output, net_out, x, state)
    return losses.discrete_time_loss(flow, output, net_out, x, state, cfg.loss_steps, n_samples=cfg.loss_mc_samples,
                                     receiver=cfg.receiver, generator=generator)


def check_sampler_fields(cfg) -> None:
    """The sampler rule shared by BFN and ParamReL configs (the fields' own bounds are declared on them)."""
    if cfg.legacy_skip_last_update and cfg.sample_steps < 2:
        raise ConfigError("legacy_skip_last_update", "needs sample_steps >= 2")


@dataclasses.dataclass
class BFNConfig(Config):
    bfn: BFNDataConfig = dataclasses.field(default_factory=BFNDataConfig)  # data type, accuracy schedule and loss of the flow (docs/kernels/bfn.md)
    unet: UNetConfig = dataclasses.field(default_factory=lambda: UNetConfig(  # the output network Psi (a U-Net reading the input distribution's parameters)
        image_size=28, in_channels=1, out_channels=1, model_channels=32, channel_mult=(1, 2, 2),
        attention_resolutions=(), num_groups=8))
    time_scale: Annotated[float, Gt(0)] = 1000.0  # the network reads t * time_scale (sinusoidal time embedding)
    sample_steps: Annotated[int, Ge(1)] = 100  # n of the fixed n-step sampler (BFN Alg. 3/6/9)
    final: Literal["mode", "sample"] = "mode"  # sampler output: the mode of the final output distribution (BFN code) or a sample (paper)
    legacy_skip_last_update: bool = False  # reproduce the old loop with n - 1 Bayesian updates (docs/kernels/bfn.md#sampler)
    report_reconstruction: bool = False  # log L^r (one extra no-grad network call per step)

    def validate(self) -> None:
        check_unet(self.bfn, self.unet)
        check_sampler_fields(self)
        if self.unet.latent_dim or self.unet.context_dim:
            raise ConfigError("unet.latent_dim", "a plain BFN has no latent input (use methods.paramrel)")


class BFN(PretrainedMixin, nn.Module):
    """Bayesian Flow Network over images (see the module docstring)."""

    config_class = BFNConfig

    def __init__(self, config: BFNConfig):
        super().__init__()
        cfg = self._init_config(config)
        self.flow, self.output = make_flow(cfg.bfn), make_output(cfg.bfn)
        self.unet = UNet(cfg.unet)

    def predict(self, state: FlowState, t: torch.Tensor):
        """Psi(theta, t): the raw network output for flow state ``state`` at network time ``t`` (B,)."""
        if not isinstance(t, torch.Tensor) or t.is_complex():
            raise TypeError(f"t must be a real tensor (B,) of network times, got {getattr(t, 'dtype', type(t).__name__)}")
        # t enters the sinusoidal embedding, which every diffrep U-Net computes in float32 (nn.layers)
        return self.unet(self.flow.network_input(state, model_dtypes(self)[0]), t.float() * self.config.time_scale)

    def loss(self, batch, *, step: int | None = None, generator: torch.Generator | None = None) -> dict:
        """The configured BFN loss, averaged over the batch (nats per example); ``loss_per_dim`` divides
        by the data dimensions. ``step`` (the trainer's 0-based step) is accepted and unused."""
        cfg = self.config.bfn
        flow_dtype = model_dtypes(self)[1]
        x = data_images(batch, cfg, "BFN.loss", dtype=flow_dtype)
        data = self.flow.prepare_data(x)
        # data prepared and t drawn here: the flow reads neither back (a host sync per step on CUDA)
        state = self.flow._sample(data, draw_time(cfg, x.shape[0], x.device, generator), generator, dtype=flow_dtype,
                                  drawn=True)
        per_example = bfn_loss(cfg, self.flow, self.output, self.predict(state, state.t), data, state, generator)
        out = {"loss": per_example.mean(), "loss_per_dim": per_example.mean().detach() / cfg.num_dims}
        if self.config.report_reconstruction:
            out["recon_loss"] = self.reconstruction_loss(x, generator).mean()
        return out

    @autocast_off  # a statistic in the model's own precision, not the caller's autocast (docs/architecture.md#autocast)
    @torch.no_grad()
    def reconstruction_loss(self, x: torch.Tensor, generator=None) -> torch.Tensor:
        """L^r per example (nats): -ln p_O(x | theta_1, 1), theta_1 ~ p_F(. | x; 1)."""
        flow_dtype = model_dtypes(self)[1]
        x = data_images(x, self.config.bfn, "BFN.reconstruction_loss", name="x", dtype=flow_dtype)
        data = self.flow.prepare_data(x)
        state = self.flow.sample(data, 1.0, generator, dtype=flow_dtype)
        return losses.reconstruction_loss(self.flow, self.output, self.predict(state, state.t), data, state)

    @autocast_off  # the n-step chain in the model's own precision: bf16 networks flipped discrete pixels
    @torch.no_grad()
    def sample(self, n: int, *, generator=None, num_steps: int | None = None, final: str | None = None) -> torch.Tensor:
        """n images in [-1, 1] from the n-step sampler (``num_steps`` defaults to ``sample_steps``), in the
        flow state's dtype (float64 for a float64 model, float32 otherwise)."""
        n = positive_int(n, "n")
        cfg = self.config
        if num_steps is not None:
            positive_int(num_steps, "num_steps")
        if final is not None and final not in ("mode", "sample"):
            raise ValueError(f"final must be 'mode' or 'sample', got {final!r} (None: the config's)")
        device = next(self.parameters()).device
        flow_dtype = model_dtypes(self)[1]
        state = self.flow.prior((n, cfg.bfn.channels, cfg.bfn.image_size, cfg.bfn.image_size), device, dtype=flow_dtype)
        x, _ = sampler.sample(self.flow, self.output, self.predict, state, cfg.sample_steps if num_steps is None else num_steps,
                              generator=generator, final=cfg.final if final is None else final,
                              legacy_skip_last_update=cfg.legacy_skip_last_update)
        return self.flow.data_to_float(x, flow_dtype)


from .._deprecation import moved_names  # noqa: E402

__getattr__ = moved_names(__name__, {"BFNRecipeConfig": "diffrep.recipes.bfn:BFNRecipeConfig"})
