"""ToyShapes: procedurally drawn coloured squares and disks, the data of the ``demo/toy-ddpm`` and
``vq/toy-cpu`` recipes (offline, deterministic, small enough to train on in a minute on a CPU)."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import torch
from torch.utils.data import Dataset

from ..config import Config, Ge

__all__ = ["ToyShapesConfig", "ToyShapes"]


@dataclasses.dataclass
class ToyShapesConfig(Config):
    """``num_images`` images of one filled square or disk each, random colour, size and position."""

    num_images: Annotated[int, Ge(1)] = 1024
    image_size: Annotated[int, Ge(8)] = 16  # height = width of the rendered images in pixels
    seed: int = 0  # seed of the generator that draws shapes, colours, sizes and positions


class ToyShapes(Dataset):
    """Deterministic toy images in [-1, 1], shape [3, S, S]; image i depends only on (seed, i)."""

    def __init__(self, config: ToyShapesConfig | None = None):
        if config is not None and not isinstance(config, ToyShapesConfig):
            raise TypeError(f"config must be a ToyShapesConfig or None, got {type(config).__name__}")
        self.config = config or ToyShapesConfig()
        c = self.config
        g = torch.Generator().manual_seed(c.seed)
        S = c.image_size
        n = c.num_images
        kind = torch.randint(0, 2, (n,), generator=g)
        color = torch.rand(n, 3, generator=g) * 1.6 - 0.8
        radius = torch.rand(n, generator=g) * (S / 4 - S / 8) + S / 8
        cx = torch.rand(n, generator=g) * (S - 2 * radius) + radius
        cy = torch.rand(n, generator=g) * (S - 2 * radius) + radius
        ys, xs = torch.meshgrid(torch.arange(S) + 0.5, torch.arange(S) + 0.5, indexing="ij")
        dx, dy = xs[None] - cx[:, None, None], ys[None] - cy[:, None, None]
        disk = (dx**2 + dy**2) <= radius[:, None, None] ** 2
        square = (dx.abs() <= radius[:, None, None]) & (dy.abs() <= radius[:, None, None])
        mask = torch.where(kind[:, None, None] == 0, disk, square).float()
        self.images = (-1 + mask[:, None] * (color[:, :, None, None] + 1)).contiguous()

    def __len__(self) -> int:
        return self.config.num_images

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]
