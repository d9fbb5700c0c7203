"""The random state of a training run: seeding every generator, and the state a checkpoint carries
so that a resumed run draws exactly what the uninterrupted run would have drawn
(docs/architecture.md#trainer-checkpoints-and-resume).

Each rank seeds python, numpy and torch with ``seed + rank``; a checkpoint holds every rank's state as
tensors and plain types (loadable with ``weights_only=True``) and each rank restores its own.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from .._checks import flag, non_negative_int, a_or_an

__all__ = ["seed_everything", "capture_rng_state", "restore_rng_state"]


def seed_everything(seed: int, rank: int = 0, *, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (CPU and CUDA) with ``seed + rank``; optionally force deterministic kernels."""
    s = non_negative_int(seed, "seed") + non_negative_int(rank, "rank")
    flag(deterministic, "deterministic")
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
    """Set python, numpy and torch (and CUDA, when the state has it and a GPU is here) to a state
    :func:`capture_rng_state` returned. Its tensors may be on a GPU: the trainer loads a checkpoint's state with
    ``map_location`` its device, and a CUDA tensor reaches numpy only through the CPU."""
    _check_state(state)
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _check_state(state) -> None:
    """The layout :func:`capture_rng_state` writes, checked before any generator is set, so a wrong or
    truncated state (a checkpoint of another program) changes no generator and names what is missing."""
    if not isinstance(state, dict):
        raise TypeError(f"state must be the dict capture_rng_state returned, got {type(state).__name__}")
    want = {"torch": torch.Tensor, "numpy": dict, "python": dict}
    for key, kind in want.items():
        if not isinstance(state.get(key), kind):
            raise ValueError(f"state[{key!r}] must be {a_or_an(kind.__name__)} (the layout capture_rng_state writes), got "
                             f"{type(state.get(key)).__name__}")
    for key, fields in (("numpy", ("keys", "pos", "has_gauss", "cached_gaussian")),
                        ("python", ("version", "state", "gauss_next"))):
        absent = [f for f in fields if f not in state[key]]
        if absent:
            raise ValueError(f"state[{key!r}] lacks {absent} (the layout capture_rng_state writes)")
    if not isinstance(state["numpy"]["keys"], torch.Tensor):
        raise ValueError("state['numpy']['keys'] must be a tensor (the layout capture_rng_state writes)")
