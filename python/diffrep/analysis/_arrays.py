"""Array-like inputs of the analyses (tensors, numpy arrays, nested lists) as real torch tensors: one wording
for a value that is not an array of real numbers, naming the argument, instead of torch's conversion errors."""

from __future__ import annotations

import numpy as np
import torch


def real_tensor(x, name: str) -> torch.Tensor:
    """``x`` as a tensor of real numbers (floating or integer; complex, bool, str and object arrays refused)."""
    if x is None or isinstance(x, (str, bytes)):
        raise TypeError(f"{name} must be an array of real numbers, got {type(x).__name__}")
    try:
        t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{name} must be an array of real numbers, got {type(x).__name__}") from None
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must hold real numbers, got dtype {t.dtype}")
    return t
