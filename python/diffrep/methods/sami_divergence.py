"""The divergence check of SAMI's reverse chains (:meth:`diffrep.methods.sami.SAMI.generate` and the verbs built on
it): a chain whose state x_t turns non-finite or explodes raises :class:`ChainDivergedError` naming the chain, the
step and the likely cause, instead of the NaN message that log q(z | x_t) gives a few steps later. A check only:
the chain's numbers are never changed."""

from __future__ import annotations

import math

import torch

from ..diffusion import ChainDivergedError

# Bound on |x_t| past which a reverse chain has diverged. A chain's x_t follows q(x_t): images in
# [-1, 1] plus unit-variance noise, a few units at most; a chain that leaves by orders of magnitude
# (a barely trained model with guidance reached 1e18 within 25 of 50 DDIM steps) cannot come back,
# and past ~1e13 the encoder's float32 activations overflow, so log q(z | x_t) fails with a NaN
# message that blames its inputs instead of the chain. Far above what a working (or merely poor)
# chain reaches (the same model's non-diverging chains stay below 1e3).
_DIVERGED_ABS_X = 1e6


class _ChainWatch:
    """Watches the states of one reverse chain of ``len(ts)`` steps (``ts``: its timesteps, in order): the
    state entering each step (:meth:`state`, called by the step), then the chain's result (:meth:`state` once
    more). Each state's peak |x_t| is computed on its device; when it is read back decides when a diverged
    chain stops:

    - immediate mode (the default on the CPU, where a read is no synchronisation): every state is read as it
      comes, so a chain stops at the first step whose state left the bound, without running the rest;
    - deferred mode (the default on every other device, CUDA above all: a read there waits for the whole
      launch queue, docs/architecture.md "Host synchronisation and the non-finite-loss check"): the peaks are
      kept on the device and read together at ``CHECKS`` fixed points of the chain (its quarters, the last
      with the result), so a chain reads the host at most ``CHECKS`` times whatever its number of steps, and
      a diverged chain runs on at most a quarter of its steps before it stops.

    Both modes name the same step: the first whose state left the bound."""

    CHECKS = 4

    def __init__(self, what: str, ts: list[int], scale: float | None, device: torch.device,
                 deferred: bool | None = None):
        self.what, self.ts, self.scale = what, list(ts), scale
        self.total = len(self.ts)
        self.deferred = torch.device(device).type != "cpu" if deferred is None else bool(deferred)
        states = self.total + 1  # entering steps 1..total, then the result
        self._reads_at = ({math.ceil(j * states / self.CHECKS) for j in range(1, self.CHECKS + 1)} if self.deferred
                          else set(range(1, states + 1)))
        self._pending: list[torch.Tensor] = []
        self._seen = 0

    def state(self, x: torch.Tensor) -> None:
        """Record the next state (entering the next step, or the result after the last); raise
        :class:`ChainDivergedError` when this is a read point and a state since the last one left the bound."""
        self._pending.append(x.detach().abs().amax())  # NaN propagates through amax
        self._seen += 1
        if self._seen in self._reads_at:
            self.flush()

    def flush(self, cause: BaseException | None = None) -> None:
        """Read the peaks recorded since the last read (one host read) and raise for the first that left the
        bound, chained to ``cause`` (a later check that failed on the diverged state) when given."""
        if not self._pending:
            return
        first = self._seen - len(self._pending) + 1
        peaks, self._pending = torch.stack(self._pending).tolist(), []
        for k, peak in enumerate(peaks, start=first):
            if not (math.isfinite(peak) and peak <= _DIVERGED_ABS_X):
                end = k > self.total
                raise _diverged(peak, self.what, k, self.total, -1 if end else self.ts[k - 1], self.scale, end) from cause


def _diverged(peak: float, what: str, step: int, total: int, t: int, scale: float | None,
              end: bool) -> ChainDivergedError:
    finite = math.isfinite(peak)
    state = "x_t holds NaN or infinite values" if not finite else f"|x_t| reached {peak:.3g} (bound {_DIVERGED_ABS_X:.0e})"
    where = f"at its end (after step {total}/{total})" if end else f"at step {step}/{total} (t={t})"
    if scale is None:
        cause = "the denoiser is likely undertrained"
    else:
        cause = (f"the guidance scale ({scale:g}, config.guidance_scale) is likely too large for this model, or the "
                 "model (denoiser and encoder) is undertrained; try a smaller guidance scale or a longer-trained model")
    return ChainDivergedError(f"SAMI {what} diverged {where}: {state}; {cause}")
