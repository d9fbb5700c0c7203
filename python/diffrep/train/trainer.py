"""The training loop: one readable function from data to checkpoint (docs/architecture.md#trainer-checkpoints-and-resume).

Any ``nn.Module`` with ``loss(batch, *, step) -> dict`` (key ``"loss"``, a scalar tensor; other
entries are logged) trains here: the method surface of ``diffrep.methods.base``. The trainer always
passes ``step``, the 0-based optimiser step, which drives schedules inside a loss (KL annealing, a
discriminator start); a model whose ``loss`` takes no ``step`` still trains, with a
DeprecationWarning. Per step: next batch, AdamW step with linear warm-up, global-norm gradient
clipping, EMA update. bf16 autocast on CUDA, optional ``torch.compile``, DistributedDataParallel
under torchrun. Checkpoints (``diffrep.train.checkpoint``) hold model, EMA, optimiser, every rank's
RNG state and the step; the data order is a function of (seed, epoch) (``diffrep.train.data``), so
``resume="latest"`` continues a killed run with exactly the losses the uninterrupted run would give
(same device, same world size, deterministic kernels).

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
the second AdamW takes those, and its learning rate follows the same warm-up/cosine shape scaled to
its own ``lr`` (``lr_at(config, step) * lr_disc / config.lr``).
"""

from __future__ import annotations

import contextlib
import inspect
import math
import os
import random
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from . import distributed as D
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .data import EpochBatchSampler, seeded_generator, worker_init_fn
from .ema import EMA
from .loggers import MetricLogger, Progress
from .rundir import RunFolderError, TrainingInterrupted, check_run_dir, resolve_resume

__all__ = ["Trainer", "TrainingInterrupted", "RunFolderError", "seed_everything", "capture_rng_state",
           "restore_rng_state", "lr_at"]


