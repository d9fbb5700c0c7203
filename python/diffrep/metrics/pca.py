"""Vector-valued latent units -> scalars with PCA(1) per unit, as DisDiff and DyGA evaluate
(ThomasMrY/DisDiff ``evaluate.py``: a per-concept PCA-1 representation)."""

from __future__ import annotations

import numpy as np
import torch

from .._checks import positive_int
from ..ops import metrics as ops
from ..ops._full_precision import full_precision


def pca1_units(units, fit_on=None, return_components: bool = False):
    """Project each unit of ``units`` (N, U, k) on its first principal component: (N, U) float64.

    Per unit u: centre with the mean of ``fit_on`` (default: ``units`` itself), take the top right
    singular vector of the centred (N, k) block, and project. Choices the references leave open:
    the sign of each component is fixed so that its largest-magnitude entry is positive
    (deterministic); the fit sample defaults to the evaluated sample. Units with k = 1 pass through
    centred. Returns the (N, U) scalars, plus (means (U, k), components (U, k)) if asked.
    """
    x = ops._float(units, "units", 3).to(torch.float64)
    f = x if fit_on is None else ops._float(fit_on, "fit_on", 3).to(torch.float64).to(x.device)
    if f.shape[1:] != x.shape[1:]:
        raise ValueError(f"fit_on: shape {tuple(f.shape)} does not match units {tuple(x.shape)} after N")
    mean = f.mean(dim=0)  # (U, k)
    fc = (f - mean).permute(1, 0, 2)  # (U, N, k)
    _, _, vh = torch.linalg.svd(fc, full_matrices=False)
    comp = vh[:, 0, :]  # (U, k)
    sign = torch.sign(torch.gather(comp, 1, comp.abs().argmax(dim=1, keepdim=True)))
    comp = comp * torch.where(sign == 0, torch.ones_like(sign), sign)
    out = ((x - mean) * comp.unsqueeze(0)).sum(dim=2)
    if return_components:
        return out, mean, comp
    return out


def pca1_representation(representation_fn, num_units: int, fit_observations):
    """Wrap ``representation_fn(obs) -> (N, U * k)`` (or (N, U, k)) into a function returning
    (N, U) PCA-1 scalars, the PCA fitted once on ``representation_fn(fit_observations)``."""
    if not callable(representation_fn):
        raise TypeError(f"representation_fn must be a callable, got {type(representation_fn).__name__}")
    positive_int(num_units, "num_units")

    def as_units(r):
        # the codes as (N, U, k): a reshape of (N, U * k) codes that do not split into num_units
        # units would be torch's "shape '[N, U, -1]' is invalid" naming neither
        if not isinstance(r, torch.Tensor):
            r = np.asarray(r)
            if r.dtype.kind not in "biuf":
                raise TypeError(f"representation_fn must return numeric codes, got dtype {r.dtype}")
        r = torch.as_tensor(r).detach()  # a torch encoder's codes may require grad: .numpy() below refused them
        if r.is_complex():
            raise TypeError(f"representation_fn must return real codes, got {r.dtype}")
        r = r.to(torch.float64)
        width = r.shape[1] * r.shape[2] if r.dim() == 3 else r.shape[-1]
        if (r.dim() not in (2, 3) or r.shape[0] < 1 or width == 0 or width % num_units
                or r.dim() == 3 and r.shape[1] != num_units):
            raise ValueError(f"representation_fn must return codes (N >= 1, num_units * k) or (N, num_units, k) "
                             f"with num_units = {num_units}, got shape {tuple(r.shape)}")
        r = r.reshape(r.shape[0], num_units, -1)
        if not bool(torch.isfinite(r).all()):
            raise ValueError("representation_fn returned codes with NaN or inf")
        return r

    def encode(obs):  # codes in the representation's own precision, not the caller's autocast
        with full_precision():
            return as_units(representation_fn(obs))

    _, mean, comp = pca1_units(encode(fit_observations), return_components=True)

    def fn(obs):
        u = encode(obs).to(mean.device)
        return ((u - mean) * comp.unsqueeze(0)).sum(dim=2).cpu().numpy()

    return fn
