"""Progress bars for long loops (encoding, metric suites, sampling, analyses, data rendering).

``progress(iterable, total=..., desc=...)`` is a ``tqdm.auto`` bar (a widget in a notebook, a text bar
on a terminal) written to stderr. It shows only where it helps: tqdm's own rule hides it when stderr is
not a terminal (logs, pipes, tests), and ``DIFFREP_PROGRESS=0`` (or tqdm's ``TQDM_DISABLE=1``) hides it
everywhere; ``DIFFREP_PROGRESS=1`` forces it on. Without tqdm installed the iterable is returned as is.
"""

from __future__ import annotations

import os
from typing import Iterable, TypeVar

__all__ = ["progress", "progress_enabled"]

T = TypeVar("T")


def progress_enabled() -> bool | None:
    """True / False when ``DIFFREP_PROGRESS`` forces it, None to let tqdm decide (on for terminals)."""
    raw = os.environ.get("DIFFREP_PROGRESS", "").strip().lower()
    if raw in ("0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    return None


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str | None = None, unit: str = "it",
             leave: bool = False, enabled: bool = True) -> Iterable[T]:
    """``iterable`` wrapped in a progress bar on stderr (see the module docstring for when it shows)."""
    forced = progress_enabled()
    if not enabled or forced is False:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is a declared dependency; a stripped install still works, silently
        return iterable
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, dynamic_ncols=True,
                disable=False if forced else None)