def seed_everything(seed: int, rank: int = 0, *, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (CPU and CUDA) with ``seed + rank``; optionally force deterministic kernels."""
    s = int(seed) + int(rank)
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def capture_rng_state() -> dict:
    """RNG states of python, numpy and torch as tensors and plain types (``weights_only``-loadable)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    out = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss_next": py_state[2]},
    }
    if torch.cuda.is_available():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def restore_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def lr_at(cfg: TrainConfig, step: int) -> float:
    """Learning rate for optimiser step ``step`` (0-based): linear warm-up, then constant or half-cosine."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "cosine":
        span = max(cfg.steps - cfg.warmup_steps, 1)
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(step - cfg.warmup_steps, span) / span))
    return cfg.lr


def _accepts_step(loss: Callable) -> bool:
    """Whether ``loss`` takes a ``step`` keyword (or any keyword)."""
    try:
        params = inspect.signature(loss).parameters.values()
    except (TypeError, ValueError):  # no signature to read: assume the surface
        return True
    return any((p.name == "step" and p.kind != p.POSITIONAL_ONLY) or p.kind == p.VAR_KEYWORD for p in params)


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
    if not (isinstance(settings["lr"], (int, float)) and settings["lr"] > 0):
        raise ValueError(f"{name}: lr must be > 0, got {settings['lr']!r}")
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2 and all(0 <= b < 1 for b in betas)):
        raise ValueError(f"{name}: betas must be two numbers in [0, 1), got {betas!r}")
    if not (settings["eps"] > 0 and settings["weight_decay"] >= 0):
        raise ValueError(f"{name}: eps must be > 0 and weight_decay >= 0, got {settings['eps']!r}, "
                         f"{settings['weight_decay']!r}")
    settings["betas"] = tuple(float(b) for b in betas)
    return settings


class _LossForward(nn.Module):
    """Routes ``forward`` to ``model.loss`` so that DDP's forward hooks see the loss computation."""

    def __init__(self, model: nn.Module, pass_step: bool = True):
        super().__init__()
        self.model = model
        self.pass_step = pass_step

    def forward(self, batch, step: int):
        return self.model.loss(batch, step=step) if self.pass_step else self.model.loss(batch)


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
    ``cb(trainer, step, metrics)`` after every optimiser step on every rank.
    """

    def __init__(self, model: nn.Module, dataset: Dataset, config: TrainConfig, run_dir: str | os.PathLike, *,
                 collate_fn: Callable | None = None, callbacks: list[Callable] | None = None,
                 sample_value_range: tuple[float, float] = (-1.0, 1.0)):
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
        if not hasattr(dataset, "__len__") or not hasattr(dataset, "__getitem__"):
            raise TypeError("dataset must be a map-style dataset with __len__ and __getitem__")
        if len(dataset) < config.batch_size:
            raise ValueError(f"dataset has {len(dataset)} examples, fewer than train.batch_size={config.batch_size}")
        self.model, self.dataset, self.config = model, dataset, config
        self.run_dir = Path(run_dir)
        self.collate_fn, self.callbacks = collate_fn, list(callbacks or [])
        self.sample_value_range = sample_value_range
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
    def _save(self, step: int, optimizer, ema, info: D.DistInfo, disc_optimizer=None) -> None:
        rng = D.all_gather_object(capture_rng_state())
        if info.rank == 0:
            state = {"rng": rng, "world_size": info.world_size, "train_config": self.config.to_dict()}
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
        with ctx, torch.no_grad():
            images = sample(cfg.num_samples, generator=gen)
        self.model.train(was_training)
        out = self.run_dir / "images" / "samples" / f"step-{step:08d}.png"
        save_image(images.float().cpu(), out, nrow=max(1, int(math.isqrt(cfg.num_samples))), value_range=self.sample_value_range)

    # -- the loop ---------------------------------------------------------------------------
    def train(self, resume: str | os.PathLike | None = None, *, overwrite: bool = False,
              profile: bool = False) -> list[dict]:
        """Run to ``config.steps``; returns the logged records.

        ``resume``: ``"latest"`` (the newest valid checkpoint of ``run_dir``; none there: a fresh start,
        said on stderr) or a checkpoint directory. Without ``resume``, a ``run_dir`` that already holds
        a run raises :class:`RunFolderError` unless ``overwrite`` (which deletes only what the trainer
        wrote there; :func:`diffrep.train.rundir.clear_run`). SIGINT/SIGTERM during the loop finish the
        current step, save a checkpoint and raise :class:`TrainingInterrupted`.
        """
        cfg = self.config
        D.check_launch()
        info = D.setup_distributed(cfg.device, timeout_s=cfg.dist_timeout_s)
        try:
            return self._train(resume, info, profile, overwrite)
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

    def _train(self, resume, info: D.DistInfo, profile: bool, overwrite: bool = False) -> list[dict]:
        cfg, model, device = self.config, self.model, info.device
        if cfg.batch_size % info.world_size:
            raise ValueError(f"train.batch_size={cfg.batch_size} is not divisible by the world size {info.world_size}")
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
        start = 0
        if ckpt_path is not None:
            path = ckpt_path
            state = load_checkpoint(path, model, optimizer=optimizer, ema=ema, map_location=device,
                                    disc_optimizer=disc_optimizer, verify=not verified)
            if state.get("world_size", 1) != info.world_size:
                raise ValueError(f"checkpoint {path} was written by {state.get('world_size')} ranks; this run has "
                                 f"{info.world_size} (exact resume needs the same world size)")
            restore_rng_state(state["rng"][info.rank])
            start = int(state["step"])
        self.step = start
        main = info.rank == 0
        # resuming (or restarting with --resume latest and no checkpoint): drop what a killed run logged
        # after the step we start from, so the log and the sample grids describe one run
        logger = MetricLogger(self.run_dir, tensorboard=cfg.tensorboard,
                              resume_step=start if resume is not None else None) if main else None
        if main and resume is not None:
            _drop_sample_grids_after(self.run_dir, start)
        forward: nn.Module = _LossForward(model, pass_step=self._pass_step)
        if info.world_size > 1:
            forward = nn.parallel.DistributedDataParallel(
                forward, device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=cfg.find_unused_parameters)
        if cfg.compile:
            forward = torch.compile(forward)
        use_bf16 = cfg.mixed_precision == "bf16" or (cfg.mixed_precision == "auto" and device.type == "cuda")
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16)
        progress = Progress(cfg.steps, start, enabled=main)
        timings = self.timings = {"data": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0}  # seconds, summed
        sync = (lambda: torch.cuda.synchronize(device)) if (profile and device.type == "cuda") else (lambda: None)
        batches = self._batches(start, info)
        sums: dict[str, float] = {}
        count = 0
        stop = _StopSignals()
        saved_at = start if ckpt_path is not None else -1

        def interrupt(signum: int):
            if saved_at != self.step:
                self._save(self.step, optimizer, ema, info, disc_optimizer)
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
                with autocast:
                    out = forward(batch, step)
                if not isinstance(out, dict) or "loss" not in out:
                    raise TypeError(f"{type(model).__name__}.loss(batch) must return a dict with key 'loss'")
                if disc_optimizer is not None and "disc_loss" not in out:
                    raise TypeError(f"{type(model).__name__} declares discriminator parameters, so loss() must also return 'disc_loss'")
                loss = out["loss"] + out["disc_loss"] if disc_optimizer is not None else out["loss"]
                if not torch.isfinite(loss.detach()).all():
                    raise FloatingPointError(f"non-finite loss {loss.item()} at step {step + 1}")
                sync()
                t2 = time.perf_counter()
                loss.backward()
                sync()
                t3 = time.perf_counter()
                grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip) if cfg.grad_clip > 0 else None
                disc_grad_norm = (torch.nn.utils.clip_grad_norm_(disc_params, cfg.grad_clip)
                                  if cfg.grad_clip > 0 and disc_optimizer is not None else None)
                for opt in optimizers:
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                if ema is not None:
                    ema.update(model, step + 1)
                sync()
                t4 = time.perf_counter()
                for k, dt in zip(timings, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                    timings[k] += dt
                done = step + 1
                self.step = done
                metrics = {k: float(v.detach().float().mean()) if isinstance(v, torch.Tensor) else float(v)
                           for k, v in out.items() if isinstance(v, (torch.Tensor, int, float))}
                if grad_norm is not None:
                    metrics["grad_norm"] = float(grad_norm)
                if disc_grad_norm is not None:
                    metrics["disc_grad_norm"] = float(disc_grad_norm)
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + v
                count += 1
                log_now = done % cfg.log_every == 0 or done == cfg.steps
                if log_now:
                    avg = D.all_reduce_mean({k: v / count for k, v in sums.items()}, device)
                    avg["lr"] = lr
                    sums, count = {}, 0
                    if main:
                        logger.log(done, avg)
                        self.history.append({"step": done, **avg})
                progress.update(done, self.history[-1] if (log_now and main) else None, log=log_now)
                for cb in self.callbacks:
                    cb(self, done, metrics)
                if (cfg.ckpt_every and done % cfg.ckpt_every == 0) or done == cfg.steps:
                    self._save(done, optimizer, ema, info, disc_optimizer)
                    saved_at = done
                if cfg.sample_every and done % cfg.sample_every == 0:
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
