"""Moved: the SAMI analyses live in :mod:`diffrep.analysis` (gathered in :mod:`diffrep.analysis.sami`),
the Frechet distance and FID helpers in :mod:`diffrep.metrics.generation`. Old names warn."""

from .._deprecation import moved_names

__getattr__ = moved_names(__name__, {
    "variability": "diffrep.analysis.variability:variability",
    "variability_reduction": "diffrep.analysis.variability:variability_reduction",
    "posterior_variance_spectrum": "diffrep.analysis.posterior_geometry:posterior_variance_spectrum",
    "perturb_low_variance_axes": "diffrep.analysis.posterior_geometry:perturb_low_variance_axes",
    "global_axes": "diffrep.analysis.posterior_geometry:global_axes",
    "latent_straightness": "diffrep.analysis.representation:latent_straightness",
    "attribute_metrics": "diffrep.analysis.representation:attribute_metrics",
    "factor_metrics": "diffrep.analysis.representation:factor_metrics",
    "guidance_magnitude": "diffrep.analysis.guidance:guidance_magnitude",
    "posterior_mean_monotonicity": "diffrep.analysis.disks_probes:posterior_mean_monotonicity",
    "disk_centres": "diffrep.analysis.disks_probes:disk_centres",
    "disk_position_transfer": "diffrep.analysis.disks_probes:disk_position_transfer",
    "encode_batched": "diffrep.analysis.encoding:encode_batched",
    "fid": "diffrep.analysis.sami_fid:fid",
    "frechet_distance": "diffrep.metrics.generation:frechet_distance_from_features",
    "load_feature_extractor": "diffrep.metrics.generation:load_feature_extractor",
})
