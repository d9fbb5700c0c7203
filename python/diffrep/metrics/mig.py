"""MIG, the mutual information gap (disentanglement_lib ``evaluation/metrics/mig.py``).

This is the histogram-of-means estimator of disentanglement_lib (``_compute_mig`` with
``histogram_discretizer``, 20 bins fitted on the same sample), NOT the beta-TCVAE estimator of
Chen et al. (which integrates q(z|x)); see docs/metrics.md#mig.
"""

from __future__ import annotations

import torch

from ..ops import metrics as ops
from . import _checks
from .results import Result


def discretised_mi(codes: torch.Tensor, factors: torch.Tensor, num_bins: int = 20):
    """(m (d, F), H (F,)): MI of each histogram-discretised code with each factor, in nats.

    disentanglement_lib ``utils._histogram_discretize`` + ``discrete_mutual_info`` +
    ``discrete_entropy``. The bin edges are computed in the dtype of ``codes``, as
    ``np.histogram`` does: pass float32 codes as float32 (see :func:`bin_dtype`).
    """
    _checks.pair(codes, factors)  # "labels and factors disagree" named neither argument
    labels = ops.hist_discretize(codes, num_bins)
    return ops.mi_matrix(labels, factors)


def bin_dtype(codes) -> torch.dtype:
    """The dtype ``np.histogram`` computes a code's bin edges in: float32 for float32 (and
    half-precision) codes, float64 otherwise (docs/metrics.md#mig). A float32 code value that lies
    on a float32-rounded edge changes bin when the edges are computed in float64 instead."""
    return torch.float32 if _checks.is_float32(codes) else torch.float64


def mig(codes, factors, num_bins: int = 20, mode: str = "robust") -> Result:
    """Mutual information gap of ``codes`` (N, d) for integer ``factors`` (N, F).

    MIG = mean_j (m_(1)j - m_(2)j) / H_j with m the (d, F) MI matrix of the discretised codes,
    sorted per factor in descending order (disentanglement_lib ``_compute_mig``).

    Modes:
      * ``"robust"`` (default): factors with H_j = 0 (constant in the sample) are left out of the
        mean and flagged; if every factor is constant the score is 0 and flagged. Constant codes
        keep MI 0, as in the reference, and are flagged as collapsed.
      * ``"parity"``: the reference's arithmetic, so a constant factor gives NaN; adds the
        reference key ``discrete_mig``.
    Fewer than two codes raise ``ValueError`` in both modes (the reference crashes with an
    IndexError: there is no gap to measure). Float32 codes are binned with float32 edges, as
    ``np.histogram`` bins the float32 codes of a float32 network.
    """
    _checks.mode(mode)
    c, f = _checks.pair(codes, factors)
    if c.shape[1] < 2:
        raise ValueError(f"codes: MIG needs at least two codes, got {c.shape[1]}")
    m, h = discretised_mi(c.to(bin_dtype(codes)), f, num_bins)  # float64 -> float32 is exact here
    top2 = torch.topk(m, 2, dim=0).values  # (2, F)
    gaps = top2[0] - top2[1]
    flags = []
    const = _checks.constant_codes(c)
    if const:
        flags.append(f"constant codes {const} (collapsed; MI 0)")
    if mode == "parity":
        score = float((gaps / h).mean())
        scores = {"mig": score, "discrete_mig": score}
    else:
        ok = h > 0
        bad = torch.nonzero(~ok).flatten().tolist()
        if bad:
            flags.append(f"constant factors {bad} skipped (H = 0)")
        score = float((gaps[ok] / h[ok]).mean()) if bool(ok.any()) else 0.0
        scores = {"mig": score}
    return Result(scores, "mig", f"disentanglement_lib-histogram/{mode}", num_bins=num_bins,
                  num_points=int(c.shape[0]), num_codes=int(c.shape[1]), num_factors=int(f.shape[1]),
                  per_factor_gap=(gaps / h).tolist(), flags=flags)


from .._deprecation import moved_names  # noqa: E402  (old "discretized" spellings, one release)

__getattr__ = moved_names(__name__, {"discretized_mi": f"{__name__}:discretised_mi"})
