"""The n-step BFN sampler and the reverse (inverse-update) chain.

:func:`sample` is the reference ``BFN.sample`` after its fix (docs/kernels/bfn.md#sampler): for i = 1..n the
network reads theta at t_{i-1} = (i-1)/n, an output x~ is drawn, a sender sample y ~ p_S(. | x~; alpha_i)
updates theta; then a final network call at t = 1 returns the **mode** of p_O (``final="sample"``
returns a draw, as BFN's algorithms do). n + 1 network calls, total accuracy beta(1).
``legacy_skip_last_update=True`` reproduces the pre-``b62568e`` loop ``range(1, n)`` (n - 1 updates,
the last call still told t = 1), which ParamReL's public code inherited.

:func:`reverse_chain` runs the exact inverse update h^-1 from the noise-free flow state at t = 1 back
to t = 0 (ParamReL Eq. 5 / SepDiff Eq. 3; the algorithm of docs/methods/paramrel.md#eq-2-5-sampling-and-reverse-sampling), in float64 by default.

``predict(state, t) -> net_out`` wraps the network: ``t`` (B,) is the time told to the network. Both
functions take it so that methods (ParamReL) can add their latent inputs per step.

Each chain runs in one :func:`diffrep.ops.deferred_checks` block: on CUDA the input checks of the BFN ops it
calls are read once at its end, not once per op (docs/kernels/bfn.md#host-reads-on-cuda), and a flagged op
raises its usual error there, before anything is returned. A ``callback`` is called after the pending checks
are read (one read per call on CUDA), so it is never handed a state computed from a flagged op's output.
"""

from __future__ import annotations

from typing import Callable

import torch

from .._progress import progress
from ..ops import deferred_checks
from .distributions import check_parts
from .flows import FlowState, step_times

__all__ = ["sample", "reverse_chain"]

Predict = Callable[[FlowState, torch.Tensor], object]


def _check_callables(flow, output, predict, callback) -> None:
    check_parts(flow, output)
    if not callable(predict):
        raise TypeError(f"predict must be callable as predict(state, t), got {type(predict).__name__}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be None or callable, got {type(callback).__name__}")


def _full(state: FlowState, t: float) -> torch.Tensor:
    return torch.full((state.params.shape[0],), float(t), dtype=torch.float64, device=state.params.device)


def sample(flow, output, predict: Predict, state: FlowState, n_steps: int, *, generator=None, final: str = "mode",
           x_tilde: str = "sample", sender_noise: bool = True, legacy_skip_last_update: bool = False,
           callback: Callable | None = None) -> tuple[torch.Tensor, FlowState]:
    """Run n steps from ``state`` (usually ``flow.prior(...)``) and decode at t = 1.

    ``x_tilde``: ``"sample"`` draws x~ from p_O (BFN), ``"mean"`` uses E[x] (the deterministic decoder
    of ParamReL's reverse-sampling, with ``sender_noise=False``: y = E[y | x~]).
    ``callback(i, state, dist)`` is called after each network call (i = 1..n, then n + 1 for the final).
    Returns (x in data space: floats for continuous data, integer classes for discrete data, final state).
    """
    times = step_times(n_steps)
    _check_callables(flow, output, predict, callback)
    if final not in ("mode", "sample"):
        raise ValueError(f"final must be 'mode' or 'sample', got {final!r}")
    if x_tilde not in ("sample", "mean"):
        raise ValueError(f"x_tilde must be 'sample' or 'mean', got {x_tilde!r}")
    if not isinstance(state, FlowState):
        raise TypeError(f"state must be a FlowState, got {type(state).__name__}")
    last = n_steps - 1 if legacy_skip_last_update else n_steps
    # The first step runs through the checked public calls (the state's time and the first network output: the
    # usual messages); the later steps run on the grid built here, t_i = i/n after the state's t_1, so their
    # times and accuracies need no read (docs/architecture.md "Host synchronisation and the non-finite-loss
    # check"); the final call is checked again. A non-finite network output at an unchecked step still stops
    # the chain: the continuous update kernels flag NaN or infinite sender samples
    # (docs/kernels/bfn.md#numerical-safeguards); on CUDA the ops' flags are read once, at the chain's end
    # (and before each callback), not per op.
    with deferred_checks() as checks:
        for i in progress(range(1, last + 1), total=last, desc="BFN sampling", unit="step"):
            t_net = _full(state, times[i - 1])
            if i == 1:
                dist = output(predict(state, t_net), state, t_net)
            else:
                dist = output._dist(predict(state, t_net), state, t_net, check_values=False)
            xt = dist.sample(generator) if x_tilde == "sample" else dist.mean
            if i == 1:
                state, _ = flow.step(state, xt, times[i], generator, sender_noise=sender_noise)
            else:
                state, _ = flow._step(state, xt, _full(state, times[i]), generator, sender_noise)
            _call_back(callback, checks, i, state, dist)
        t_net = _full(state, 1.0)
        dist = output(predict(state, t_net), state, t_net)
        _call_back(callback, checks, n_steps + 1, state, dist)
        x = dist.mode if final == "mode" else dist.sample(generator)
    return x, state


