"""FID of a SAMI model's generations (docs/methods/sami.md#analyses; the paper's protocol is unstated): from the prior
and guided by each real image's posterior sample, on :mod:`diffrep.metrics.generation`."""

from __future__ import annotations

import os
from typing import Callable, Literal

from .._checks import positive_int
from ..methods.sami import SAMI
from ..metrics.generation import frechet_distance_from_features, image_features, load_feature_extractor
from .encoding import check_model, model_images, seeded

__all__ = ["fid"]


def fid(model: SAMI, real_images, extractor: Callable | str | os.PathLike | None = None, *,
        protocol: Literal["prior", "reconstruction", "both"] = "both", num_samples: int | None = None,
        batch_size: int = 64, sampler: str | None = None, num_steps: int | None = None, seed: int = 0) -> dict:
    """FID of generated images against ``real_images``. ``prior``: z ~ N(0, I); ``reconstruction``:
    one sample guided by z ~ q(z | x_0) for each real image; ``both`` (default) reports both.
    ``extractor``: a callable images -> [B, k] or a TorchScript path
    (:func:`~diffrep.metrics.generation.load_feature_extractor`)."""
    model = check_model(model)
    if protocol not in ("prior", "reconstruction", "both"):
        raise ValueError(f"protocol must be prior, reconstruction or both, got {protocol!r}")
    fe = extractor if callable(extractor) else load_feature_extractor(extractor)
    real = model_images(model, real_images, "real_images")
    n = real.shape[0] if num_samples is None else num_samples
    positive_int(n, "num_samples")
    positive_int(batch_size, "batch_size")
    gen = seeded(seed)

    def real_batch(s, k):
        return real[s % real.shape[0]:][:k]

    real_f = image_features(fe, real_batch, n, batch_size)
    res = {"num_samples": n, "protocol": protocol, "seed": seed}
    if protocol in ("prior", "both"):
        res["fid_prior"] = frechet_distance_from_features(real_f, image_features(
            fe, lambda s, k: model.sample(k, generator=gen, sampler=sampler, num_steps=num_steps), n, batch_size))
    if protocol in ("reconstruction", "both"):
        res["fid_reconstruction"] = frechet_distance_from_features(real_f, image_features(
            fe, lambda s, k: model.conditional_sample(real_batch(s, k), 1, z_mode="fixed", generator=gen,
                                                      sampler=sampler, num_steps=num_steps), n, batch_size))
    return res
