"""Shared preparation of the BFN kernel ops (:mod:`diffrep.ops.bfn`, :mod:`diffrep.ops.bfn_losses`):
argument checks, Philox draws and the explain() hook."""

from __future__ import annotations

import torch

from . import _validate as V
from ._dispatch import explaining, register
from .random import check_generator, fill_normal, philox_key

def _sigma1(sigma1) -> float:
    return V.positive_scalar("sigma1", sigma1, upper=1.0)


def _grad(*tensors) -> bool:
    return torch.is_grad_enabled() and any(isinstance(v, torch.Tensor) and v.requires_grad for v in tensors)


def _batch_float(name: str, x) -> torch.Tensor:
    V.tensor(name, x)
    V.nonempty(name, x)
    return x


def _draw(p, name: str, noise, shape):
    """Attach injected noise, or a Philox key, to the prepared call ``p``."""
    if noise is not None:
        p.noise = V.noise_tensor(name, noise, shape, p.device, p.dtype)
        p.seed, p.offset = 0, 0
    elif explaining():  # explain() validates and reports only: no draw from the generator
        check_generator(p.generator)
        p.noise, p.seed, p.offset = None, None, None
    else:
        p.noise = None
        p.seed, p.offset = philox_key(p.generator)


def _reference_noise(p, shape):
    if p.noise is not None:
        return p.noise
    out = torch.empty(shape, dtype=p.dtype, device=p.device)
    return fill_normal(out, p.seed, p.offset)


def _explainer(name, prepare):
    register(name)(lambda *a, **k: prepare(*a, **k).choice)


def _check_classes(name, x, K):
    if bool(((x < 0) | (x >= K)).any()):
        raise ValueError(f"{name} holds a class outside [0, {K})")
