"""Deprecated aliases for names that moved, resolved lazily so that no module imports upward.

A module whose names moved ends with ``__getattr__ = moved_names(__name__, {...})``. Reading an
old name imports its new home on first use (by string, so the layer contract stays one-way) and
warns once per name with the new spelling. Aliases live for one release.
"""

from __future__ import annotations

import importlib
import warnings

__all__ = ["moved_names"]


def moved_names(module: str, table: dict[str, str]):
    """A module ``__getattr__`` serving ``table``: old name -> ``"new.module:new_name"``."""

    def __getattr__(name: str):
        target = table.get(name)
        if target is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        new_module, _, new_name = target.partition(":")
        new_name = new_name or name
        warnings.warn(f"{module}.{name} moved to {new_module}.{new_name}; the old name goes in the next release",
                      DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(new_module), new_name)

    return __getattr__
