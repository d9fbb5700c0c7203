"""What the SAMI analyses share: the model and image checks, seeded generators and the posterior
means of many images in batches (:func:`encode_batched`)."""

from __future__ import annotations

import numpy as np
import torch

from .._checks import non_negative_int, positive_int
from .._progress import progress
from ..methods.sami import SAMI
from ..ops._full_precision import autocast_off

__all__ = ["encode_batched", "check_model", "model_images", "seeded"]


def check_model(model) -> SAMI:
    """``model`` unchanged when it is a SAMI model; a TypeError otherwise."""
    if not isinstance(model, SAMI):
        raise TypeError(f"model must be a diffrep.methods.sami.SAMI, got {type(model).__name__}")
    return model


def model_images(model: SAMI, x, name: str = "images") -> torch.Tensor:
    """``x`` (tensor or array [N, C, H, W]) checked against the model and moved to its device and dtype."""
    model = check_model(model)
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    x = model._check_images(x, name)
    device, dtype = model._device_dtype()
    return x.to(device=device, dtype=dtype)


def seeded(seed, device=None) -> torch.Generator | None:
    """A generator on ``device`` (default the CPU) seeded with ``seed`` (None: the global RNG); ``seed`` an int
    >= 0 (a float, a bool or a negative seed is refused rather than truncated or wrapped). A generator handed
    to the model's chains must live on the model's device (``model._device_dtype()[0]``): SAMI draws its
    noise there, and torch refuses a CPU generator for a CUDA draw (every analysis of a model on a GPU
    failed so); a generator for draws made here on the CPU, then moved, stays on the CPU."""
    if seed is None:
        return None
    return torch.Generator(device=torch.device("cpu") if device is None else device).manual_seed(
        non_negative_int(seed, "seed"))


@autocast_off  # posterior means in the model's own precision, not the caller's autocast (docs/architecture.md#autocast)
def encode_batched(model: SAMI, images, batch_size: int = 256, *, with_logvar: bool = False):
    """Posterior means (and log-variances) of ``images`` [N, C, H, W], in batches; numpy float64."""
    model = check_model(model)
    positive_int(batch_size, "batch_size")
    x = model_images(model, images)
    mus, lvs = [], []
    with torch.no_grad():
        for i in progress(range(0, x.shape[0], batch_size), total=-(-x.shape[0] // batch_size), desc="encoding",
                          unit="batch"):
            mu, lv = model.posterior(x[i:i + batch_size])
            mus.append(mu.double().cpu())
            lvs.append(lv.double().cpu())
    mu = torch.cat(mus).numpy()
    return (mu, torch.cat(lvs).numpy()) if with_logvar else mu

