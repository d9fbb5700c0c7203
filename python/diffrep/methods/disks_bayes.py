"""Moved to :mod:`diffrep.analysis.disks_bayes`; the old name warns."""

from .._deprecation import moved_names

__getattr__ = moved_names(__name__, {"disks_bayes_eps_mse": "diffrep.analysis.disks_bayes:disks_bayes_eps_mse"})
