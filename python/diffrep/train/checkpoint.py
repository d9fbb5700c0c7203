"""Atomic, verifiable step checkpoints.

Layout: ``<root>/step-00001000/`` containing

- ``config.json`` + ``model.safetensors`` + ``ema.safetensors`` (the ``save_pretrained`` form, so a
  checkpoint directory loads directly with ``from_pretrained``; models without the mixin get only
  the safetensors files);
- ``trainer_state.pt``: optimiser state (and the discriminator optimiser's, for two-optimiser models), step, RNG states of every rank, data position, EMA counter,
  train config, all plain tensors and Python types (loads with ``torch.load(weights_only=True)``);
- ``manifest.json``, written last: step plus the size and SHA-256 of every other file.

A checkpoint is written into ``.tmp-step-...`` and renamed into place only when complete, then older
ones are pruned to ``keep``; a crash or exception at any point leaves the previous checkpoint
untouched. On load the manifest is checked, so a truncated or corrupted file is reported by name.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import torch
from torch import nn

from .._checks import non_negative_int, path as _path, positive_int
from .._checks import a_or_an
from ..nn.pretrained import (CONFIG_NAME, EMA_WEIGHTS_NAME, WEIGHTS_NAME, PretrainedMixin, _save_safetensors,
                             load_safetensors_checked, load_state_checked)

__all__ = ["save_checkpoint", "load_checkpoint", "list_checkpoints", "resolve_checkpoint", "verify_checkpoint",
           "STATE_NAME", "MANIFEST_NAME"]

STATE_NAME = "trainer_state.pt"
MANIFEST_NAME = "manifest.json"
_STEP_RE = re.compile(r"^step-(\d+)$")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_model(model) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")


def save_checkpoint(root: str | os.PathLike, step: int, model: nn.Module, *, optimizer=None, ema=None,
                    state: dict | None = None, keep: int = 2, disc_optimizer=None) -> Path:
    """Write checkpoint ``step`` under ``root`` atomically; keep the newest ``keep`` complete ones."""
    step = non_negative_int(step, "step")
    keep = positive_int(keep, "keep")
    root = _path(root, "root")
    _check_model(model)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        ema_state = ema.full_state_dict(model) if ema is not None else None
        if isinstance(model, PretrainedMixin):
            model.save_pretrained(tmp, ema_state=ema_state)
        else:
            _save_safetensors(model.state_dict(), tmp / WEIGHTS_NAME)
            if ema_state is not None:
                _save_safetensors(ema_state, tmp / EMA_WEIGHTS_NAME)
        full_state = {"step": step, **(state or {})}
        if optimizer is not None:
            full_state["optimizer"] = optimizer.state_dict()
        if disc_optimizer is not None:
            full_state["disc_optimizer"] = disc_optimizer.state_dict()
        if ema is not None:
            full_state["ema_num_updates"] = ema.num_updates
        torch.save(full_state, tmp / STATE_NAME)
        files = {}
        for f in sorted(tmp.iterdir()):
            _fsync(f)
            files[f.name] = {"size": f.stat().st_size, "sha256": _sha256(f)}
        manifest = {"format": 1, "step": step, "files": files}
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        _fsync(tmp / MANIFEST_NAME)
        _fsync(tmp)
        if final.exists():  # re-saving the same step: move the old one aside first
            old = root / f".old-step-{step:08d}-{os.getpid()}"
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
        _fsync(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for _, path in list_checkpoints(root)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)
    for stale in root.glob(".tmp-step-*"):
        if stale != tmp:
            shutil.rmtree(stale, ignore_errors=True)
    return final


def list_checkpoints(root: str | os.PathLike) -> list[tuple[int, Path]]:
    """Complete checkpoints (those with a manifest) under ``root``, oldest first."""
    root = _path(root, "root")
    if not root.is_dir():
        return []
    out = []
    for p in root.iterdir():
        m = _STEP_RE.match(p.name)
        if m and (p / MANIFEST_NAME).is_file():
            out.append((int(m.group(1)), p))
    return sorted(out)


def resolve_checkpoint(spec: str | os.PathLike, root: str | os.PathLike) -> Path:
    """``"latest"`` -> newest complete checkpoint under ``root``; otherwise ``spec`` as a path."""
    _path(spec, "spec")
    root = _path(root, "root")
    if str(spec) == "latest":
        found = list_checkpoints(root)
        if not found:
            raise FileNotFoundError(f"--resume latest: no complete checkpoint under {root}")
        return found[-1][1]
    path = Path(spec)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint directory not found: {path}")
    return path


def verify_checkpoint(path: str | os.PathLike) -> dict:
    """Check every file against the manifest; raise ValueError naming the first bad one."""
    path = _path(path, "path")
    mpath = path / MANIFEST_NAME
    if not mpath.is_file():
        raise ValueError(f"{path} is an incomplete checkpoint: {MANIFEST_NAME} is missing (the save did not finish)")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
        files = manifest["files"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{mpath} is corrupted: {exc}") from None
    for name, info in files.items():
        f = path / name
        if not f.is_file():
            raise ValueError(f"checkpoint {path}: file {name} is missing")
        size = f.stat().st_size
        if size != info["size"]:
            raise ValueError(f"checkpoint {path}: file {name} is truncated or corrupted "
                             f"({size} bytes, manifest says {info['size']})")
        if _sha256(f) != info["sha256"]:
            raise ValueError(f"checkpoint {path}: file {name} is corrupted (SHA-256 does not match the manifest)")
    return manifest


def load_checkpoint(path: str | os.PathLike, model: nn.Module, *, optimizer=None, ema=None,
                    map_location: str | torch.device = "cpu", verify: bool = True, disc_optimizer=None) -> dict:
    """Restore model, optimiser and EMA in place from checkpoint ``path``; return the trainer state."""
    path = _path(path, "path")
    _check_model(model)
    if verify:
        verify_checkpoint(path)
    if isinstance(model, PretrainedMixin) and (path / CONFIG_NAME).is_file():
        cls_name, _ = model.read_config(path)
        if cls_name != type(model).__name__:
            raise ValueError(f"checkpoint {path} holds {a_or_an(cls_name)}, not {a_or_an(type(model).__name__)}")
    load_state_checked(model, load_safetensors_checked(path / WEIGHTS_NAME, map_location), path / WEIGHTS_NAME)
    try:
        state = torch.load(path / STATE_NAME, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise ValueError(f"checkpoint {path}: {STATE_NAME} cannot be read (truncated or corrupted?): {exc}") from None
    if optimizer is not None:
        if "optimizer" not in state:
            raise ValueError(f"checkpoint {path} has no optimizer state")
        optimizer.load_state_dict(state["optimizer"])
    if disc_optimizer is not None:
        if "disc_optimizer" not in state:
            raise ValueError(f"checkpoint {path} has no discriminator optimizer state")
        disc_optimizer.load_state_dict(state["disc_optimizer"])
    if ema is not None:
        ema_weights = load_safetensors_checked(path / EMA_WEIGHTS_NAME, map_location)
        ema.load_state_dict({"shadow": {n: ema_weights[n] for n in ema.shadow},
                             "num_updates": state.get("ema_num_updates", 0)})
    return state
