"""Output distributions p_O(x | Psi(theta, t)) (BFN §4-6; reference ``probability.py``).

An output object turns the raw network output into a distribution for the current parameters:
``output(net_out, state, t) -> dist``. Every dist has ``mean`` (x-hat; for discrete data the soft
one-hot E[e_x]), ``mode``, ``sample(generator)`` and ``log_prob(x)``.

* :class:`DeltaOutput`: delta(x - x_hat), x_hat clipped to [-1, 1] (reference ``DeltaFactory``).
  With ``noise_pred`` the network predicts the flow noise and x_hat = mu/gamma - sqrt((1-gamma)/gamma)
  eps_hat (ParamReL Eq. 10 prints "+"; diffrep uses BFN's "-", docs/methods/paramrel.md#eq-10-12-conditional-decoder-and-adagn; ``eps_sign=+1``
  reproduces the printed sign).
* :class:`DiscretisedNormalOutput`: a Normal discretised into K bins on [-1, 1] (docs/kernels/bfn.md#discretised-output-distribution), two network
  outputs (mean or eps, log sigma).
* :class:`CategoricalOutput`: Bernoulli(sigmoid(l)) for K = 2 (one logit per dimension, the class-1
  logit), Cat(softmax) for K > 2.

:func:`discretised_log_prob` scores data under the discretised Normal (L^r, BFN Eq. 26); the bin
probabilities themselves are a native op (:func:`diffrep.ops.bfn.discretised_probs`).
"""

from __future__ import annotations

import math

import torch

from .._checks import positive_int
from ..ops.random import check_generator
from ..ops import _validate as V
from ..ops import bfn as ops
from ..ops.reference import bfn as ref
from .conversions import _noise_pred_to_data_pred, _output_normal_params
from .flows import FlowState

__all__ = ["DeltaOutput", "DiscretisedNormalOutput", "CategoricalOutput", "DeltaDist", "DiscretisedNormalDist",
           "CategoricalDist", "discretised_log_prob", "check_parts", "check_out"]


def discretised_log_prob(x, mu_x, sigma_x, num_bins, clip=True):
    """log p(x) under the discretised Normal (reference `DiscretizedCtsDistribution.log_prob`):
    x is mapped to its bin; masses below 1e-5 fall back to the density at the bin centre times
    the bin width 2/K. The reconstruction loss L^r is ``-discretised_log_prob(x, ...)`` at t = 1.
    clip=True: the edge bins absorb the tails; clip=False: renormalised by R = Phi(1) - Phi(-1),
    uniform 1/K where R < 1e-5.
    """
    for name, v in (("x", x), ("mu_x", mu_x), ("sigma_x", sigma_x)):
        V.tensor(name, v)
    V.same_shape("mu_x", mu_x, "x", x)
    V.same_shape("sigma_x", sigma_x, "x", x)
    V.same_device(x=x, mu_x=mu_x, sigma_x=sigma_x)
    K = V.num_classes("num_bins", num_bins)
    V.nonnegative("sigma_x", sigma_x, strict=True)
    V.finite("x", x)
    V.finite("mu_x", mu_x)
    idx = ref.float_to_idx(x, K)
    centre = (idx.to(x.dtype) + 0.5) / K * 2 - 1
    half = 1.0 / K
    lo = ref.normal_cdf(centre - half, mu_x, sigma_x)
    hi = ref.normal_cdf(centre + half, mu_x, sigma_x)
    if clip:
        lo = torch.where(idx <= 0, torch.zeros_like(lo), lo)
        hi = torch.where(idx >= K - 1, torch.ones_like(hi), hi)
        prob = hi - lo
    else:
        one = torch.ones_like(mu_x)
        rng = ref.normal_cdf(one, mu_x, sigma_x) - ref.normal_cdf(-one, mu_x, sigma_x)
        mask = rng < ref.MIN_PROB
        rng = torch.where(mask, torch.ones_like(rng), rng)
        prob = torch.where(mask, torch.full_like(rng, 1.0 / K), (hi - lo) / rng)
    density = torch.distributions.Normal(mu_x, sigma_x, validate_args=False).log_prob(centre)
    return torch.where(prob < ref.MIN_PROB, density + math.log(2.0 / K), torch.log(prob.clamp(min=ref.SAFE_LOG)))


