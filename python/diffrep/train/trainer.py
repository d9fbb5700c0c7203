"""The training loop: one readable function from data to checkpoint (docs/architecture.md#trainer-checkpoints-and-resume).

Any ``nn.Module`` with ``loss(batch, *, step) -> dict`` (key ``"loss"``, a scalar tensor; other
entries are logged) trains here: the method surface of ``diffrep.methods.base``. The trainer always
passes ``step``, the 0-based optimiser step, which drives schedules inside a loss (KL annealing, a
discriminator start); a model whose ``loss`` takes no ``step`` still trains, with a
DeprecationWarning. Per step: next batch (cut into ``grad_accum_steps`` micro-batches whose gradients
are summed, DDP's all-reduce only on the last), AdamW step with linear warm-up, global-norm gradient
clipping, EMA update. bf16 autocast on CUDA (``mixed_precision="auto"``) or fp16 autocast with a
GradScaler (``"fp16"``, its scale saved in the checkpoints), optional ``torch.compile``,
DistributedDataParallel under torchrun. A start banner (recipe, parameters, device, dtype, threads,
batch, steps, output, resume point) and a progress line with ETA go to stderr on rank 0; callbacks
returning a dict (the periodic evaluation, ``diffrep.train.evaluation``) are logged at their step.
The per-step numbers stay on the device until the log line (``diffrep.train.log_interval``): on CUDA a
non-finite loss, or bad input to a native op of the forward pass (BFN, guidance, MMD, HDDC), is found at the next log line,
checkpoint, sample grid or evaluation, before any of them is written, not at its own step
(docs/architecture.md "Host synchronisation and the non-finite-loss check"); on the CPU it raises at its
step, as always.
Checkpoints (``diffrep.train.checkpoint``) hold model, EMA, optimiser, every rank's RNG state
(``diffrep.train.rng``) and the step; the data order is a function of (seed, epoch)
(``diffrep.train.data``), so ``resume="latest"`` continues a killed run with exactly the losses the
uninterrupted run would give (same device, same world size, deterministic kernels).

Run folders never mix (``diffrep.train.rundir``, docs/architecture.md "Run folders"): a new run into
a folder holding one raises ``RunFolderError`` unless ``overwrite=True`` (which deletes only what the
trainer wrote); ``resume="latest"`` takes the newest checkpoint that verifies, or starts fresh when
there is none. SIGINT/SIGTERM finish the step, save a checkpoint and raise ``TrainingInterrupted``;
``SLURM_NTASKS > 1`` without ``WORLD_SIZE`` raises ``LaunchError`` before anything is written.

Two-optimiser models (GANs such as the VQ-GAN autoencoder) declare ``discriminator_parameters()``.
Those parameters then get a second AdamW (same settings and learning-rate schedule, clipped
separately, saved in the checkpoints), the others the first; ``loss`` returns ``"loss"`` and
``"disc_loss"``. The trainer back-propagates their sum once, so the model must keep the gradient
paths apart (the generator term must not reach the discriminator's parameters, the discriminator term
must not reach the others); ``diffrep.nn.vq.VQAutoencoder.loss`` shows how. A model whose
discriminator has its own optimiser settings (FactorVAE: Adam lr 1e-4, betas (0.5, 0.9)) also declares
``discriminator_optimizer_settings() -> dict`` with any of ``lr``, ``betas``, ``eps``, ``weight_decay``;
the second AdamW takes those (checked in ``diffrep.train.optim``), and its learning rate follows the
same warm-up/cosine shape scaled to its own ``lr`` (``lr_at(config, step) * lr_disc / config.lr``).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .._checks import finite_numbers, flag, map_style_dataset, path
from ..diffusion import ChainDivergedError
from . import distributed as D
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .data import EpochBatchSampler, seeded_generator, worker_init_fn
from .ema import EMA
from .evaluation import PeriodicEvaluation
from .log_interval import LogInterval, StepMetrics
from .loggers import MetricLogger, Progress
from .optim import _disc_optimizer_settings, lr_at
from .rng import capture_rng_state, restore_rng_state, seed_everything
from .rundir import (RunFolderError, TrainingInterrupted, _check_resumed_config, _drop_outputs_after, check_run_dir,
                     resolve_resume)

__all__ = ["Trainer", "TrainingInterrupted", "RunFolderError", "seed_everything", "capture_rng_state",
           "restore_rng_state", "lr_at"]


def _accepts_step(loss: Callable) -> bool:
    """Whether ``loss`` takes a ``step`` keyword (or any keyword)."""
    try:
        params = inspect.signature(loss).parameters.values()
    except (TypeError, ValueError):  # no signature to read: assume the surface
        return True
    return any((p.name == "step" and p.kind != p.POSITIONAL_ONLY) or p.kind == p.VAR_KEYWORD for p in params)


class _LossForward(nn.Module):
    """Routes ``forward`` to ``model.loss`` so that DDP's forward hooks see the loss computation."""

    def __init__(self, model: nn.Module, pass_step: bool = True):
        super().__init__()
        self.model = model
        self.pass_step = pass_step

    def forward(self, batch, step: int):
        return self.model.loss(batch, step=step) if self.pass_step else self.model.loss(batch)


