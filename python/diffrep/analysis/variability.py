"""Sample variability V = mean ||x - xbar||^2 and its reduction by SAMI's guidance (SAMI Sec. 3 and
A.6, Fig. 5; docs/methods/sami.md#analyses)."""

from __future__ import annotations

import math

import numpy as np
import torch

from .._checks import positive_int
from .._progress import progress
from ..methods.sami import SAMI
from ..ops._full_precision import autocast_off
from ._arrays import real_tensor
from .encoding import check_model, model_images, seeded

__all__ = ["variability", "variability_reduction"]


def variability(samples) -> dict:
    """V = (1/N) sum_n ||x_n - xbar||^2 of a sample set [N, ...] (docs/methods/sami.md#analyses).

    ``v_per_pixel`` divides by the dimension D (diffrep default), ``v_sum`` does not; ``sem_per_pixel``
    is the standard error of the per-sample squared distances / D.
    """
    x = real_tensor(samples, "samples").double()
    if x.dim() < 2 or x.shape[0] < 2:
        raise ValueError(f"samples must be [N >= 2, ...], got {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError("samples contain NaN or inf")
    x = x.flatten(1)
    sq = ((x - x.mean(0, keepdim=True)) ** 2).sum(1)
    D = x.shape[1]
    return {"v_per_pixel": float(sq.mean() / D), "v_sum": float(sq.mean()),
            "sem_per_pixel": float(sq.std(unbiased=True) / math.sqrt(len(sq)) / D), "num_samples": int(x.shape[0]),
            "dim": int(D)}


@autocast_off  # the chains in the model's own precision, not the caller's autocast (docs/architecture.md#autocast)
def variability_reduction(model: SAMI, guides, num_samples: int = 64, *, reference=None,
                          z_mode: str = "fixed", sampler: str | None = None, num_steps: int | None = None,
                          batch_size: int = 256, seed: int = 0) -> dict:
    """Variability of unconditional samples vs samples conditioned on each guide image (Fig. 5, A.6).

    For each guide, ``num_samples`` chains of Algorithm 1 (``z_mode`` as in
    :meth:`SAMI.conditional_sample`); the same number of unconditional chains (g = 0) give
    V_uncond; ``reference`` images (e.g. the test set) give V_data. Reports per-pixel values, the
    mean over guides of V_cond and ``ratio_uncond_over_cond``; with ``reference`` also
    ``ratio_data_over_cond`` = V_data / V_cond, the paper's comparison (Sec. 3: "the variability in the
    test set and in the conditionally generated images", 0.56 -> 0.004 on disks).
    The paper draws 4100 samples per guide; ``num_samples`` sets this.
    """
    model = check_model(model)
    positive_int(num_samples, "num_samples")
    positive_int(batch_size, "batch_size")
    if num_samples < 2:
        raise ValueError("num_samples must be >= 2 to measure variability")
    g = model_images(model, guides, "guides")
    gen = seeded(seed, g.device)  # the model's device (model_images): the chains draw there
    per_guide = []
    for i in progress(range(g.shape[0]), total=g.shape[0], desc="variability: guides", unit="guide"):
        chunks = []
        for start in range(0, num_samples, batch_size):
            n = min(batch_size, num_samples - start)
            chunks.append(model.conditional_sample(g[i:i + 1], n, z_mode=z_mode, sampler=sampler,
                                                   num_steps=num_steps, generator=gen).cpu())
        per_guide.append(variability(torch.cat(chunks)))
    unc = torch.cat([model.sample_unconditional(min(batch_size, num_samples - s), sampler=sampler, num_steps=num_steps,
                                                generator=gen).cpu() for s in range(0, num_samples, batch_size)])
    v_unc = variability(unc)
    v_cond = float(np.mean([p["v_per_pixel"] for p in per_guide]))
    out = {"v_uncond": v_unc["v_per_pixel"], "v_uncond_sem": v_unc["sem_per_pixel"], "v_cond_mean": v_cond,
           "v_cond_per_guide": [p["v_per_pixel"] for p in per_guide],
           "v_cond_sem_per_guide": [p["sem_per_pixel"] for p in per_guide],
           "ratio_uncond_over_cond": v_unc["v_per_pixel"] / v_cond if v_cond > 0 else float("inf"),
           "num_guides": int(g.shape[0]), "num_samples_per_guide": num_samples, "z_mode": z_mode,
           "sampler": sampler or model.config.sampler, "num_steps": num_steps, "seed": seed, "normalisation": "per_pixel"}
    if reference is not None:
        out["v_data"] = variability(torch.as_tensor(reference))["v_per_pixel"]
        out["ratio_data_over_cond"] = out["v_data"] / v_cond if v_cond > 0 else float("inf")
    return out
