"""FID of a SAMI model's generations (docs/methods/sami.md#analyses; the paper's protocol is unstated): from the prior
and guided by each real image's posterior sample, on :mod:`diffrep.metrics.generation`: the FID Inception's pool_3
features under a named preprocessing protocol by default (docs/metrics.md, "Generation metrics"), or a user feature
extractor (``extractor=PATH`` or a callable; not comparable with published FIDs)."""

from __future__ import annotations

import os
from typing import Callable, Literal

from .._checks import positive_int
from ..methods.sami import SAMI
from ..metrics.generation import (fid_from_features, frechet_distance_from_features, image_features,
                                  inception_features, load_feature_extractor)
from .encoding import check_model, model_images, seeded

__all__ = ["fid"]


def fid(model: SAMI, real_images, extractor: Callable | str | os.PathLike | None = None, *,
        protocol: Literal["prior", "reconstruction", "both"] = "both", num_samples: int | None = None,
        batch_size: int = 64, sampler: str | None = None, num_steps: int | None = None, seed: int = 0,
        preprocessing: str = "clean", weights=None, device=None) -> dict:
    """FID of generated images against ``real_images``. ``prior``: z ~ N(0, I); ``reconstruction``:
    one sample guided by z ~ q(z | x_0) for each real image; ``both`` (default) reports both.

    ``extractor`` None (default): the FID Inception (:func:`~diffrep.metrics.generation.inception_features`,
    ``preprocessing`` protocol, local ``weights``, on ``device``); fewer than 2048 samples give a
    singular covariance, reported as ``"singular": True``. Otherwise a callable images -> [B, k] or
    a TorchScript path (:func:`~diffrep.metrics.generation.load_feature_extractor`)."""
    model = check_model(model)
    if protocol not in ("prior", "reconstruction", "both"):
        raise ValueError(f"protocol must be prior, reconstruction or both, got {protocol!r}")
    fe = None if extractor is None else extractor if callable(extractor) else load_feature_extractor(extractor)
    real = model_images(model, real_images, "real_images")
    n = real.shape[0] if num_samples is None else num_samples
    positive_int(n, "num_samples")
    positive_int(batch_size, "batch_size")
    gen = seeded(seed, real.device)  # the model's device (model_images): the chains draw there

    def real_batch(s, k):
        return real[s % real.shape[0]:][:k]

    if fe is None:
        def feats(make):
            return inception_features(make, protocol=preprocessing, weights=weights, num_samples=n,
                                      batch_size=batch_size, device=device, progress=False)

        def distance(a, b):
            return fid_from_features(a, b, allow_singular=True)
    else:
        def feats(make):
            return image_features(fe, make, n, batch_size)

        distance = frechet_distance_from_features
    real_f = feats(real_batch)
    res = {"num_samples": n, "protocol": protocol, "seed": seed}
    if fe is None:
        res.update(extractor="inception", preprocessing=preprocessing, singular=n < real_f.shape[1])
    else:
        res.update(extractor="user")
    if protocol in ("prior", "both"):
        res["fid_prior"] = distance(real_f, feats(
            lambda s, k: model.sample(k, generator=gen, sampler=sampler, num_steps=num_steps)))
    if protocol in ("reconstruction", "both"):
        res["fid_reconstruction"] = distance(real_f, feats(
            lambda s, k: model.conditional_sample(real_batch(s, k), 1, z_mode="fixed", generator=gen,
                                                  sampler=sampler, num_steps=num_steps)))
    return res
