"""Trainer, checkpoints, EMA, random state, learning-rate schedule, deterministic data order, distributed
helpers and the train config."""

from .checkpoint import list_checkpoints, load_checkpoint, resolve_checkpoint, save_checkpoint, verify_checkpoint
from .config import TrainConfig
from .data import EpochBatchSampler, epoch_permutation
from .ema import EMA
from .distributed import LaunchError, check_launch
from .loggers import MetricLogger, read_metrics
from .optim import lr_at
from .rng import capture_rng_state, restore_rng_state, seed_everything
from .rundir import RunFolderError, TrainingInterrupted, check_run_dir, clear_run, looks_like_run, run_contents
from .trainer import Trainer

__all__ = [
    "TrainConfig", "Trainer", "EMA", "seed_everything", "capture_rng_state", "restore_rng_state", "lr_at",
    "save_checkpoint", "load_checkpoint", "list_checkpoints", "resolve_checkpoint", "verify_checkpoint",
    "EpochBatchSampler", "epoch_permutation", "MetricLogger", "read_metrics", "RunFolderError",
    "TrainingInterrupted", "LaunchError", "check_launch", "check_run_dir", "clear_run", "looks_like_run", "run_contents",
]
