"""The trainer's config dataclass."""

from __future__ import annotations

import dataclasses
from typing import Literal

from ..config import Config, ConfigError

__all__ = ["TrainConfig"]


@dataclasses.dataclass
class TrainConfig(Config):
    """Optimisation, checkpointing and logging settings of :class:`diffrep.train.Trainer`.

    ``batch_size`` is the global batch over all ranks (each rank takes ``batch_size / world_size``).
    The learning rate rises linearly over ``warmup_steps`` and then stays constant (``lr_schedule=
    "constant"``) or follows a half cosine to 0 at ``steps``; it is a pure function of the step, so a
    resumed run continues it exactly. ``ema_decay = 0`` disables EMA; otherwise the decay in use after
    n updates is min(ema_decay, (1 + n)/(10 + n)) when ``ema_warmup`` (LDM ``LitEma``).
    """

    steps: int = 1000
    batch_size: int = 32
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    warmup_steps: int = 0
    lr_schedule: Literal["constant", "cosine"] = "constant"
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping
    ema_decay: float = 0.9999
    ema_warmup: bool = True
    ema_update_after_step: int = 0  # before this step the EMA copies the weights
    seed: int = 0
    num_workers: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    mixed_precision: Literal["auto", "no", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    compile: bool = False
    deterministic: bool = False
    log_every: int = 50
    ckpt_every: int = 1000  # 0: only at the end
    keep_checkpoints: int = 2
    sample_every: int = 0  # 0: no periodic sample grids
    num_samples: int = 16
    sample_from_ema: bool = True
    tensorboard: bool = False
    find_unused_parameters: bool = False
    dist_timeout_s: int = 1800

    def validate(self) -> None:
        for name in ("steps", "batch_size", "log_every", "keep_checkpoints", "num_samples"):
            if getattr(self, name) < 1:
                raise ConfigError(name, f"must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "num_workers", "ckpt_every", "sample_every", "ema_update_after_step"):
            if getattr(self, name) < 0:
                raise ConfigError(name, f"must be >= 0, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ConfigError("lr", f"must be > 0, got {self.lr}")
        if not all(0 <= b < 1 for b in self.betas):
            raise ConfigError("betas", f"each beta must be in [0, 1), got {self.betas}")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError("ema_decay", f"must be in [0, 1), got {self.ema_decay}")
        if self.grad_clip < 0:
            raise ConfigError("grad_clip", f"must be >= 0, got {self.grad_clip}")
        if self.weight_decay < 0:
            raise ConfigError("weight_decay", f"must be >= 0, got {self.weight_decay}")
