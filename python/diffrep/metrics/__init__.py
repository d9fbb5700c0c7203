"""Disentanglement and representation metrics (docs/metrics.md).

Array-level functions take codes (N, d) float and factors (N, F) integer classes (NumPy or torch,
CPU or CUDA) and return a :class:`~diffrep.metrics.results.Result`: a flat dict of named scores
whose ``meta`` records the variant, estimator, sample sizes, seeds, guards that fired and library
versions. Protocol-level functions replay disentanglement_lib's RandomState order on a
ground-truth dataset.
"""

from .auroc import latent_auroc
from .dci import dci
from .downstream import downstream_efficiency
from .geometry import lr_participation_ratio, participation_ratio, straightness
from .infomec import infomec
from .mig import mig
from .modularity import modularity_explicitness
from .pca import pca1_representation, pca1_units
from .protocols import beta_vae_score, downstream_task_score, evaluate, factor_vae_score
from .results import Result
from .sap import sap
from .tad import tad

__all__ = ["mig", "dci", "sap", "modularity_explicitness", "infomec", "tad", "latent_auroc",
           "downstream_efficiency", "straightness", "participation_ratio", "lr_participation_ratio",
           "factor_vae_score", "beta_vae_score", "downstream_task_score", "evaluate", "pca1_units",
           "pca1_representation", "Result"]
