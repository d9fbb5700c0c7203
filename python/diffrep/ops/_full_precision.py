"""Statistics that do not depend on the caller's autocast.

``torch.autocast`` (the trainer's bf16 on CUDA, or a user's own ``torch.autocast("cpu",
dtype=torch.bfloat16)``; docs/architecture.md#autocast) runs matmul, linear, conv and baddbmm with 8-bit
mantissas. The mixture fits and log-densities of :mod:`diffrep.cluster`, the k-means distances
|c|^2 - 2 x.c and the features the generation metrics extract are statistics of their inputs:
computed in bf16, HDDC's cost (||x - mu||^2 minus the signal-subspace energy, over the small noise
variance b; Bouveyron et al. 2007) moved log-densities by thousands and k-means labels flipped on
clusters offset from the origin. Their public entry points run under :func:`full_precision`, which
leaves numbers outside autocast untouched (no autocast on: nothing changes).
"""

from __future__ import annotations

import contextlib
import functools

import torch

__all__ = ["full_precision", "autocast_off"]

# the device types whose autocast a caller can have on without naming a tensor here: the CPU and
# the GPU a metric moves its numpy inputs to (prdc, kid_from_features: ``device=``)
_DEVICE_TYPES = ("cpu", "cuda")


@contextlib.contextmanager
def full_precision(*values):
    """Autocast off, for the body of the ``with``, on every device type where it is on now: the CPU,
    CUDA and the devices of the tensors among ``values`` (other values are ignored). Where autocast
    is off already this enters nothing."""
    types = set(_DEVICE_TYPES) | {v.device.type for v in values if isinstance(v, torch.Tensor)}
    with contextlib.ExitStack() as stack:
        for dev in sorted(types):
            if torch.amp.is_autocast_available(dev) and torch.is_autocast_enabled(dev):
                stack.enter_context(torch.autocast(dev, enabled=False))
        yield


def autocast_off(fn):
    """Decorator: ``fn`` runs under :func:`full_precision` of its own arguments."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with full_precision(*args, *kwargs.values()):
            return fn(*args, **kwargs)

    return wrapper
