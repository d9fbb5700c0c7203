"""Bayes-optimal noise prediction on the procedural disks: how much each factor is worth to a
denoiser at each noise level.

The disks images are a deterministic function of three factors (c_x, c_y, I_bg). On a grid of
factor values the posterior p(factors | x_t) is exact (a softmax of Gaussian log-likelihoods), so
the minimum eps-MSE is computable for a denoiser that knows nothing beyond x_t (``unconditional``),
one that also knows the background (``given_background``) or the disk centre (``given_position``);
one that knows all three predicts eps exactly. The gaps are what an ideal SAMI latent carrying that
factor could remove from the loss (Eq. 10's noise error) at that level -- the yardstick for a
trained model's guided eps-MSE (``scripts/validate_sami.py`` reports both).

The prior is the uniform grid (``grid`` values per factor over the geometry's ranges), a
discretisation of lineage B's continuous uniform factors; test images are drawn from the grid, so
the conditioned posteriors contain the truth. eps-MSE here is per pixel (``pixel_reduction='mean'``):
MMSE_eps = abar/(1 - abar) * E||x_0 - E[x_0 | x_t, ...]||^2 / D, with images in [-1, 1].

The grid stands for the continuous prior only where the posterior spans several grid cells. On the
16x16 CPU disks (T = 400 linear) with 33 values per factor the numbers agree with 17 and 49 values
(within the +-5-10% sampling error of 256 images) from t ~ 75 up; at t = 25 they double from 17
to 49 values, because a coarse grid is a more informative prior than the continuous one. At low
noise use a finer grid, or read the numbers as lower bounds.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .._checks import positive_int
from .._progress import progress
from ..data.disks import Disks, disks_geometry, render_disks
from ..diffusion import NoiseSchedule
from ..methods.sami import SAMI

__all__ = ["disks_bayes_eps_mse"]

_MAX_GRID_ELEMENTS = 400_000_000  # grid images x pixels held in float64 (3.2 GB)


def disks_bayes_eps_mse(schedule, timesteps: Sequence[int], disks=None, *, grid: Sequence[int] = (33, 33, 33),
                        num_images: int = 256, seed: int = 0, chunk: int = 64) -> dict:
    """Minimum eps-MSE per pixel at each of ``timesteps`` on the disks of ``disks`` (a
    :class:`diffrep.data.disks.Disks`; default: the SAMI geometry at the model's image size, or at
    32x32 when given a schedule).

    ``schedule``: a :class:`~diffrep.diffusion.NoiseSchedule` or a SAMI model (its schedule).
    Returns lists aligned with ``timesteps``: ``snr`` (abar/(1 - abar)), ``unconditional``,
    ``given_background``, ``given_position`` (all the same ``num_images`` grid images and noise).
    """
    size = 32
    if isinstance(schedule, SAMI):
        size, schedule = schedule.config.denoiser.image_size, schedule.schedule
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule or a SAMI model, got {type(schedule).__name__}")
    disks = disks_geometry(size) if disks is None else disks
    if not isinstance(disks, Disks):
        raise TypeError(f"disks must be a diffrep.data.disks.Disks, got {type(disks).__name__}")
    positive_int(num_images, "num_images")
    positive_int(chunk, "chunk")
    T = schedule.num_timesteps
    ts = list(timesteps)
    if not ts or any(isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= t < T for t in ts):
        raise ValueError(f"timesteps must be a non-empty sequence of ints in [0, {T}), got {timesteps!r}")
    grid = tuple(grid)
    if len(grid) != 3 or any(isinstance(g, bool) or not isinstance(g, (int, np.integer)) or g < 1 for g in grid):
        raise ValueError(f"grid must be three ints >= 1 (values of c_x, c_y, I_bg), got {grid!r}")
    cfg = disks.config
    n_grid = int(np.prod(grid))
    if n_grid * cfg.size**2 > _MAX_GRID_ELEMENTS:
        raise ValueError(f"grid {grid} at {cfg.size}x{cfg.size} needs {n_grid * cfg.size ** 2 * 8 / 1e9:.1f} GB; "
                         f"use fewer values per factor")

    axes = [np.linspace(*r, g) for r, g in zip((cfg.x_range, cfg.y_range, cfg.background_range), grid)]
    ix, iy, ib = (a.ravel() for a in np.meshgrid(*(np.arange(g) for g in grid), indexing="ij"))
    bank = torch.from_numpy(render_disks(axes[0][ix], axes[1][iy], axes[2][ib], cfg)).flatten(1).double() * 2 - 1
    bank_sq = (bank**2).sum(1)  # [N]
    ix, iy, ib = (torch.from_numpy(a) for a in (ix, iy, ib))
    rng = np.random.default_rng(seed)
    truth = torch.from_numpy(rng.integers(0, n_grid, num_images))
    gen = torch.Generator().manual_seed(int(seed))
    D = bank.shape[1]
    out = {"timesteps": [int(t) for t in ts], "snr": [], "unconditional": [], "given_background": [],
           "given_position": [], "grid": list(grid), "num_images": num_images, "seed": seed}
    abar = schedule.alphas_cumprod.double()
    for t in progress(ts, total=len(ts), desc="exact Bayes: timesteps", unit="t"):
        ab = abar[t]
        sq_err = torch.zeros(3, dtype=torch.float64)
        noise = torch.randn((num_images, D), generator=gen, dtype=torch.float64)
        for lo in range(0, num_images, chunk):
            idx = truth[lo:lo + chunk]
            x0 = bank[idx]
            xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noise[lo:lo + chunk]
            # log N(x_t; sqrt(abar) x0_k, (1 - abar) I) up to a per-row constant: [n, N]
            loglik = (ab.sqrt() * (xt @ bank.T) - 0.5 * ab * bank_sq) / (1 - ab)
            same_bg = ib[None, :] == ib[idx][:, None]
            same_pos = (ix[None, :] == ix[idx][:, None]) & (iy[None, :] == iy[idx][:, None])
            for j, keep in enumerate((None, same_bg, same_pos)):
                ll = loglik if keep is None else loglik.masked_fill(~keep, float("-inf"))
                x0_hat = torch.softmax(ll, 1) @ bank
                sq_err[j] += ((x0 - x0_hat) ** 2).sum()
        mse = (ab / (1 - ab)) * sq_err / (num_images * D)
        out["snr"].append(float(ab / (1 - ab)))
        for j, key in enumerate(("unconditional", "given_background", "given_position")):
            out[key].append(float(mse[j]))
    return out