def reverse_chain(flow, output, predict: Predict, x: torch.Tensor, n_steps: int, *, dtype=torch.float64,
                  callback: Callable | None = None) -> FlowState:
    """Reverse-sampling with the exact inverse update (docs/methods/paramrel.md#eq-2-5-sampling-and-reverse-sampling, corrected indices).

    Start at the noise-free flow state at t = 1 (mu = gamma(1) x, rho = sigma1^-2; discrete: logits
    beta(1)(K e_x - 1)) with x-hat_0 = x. For s = 1..n at t = 1 - s/n: theta_s = h^-1(theta_{s-1},
    y = E[y | x-hat_{s-1}]), then the network at (theta_s, t) gives x-hat_s = E[p_O]. ``callback(s,
    state, t)`` runs before the network call (after a read of the pending op flags on CUDA). The returned state at t = 0
    has rho = 1 (continuous) and holds the stochastic subcode (mu_T, or the discrete logits).
    """
    times = step_times(n_steps)
    _check_callables(flow, output, predict, callback)
    data = flow.prepare_data(x)
    state = flow.mean_state(data, 1.0, dtype=dtype)
    if flow.kind == "discrete":
        x_hat = torch.nn.functional.one_hot(data, flow.K).to(dtype)
    else:
        x_hat = data.to(dtype)
    with deferred_checks() as checks:  # as in sample: the ops' flags read at the end (and before each callback)
        for s in range(1, n_steps + 1):
            t_prev = times[n_steps - s]
            alpha = _accuracy(flow, times[n_steps - s + 1], t_prev, state)
            # as in sample: the first inverse step and network output through the checked public calls, the later
            # ones on the grid built here without reads
            if s == 1:
                state = flow.inverse_step(state, flow.sender_mean(x_hat, alpha), t_prev)
            else:
                state = flow._inverse_step(state, flow.sender_mean(x_hat, alpha), _full(state, t_prev))
            t_net = _full(state, t_prev)
            _call_back(callback, checks, s, state, t_net)
            if s < n_steps:
                net_out = predict(state, t_net)
                dist = output(net_out, state, t_net) if s == 1 else output._dist(net_out, state, t_net, check_values=False)
                x_hat = dist.mean.to(dtype)
    return state


def _call_back(callback, checks, *args) -> None:
    """``callback(*args)``, after reading the chain's pending op flags (a read on CUDA): a callback is never handed
    a state computed from an op's output while that op's input check is unread (docs/kernels/bfn.md#host-reads-on-cuda)."""
    if callback is not None:
        checks.check()
        callback(*args)


def at_grid_time(values: torch.Tensor, t: torch.Tensor, n_steps: int) -> torch.Tensor:
    """``values[round(t n)]``: the value a method stored for the chain's grid time t = i/n (ParamReL's codes z_i;
    one time for the batch), picked on the device: t is not read back (a host-device sync per step on CUDA)."""
    return values.index_select(0, torch.round(t[:1].double() * n_steps).long().to(values.device)).squeeze(0)


def _accuracy(flow, t_hi: float, t_lo: float, state: FlowState) -> torch.Tensor:
    """alpha = beta(t_hi) - beta(t_lo), shaped to broadcast against the state's data dims."""
    a = (flow.beta(torch.tensor(t_hi, dtype=torch.float64)) - flow.beta(torch.tensor(t_lo, dtype=torch.float64)))
    a = a.to(state.params.dtype).to(state.params.device)
    return a.reshape([1] * (state.params.dim() - (1 if flow.kind == "discrete" else 0)))
