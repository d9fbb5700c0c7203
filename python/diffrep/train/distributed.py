"""Thin helpers over ``torch.distributed`` for runs launched by ``torchrun`` (docs/architecture.md#distributed-training).

A process is distributed when ``WORLD_SIZE`` > 1 in its environment (torchrun sets ``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``). The backend is NCCL for CUDA
devices and gloo for CPU. Nothing here starts processes: launch with
``torchrun --standalone --nproc-per-node=N -m diffrep train ...`` (add ``--nnodes``/``--node-rank``
or a c10d rendezvous for several machines).
"""

from __future__ import annotations

import dataclasses
import datetime
import os

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "setup_distributed", "cleanup_distributed", "is_main", "barrier", "all_reduce_mean",
           "all_reduce_max", "all_reduce_min_", "all_gather_object", "get_rank", "get_world_size", "check_launch", "LaunchError"]


@dataclasses.dataclass(frozen=True)
class DistInfo:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    backend: str | None
    initialized_here: bool


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer") from None


class LaunchError(ValueError):
    """The processes were launched in a way that would run several independent copies of one run
    (a ValueError, like every configuration error the command line reports without a traceback)."""


def check_launch(environ=None) -> None:
    """Refuse ``srun`` launching several independent copies of one run.

    ``SLURM_NTASKS`` > 1 without ``WORLD_SIZE`` means SLURM started N processes that do not know of
    each other: each would train the whole run and write into the same folder. Raises LaunchError
    saying how to launch instead (docs/architecture.md, "Run folders").
    """
    env = os.environ if environ is None else environ
    raw = env.get("SLURM_NTASKS")
    if raw is None or env.get("WORLD_SIZE") is not None:
        return
    try:
        ntasks = int(raw)
    except ValueError:
        return
    if ntasks > 1:
        raise LaunchError(
            f"SLURM_NTASKS={ntasks} but WORLD_SIZE is not set: srun started {ntasks} independent copies of this "
            f"run, which would all write into one run folder. Launch one task per node running torchrun "
            f"(srun --ntasks-per-node=1 torchrun --nproc-per-node=N -m diffrep train ...), or for a single "
            f"process inside a larger allocation run with SLURM_NTASKS=1 (or WORLD_SIZE=1)")


def setup_distributed(device: str = "auto", *, backend: str | None = None, timeout_s: int = 1800) -> DistInfo:
    """Initialise the process group from the torchrun environment (no-op for a single process)."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        why = ("this torch is a CPU-only build" if torch.version.cuda is None
               else f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU")
        raise ValueError(f"train.device=cuda: no CUDA device is usable here ({why}); use --train.device cpu or auto")
    world = _env_int("WORLD_SIZE", 1)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if use_cuda:
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    here = False
    if world > 1 and not dist.is_initialized():
        backend = backend or ("nccl" if use_cuda else "gloo")
        kwargs = {"device_id": dev} if use_cuda else {}
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s), **kwargs)
        here = True
    if dist.is_initialized():
        rank, world, backend = dist.get_rank(), dist.get_world_size(), dist.get_backend()
    return DistInfo(rank, local_rank, world, dev, backend if world > 1 else None, here)


def cleanup_distributed(info: DistInfo | None = None) -> None:
    if dist.is_initialized() and (info is None or info.initialized_here):
        dist.destroy_process_group()


def get_rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_reduce_mean(values: dict[str, float], device: torch.device | None = None) -> dict[str, float]:
    """Mean of each scalar over ranks (identity for one process)."""
    if not dist.is_initialized() or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return dict(zip(keys, t.tolist()))


def all_reduce_max(value: int, device: torch.device | None = None) -> int:
    """Maximum of an integer over ranks (identity for one process)."""
    if not dist.is_initialized():
        return int(value)
    t = torch.tensor([int(value)], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def all_reduce_min_(t: torch.Tensor) -> torch.Tensor:
    """``t`` replaced in place by its elementwise minimum over ranks (identity for one process); a device
    tensor stays on the device, so no host synchronisation."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"all_reduce_min_: t must be a tensor, got {type(t).__name__}")
    if dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return t


def all_gather_object(obj) -> list:
    if not dist.is_initialized():
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