def _bin_centres(K: int, like: torch.Tensor) -> torch.Tensor:
    return (torch.arange(K, device=like.device, dtype=like.dtype) + 0.5) / K * 2 - 1


class DeltaDist:
    def __init__(self, x_hat: torch.Tensor, sigma1: float):
        V.tensor("x_hat", x_hat)
        _check_sigma1(sigma1, "DeltaDist")
        self.x_hat, self.sigma1 = x_hat, sigma1

    @property
    def mean(self) -> torch.Tensor:
        return self.x_hat

    @property
    def mode(self) -> torch.Tensor:
        return self.x_hat

    def sample(self, generator=None) -> torch.Tensor:
        check_generator(generator)  # a delta has nothing to draw; the argument is the other outputs'
        return self.x_hat

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Per element: x scored under a discretised N(x_hat, sigma1^2) with 256 bins, or N(x_hat,
        (0.7 sigma1)^2) with 16 bins when sigma1^2 = 1e-3 (reference L^r, BFN §7.2)."""
        if math.isclose(self.sigma1**2, 1e-3, rel_tol=1e-6):
            K, s = 16, 0.7 * self.sigma1
        else:
            K, s = 256, self.sigma1
        return discretised_log_prob(x, self.x_hat, torch.full_like(self.x_hat, s), K)


class DiscretisedNormalDist:
    def __init__(self, mu_x: torch.Tensor, sigma_x: torch.Tensor, num_bins: int, clip: bool = True):
        V.tensor("mu_x", mu_x)
        V.tensor("sigma_x", sigma_x)
        V.same_shape("sigma_x", sigma_x, "mu_x", mu_x)
        V.num_classes("num_bins", num_bins)
        _check_bool(clip, "clip")
        V.nonnegative("sigma_x", sigma_x, strict=True)
        self._set(mu_x, sigma_x, num_bins, clip)

    @classmethod
    def _from_output(cls, mu_x: torch.Tensor, sigma_x: torch.Tensor, num_bins: int, clip: bool) -> "DiscretisedNormalDist":
        """The output's own parameters inside a sampler: sigma_x comes clamped to [1e-3, 10] by
        output_normal_params, so its positivity is not read back (a host-device sync on CUDA)."""
        d = cls.__new__(cls)
        d._set(mu_x, sigma_x, num_bins, clip)
        return d

    def _set(self, mu_x, sigma_x, num_bins, clip) -> None:
        self.mu_x, self.sigma_x, self.K, self.clip = mu_x, sigma_x, num_bins, clip
        self._probs = None

    @property
    def probs(self) -> torch.Tensor:
        if self._probs is None:
            self._probs = ops.discretised_probs(self.mu_x, self.sigma_x, self.K, self.clip)
        return self._probs

    @property
    def mean(self) -> torch.Tensor:
        p = self.probs
        return (p * _bin_centres(self.K, p)).sum(-1)

    @property
    def mode(self) -> torch.Tensor:
        p = self.probs
        return _bin_centres(self.K, p)[p.argmax(-1)]

    def sample(self, generator=None) -> torch.Tensor:
        """A bin centre drawn from the bin probabilities (the same law as quantising a clipped
        Normal draw, reference ``DiscretizedCtsDistribution.sample``)."""
        p = self.probs
        weights = p.reshape(-1, self.K).to(torch.promote_types(p.dtype, torch.float32)).clamp_min(0)
        idx = torch.multinomial(weights, 1, generator=generator).reshape(p.shape[:-1])
        return _bin_centres(self.K, p)[idx]

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return discretised_log_prob(x, self.mu_x, self.sigma_x, self.K, self.clip)


class CategoricalDist:
    def __init__(self, logits: torch.Tensor):
        V.tensor("logits", logits)
        if logits.dim() < 1 or logits.shape[-1] < 2:
            raise ValueError(f"logits must have the K >= 2 classes in the last dimension, got shape {tuple(logits.shape)}")
        self.logits = logits  # (..., K)

    def _wide_logits(self) -> torch.Tensor:
        """The logits in at least float32 (half-precision logits are normalised in float32; float64 stays)."""
        return self.logits.to(torch.promote_types(self.logits.dtype, torch.float32))

    @property
    def probs(self) -> torch.Tensor:
        return torch.softmax(self._wide_logits(), -1)

    @property
    def mean(self) -> torch.Tensor:
        """E[e_x] = the class probabilities (the soft one-hot the discrete sender reads)."""
        return self.probs

    @property
    def mode(self) -> torch.Tensor:
        return self.logits.argmax(-1)

    def sample(self, generator=None) -> torch.Tensor:
        p = self.probs
        return torch.multinomial(p.reshape(-1, p.shape[-1]), 1, generator=generator).reshape(p.shape[:-1])

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        V.integer_classes("x", x)
        if tuple(x.shape) != tuple(self.logits.shape[:-1]):
            raise ValueError(f"x must have shape {tuple(self.logits.shape[:-1])} (the logits' without the classes), "
                             f"got {tuple(x.shape)}")
        K = self.logits.shape[-1]
        if x.numel() and bool(((x < 0) | (x >= K)).any()):
            raise ValueError(f"x holds a class outside [0, {K})")
        lp = torch.log_softmax(self._wide_logits(), -1)
        return lp.gather(-1, x.long().unsqueeze(-1)).squeeze(-1)


def check_out(net_out, shape, who, name="net_out"):
    """The network output ``name``: a real float tensor of ``shape``."""
    if not isinstance(net_out, torch.Tensor) or tuple(net_out.shape) != tuple(shape):
        raise ValueError(f"{who}: {name} (the network output) must have shape {tuple(shape)}, got "
                         f"{tuple(getattr(net_out, 'shape', ())) or type(net_out).__name__}")
    V.tensor(name, net_out)


def _check_bool(value, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def check_parts(flow, output, state=None, x=None) -> None:
    """A flow and an output distribution that belong together (BFN §4-6: continuous or discretised data
    with a ContinuousFlow and a Delta or discretised Normal output, discrete data with a DiscreteFlow
    and a categorical output), and optionally a FlowState and data x of that flow's shape."""
    from .flows import ContinuousFlow, DiscreteFlow

    if not isinstance(flow, (ContinuousFlow, DiscreteFlow)):
        raise TypeError(f"flow must be a ContinuousFlow or a DiscreteFlow, got {type(flow).__name__}")
    if not isinstance(output, (DeltaOutput, DiscretisedNormalOutput, CategoricalOutput)):
        raise TypeError(f"output must be a DeltaOutput, DiscretisedNormalOutput or CategoricalOutput, got "
                        f"{type(output).__name__}")
    if isinstance(flow, DiscreteFlow) != isinstance(output, CategoricalOutput):
        raise ValueError(f"output {type(output).__name__} does not go with flow {type(flow).__name__}")
    if state is not None or x is not None:
        if not isinstance(state, FlowState):
            raise TypeError(f"state must be a FlowState, got {type(state).__name__}")
        if not isinstance(x, torch.Tensor) or x.is_complex():
            raise TypeError(f"x must be a real tensor, got {getattr(x, 'dtype', type(x).__name__)}")
        data_shape = state.params.shape[:-1] if isinstance(flow, DiscreteFlow) else state.params.shape
        if tuple(x.shape) != tuple(data_shape):
            raise ValueError(f"x has shape {tuple(x.shape)} but the state holds data of shape {tuple(data_shape)}")


