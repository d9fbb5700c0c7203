"""diffrep: representation learning with diffusion and Bayesian flow models, and its metrics.

torch is imported before the native extension on purpose: torch ships its own libgomp, and
loading it first means diffrep's OpenMP kernels share torch's runtime, so
``torch.set_num_threads`` governs both (docs/build.md#backends).
"""

import torch  # noqa: F401  (must precede the native import, see module docstring)

from ._native import cpu_available, cuda_available, info
from ._version import __version__

__all__ = ["__version__", "info", "cpu_available", "cuda_available"]
