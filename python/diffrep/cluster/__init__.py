"""Clustering algorithms built on the kernels of :mod:`diffrep.ops`.

- :mod:`.hddc`: batched HDDC-EM with DyGA's split and filter passes (:func:`fit`, :class:`HDDCResult`),
  on :mod:`.kmeans` (initialisation), :mod:`.em` (the EM iterations) and :mod:`.split`;
- :mod:`.dyga_code`: the DyGA authors' code's anchor selection (full-covariance EM and its split
  loop), for DyGA's ``compat="dis-dis"``.

``align`` (DyGA Eq. 6) lives with the DyGA method, :func:`diffrep.methods.dyga.align`; it stays
importable from here, lazily (``methods`` sits above ``cluster``) and with a DeprecationWarning.
"""

from .._deprecation import moved_names
from .hddc import MODELS, SPLIT_RULES, HDDCResult, fit

__all__ = ["fit", "HDDCResult", "MODELS", "SPLIT_RULES"]

__getattr__ = moved_names(__name__, {"align": "diffrep.methods.dyga:align"})
