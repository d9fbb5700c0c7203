"""The data/flow/output part of a BFN configuration, shared by the plain BFN and ParamReL.

``data``: ``"continuous"`` (delta output, BFN §4), ``"discretised"`` (discretised Normal output over
``num_bins`` bins, §5) or ``"discrete"`` (``num_classes`` classes, §6). Schedules use the reference
keys: ``sigma1`` (``min_variance`` = sigma1^2; 1e-3 for 256 bins, 1e-3^0.5 for 16 bins, docs/kernels/bfn.md#reference-defaults) and
``sqrt_beta1`` (``max_sqrt_beta``; 3 for bMNIST, docs/kernels/bfn.md#reference-defaults).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

from ..config import Config, ConfigError, Ge, Gt, Lt
from .distributions import CategoricalOutput, DeltaOutput, DiscretisedNormalOutput
from .flows import ContinuousFlow, DiscreteFlow

__all__ = ["BFNDataConfig", "make_flow", "make_output"]


@dataclasses.dataclass
class BFNDataConfig(Config):
    data: Literal["continuous", "discretised", "discrete"] = "discrete"  # data type and output distribution: continuous (delta, BFN Sec. 4), discretised (Sec. 5) or discrete (Sec. 6)
    image_size: Annotated[int, Ge(1)] = 28  # height = width of the images in pixels
    channels: Annotated[int, Ge(1)] = 1  # image channels (1 for binarised MNIST)
    num_bins: Annotated[int, Ge(2)] = 256  # discretised data
    num_classes: Annotated[int, Ge(2)] = 2  # discrete data
    sigma1: Annotated[float, Gt(0), Lt(1)] = 1e-3  # continuous/discretised schedule
    sqrt_beta1: Annotated[float, Gt(0)] = 3.0  # discrete schedule (reference max_sqrt_beta)
    noise_pred: bool = True  # continuous/discretised: the network predicts the flow noise (ParamReL Eq. 10)
    clip_range: Annotated[float, Ge(0)] = 1.0  # delta output clip (reference DeltaFactory); 0 disables
    clip: bool = True  # discretised: edge bins absorb the tails
    eps_sign: Literal[-1, 1] = -1  # -1: BFN's x_hat = mu/gamma - ...; +1: ParamReL Eq. 10 as printed
    time_loss: Literal["continuous", "discrete"] = "continuous"  # L^inf or L^n
    loss_steps: Annotated[int, Ge(0)] = 0  # n of L^n (time_loss="discrete")
    loss_mc_samples: Annotated[int, Ge(1)] = 10  # sender draws of the L^n Monte-Carlo estimate
    receiver: Literal["exact", "factorised"] = "exact"  # discrete data, L^n (docs/kernels/bfn.md#discrete-flow)

    def validate(self) -> None:
        if self.time_loss == "discrete" and self.loss_steps < 1:
            raise ConfigError("loss_steps", "time_loss='discrete' needs loss_steps >= 1 (the n of L^n)")
        if self.time_loss == "continuous" and self.loss_steps:
            raise ConfigError("loss_steps", f"{self.loss_steps} is the n of L^n and is used only with "
                              "time_loss='discrete' (time_loss is 'continuous', L^inf); set time_loss or leave loss_steps 0")

    @property
    def num_dims(self) -> int:
        return self.channels * self.image_size**2


def checked_config(cfg) -> BFNDataConfig:
    if not isinstance(cfg, BFNDataConfig):
        raise TypeError(f"cfg must be a BFNDataConfig, got {type(cfg).__name__}")
    return cfg


def make_flow(cfg: BFNDataConfig):
    if checked_config(cfg).data == "discrete":
        return DiscreteFlow(cfg.num_classes, cfg.sqrt_beta1)
    return ContinuousFlow(cfg.sigma1, cfg.num_bins if cfg.data == "discretised" else None)


def make_output(cfg: BFNDataConfig):
    if checked_config(cfg).data == "discrete":
        return CategoricalOutput(cfg.num_classes)
    if cfg.data == "discretised":
        return DiscretisedNormalOutput(cfg.sigma1, cfg.num_bins, cfg.noise_pred, cfg.clip, cfg.eps_sign)
    return DeltaOutput(cfg.sigma1, cfg.noise_pred, cfg.clip_range, cfg.eps_sign)


def unet_io(cfg: BFNDataConfig) -> dict:
    """The U-Net channel fields this data configuration needs."""
    flow, out = make_flow(cfg), make_output(cfg)
    return {"image_size": cfg.image_size, "in_channels": flow.input_channels(cfg.channels),
            "out_channels": out.out_channels(cfg.channels), "num_outputs": out.num_outputs}


def check_unet(cfg: BFNDataConfig, unet, field: str = "unet") -> None:
    """ConfigError naming the U-Net field that disagrees with the data configuration."""
    for k, v in unet_io(cfg).items():
        if getattr(unet, k) != v:
            raise ConfigError(f"{field}.{k}", f"must be {v} for data={cfg.data!r} with {cfg.channels} channel(s), "
                              f"got {getattr(unet, k)}")
