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

The input checks of the native BFN and guidance ops (docs/kernels/bfn.md#host-reads-on-cuda) follow the
same rule in the deferred mode: inside :meth:`LogInterval.op_checks` (the trainer's forward pass) they
write their flags to the interval's device buffer, each tagged with its step, and the check at a boundary
reads them (one more read, before the loss's) and raises the first flagged op's ``ValueError``, its
message followed by the step it came from and the steps not logged or saved, as for the loss. The
immediate mode leaves them alone: on the CPU they raise at once, on CUDA each op reads its flags.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator, Mapping

import torch

from .._checks import non_negative_int, positive_int
from ..ops import DeferredChecks
from . import distributed as D

__all__ = ["LogInterval", "StepMetrics", "DIVERGED_HINT"]

DIVERGED_HINT = "the run diverged (lower lr, clip gradients with grad_clip, or resume from an earlier checkpoint)"


class _FlaggedOp(ValueError):
    """A deferred op's error and the training step whose forward pass ran the op; reads as the op's error."""

    def __init__(self, step: int, error: ValueError):
        super().__init__(str(error))
        self.step, self.error = step, error


def _raise_at_step(step: int, fail, flags: int) -> None:
    try:
        fail(flags)
    except ValueError as error:
        raise _FlaggedOp(step, error) from error


class _StepOpChecks(DeferredChecks):
    """The interval's deferred op checks: each slot remembers the step being run when its op was called."""

    step = 0

    def slot(self, device: torch.device, fail) -> torch.Tensor:
        return super().slot(device, functools.partial(_raise_at_step, self.step, fail))


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
            self._ops = _StepOpChecks()  # the BFN and guidance ops' flags since the last check
            self._op_flagged: _FlaggedOp | None = None  # this rank's first flagged op found by the last read

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

    @contextlib.contextmanager
    def op_checks(self, step: int):
        """Deferred: the BFN and guidance ops called in the block (a micro-batch's forward pass of optimiser
        step ``step``, 1-based) write their input checks to the interval's device buffer instead of reading
        them back each (docs/kernels/bfn.md#host-reads-on-cuda); the next :meth:`check` or :meth:`flush`
        reads them. Immediate: nothing changes (each op raises at once on the CPU, reads its flags on CUDA).
        A full buffer (``diffrep.ops._deferred.CAPACITY`` ops) is read during the block and a flagged op
        raises there; an exception leaving the block has the pending flags read, and a flagged op's error
        (the likely cause) raised from it, as ``diffrep.ops.deferred_checks`` does."""
        step = positive_int(step, "LogInterval.op_checks: step (1-based)")
        if not self.deferred:
            yield
            return
        self._ops.step = step
        try:
            with self._ops.active():
                yield
        except _FlaggedOp as flagged:  # the buffer filled during this step and an op had flagged its input
            raise self._op_error(flagged, flagged.step, self._checked_through + 1, step,
                                 f"when the buffer of op checks filled during step {step}") from flagged.error
        except Exception as exc:
            try:
                self._ops.check()
            except _FlaggedOp as flagged:
                raise self._op_error(flagged, flagged.step, self._checked_through + 1, step,
                                     f"after step {step} failed") from exc
            raise

    def _read_ops(self) -> float:
        """Read this rank's pending op flags (one read, none when no op was called): the step of the first
        flagged op (kept for its error), or inf."""
        self._op_flagged = None
        if self._ops.pending():
            try:
                self._ops.check()
            except _FlaggedOp as flagged:
                self._op_flagged = flagged
                return float(flagged.step)
        return math.inf

    def _op_error(self, flagged: _FlaggedOp | None, at: int, since: int, step: int, found: str) -> ValueError:
        """The error of the op flagged at step ``at`` (``flagged`` None: on another rank), found ``found``,
        nothing of steps ``since``-``step`` written."""
        what = (f"{flagged.error}" if flagged is not None
                else "a native op (BFN, guidance, MMD or HDDC) flagged its input on another rank")
        return ValueError(
            f"{what} (at step {at}). Found {found} (on {self.device.type} the input checks of the BFN and guidance "
            f"ops are read before each log line, checkpoint, sample grid and evaluation, not at each op); nothing "
            f"of steps {since}-{step} was logged or saved")

    def check(self, step: int, *, collective: bool = True) -> None:
        """Deferred: read the losses noted and the ops' flags written since the last check (a synchronisation,
        and one more read when an op was called) and raise if a loss was not finite (``FloatingPointError``)
        or an op flagged its input (its ``ValueError``, whichever came at the earlier step; the op at the
        same step); immediate: nothing is left to check. ``collective``: under DDP the ranks agree on the
        earliest non-finite step (all must call it at the same step, as the trainer's boundaries are); a
        rank-local check (before rank 0 logs a callback's record) raises for this rank's losses only and
        leaves them to the next collective check, so that every rank still makes the same calls."""
        step = non_negative_int(step, "LogInterval.check: step")
        if self._unchecked():
            self._raise_if_bad(self._read(collective, first=True), step, collective)

    def _unchecked(self) -> bool:
        """Deferred: a loss noted or an op called since the last check."""
        return self._pending or (self.deferred and self._ops.pending() > 0)

    def _read(self, collective: bool, first: bool, rest: list[torch.Tensor] = ()) -> list[float]:
        """The noted first non-finite step and first flagged op's step (all ranks' earliest when
        ``collective``), this rank's first non-finite step, its loss, then ``rest``: one device-to-host read,
        after this rank's op flags (one more, when an op was called)."""
        parts = list(rest)
        if first:
            # the op step goes to the device as a fill's argument, not as a copy: no synchronisation
            earliest = torch.stack([self._first_bad, self._first_bad.new_full((), self._read_ops())])
            if collective:
                D.all_reduce_min_(earliest)
            parts = [*earliest.unbind(), self._first_bad, self._bad_value, *parts]
        return torch.stack(parts).tolist() if parts else []

    def _raise_if_bad(self, values: list[float], step: int, collective: bool = True) -> None:
        earliest, op_at, mine, value = values[:4]
        since = self._checked_through + 1
        if collective:
            self._pending, self._checked_through = False, step
        if op_at < math.inf and op_at <= earliest:  # an op's bad input first: the likely cause of both
            flagged = self._op_flagged if self._op_flagged is not None and self._op_flagged.step == op_at else None
            raise self._op_error(flagged, int(op_at), since, step, f"by the check after step {step}") \
                from (flagged.error if flagged is not None else None)
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
        first = self._unchecked()
        values = self._read(True, first, [self._sums[k] for k in keys])
        if first:
            self._raise_if_bad(values, step)
            values = values[4:]
        avg = {k: v / self.count for k, v in zip(keys, values)}
        self._sums, self.count = {}, 0
        return avg
