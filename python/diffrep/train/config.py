"""The trainer's config dataclass."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

from ..config import Config, Ge, Gt, Lt

__all__ = ["TrainConfig"]


@dataclasses.dataclass
class TrainConfig(Config):
    """Optimisation, checkpointing and logging settings of :class:`diffrep.train.Trainer`.

    ``batch_size`` is the global batch over all ranks (each rank takes ``batch_size / world_size``).
    The learning rate rises linearly over ``warmup_steps`` and then stays constant (``lr_schedule=
    "constant"``) or follows a half cosine to 0 at ``steps``; it is a pure function of the step, so a
    resumed run continues it exactly. ``ema_decay = 0`` disables EMA; otherwise the decay in use after
    n updates is min(ema_decay, (1 + n)/(10 + n)) when ``ema_warmup`` (LDM ``LitEma``). The bounds of
    the fields are declared on them (``diffrep.config.Ge`` ...) and enforced by ``Config``.
    """

    steps: Annotated[int, Ge(1)] = 1000
    batch_size: Annotated[int, Ge(1)] = 32
    lr: Annotated[float, Gt(0)] = 2e-4
    betas: tuple[Annotated[float, Ge(0), Lt(1)], Annotated[float, Ge(0), Lt(1)]] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: Annotated[float, Ge(0)] = 0.0
    warmup_steps: Annotated[int, Ge(0)] = 0
    lr_schedule: Literal["constant", "cosine"] = "constant"
    grad_clip: Annotated[float, Ge(0)] = 1.0  # max global grad norm; 0 disables clipping
    ema_decay: Annotated[float, Ge(0), Lt(1)] = 0.9999
    ema_warmup: bool = True
    ema_update_after_step: Annotated[int, Ge(0)] = 0  # before this step the EMA copies the weights
    seed: Annotated[int, Ge(0)] = 0
    num_workers: Annotated[int, Ge(0)] = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    mixed_precision: Literal["auto", "no", "bf16"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPU
    compile: bool = False
    deterministic: bool = False
    log_every: Annotated[int, Ge(1)] = 50
    ckpt_every: Annotated[int, Ge(0)] = 1000  # 0: only at the end
    keep_checkpoints: Annotated[int, Ge(1)] = 2
    sample_every: Annotated[int, Ge(0)] = 0  # 0: no periodic sample grids
    num_samples: Annotated[int, Ge(1)] = 16
    sample_from_ema: bool = True
    tensorboard: bool = False
    find_unused_parameters: bool = False
    dist_timeout_s: int = 1800