def _split_batch(batch: Any, k: int, n: int) -> list:
    """``batch`` (a tensor, or a list/tuple/dict of them, first dimension ``n``) cut into ``k`` equal
    micro-batches along the first dimension; other entries are repeated in each."""
    if k == 1:
        return [batch]
    m = n // k
    if isinstance(batch, torch.Tensor):
        if batch.dim() == 0 or batch.shape[0] != n:
            return [batch] * k
        return [batch[i * m:(i + 1) * m] for i in range(k)]
    if isinstance(batch, (list, tuple)):
        parts = [_split_batch(b, k, n) for b in batch]
        return [type(batch)(p[i] for p in parts) for i in range(k)]
    if isinstance(batch, dict):
        parts = {key: _split_batch(v, k, n) for key, v in batch.items()}
        return [{key: v[i] for key, v in parts.items()} for i in range(k)]
    return [batch] * k


def _leading_size(batch: Any) -> int | None:
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else None
    items = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (list, tuple)) else ()
    for b in items:
        n = _leading_size(b)
        if n is not None:
            return n
    return None


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


class _StopSignals:
    """SIGINT/SIGTERM set a flag that the loop reads after each step (main thread only); a second
    signal before the loop has stopped raises KeyboardInterrupt at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum = 0
        self._old: dict = {}

    def _handler(self, signum, frame):
        if self.signum:
            raise KeyboardInterrupt(f"second signal {signum}: stopping without waiting for the checkpoint")
        self.signum = int(signum)

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._old[s] = signal.signal(s, self._handler)

    def uninstall(self) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old = {}

    def agreed(self, info: D.DistInfo, device: torch.device) -> int:
        """The signal any rank received (0: none); all ranks get the same answer."""
        return D.all_reduce_max(self.signum, device) if info.world_size > 1 else self.signum


def _drop_sample_grids_after(run_dir: Path, step: int) -> None:
    """Remove ``images/samples/step-N.png`` with N > ``step`` (written by a run killed after its checkpoint)."""
    d = run_dir / "images" / "samples"
    if not d.is_dir():
        return
    for p in d.glob("step-*.png"):
        try:
            n = int(p.stem.split("-", 1)[1])
        except ValueError:
            continue
        if n > step:
            p.unlink()


class Trainer:
    """Train ``model`` on ``dataset`` with ``config``, writing into ``run_dir``.

    Files: ``metrics.jsonl``, ``checkpoints/step-XXXXXXXX/``, ``images/samples/step-XXXXXXXX.png``
    (when the model has ``sample(n, generator=...)`` and ``sample_every`` > 0) and ``final/`` (the
    last weights in ``save_pretrained`` form, with the EMA copy). ``callbacks`` are called as
    ``cb(trainer, step, metrics)`` after every optimiser step on every rank, ``metrics`` a read-only
    mapping of the step's numbers to floats, each read from the device when asked for (a callback returning a
    dict has it logged at that step: :class:`diffrep.train.evaluation.PeriodicEvaluation`). ``name``
    (a recipe's) appears in the start banner.
    """

    def __init__(self, model: nn.Module, dataset: Dataset, config: TrainConfig, run_dir: str | os.PathLike, *,
                 collate_fn: Callable | None = None, callbacks: list[Callable] | None = None,
                 sample_value_range: tuple[float, float] = (-1.0, 1.0), name: str | None = None):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if not callable(getattr(model, "loss", None)):
            raise TypeError(f"{type(model).__name__} has no loss(batch, *, step) method; the trainer needs one "
                            "returning {'loss': ...}")
        self._pass_step = _accepts_step(model.loss)
        if not self._pass_step:
            if callable(getattr(model, "discriminator_parameters", None)):
                raise TypeError(f"{type(model).__name__} declares discriminator parameters, so its loss must take "
                                "the training step: loss(batch, *, step)")
            warnings.warn(f"{type(model).__name__}.loss takes no 'step'; the method surface is "
                          "loss(batch, *, step, generator=None) (diffrep.methods.base)", DeprecationWarning, stacklevel=2)
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        map_style_dataset(dataset)
        if len(dataset) < config.batch_size:
            raise ValueError(f"dataset has {len(dataset)} examples, fewer than train.batch_size={config.batch_size}")
        self.model, self.dataset, self.config = model, dataset, config
        self.run_dir = path(run_dir, "run_dir")
        if (collate_fn is not None and not callable(collate_fn)) or not isinstance(callbacks, (list, tuple, type(None))) \
                or not all(map(callable, callbacks or [])) or not isinstance(name, (str, type(None))):
            raise TypeError(f"collate_fn must be a callable, callbacks a list of callables, name a str (each or None); "
                            f"got collate_fn={collate_fn!r}, callbacks={callbacks!r}, name={name!r}")
        self.collate_fn, self.callbacks, self.name = collate_fn, list(callbacks or []), name
        self.sample_value_range = lo_hi = tuple(finite_numbers(sample_value_range, "sample_value_range"))
        if len(lo_hi) != 2 or not lo_hi[0] < lo_hi[1]:  # the range the sample grids are drawn from
            raise ValueError(f"sample_value_range must be (lo, hi) with lo < hi, got {sample_value_range!r}")
        self.logger: MetricLogger | None = None
        self.ema: EMA | None = None
        self.rank = 0
        self.step = 0
        self.timings: dict[str, float] = {}
        self.history: list[dict] = []

    # -- data -------------------------------------------------------------------------------
    def _batches(self, start_step: int, info: D.DistInfo):
        cfg = self.config
        n = len(self.dataset)
        per_epoch = n // cfg.batch_size
        step = start_step
        while True:
            epoch, offset = divmod(step, per_epoch)
            sampler = EpochBatchSampler(n, cfg.batch_size, seed=cfg.seed, drop_last=True, epoch=epoch, rank=info.rank,
                                        world_size=info.world_size, start=offset)
            loader = DataLoader(self.dataset, batch_sampler=sampler, num_workers=cfg.num_workers,
                                collate_fn=self.collate_fn, pin_memory=info.device.type == "cuda",
                                worker_init_fn=worker_init_fn if cfg.num_workers else None,
                                generator=seeded_generator(cfg.seed, epoch, info.rank, 1),
                                persistent_workers=False, prefetch_factor=4 if cfg.num_workers else None)
            for batch in loader:
                yield batch
                step += 1

    # -- checkpoints and samples ------------------------------------------------------------
    def _save(self, step: int, optimizer, ema, info: D.DistInfo, disc_optimizer=None, scaler=None) -> None:
        rng = D.all_gather_object(capture_rng_state())
        if info.rank == 0:
            state = {"rng": rng, "world_size": info.world_size, "train_config": self.config.to_dict()}
            if scaler is not None:
                state["grad_scaler"] = scaler.state_dict()
            save_checkpoint(self.run_dir / "checkpoints", step, self.model, optimizer=optimizer, ema=ema, state=state,
                            keep=self.config.keep_checkpoints, disc_optimizer=disc_optimizer)
        D.barrier()

    def _sample_grid(self, step: int, ema, info: D.DistInfo) -> None:
        sample = getattr(self.model, "sample", None)
        if info.rank != 0 or not callable(sample):
            return
        from ..viz import save_image

        cfg = self.config
        gen = torch.Generator(device=info.device).manual_seed(cfg.seed)
        ctx = ema.swapped(self.model) if (ema is not None and cfg.sample_from_ema) else contextlib.nullcontext()
        was_training = self.model.training
        self.model.eval()
        try:
            with ctx, torch.no_grad():
                images = sample(cfg.num_samples, generator=gen)
        except ChainDivergedError as exc:  # early in training a guided chain can diverge: said, skipped, as NaN below
            print(f"step {step}: the sample grid's chain diverged ({exc}); not saved", file=sys.stderr, flush=True)
            return
        finally:
            self.model.train(was_training)
        out = self.run_dir / "images" / "samples" / f"step-{step:08d}.png"
        bad = int((~torch.isfinite(images)).sum())
        if bad:  # said, not saved as black pixels; not raised either: one rank stopping would hang the others
            print(f"step {step}: the sample grid holds {bad} NaN or infinite values of {images.numel()}; not saved",
                  file=sys.stderr, flush=True)
            return
        save_image(images.float().cpu(), out, nrow=max(1, int(math.isqrt(cfg.num_samples))), value_range=self.sample_value_range)
        if self.logger is not None:
            self.logger.log_image("samples", out, step)

    # -- the loop ---------------------------------------------------------------------------
    def train(self, resume: str | os.PathLike | None = None, *, overwrite: bool = False,
              profile: bool = False, resume_inexact: bool = False) -> list[dict]:
        """Run to ``config.steps``; returns the logged records.

        ``resume``: ``"latest"`` (the newest valid checkpoint of ``run_dir``; none there: a fresh start,
        said on stderr) or a checkpoint directory. Without ``resume``, a ``run_dir`` that already holds
        a run raises :class:`RunFolderError` unless ``overwrite`` (which deletes only what the trainer
        wrote there; :func:`diffrep.train.rundir.clear_run`). SIGINT/SIGTERM during the loop finish the
        current step, save a checkpoint and raise :class:`TrainingInterrupted`. A checkpoint written by
        a different number of ranks is refused unless ``resume_inexact``: then the weights, optimiser
        and step are restored and the data order continues (it is a function of the global step), but
        each rank's random streams restart from ``seed + rank + step`` (said on stderr).
        """
        cfg = self.config
        path(resume, "resume", optional=True)
        flag(overwrite, "overwrite"), flag(profile, "profile"), flag(resume_inexact, "resume_inexact")
        D.check_launch()
        info = D.setup_distributed(cfg.device, timeout_s=cfg.dist_timeout_s)
        try:
            records = self._train(resume, info, profile, overwrite, resume_inexact)
            # every rank reaches the teardown before any destroys its gloo pairs: a rank that exits while its
            # peer still tears down can abort the peer ("terminate called without an active exception")
            D.barrier()
            return records
        finally:
            D.cleanup_distributed(info)

    def _prepare_run_dir(self, resume, overwrite: bool, info: D.DistInfo) -> tuple[Path | None, bool]:
        """Rank 0 checks (and with ``overwrite`` clears) the run folder and resolves ``resume``; every rank
        gets the same answer, or the same exception."""
        answer = None
        if info.rank == 0:
            try:
                check_run_dir(self.run_dir, resume=resume, overwrite=overwrite)
                path, verified = resolve_resume(resume, self.run_dir / "checkpoints") if resume is not None else (None, False)
                answer = ("ok", None if path is None else str(path), verified)
            except (RunFolderError, FileNotFoundError) as exc:
                answer = (type(exc).__name__, str(exc), None)
        kind, value, verified = D.all_gather_object(answer)[0]
        if kind == "FileNotFoundError":
            raise FileNotFoundError(value)
        if kind != "ok":
            raise RunFolderError(value)
        if resume is not None and value is None and info.rank == 0:
            print(f"--resume latest: no checkpoint under {self.run_dir / 'checkpoints'}; starting a fresh run "
                  "from step 0", file=sys.stderr, flush=True)
        return (Path(value) if value is not None else None), bool(verified)

    def _banner(self, info: D.DistInfo, dtype: str, start: int, ckpt_path: Path | None) -> str:
        cfg, n = self.config, sum(p.numel() for p in self.model.parameters())
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        per_rank = cfg.batch_size // info.world_size
        batch = f"{cfg.batch_size}"
        if info.world_size > 1 or cfg.grad_accum_steps > 1:
            batch += (f" ({info.world_size} rank{'s' if info.world_size > 1 else ''} x {cfg.grad_accum_steps} "
                      f"micro-batch{'es' if cfg.grad_accum_steps > 1 else ''} of {per_rank // cfg.grad_accum_steps})")
        resume = f"step {start} ({ckpt_path})" if ckpt_path is not None else "none (fresh run from step 0)"
        return "\n".join([
            f"diffrep train {self.name or type(self.model).__name__}",
            f"  model      {type(self.model).__name__}: {n:,} parameters ({trainable:,} trainable)",
            f"  device     {info.device}{f' x {info.world_size} ranks' if info.world_size > 1 else ''}, "
            f"dtype {dtype}, {torch.get_num_threads()} CPU thread{'s' if torch.get_num_threads() > 1 else ''}",
            f"  batch      {batch}, lr {cfg.lr:g}, {len(self.dataset):,} examples",
            f"  steps      {cfg.steps:,}, checkpoints every {cfg.ckpt_every or cfg.steps:,} steps and at the end",
            f"  output     {self.run_dir}",
            f"  resume     {resume}",
        ])

    def _train(self, resume, info: D.DistInfo, profile: bool, overwrite: bool = False,
               resume_inexact: bool = False) -> list[dict]:
        cfg, model, device = self.config, self.model, info.device
        if cfg.batch_size % (info.world_size * cfg.grad_accum_steps):
            raise ValueError(f"train.batch_size={cfg.batch_size} is not divisible by the world size {info.world_size}"
                             f" x train.grad_accum_steps={cfg.grad_accum_steps}")
        ckpt_path, verified = self._prepare_run_dir(resume, overwrite, info)
        seed_everything(cfg.seed, info.rank, deterministic=cfg.deterministic)
        model.to(device).train()
        two_optimizers = callable(getattr(model, "discriminator_parameters", None))
        disc_params = [p for p in model.discriminator_parameters() if p.requires_grad] if two_optimizers else []
        disc_ids = {id(p) for p in disc_params}
        params = [p for p in model.parameters() if p.requires_grad and id(p) not in disc_ids]
        if not params:
            raise ValueError(f"{type(model).__name__} has no trainable parameters")
        fused = {"fused": True} if device.type == "cuda" else {}
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay, **fused)
        disc_settings = _disc_optimizer_settings(model, cfg) if disc_params else {}
        disc_scale = disc_settings["lr"] / cfg.lr if disc_params else 1.0
        disc_optimizer = torch.optim.AdamW(disc_params, **disc_settings, **fused) if disc_params else None
        optimizers = [o for o in (optimizer, disc_optimizer) if o is not None]
        ema = EMA(model, cfg.ema_decay, warmup=cfg.ema_warmup, update_after_step=cfg.ema_update_after_step) if cfg.ema_decay > 0 else None
        precision = cfg.mixed_precision
        if precision == "auto":
            precision = "bf16" if device.type == "cuda" else "no"
        scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
        start = 0
        main = info.rank == 0
        if ckpt_path is not None:
            path = ckpt_path
            state = load_checkpoint(path, model, optimizer=optimizer, ema=ema, map_location=device,
                                    disc_optimizer=disc_optimizer, verify=not verified)
            start = int(state["step"])
            _check_resumed_config(path, state.get("train_config"), cfg)
            if start > cfg.steps:  # the loop did not run and "trained to step <steps>" was reported
                raise ValueError(f"checkpoint {path} is at step {start}, past steps={cfg.steps}; to train further "
                                 f"resume with steps > {start}")
            written_by = int(state.get("world_size", 1))
            if written_by != info.world_size:
                if not resume_inexact:
                    raise ValueError(f"checkpoint {path} was written by {written_by} ranks; this run has "
                                     f"{info.world_size} (exact resume needs the same world size; "
                                     "--resume-inexact / resume_inexact=True continues anyway)")
                seed_everything(cfg.seed + start, info.rank, deterministic=cfg.deterministic)
                if main:
                    print(f"resume_inexact: checkpoint {path} was written by {written_by} ranks, this run has "
                          f"{info.world_size}: weights, optimiser and data order continue from step {start}; the "
                          "random streams restart (seed + rank + step), so the losses differ from an uninterrupted "
                          "run", file=sys.stderr, flush=True)
            else:
                restore_rng_state(state["rng"][info.rank])
            if scaler is not None and "grad_scaler" in state:
                scaler.load_state_dict(state["grad_scaler"])
            elif scaler is not None and main:
                print(f"checkpoint {path} has no fp16 loss-scale state (written without fp16); the scale starts "
                      "afresh", file=sys.stderr, flush=True)
        self.step = start
        self.ema, self.rank = ema, info.rank
        callbacks = list(self.callbacks)
        if cfg.eval_every and main and not any(isinstance(cb, PeriodicEvaluation) for cb in callbacks):
            callbacks.append(PeriodicEvaluation.from_config(cfg, self.dataset))
        if main:
            print(self._banner(info, {"no": "float32", "bf16": "bfloat16 autocast",
                                      "fp16": "float16 autocast + GradScaler"}[precision], start, ckpt_path),
                  file=sys.stderr, flush=True)
            if ckpt_path is not None:
                print(f"resuming from step {start} of {cfg.steps} ({ckpt_path})", file=sys.stderr, flush=True)
        # resuming (or restarting with --resume latest and no checkpoint): drop what a killed run logged
        # after the step we start from, so the log and the sample grids describe one run
        logger = MetricLogger(self.run_dir, tensorboard=cfg.tensorboard, wandb=cfg.wandb,
                              wandb_project=cfg.wandb_project, wandb_mode=cfg.wandb_mode,
                              resume_step=start if resume is not None else None,
                              hparams=cfg.to_dict(), run_name=self.name) if main else None
        self.logger = logger
        if main and resume is not None:
            _drop_sample_grids_after(self.run_dir, start)
            _drop_outputs_after(self.run_dir, start, cfg.steps)
        forward: nn.Module = _LossForward(model, pass_step=self._pass_step)
        if info.world_size > 1:
            forward = nn.parallel.DistributedDataParallel(
                forward, device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=cfg.find_unused_parameters)
        if cfg.compile:
            forward = torch.compile(forward)
        autocast = torch.autocast(device.type, dtype=torch.float16 if precision == "fp16" else torch.bfloat16,
                                  enabled=precision != "no")
        accum = cfg.grad_accum_steps
        progress = Progress(cfg.steps, start, enabled=main)
        timings = self.timings = {"data": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0}  # seconds, summed
        sync = (lambda: torch.cuda.synchronize(device)) if (profile and device.type == "cuda") else (lambda: None)
        batches = self._batches(start, info)
        # the log interval's sums stay on the device, and on CUDA the loss is checked at the boundaries
        # below, not per step: a per-step float() would synchronise host and GPU every step
        interval = LogInterval(device, start=start)
        evaluations = [cb for cb in self.callbacks if isinstance(cb, PeriodicEvaluation)]  # the same on every rank
        stop = _StopSignals()
        saved_at = start if ckpt_path is not None else -1

        def interrupt(signum: int):
            interval.check(self.step)  # a diverged step is not saved
            if saved_at != self.step:
                self._save(self.step, optimizer, ema, info, disc_optimizer, scaler)
            raise TrainingInterrupted(self.step, self.run_dir / "checkpoints" / f"step-{self.step:08d}", signum,
                                      self.run_dir)

        try:
            stop.install()
            for step in range(start, cfg.steps):
                t0 = time.perf_counter()
                try:
                    batch = _to_device(next(batches), device)
                except Exception:  # a DataLoader worker killed by the same Ctrl-C
                    if stop.signum and info.world_size == 1:
                        interrupt(stop.signum)
                    if stop.signum:  # the other ranks may not be here: no collective checkpoint
                        raise TrainingInterrupted(self.step, None, stop.signum, self.run_dir) from None
                    raise
                sync()
                t1 = time.perf_counter()
                lr = lr_at(cfg, step)
                for opt in optimizers:
                    for g in opt.param_groups:
                        g["lr"] = lr * disc_scale if opt is disc_optimizer else lr
                if accum > 1:
                    size = _leading_size(batch)
                    if size is None or size % accum:
                        raise ValueError(f"train.grad_accum_steps={accum}: a batch of {size} examples per rank "
                                         "cannot be cut into equal micro-batches")
                    micro_batches = _split_batch(batch, accum, size)
                else:
                    micro_batches = [batch]
                out_sums: dict[str, Any] = {}
                t_fwd = t_bwd = 0.0
                for i, micro in enumerate(micro_batches):
                    ta = time.perf_counter()
                    # DDP: all-reduce the gradients only on the last micro-batch (no_sync on the others)
                    no_sync = (forward.no_sync() if (i < accum - 1 and isinstance(forward, nn.parallel.DistributedDataParallel))
                               else contextlib.nullcontext())
                    with no_sync:
                        # on CUDA the BFN and guidance ops' input checks are read with the loss's, at the boundaries
                        with autocast, interval.op_checks(step + 1):
                            out = forward(micro, step)
                        if not isinstance(out, dict) or "loss" not in out:
                            raise TypeError(f"{type(model).__name__}.loss(batch) must return a dict with key 'loss'")
                        if disc_optimizer is not None and "disc_loss" not in out:
                            raise TypeError(f"{type(model).__name__} declares discriminator parameters, so loss() must also return 'disc_loss'")
                        loss = out["loss"] + out["disc_loss"] if disc_optimizer is not None else out["loss"]
                        interval.check_loss(loss, step + 1)
                        if accum > 1:
                            loss = loss / accum
                        sync()
                        tb = time.perf_counter()
                        (scaler.scale(loss) if scaler is not None else loss).backward()
                        sync()
                    t_fwd += tb - ta
                    t_bwd += time.perf_counter() - tb
                    for k, v in out.items():
                        if isinstance(v, torch.Tensor):
                            v = v.detach().float().mean()
                        elif not isinstance(v, (int, float)):
                            continue
                        out_sums[k] = out_sums.get(k, 0.0) + v / accum
                out = out_sums
                t2 = t1 + t_fwd
                t3 = t2 + t_bwd
                if scaler is not None:
                    for opt in optimizers:
                        scaler.unscale_(opt)
                grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip) if cfg.grad_clip > 0 else None
                disc_grad_norm = (torch.nn.utils.clip_grad_norm_(disc_params, cfg.grad_clip)
                                  if cfg.grad_clip > 0 and disc_optimizer is not None else None)
                for opt in optimizers:
                    if scaler is not None:
                        scaler.step(opt)
                    else:
                        opt.step()
                    opt.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.update()
                if ema is not None:
                    ema.update(model, step + 1)
                sync()
                t4 = time.perf_counter()
                for k, dt in zip(timings, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                    timings[k] += dt
                done = step + 1
                self.step = done
                # out's entries are float32 0-dim tensors (means over the micro-batches) or Python floats; read
                # as floats only when logged, or when a callback reads them
                values: dict[str, Any] = dict(out)
                if grad_norm is not None:
                    values["grad_norm"] = grad_norm
                if disc_grad_norm is not None:
                    values["disc_grad_norm"] = disc_grad_norm
                if scaler is not None:  # the scale tensor (get_scale() synchronises); a copy, update() changes it in place
                    scale = scaler._get_scale_async()
                    values["loss_scale"] = scale.clone() if scale is not None else scaler.get_scale()
                interval.add(values)
                metrics = StepMetrics(values)
                log_now = done % cfg.log_every == 0 or done == cfg.steps
                ckpt_now = bool(cfg.ckpt_every and done % cfg.ckpt_every == 0) or done == cfg.steps
                sample_now = bool(cfg.sample_every and done % cfg.sample_every == 0)
                eval_now = bool(cfg.eval_every and done % cfg.eval_every == 0) or any(e.due(done, cfg.steps) for e in evaluations)
                if log_now:  # the loss check and the sums: one read
                    avg = D.all_reduce_mean(interval.flush(done), device)
                    avg["lr"] = lr
                    if main:
                        logger.log(done, avg)
                        self.history.append({"step": done, **avg})
                elif ckpt_now or sample_now or eval_now:  # nothing of a diverged step is saved or evaluated
                    interval.check(done)
                progress.update(done, self.history[-1] if (log_now and main) else None, log=log_now)
                for cb in callbacks:
                    extra = cb(self, done, metrics)
                    if isinstance(extra, dict) and extra and main:
                        interval.check(done, collective=False)  # rank 0 alone: not a log line after a diverged step
                        logger.log(done, extra)
                        self.history.append({"step": done, **extra})
                if ckpt_now:
                    self._save(done, optimizer, ema, info, disc_optimizer, scaler)
                    saved_at = done
                if sample_now:
                    self._sample_grid(done, ema, info)
                if done < cfg.steps:
                    signum = stop.agreed(info, device)
                    if signum:
                        interrupt(signum)
        finally:
            stop.uninstall()
            progress.close()
            if logger is not None:
                logger.close()
        if main and hasattr(model, "save_pretrained"):
            model.save_pretrained(self.run_dir / "final", ema_state=ema.full_state_dict(model) if ema is not None else None)
        D.barrier()
        return self.history
