"""The training numbers of one log interval, kept on the device, and the non-finite-loss check
(docs/architecture.md, "Host synchronisation and the non-finite-loss check").

On CUDA, ``float(tensor)``, ``.item()`` or a Python ``if`` on a tensor waits until the GPU has run
everything queued before it (a host-device synchronisation). Once per step that empties the launch
queue, and a small model, whose step is mostly kernel launches, loses step throughput. So the
per-step numbers (the loss dict's entries, gradient norms, the fp16 loss scale) are summed on the
device, in float64, and read back once, when the log line is written.

The sums equal the trainer's earlier Python ones bit for bit: each per-step number is the float32
(or Python float) value it was, float32 -> float64 is exact, and a float64 tensor addition rounds as
Python's float addition does. The average is then ``sum / count`` in Python, as before.

The non-finite-loss check has two modes. ``deferred=False`` (the default on the CPU, where reading a
number costs nothing): the loss of each micro-batch is checked at once and a non-finite one raises
before its backward pass. ``deferred=True`` (the default on CUDA): the first non-finite step and its
loss are noted on the device, and :meth:`LogInterval.check` reads them (one synchronisation) at the
trainer's boundaries: before a log line, a checkpoint (which holds the EMA weights), a sample grid, an
evaluation or a callback's logged record, before the checkpoint of an interrupt, and at the last step
(before ``final/``). Those are the earliest points at which a diverged step could reach anything
written; until then its NaN weights only cost compute (at most one log interval's steps).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

import torch

from .._checks import non_negative_int, positive_int
from . import distributed as D

__all__ = ["LogInterval", "StepMetrics", "DIVERGED_HINT"]

DIVERGED_HINT = "the run diverged (lower lr, clip gradients with grad_clip, or resume from an earlier checkpoint)"


class StepMetrics(Mapping):
    """One step's numbers as the callbacks see them: name -> float, each read from its tensor only when a
    callback asks for it (so a callback that ignores them costs no synchronisation)."""

    def __init__(self, values: dict[str, torch.Tensor | float]):
        self._values = values
        self._read: dict[str, float] = {}

    def __getitem__(self, key: str) -> float:
        if key not in self._read:
            self._read[key] = float(self._values[key])
        return self._read[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"StepMetrics({dict(self)!r})"


class LogInterval:
    """Sums of the per-step metrics since the last log line on ``device``, and the non-finite-loss check.

    ``deferred``: check the loss at :meth:`check` / :meth:`flush` instead of at once (default: on CUDA).
    """

    def __init__(self, device: torch.device | str, *, deferred: bool | None = None, start: int = 0):
        self.device = torch.device(device)
        if deferred is not None and not isinstance(deferred, bool):
            raise TypeError(f"LogInterval: deferred must be a bool or None, got {deferred!r}")
        start = non_negative_int(start, "LogInterval: start (the step the run starts from)")
        self.deferred = self.device.type == "cuda" if deferred is None else deferred
        self._sums: dict[str, torch.Tensor] = {}
        self.count = 0
        self._checked_through = start  # the last step the loss check covered
        self._pending = False  # deferred: a loss noted since the last check
        if self.deferred:
            self._inf = torch.full((), math.inf, dtype=torch.float64, device=self.device)
            self._first_bad = self._inf.clone()  # the first step with a non-finite loss (inf: none)
            self._bad_value = torch.zeros((), dtype=torch.float64, device=self.device)  # its loss

    # -- the non-finite-loss check ----------------------------------------------------------
    def check_loss(self, loss: torch.Tensor, step: int) -> None:
        """The loss of a micro-batch of optimiser step ``step`` (1-based): raise ``FloatingPointError``
        now if it is not finite, or (deferred) note it for the next :meth:`check`."""
        if not isinstance(loss, torch.Tensor):
            raise TypeError(f"LogInterval.check_loss: loss must be a tensor, got {type(loss).__name__}")
        step = positive_int(step, "LogInterval.check_loss: step (1-based)")
        loss = loss.detach()
        if not self.deferred:
            if not torch.isfinite(loss).all():
                raise FloatingPointError(f"non-finite loss {loss.item()} at step {step}: {DIVERGED_HINT}")
            return
        # device ops only: `at` is this step where the loss is non-finite, inf where it is finite
        at = torch.where(torch.isfinite(loss).all(), self._inf, step)
        first = at < self._first_bad
        self._bad_value = torch.where(first, loss.sum().double(), self._bad_value)
        self._first_bad = torch.minimum(self._first_bad, at)
        self._pending = True

    def check(self, step: int, *, collective: bool = True) -> None:
        """Deferred: read the losses noted since the last check (one synchronisation) and raise if one was
        not finite; immediate: nothing is left to check. ``collective``: under DDP the ranks agree on the
        earliest non-finite step (all must call it at the same step, as the trainer's boundaries are); a
        rank-local check (before rank 0 logs a callback's record) raises for this rank's losses only and
        leaves them to the next collective check, so that every rank still makes the same calls."""
        step = non_negative_int(step, "LogInterval.check: step")
        if self._pending:
            self._raise_if_bad(self._read(collective, first=True), step, collective)

    def _read(self, collective: bool, first: bool, rest: list[torch.Tensor] = ()) -> list[float]:
        """The noted first non-finite step (all ranks' earliest when ``collective``), this rank's, its loss,
        then ``rest``: one device-to-host read."""
        parts = list(rest)
        if first:
            earliest = self._first_bad.clone()
            if collective:
                D.all_reduce_min_(earliest)
            parts = [earliest, self._first_bad, self._bad_value, *parts]
        return torch.stack(parts).tolist() if parts else []

    def _raise_if_bad(self, values: list[float], step: int, collective: bool = True) -> None:
        earliest, mine, value = values[:3]
        since = self._checked_through + 1
        if collective:
            self._pending, self._checked_through = False, step
        if math.isinf(earliest):
            return
        where = f"{value}" if mine == earliest else "on another rank"
        raise FloatingPointError(
            f"non-finite loss {where} at step {int(earliest)}: {DIVERGED_HINT}. Found by the check after step {step} "
            f"(on {self.device.type} the loss is checked before each log line, checkpoint, sample grid and "
            f"evaluation, not every step); nothing of steps {since}-{step} was logged or saved")

    # -- the metric sums --------------------------------------------------------------------
    def add(self, metrics: Mapping[str, torch.Tensor | float]) -> None:
        """One step's numbers (0-dim tensors or Python numbers), summed in float64 on the device without a
        synchronisation (a Python number goes to the addition as a kernel argument, not as a copy)."""
        for k, v in metrics.items():
            if isinstance(v, torch.Tensor) and v.dim():
                raise ValueError(f"LogInterval.add: metric {k!r} must be a scalar, got shape {tuple(v.shape)}")
            if not isinstance(v, (torch.Tensor, int, float)):
                raise TypeError(f"LogInterval.add: metric {k!r} must be a tensor or a number, got {type(v).__name__}")
            acc = self._sums.get(k)
            if acc is None:  # starts at 0.0 and adds, as the Python sums did (0.0 + -0.0 is 0.0)
                acc = self._sums[k] = torch.zeros((), dtype=torch.float64, device=self.device)
            acc.add_(v if isinstance(v, torch.Tensor) else float(v))
        self.count += 1

    def flush(self, step: int) -> dict[str, float]:
        """Check the losses (deferred), then the average of each metric over the steps since the last
        flush (a metric missing from some steps is divided by the count of all of them, as before), and
        start a new interval: one device-to-host read for both."""
        step = non_negative_int(step, "LogInterval.flush: step")
        if not self.count:
            raise RuntimeError("LogInterval.flush: no step was added since the last flush")
        keys = list(self._sums)
        values = self._read(True, self._pending, [self._sums[k] for k in keys])
        if self._pending:
            self._raise_if_bad(values, step)
            values = values[3:]
        avg = {k: v / self.count for k, v in zip(keys, values)}
        self._sums, self.count = {}, 0
        return avg
