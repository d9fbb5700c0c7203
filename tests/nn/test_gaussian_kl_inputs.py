"""gaussian_kl refuses non-floating inputs with the argument named (no test fed it an integer tensor:
``and`` for ``or`` in the check survived mutation testing, 2026-12-07)."""

import pytest
import torch

from diffrep.nn import gaussian_kl


def test_each_argument_is_checked_and_named():
    f = torch.zeros(2, 3)
    with pytest.raises(TypeError, match="^gaussian_kl: mu must be a floating-point tensor, got torch.int64$"):
        gaussian_kl(torch.zeros(2, 3, dtype=torch.long), f)
    with pytest.raises(TypeError, match="^gaussian_kl: logvar must be a floating-point tensor, got list$"):
        gaussian_kl(f, [[0.0] * 3] * 2)
    with pytest.raises(ValueError, match=r"^reduction must be 'none', 'sum' or 'mean', got 'max'$"):
        gaussian_kl(f, f, reduction="max")
