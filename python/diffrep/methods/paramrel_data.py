"""Moved to :mod:`diffrep.data.pooled`; the old name warns."""

from .._deprecation import moved_names

__getattr__ = moved_names(__name__, {"Pooled": "diffrep.data.pooled:Pooled"})