def _check_call(state, t):
    """The state and network time of an output distribution's call."""
    if not isinstance(state, FlowState):
        raise TypeError(f"state must be a FlowState, got {type(state).__name__}")
    if not isinstance(t, torch.Tensor) or t.is_complex():
        raise TypeError(f"t must be a real tensor of network times, got {getattr(t, 'dtype', type(t).__name__)}")


def _check_sigma1(sigma1, who: str) -> None:
    """sigma1 in (0, 1) (BFN Eq. 72), checked when the output is built: without noise prediction a bad
    value (NaN, 2.0) was stored and surfaced only later, or as a NaN loss weight."""
    if isinstance(sigma1, bool) or not isinstance(sigma1, (int, float)) or not 0 < sigma1 < 1:
        raise ValueError(f"{who}: sigma1 must be in (0, 1), got {sigma1!r}")


class DeltaOutput:
    """Delta output for continuous data; one network output per data channel."""

    num_outputs = 1

    def __init__(self, sigma1: float, noise_pred: bool = True, clip_range: float = 1.0, eps_sign: int = -1):
        if eps_sign not in (-1, 1):
            raise ValueError(f"eps_sign must be -1 (BFN) or +1 (ParamReL Eq. 10 as printed), got {eps_sign!r}")
        _check_sigma1(sigma1, "DeltaOutput")
        if isinstance(clip_range, bool) or not isinstance(clip_range, (int, float)) or not 0 <= clip_range < math.inf:
            raise ValueError(f"clip_range must be a finite number >= 0 (0 disables the clip), got {clip_range!r}")
        _check_bool(noise_pred, "noise_pred")
        self.sigma1, self.noise_pred, self.clip_range, self.eps_sign = sigma1, bool(noise_pred), float(clip_range), eps_sign

    def out_channels(self, channels: int) -> int:
        return positive_int(channels, "channels")

    def eps(self, net_out: torch.Tensor) -> torch.Tensor:
        """The network output as BFN's eps_hat (sign-flipped for ``eps_sign=+1``)."""
        V.tensor("net_out", net_out)
        return net_out if self.eps_sign == -1 else -net_out

    def __call__(self, net_out, state, t) -> DeltaDist:
        return self._dist(net_out, state, t, check_values=True)

    def _dist(self, net_out, state, t, *, check_values: bool) -> DeltaDist:
        """``check_values=False``: no read of net_out's finiteness or t's range (a sampler's own steps)."""
        _check_call(state, t)
        mu = state.params
        check_out(net_out, mu.shape, "DeltaOutput")
        if check_values:
            V.finite("net_out", net_out)
        out = net_out.to(mu.dtype)
        if self.noise_pred:
            x_hat = _noise_pred_to_data_pred(self.eps(out), mu, t.to(mu.dtype), self.sigma1,
                                             check_values=check_values)[0]
        else:
            x_hat = out
        if self.clip_range > 0:
            x_hat = x_hat.clamp(-self.clip_range, self.clip_range)
        return DeltaDist(x_hat, self.sigma1)


