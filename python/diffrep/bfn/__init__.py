"""Bayesian Flow Networks (Graves et al. 2023) in diffrep's forward time, built on :mod:`diffrep.ops.bfn`.

- :mod:`.flows`: input distributions, flow sampling, Bayesian updates and exact inverses
  (:class:`ContinuousFlow`, :class:`DiscreteFlow`);
- :mod:`.distributions`: output distributions (delta, discretised Normal, categorical/Bernoulli);
- :mod:`.schedules`: gamma(t), the precision rho(t), beta(t) and the n-step accuracies alpha_i;
- :mod:`.quantize`: discretised data snapped to the K bin centres (:func:`quantize`);
- :mod:`.conversions`: network outputs (noise or data prediction) -> output-distribution parameters;
- :mod:`.losses`: L^inf, L^n and L^r per example, on the per-element terms of :mod:`diffrep.ops.bfn`
  (fused kernels) and :mod:`.loss_terms` (composites without a kernel);
- :mod:`.sampler`: the fixed n-step sampler and the inverse-update reverse chain;
- :mod:`.config` / :mod:`.model`: the shared data configuration and the plain :class:`BFN` module.
"""

from .config import BFNDataConfig, make_flow, make_output, unet_io
from .distributions import CategoricalOutput, DeltaOutput, DiscretisedNormalOutput
from .flows import ContinuousFlow, DiscreteFlow, FlowState, step_times
from .losses import continuous_time_loss, discrete_time_loss, reconstruction_loss
from .model import BFN, BFNConfig
from .quantize import quantize
from .sampler import reverse_chain, sample

__all__ = ["BFNDataConfig", "make_flow", "make_output", "unet_io", "CategoricalOutput", "DeltaOutput",
           "DiscretisedNormalOutput", "ContinuousFlow", "DiscreteFlow", "FlowState", "step_times",
           "continuous_time_loss", "discrete_time_loss", "reconstruction_loss", "BFN", "BFNConfig", "quantize",
           "reverse_chain", "sample"]

from .._deprecation import moved_names  # noqa: E402

__getattr__ = moved_names(__name__, {"DiscretizedNormalOutput": "diffrep.bfn.distributions:DiscretisedNormalOutput"})
