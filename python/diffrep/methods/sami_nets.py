"""SAMI's disks inference network (App. A.5, Table A.5): f_phi(x) = (mu, log sigma^2), blind to t."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

import torch
from torch import nn

from ..config import Config, ConfigError, Ge
from ..nn.encoders import gaussian_head_output
from ..nn.images import check_images, module_dtype
from ..nn.pretrained import PretrainedMixin

__all__ = ["SAMIConvNetConfig", "SAMIConvNet"]


@dataclasses.dataclass
class SAMIConvNetConfig(Config):
    """SAMI's disks inference network (App. A.5, Table A.5): two 3x3 stride-2 convolutions of
    ``base_channels * channel_mult[i]`` channels with ReLU and no biases. The head is not described
    by the paper (docs/methods/sami.md#architectures); chosen here: flatten, then one bias-free linear map per head, the
    variance head through softplus then square (sigma = softplus(a))."""

    image_size: Annotated[int, Ge(1)] = 32  # height = width of the input images
    in_channels: Annotated[int, Ge(1)] = 1  # input image channels
    base_channels: Annotated[int, Ge(1)] = 48  # width base; level i has base_channels * channel_mult[i] channels
    channel_mult: tuple[Annotated[int, Ge(1)], ...] = (2, 2)  # multiplier per 3x3 stride-2 conv (two levels in Table A.5)
    latent_dim: Annotated[int, Ge(1)] = 3  # dimension of z
    act: Literal["relu", "silu"] = "relu"  # activation after each conv (Table A.5: ReLU)
    bias: bool = False  # biases in convs and heads (Table A.5: none)
    variance_head: Literal["softplus_sq", "logvar"] = "softplus_sq"  # sigma = softplus(a) then squared, or a log-variance head

    def validate(self) -> None:
        if not self.channel_mult:
            raise ConfigError("channel_mult", f"needs at least one positive multiplier, got {self.channel_mult}")

    @property
    def feature_size(self) -> int:
        s = self.image_size
        for _ in self.channel_mult:
            s = (s - 1) // 2 + 1  # 3x3, stride 2, padding 1
        return s


class SAMIConvNet(PretrainedMixin, nn.Module):
    """x [B, C, S, S] -> (mean, logvar) [B, latent_dim]; blind to the noise level; no batch coupling."""

    config_class = SAMIConvNetConfig

    def __init__(self, config: SAMIConvNetConfig):
        super().__init__()
        cfg = self._init_config(config)
        layers: list[nn.Module] = []
        cin = cfg.in_channels
        for m in cfg.channel_mult:
            cout = cfg.base_channels * m
            layers += [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=cfg.bias),
                       nn.ReLU() if cfg.act == "relu" else nn.SiLU()]
            cin = cout
        self.body = nn.Sequential(*layers, nn.Flatten())
        feat = cin * cfg.feature_size ** 2
        self.mean_head = nn.Linear(feat, cfg.latent_dim, bias=cfg.bias)
        self.var_head = nn.Linear(feat, cfg.latent_dim, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        x = check_images(x, channels=c.in_channels, size=c.image_size, finite=False, who="SAMIConvNet",
                         dtype=module_dtype(self))
        h = self.body(x)
        return gaussian_head_output(self.mean_head(h), self.var_head(h), c.variance_head)