class DiscretisedNormalOutput:
    """Discretised Normal output with K bins; the network gives (mean or eps, log sigma)."""

    num_outputs = 2

    def __init__(self, sigma1: float, num_bins: int, noise_pred: bool = True, clip: bool = True, eps_sign: int = -1):
        if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 2:
            raise ValueError(f"num_bins must be an int >= 2, got {num_bins!r}")
        if eps_sign not in (-1, 1):
            raise ValueError(f"eps_sign must be -1 or +1, got {eps_sign!r}")
        _check_sigma1(sigma1, "DiscretisedNormalOutput")
        _check_bool(noise_pred, "noise_pred")
        _check_bool(clip, "clip")
        self.sigma1, self.K, self.noise_pred, self.clip, self.eps_sign = sigma1, num_bins, bool(noise_pred), bool(clip), eps_sign

    def out_channels(self, channels: int) -> int:
        return positive_int(channels, "channels")

    def split(self, net_out):
        if not isinstance(net_out, (tuple, list)) or len(net_out) != 2:
            raise ValueError("DiscretisedNormalOutput: net_out must be the network's pair (mean or eps, log sigma), got "
                             f"{type(net_out).__name__}")
        mean, log_sigma = net_out
        V.tensor("net_out[0]", mean)
        V.tensor("net_out[1]", log_sigma)
        return (mean if self.eps_sign == -1 else -mean), log_sigma

    def __call__(self, net_out, state, t) -> DiscretisedNormalDist:
        return self._dist(net_out, state, t, check_values=True)

    def _dist(self, net_out, state, t, *, check_values: bool) -> DiscretisedNormalDist:
        """``check_values=False``: no read of net_out's finiteness or t's range (a sampler's own steps)."""
        _check_call(state, t)
        mu = state.params
        mean, log_sigma = self.split(net_out)
        check_out(mean, mu.shape, "DiscretisedNormalOutput", "net_out[0]")
        check_out(log_sigma, mu.shape, "DiscretisedNormalOutput", "net_out[1]")
        if check_values:
            V.finite("net_out[0]", mean)
            V.finite("net_out[1]", log_sigma)
        mu_x, sigma_x = _output_normal_params(mean.to(mu.dtype), log_sigma.to(mu.dtype), mu, t.to(mu.dtype),
                                              self.sigma1, self.noise_pred, check_values=check_values)
        if not check_values:
            return DiscretisedNormalDist._from_output(mu_x, sigma_x, self.K, self.clip)
        return DiscretisedNormalDist(mu_x, sigma_x, self.K, self.clip)


