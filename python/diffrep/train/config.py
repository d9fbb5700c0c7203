"""The trainer's config dataclass."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal

from ..config import Config, ConfigError, Ge, Gt, Lt

__all__ = ["TrainConfig", "RESUMABLE", "resume_changes"]

# What a resume may change: how far the run goes, how it is logged, checkpointed, sampled and evaluated, and where
# it executes. Anything else (the optimiser, the batch, the seed, ...) would make one run of two configurations
# that its record cannot describe (the trainer compares a checkpoint's train config; diffrep train the whole
# config.yaml).
RESUMABLE = frozenset((
    "steps", "log_every", "ckpt_every", "keep_checkpoints", "sample_every", "num_samples", "sample_from_ema",
    "eval_every", "eval_metrics", "eval_num_samples", "tensorboard", "wandb", "wandb_project", "wandb_mode",
    "num_workers", "device", "compile", "find_unused_parameters", "dist_timeout_s"))


def resume_changes(saved: dict, now: dict, resumable) -> str:
    """The fields of two flat configs that differ outside ``resumable``, as a resume refusal shows them
    (``"k (old -> new), ..."``, at most four and a count; docs/architecture.md, "Trainer, checkpoints and
    resume"); "" when none. A field only one side has comes from
    another diffrep version (a field added since takes its default) and is not a change."""
    if not isinstance(saved, dict) or not isinstance(now, dict):
        raise TypeError(f"resume_changes: saved and now must be dicts, got {type(saved).__name__}, "
                        f"{type(now).__name__}")
    changed = sorted(k for k in saved.keys() & now.keys() if k not in resumable and saved[k] != now[k])
    shown = ", ".join(f"{k} ({saved[k]!r} -> {now[k]!r})" for k in changed[:4])
    return shown + (f" and {len(changed) - 4} more" if len(changed) > 4 else "")


@dataclasses.dataclass
class TrainConfig(Config):
    """Optimisation, checkpointing and logging settings of :class:`diffrep.train.Trainer`.

    ``batch_size`` is the global batch over all ranks (each rank takes ``batch_size / world_size``).
    The learning rate rises linearly over ``warmup_steps`` and then stays constant (``lr_schedule=
    "constant"``) or follows a half cosine to 0 at ``steps``; it is a pure function of the step, so a
    resumed run continues it exactly. ``ema_decay = 0`` disables EMA; otherwise the decay in use after
    n updates is min(ema_decay, (1 + n)/(10 + n)) when ``ema_warmup`` (LDM ``LitEma``). The bounds of
    the fields are declared on them (``diffrep.config.Ge`` ...) and enforced by ``Config``.
``grad_accum_steps`` splits each rank's share of the batch into that many micro-batches whose
gradients are summed (each loss divided by their number) before one optimiser step, so the
optimisation is that of ``batch_size`` whatever the memory; ``mixed_precision="fp16"`` runs the
forward under float16 autocast with a dynamic loss scale (``torch.amp.GradScaler``, saved in the
checkpoints), ``"bf16"`` under bfloat16 autocast without one.
    """

    steps: Annotated[int, Ge(1)] = 1000  # optimiser steps of the whole run
    batch_size: Annotated[int, Ge(1)] = 32  # global batch per optimiser step (all ranks and accumulated micro-batches)
    grad_accum_steps: Annotated[int, Ge(1)] = 1  # micro-batches summed per optimiser step (batch_size / (ranks x this) each)
    lr: Annotated[float, Gt(0)] = 2e-4  # peak AdamW learning rate
    betas: tuple[Annotated[float, Ge(0), Lt(1)], Annotated[float, Ge(0), Lt(1)]] = (0.9, 0.999)  # AdamW (beta1, beta2)
    eps: Annotated[float, Ge(0)] = 1e-8  # AdamW epsilon (torch.optim.AdamW refuses a negative one)
    weight_decay: Annotated[float, Ge(0)] = 0.0  # AdamW decoupled weight decay
    warmup_steps: Annotated[int, Ge(0)] = 0  # linear learning-rate warm-up from lr/warmup_steps to lr
    lr_schedule: Literal["constant", "cosine"] = "constant"  # after warm-up: constant, or half cosine to 0 at steps
    grad_clip: Annotated[float, Ge(0)] = 1.0  # max global grad norm; 0 disables clipping
    ema_decay: Annotated[float, Ge(0), Lt(1)] = 0.9999  # EMA decay of the weights; 0 disables the EMA copy
    ema_warmup: bool = True  # decay min(ema_decay, (1 + n)/(10 + n)) after n updates (LDM LitEma)
    ema_update_after_step: Annotated[int, Ge(0)] = 0  # before this step the EMA copies the weights
    # < 2^63 leaves torch's [0, 2^64) room for the rank and a resume's step added to it: a larger seed failed at
    # torch.manual_seed ("Overflow when unpacking long long"), naming no field
    seed: Annotated[int, Ge(0), Lt(2**63)] = 0  # seeds weights, data order and every random stream (rank r adds r)
    num_workers: Annotated[int, Ge(0)] = 0  # DataLoader worker processes per rank
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when available
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"  # auto: bf16 on CUDA, fp32 on CPU; fp16 adds a GradScaler
    compile: bool = False  # torch.compile the loss computation
    deterministic: bool = False  # deterministic kernels (torch.use_deterministic_algorithms)
    log_every: Annotated[int, Ge(1)] = 50  # steps between logged averages
    ckpt_every: Annotated[int, Ge(0)] = 1000  # 0: only at the end
    keep_checkpoints: Annotated[int, Ge(1)] = 2  # newest checkpoints kept
    sample_every: Annotated[int, Ge(0)] = 0  # 0: no periodic sample grids
    num_samples: Annotated[int, Ge(1)] = 16  # images in each periodic sample grid
    sample_from_ema: bool = True  # sample grids from the EMA weights
    eval_every: Annotated[int, Ge(0)] = 0  # steps between periodic evaluations (eval_metrics); 0: none
    eval_metrics: tuple[str, ...] = ("fast",)  # metric presets of the periodic evaluation (diffrep.train.evaluation)
    eval_num_samples: Annotated[int, Ge(2)] = 1000  # data points each periodic evaluation encodes
    tensorboard: bool = False  # also log scalars, sample grids and hyper-parameters to <run>/tb (needs tensorboard)
    wandb: bool = False  # also log to Weights & Biases (needs wandb)
    wandb_project: str = "diffrep"  # W&B project name
    wandb_mode: Literal["offline", "online"] = "offline"  # offline: written under <run>/wandb, synced by hand
    find_unused_parameters: bool = False  # DDP: allow parameters without gradients in a step
    dist_timeout_s: Annotated[int, Ge(1)] = 1800  # seconds a rank waits for the others

    def validate(self) -> None:
        if self.batch_size % self.grad_accum_steps:
            raise ConfigError("grad_accum_steps", f"batch_size={self.batch_size} is not divisible by "
                              f"grad_accum_steps={self.grad_accum_steps}")
        if self.eval_every and not self.eval_metrics:
            raise ConfigError("eval_metrics", "eval_every > 0 needs at least one metric preset")
