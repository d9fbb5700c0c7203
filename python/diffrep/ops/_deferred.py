"""Deferred reads of the CUDA kernels' error flags: :func:`deferred_checks`
(docs/kernels/bfn.md#host-reads-on-cuda).

A native kernel reports bad input (NaN data, a class outside [0, K), t outside [0, 1], ...) in an
int32 flags word. On the CPU that word is host memory and the op raises at once, for free. On CUDA
the word lives on the device and reading it back (``.item()``) waits for the GPU to finish
everything queued before it: one host-device synchronisation per op, which inside a training step
or a sampling chain empties the launch queue several times per step.

Inside ``with deferred_checks():`` the BFN ops, the guidance op, ``mmd.mmd2`` and the HDDC E-step on CUDA
write their flags into slots of one device buffer and read nothing (the kNN and metric ops, evaluation whose
results are read at once, read theirs at the call); the block reads all slots at once when it ends (one synchronisation per
device used, and one more per :data:`CAPACITY` ops) and raises the first flagged op's error, with
the message that op raises outside the block. This is the trainer's rule for the non-finite loss
(diffrep.train.log_interval, which reads the ops' flags of its training steps the same way through a
:class:`DeferredChecks` of its own): an error found on the device is raised at the next point where the
caller gets results, not at the kernel. Until then an op given bad input returns unspecified values
(NaN, zeros): nothing computed inside a block whose check raised may be used. The inputs an op
needs for its message (t, rho, alpha, ...) stay referenced until its slot is read.

CPU ops are unaffected (they raise at once, as always); ops without a deferred path (and the
checks each op runs in Python, e.g. on shapes or on a scalar) run as outside the block. A block's
slots are zeroed and read on torch's current stream, as its kernels run: an op launched on another
stream inside the block needs the caller's synchronisation, as any tensor shared between streams.
"""

from __future__ import annotations

import contextlib
import contextvars

import torch

__all__ = ["deferred_checks", "DeferredChecks", "CAPACITY"]

#: slots per device before a block reads what it has (bounds the inputs kept for the messages)
CAPACITY = 256

_current: contextvars.ContextVar = contextvars.ContextVar("diffrep_deferred_checks", default=None)


class DeferredChecks:
    """The pending flags of one :func:`deferred_checks` block: per device, a zeroed int32 buffer of
    :data:`CAPACITY` slots and, per used slot, the op's ``fail(flags)`` that raises its error."""

    def __init__(self):
        self._slots: dict[torch.device, tuple[torch.Tensor, list]] = {}

    def slot(self, device: torch.device, fail) -> torch.Tensor:
        """A zeroed int32 word on ``device`` for one kernel's flags; ``fail(flags)`` raises its
        error when the word is read non-zero."""
        if not isinstance(device, torch.device):
            raise TypeError(f"DeferredChecks.slot: device must be a torch.device, got {type(device).__name__}")
        if not callable(fail):
            raise TypeError(f"DeferredChecks.slot: fail must be callable (it raises the op's error), got "
                            f"{type(fail).__name__}")
        entry = self._slots.get(device)
        if entry is None:
            with torch.inference_mode(False):  # zeroed in place after each read, in or out of inference mode
                entry = self._slots[device] = (torch.zeros(CAPACITY, dtype=torch.int32, device=device), [])
        buf, fails = entry
        if len(fails) == CAPACITY:
            self._check_device(buf, fails)
        fails.append(fail)
        i = len(fails) - 1
        return buf[i:i + 1]

    @contextlib.contextmanager
    def active(self):
        """Make this the current block for the ``with`` and read nothing when it ends: for an owner that
        reads at points of its own with :meth:`check`. The trainer's log interval collects the ops of many
        training steps this way and reads them at its boundaries (diffrep.train.log_interval); SAMI's chain
        leaves them unread when the chain's own divergence error explains them. Entered again, it collects
        into the same slots."""
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)

    def check_after(self, exc: BaseException) -> None:
        """Read the pending slots after ``exc`` stopped the work that filled them: a flagged op's error (the
        likely cause: its output was unspecified) is raised from ``exc``; nothing flagged: return, and the
        caller re-raises ``exc``."""
        if not isinstance(exc, BaseException):
            raise TypeError(f"DeferredChecks.check_after: exc must be an exception, got {type(exc).__name__}")
        try:
            self.check()
        except ValueError as flagged:
            raise flagged from exc

    def pending(self) -> int:
        """The number of kernels whose flags are not read yet."""
        return sum(len(fails) for _, fails in self._slots.values())

    def check(self) -> None:
        """Read every pending slot (one synchronisation per device with any) and raise the error of
        the first op, in call order per device, that flagged its input."""
        for buf, fails in list(self._slots.values()):
            self._check_device(buf, fails)

    @staticmethod
    def _check_device(buf: torch.Tensor, fails: list) -> None:
        if not fails:
            return
        n = len(fails)
        words = buf[:n].tolist()  # the one synchronisation
        buf[:n].zero_()
        todo = list(fails)
        fails.clear()
        for word, fail in zip(words, todo):
            if word:
                fail(word)


def current() -> DeferredChecks | None:
    """The innermost open :func:`deferred_checks` block of this thread/context, or None."""
    return _current.get()


@contextlib.contextmanager
def deferred_checks():
    """Defer the CUDA error-flag reads of the BFN, guidance, MMD and HDDC E-step ops to the end of the block
    (module docstring).

    >>> with deferred_checks() as checks:  # doctest: +SKIP
    ...     mu = bfn.continuous_flow(x, t, 1e-3)   # no host read on CUDA
    ...     loss = bfn.discretised_continuous_time_loss(...)
    ... # here: one read; a flagged op raises its ValueError

    ``checks.check()`` reads (and raises) early, e.g. at a log interval of a block spanning steps.
    When the block exits with an exception, its pending flags are read too: an op's error (the
    likely cause) is raised from that exception; otherwise the exception propagates unchanged.
    Blocks nest; each checks the ops called inside it and not in an inner block.
    """
    checks = DeferredChecks()
    try:
        with checks.active():
            yield checks
    except Exception as exc:
        checks.check_after(exc)
        raise
    # a KeyboardInterrupt or SystemExit leaves without reading the device
    checks.check()