class CategoricalOutput:
    """Bernoulli (K = 2, one class-1 logit per dimension) or categorical (K logits) output."""

    num_outputs = 1

    def __init__(self, num_classes: int):
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        self.K = num_classes

    def out_channels(self, channels: int) -> int:
        channels = positive_int(channels, "channels")
        return channels if self.K == 2 else channels * self.K

    def logits(self, net_out: torch.Tensor, data_shape) -> torch.Tensor:
        """(B, C, H, W, K) logits (K = 2: (B, C, H, W, 1), the Bernoulli logit of class 1)."""
        if (isinstance(data_shape, (str, bytes)) or not hasattr(data_shape, "__len__") or len(data_shape) < 2
                or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in data_shape)):
            raise ValueError(f"data_shape must be the data's (B, C, ...) sizes, got {data_shape!r}")
        B, C = data_shape[0], data_shape[1]
        if self.K == 2:
            check_out(net_out, data_shape, "CategoricalOutput")
            return net_out.unsqueeze(-1)
        check_out(net_out, (B, C * self.K, *data_shape[2:]), "CategoricalOutput")
        return net_out.reshape(B, C, self.K, *data_shape[2:]).movedim(2, -1)

    def __call__(self, net_out, state, t) -> CategoricalDist:
        return self._dist(net_out, state, t, check_values=True)

    def _dist(self, net_out, state, t, *, check_values: bool) -> CategoricalDist:  # no value reads either way
        _check_call(state, t)
        lg = self.logits(net_out, state.params.shape[:-1])
        if self.K == 2:
            lg = torch.cat([torch.zeros_like(lg), lg], -1)  # softmax([0, l]) = [1 - sigmoid(l), sigmoid(l)]
        return CategoricalDist(lg)


from .._deprecation import moved_names  # noqa: E402  (old "discretized" spellings, one release)

__getattr__ = moved_names(__name__, {**{f"Discretized{n}": f"{__name__}:Discretised{n}" for n in ("NormalOutput", "NormalDist")},
                                     "discretized_log_prob": f"{__name__}:discretised_log_prob"})
