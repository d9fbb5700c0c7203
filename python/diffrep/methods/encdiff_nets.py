"""Networks of EncDiff beyond the published ones in :mod:`diffrep.nn`: a small unit extractor for CPU
recipes and the FSQ token bottleneck of the DyGA paper's Table 11 (docs/methods/encdiff.md).

- :class:`SmallExtractor`: conv 3x3 stride-2 stack + FC to N scalars, then one MLP per unit
  (:class:`diffrep.nn.encoders.PerUnitMLP`) to D-d tokens with a final ReLU, i.e. the layout of
  the Table 9 extractor at a size a CPU trains in minutes (any image size divisible by 2^levels).
- :class:`FSQTokens`: one shared FSQ codebook (``levels``, Table 11: [8, 5, 5]) on every unit's token:
  Linear(D -> len(levels)), FSQ (:class:`diffrep.nn.fsq.FSQ`), Linear(len(levels) -> D). The
  paper does not say where FSQ sits; this placement (on the tokens, where DyGA acts) is our choice.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated

import torch
from torch import nn

from .._checks import positive_int
from ..config import Config, ConfigError, Ge
from ..nn.encoders import PerUnitMLP
from ..nn.fsq import FSQ
from ..nn.images import check_images, module_dtype

__all__ = ["SmallExtractorConfig", "SmallExtractor", "FSQTokens"]


@dataclasses.dataclass
class SmallExtractorConfig(Config):
    image_size: Annotated[int, Ge(4)] = 32  # height = width of the input images (divisible by 2^len(channels))
    in_channels: Annotated[int, Ge(1)] = 3  # input image channels
    num_units: Annotated[int, Ge(1)] = 10  # N, the number of scalar units / tokens
    token_dim: Annotated[int, Ge(1)] = 16  # D, the dimension of each unit's token
    channels: tuple[Annotated[int, Ge(1)], ...] = (32, 64, 64)  # channels of the stride-2 conv levels (BatchNorm + ReLU each)
    hidden: Annotated[int, Ge(1)] = 128  # width of the hidden layer mapping conv features to the N scalars
    mlp_hidden: tuple[Annotated[int, Ge(1)], ...] = (64,)  # hidden widths of the per-unit MLP scalar -> token

    def validate(self) -> None:
        if not self.channels:
            raise ConfigError("channels", "need at least one conv level")
        if self.image_size % 2 ** len(self.channels):
            raise ConfigError("image_size", f"{self.image_size} is not divisible by 2^{len(self.channels)}")


class SmallExtractor(nn.Module):
    """x [B, C, S, S] -> (scalars [B, N], tokens [B, N, D]), BatchNorm + ReLU after every conv."""

    def __init__(self, cfg: SmallExtractorConfig):
        super().__init__()
        self.config = cfg
        layers, cin = [], cfg.in_channels
        for c in cfg.channels:
            layers += [nn.Conv2d(cin, c, 3, 2, 1), nn.BatchNorm2d(c), nn.ReLU()]
            cin = c
        self.cnn = nn.Sequential(*layers, nn.Flatten())
        side = cfg.image_size // 2 ** len(cfg.channels)
        self.fc = nn.Sequential(nn.Linear(cin * side * side, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, cfg.num_units))
        self.mlp = PerUnitMLP(cfg.num_units, (1, *cfg.mlp_hidden, cfg.token_dim), "relu", final_act=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        x = check_images(x, channels=c.in_channels, size=c.image_size, finite=False, who="SmallExtractor",
                         dtype=module_dtype(self))
        s = self.fc(self.cnn(x))
        return s, self.mlp(s)


class FSQTokens(nn.Module):
    """Tokens (B, N, D) -> FSQ-quantised tokens (B, N, D) through one shared codebook (Table 11)."""

    def __init__(self, token_dim: int, levels: tuple[int, ...]):
        super().__init__()
        positive_int(token_dim, "token_dim")
        if isinstance(levels, (str, bytes)) or not hasattr(levels, "__len__"):
            raise TypeError(f"levels must be a sequence of FSQ levels (ints >= 2), got {levels!r}")
        self.down = nn.Linear(token_dim, len(levels))
        self.fsq = FSQ(list(levels))
        self.up = nn.Linear(len(levels), token_dim)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        if c.dim() != 3:
            raise ValueError(f"FSQTokens: tokens must be (B, N, D), got {tuple(c.shape)}")
        return self.up(self.fsq(self.down(c)))
