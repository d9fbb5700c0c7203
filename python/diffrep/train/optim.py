"""The trainer's optimisers: the learning-rate schedule (linear warm-up, then constant or half-cosine)
and the settings of the second AdamW that two-optimiser models get for their discriminator
(docs/architecture.md#trainer-checkpoints-and-resume; the two-optimiser surface: :mod:`diffrep.train.trainer`).
"""

from __future__ import annotations

import math

from torch import nn

from .._checks import non_negative_int
from .config import TrainConfig

__all__ = ["lr_at"]


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Learning rate for optimiser step ``step`` (0-based): linear warm-up, then constant or half-cosine."""
    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"lr_at: cfg must be a TrainConfig, got {type(cfg).__name__}")
    step = non_negative_int(step, "step")  # with a warm-up a negative step gave a learning rate <= 0
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "cosine":
        span = max(cfg.steps - cfg.warmup_steps, 1)
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(step - cfg.warmup_steps, span) / span))
    return cfg.lr


_DISC_KEYS = ("lr", "betas", "eps", "weight_decay")


def _disc_optimizer_settings(model: nn.Module, cfg: TrainConfig) -> dict:
    """The second AdamW's settings: the train config's, overridden by the model's
    ``discriminator_optimizer_settings()`` where it has one (checked: known keys, lr > 0, betas in [0, 1))."""
    settings = {"lr": cfg.lr, "betas": tuple(cfg.betas), "eps": cfg.eps, "weight_decay": cfg.weight_decay}
    own = getattr(model, "discriminator_optimizer_settings", None)
    if not callable(own):
        return settings
    extra = own()
    name = f"{type(model).__name__}.discriminator_optimizer_settings()"
    if not isinstance(extra, dict) or set(extra) - set(_DISC_KEYS):
        raise ValueError(f"{name} must return a dict with keys among {_DISC_KEYS}, got {extra!r}")
    settings.update(extra)
    betas = settings["betas"]

    def number(v) -> bool:  # None or "1e-8" compared with a number raised a bare TypeError
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if not (number(settings["lr"]) and settings["lr"] > 0):
        raise ValueError(f"{name}: lr must be > 0, got {settings['lr']!r}")
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2 and all(number(b) and 0 <= b < 1 for b in betas)):
        raise ValueError(f"{name}: betas must be two numbers in [0, 1), got {betas!r}")
    if not (number(settings["eps"]) and settings["eps"] > 0 and number(settings["weight_decay"])
            and settings["weight_decay"] >= 0):
        raise ValueError(f"{name}: eps must be > 0 and weight_decay >= 0, got {settings['eps']!r}, "
                         f"{settings['weight_decay']!r}")
    settings["betas"] = tuple(float(b) for b in betas)
    return settings
