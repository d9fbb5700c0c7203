"""Disks: the SAMI synthetic data set (docs/data.md#disks, lineage B, the SAMI author's generator).

One soft-edged disk of fixed foreground intensity on a uniform background. Three factors, in this order:
``x`` (centre column), ``y`` (centre row), ``background`` (intensity). Defaults reproduce lineage B's
32x32 configuration: outer radius 6, transition 2 (raised-cosine ramp from the inner radius
``radius - transition`` to ``radius``: value = bg + (fg - bg) * (1 + cos(pi t)) / 2), foreground 0.5,
centres in [6, 26], background in [0, 1], pixel grid at integer coordinates (pixel (i, j) sits at
(x=j, y=i), no +0.5).

The continuous factors are discretised into a grid (``bins``, default 32 x 32 x 32) so that discrete
metrics run: ``factor_values`` are ``linspace(low, high, bins)`` (both ends included, like dSprites
positions; a choice, the paper is silent). Grid images render at the grid values; with ``jitter=True``
each image instead uses a continuous value drawn uniformly within its bin's cell (half a step each side,
clipped to the range), seeded by ``(seed, index)`` for item access and by the caller's rng in
``sample_observations_from_factors``. :meth:`sample_continuous` draws the original continuous data set
(centre and background uniform), e.g. 50,000 images as in lineage B.

Images: float32 (n, S, S, 1) in [0, 1] (the background equals the factor value exactly).
``hard_edge=True`` draws a hard disk (a pixel is inside iff its squared distance <= radius^2, lineage A).
``ds[i]`` follows ``item_format`` (default float32 CHW in [-1, 1], the 2x - 1 map of lineage B).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .._checks import finite_float, non_negative_int, positive_int
from .base import GroundTruthData, LRUCache, check_count, as_generator, check_flag, check_item_format


@dataclass
class DisksConfig:
    size: int = 32  # height = width of the images in pixels (lineage B: 32)
    radius: float = 6.0  # outer radius of the disk in pixels
    transition: float = 2.0  # width of the raised-cosine edge, from radius - transition to radius
    foreground: float = 0.5  # intensity of the disk, in [0, 1]
    x_range: tuple[float, float] = (6.0, 26.0)  # (low, high) of the centre column, factor x
    y_range: tuple[float, float] = (6.0, 26.0)  # (low, high) of the centre row, factor y
    background_range: tuple[float, float] = (0.0, 1.0)  # (low, high) of the background intensity, factor background
    bins: tuple[int, int, int] = (32, 32, 32)  # grid values per factor (x, y, background) for the discrete metrics
    hard_edge: bool = False  # draw a hard disk (inside iff distance^2 <= radius^2, lineage A)

    def validate(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, (int, np.integer)) or self.size < 2:
            raise ValueError(f"size must be an int >= 2, got {self.size!r}")
        finite_float(self.radius, "radius")  # None / a str failed in a comparison naming neither
        finite_float(self.transition, "transition")
        finite_float(self.foreground, "foreground")
        for name in ("x_range", "y_range", "background_range"):
            pair = getattr(self, name)
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise ValueError(f"{name} must be a pair (low, high) of finite numbers, got {pair!r}")
            for v in pair:
                finite_float(v, name)
        if not isinstance(self.bins, (tuple, list)):
            raise ValueError(f"bins must be three ints >= 1, got {self.bins!r}")
        if not self.radius > 0:
            raise ValueError(f"radius must be > 0, got {self.radius}")
        if not self.hard_edge and not (0 < self.transition <= self.radius):
            raise ValueError(f"transition must be in (0, radius={self.radius}], got {self.transition}")
        for name in ("x_range", "y_range", "background_range"):
            lo, hi = getattr(self, name)
            if not lo <= hi:
                raise ValueError(f"{name} must be (low, high) with low <= high, got {(lo, hi)}")
        # images are float32 in [0, 1] (docs/data.md#conventions): both intensities must lie there
        if not 0.0 <= self.foreground <= 1.0:
            raise ValueError(f"foreground must be an intensity in [0, 1], got {self.foreground}")
        if not 0.0 <= self.background_range[0] <= self.background_range[1] <= 1.0:
            raise ValueError(f"background_range must lie in [0, 1] (intensities), got {tuple(self.background_range)}")
        if len(self.bins) != 3 or any(isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1
                                      for b in self.bins):
            raise ValueError(f"bins must be three ints >= 1, got {self.bins}")
        check_flag(self.hard_edge, "hard_edge")


def render_disks(x, y, background, cfg: DisksConfig | None = None) -> np.ndarray:
    """Render disks at continuous centres ``x`` (column), ``y`` (row) on backgrounds ``background``.

    All three are 1-D arrays of the same length n. Returns float32 (n, size, size, 1) in [0, 1].
    """
    if cfg is not None and not isinstance(cfg, DisksConfig):
        raise TypeError(f"cfg must be a DisksConfig or None, got {type(cfg).__name__}")
    cfg = cfg or DisksConfig()
    arrays = []
    for name, a in (("x", x), ("y", y), ("background", background)):
        if a is None or isinstance(a, (str, bytes)) or np.iscomplexobj(a):
            raise TypeError(f"{name} must be a 1-D array of real numbers, got {type(a).__name__}")
        try:
            a = np.asarray(a, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a 1-D array of real numbers, got {type(a).__name__}") from None
        if a.ndim != 1:  # a (1, n) array was flattened silently
            raise ValueError(f"{name} must be a 1-D array [n], got shape {a.shape}")
        if not np.isfinite(a).all():  # a NaN centre or background rendered a NaN image
            raise ValueError(f"{name} contains NaN or inf")
        arrays.append(a)
    x, y, bg = arrays
    if not (len(x) == len(y) == len(bg)):
        raise ValueError(f"x, y and background must have equal lengths, got {len(x)}, {len(y)}, {len(bg)}")
    grid = np.arange(cfg.size, dtype=np.float64)
    d2 = (grid[None, None, :] - x[:, None, None]) ** 2 + (grid[None, :, None] - y[:, None, None]) ** 2
    if cfg.hard_edge:
        w = (d2 <= cfg.radius**2).astype(np.float64)
    else:
        r = np.sqrt(d2)
        r_in = cfg.radius - cfg.transition
        t = np.clip((r - r_in) / cfg.transition, 0.0, 1.0)
        w = 0.5 * (1.0 + np.cos(np.pi * t))
    fg = cfg.foreground
    img = bg[:, None, None] + (fg - bg[:, None, None]) * w
    return img.astype(np.float32)[..., None]


class Disks(GroundTruthData):
    """Procedural SAMI disks as ground-truth data (see the module docstring for conventions)."""

    name = "disks"
    source = "procedural"

    def __init__(self, config: DisksConfig | None = None, jitter: bool = False, seed: int = 0,
                 item_format: str = "pm1", cache_size: int = 65536, **overrides):
        if config is not None and not isinstance(config, DisksConfig):
            raise TypeError(f"config must be a DisksConfig or None, got {type(config).__name__}")
        cfg = config or DisksConfig()
        if overrides:
            cfg = DisksConfig(**{**cfg.__dict__, **overrides})
        cfg.validate()
        self.config, self.jitter, self.seed = cfg, check_flag(jitter, "jitter"), non_negative_int(seed, "seed")
        self.item_format = check_item_format(item_format)
        bx, by, bb = (int(b) for b in cfg.bins)
        values = [np.linspace(*cfg.x_range, bx), np.linspace(*cfg.y_range, by), np.linspace(*cfg.background_range, bb)]
        self._init_factors(("x", "y", "background"), (bx, by, bb), values)
        self._cache = LRUCache(cache_size)
        self._ranges = np.array([cfg.x_range, cfg.y_range, cfg.background_range], dtype=np.float64)

    def _steps(self) -> np.ndarray:
        return np.array([(v[-1] - v[0]) / (len(v) - 1) if len(v) > 1 else 0.0 for v in self.factor_values])

    def _continuous(self, factors: np.ndarray, rng) -> np.ndarray:
        vals = np.stack([self.factor_values[i][factors[:, i]] for i in range(3)], axis=1)
        if rng is None:
            return vals
        half = self._steps() / 2
        vals = vals + rng.uniform(-1.0, 1.0, size=vals.shape) * half
        return np.clip(vals, self._ranges[:, 0], self._ranges[:, 1])

    def _render_idx(self, idx: np.ndarray) -> np.ndarray:
        f = self._targets(idx)
        if self.jitter:
            vals = np.stack([self._continuous(f[k : k + 1], np.random.default_rng([self.seed, int(i)]))[0]
                             for k, i in enumerate(idx)]) if len(idx) else np.zeros((0, 3))
        else:
            vals = self._continuous(f, None)
        return render_disks(vals[:, 0], vals[:, 1], vals[:, 2], self.config)

    def _images(self, idx):
        return self._cache.get_many(idx, self._render_idx)

    def sample_observations_from_factors(self, factors, rng=None) -> np.ndarray:
        """float32 (n, S, S, 1) in [0, 1]; with ``jitter`` the values are drawn within each bin from ``rng``."""
        f = self.check_factors(factors)
        if not self.jitter:
            return self._images(self.factors_to_index(f))
        vals = self._continuous(f, as_generator(rng))
        return render_disks(vals[:, 0], vals[:, 1], vals[:, 2], self.config)

    def sample_continuous(self, num: int, rng=None) -> tuple[np.ndarray, np.ndarray]:
        """Lineage B sampling: (values float64 (num, 3) = x, y, background uniform in their ranges,
        images float32 (num, S, S, 1) in [0, 1])."""
        f = self.sample_factors(check_count(num, "num"), 0)
        rng = as_generator(rng)
        vals = rng.uniform(self._ranges[:, 0], self._ranges[:, 1], size=(len(f), 3)).reshape(len(f), 3)
        return vals, render_disks(vals[:, 0], vals[:, 1], vals[:, 2], self.config)


def disks_geometry(size: int = 32) -> Disks:
    """The SAMI disks (:class:`Disks`) at image side ``size``: lineage B's 32x32 geometry (docs/methods/sami.md#disks-dataset:
    radius 6 with a 2-px raised-cosine edge, centres in [6, 26]^2, background U[0, 1], foreground
    0.5), scaled to the side for other sizes (radius 6/32 of it, centres in [6, 26]/32 of it), so
    that a 16x16 set is the 32x32 one at half the resolution (same factors, same semantics)."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 2:
        raise ValueError(f"size must be an int >= 2, got {size!r}")
    if size == 32:
        return Disks()
    k = size / 32
    return Disks(size=size, radius=6.0 * k, transition=2.0 * k, x_range=(6 * k, 26 * k), y_range=(6 * k, 26 * k))


class DisksTensorDataset(torch.utils.data.Dataset):
    """``(image [1, S, S] in [-1, 1], factors [3] = (c_x, c_y, I_bg))`` from ``num_images``
    continuous uniform draws of the :func:`disks_geometry` disks (the SAMI training set)."""

    def __init__(self, num_images: int = 2000, size: int = 32, seed: int = 0):
        positive_int(num_images, "num_images")
        non_negative_int(seed, "seed")
        ds = disks_geometry(size)
        values, images = ds.sample_continuous(num_images, np.random.default_rng(seed))
        self.disks = ds
        self.images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous() * 2 - 1
        self.factors = torch.from_numpy(values).float()
        self.factor_names = ("x", "y", "background")

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i):
        return self.images[i], self.factors[i]
