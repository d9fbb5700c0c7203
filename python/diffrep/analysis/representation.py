"""SAMI's posterior means read by the metric suite: latent straightness of videos (Fig. 4B-C,
docs/methods/sami.md 10.5), attribute metrics (Fig. 3H, Table 2) and factor metrics on ground-truth data (A.7)."""

from __future__ import annotations

import numpy as np
import torch

from .._checks import positive_int
from ..methods.sami import SAMI
from ..metrics import dci, latent_auroc, lr_participation_ratio, modularity_explicitness, straightness, tad
from .encoding import check_model, encode_batched

__all__ = ["latent_straightness", "attribute_metrics", "factor_metrics"]


def latent_straightness(model: SAMI, videos, *, batch_size: int = 256) -> dict:
    """Straightness of posterior-mean trajectories of frame sequences ``videos`` [N, F, C, H, W]
    (Fig. 4B-C), with the pixel-space straightness of the same frames for comparison."""
    model = check_model(model)
    v = torch.as_tensor(videos)
    if v.dim() != 5 or v.shape[1] < 3:
        raise ValueError(f"videos must be [N, F >= 3, C, H, W], got {tuple(v.shape)}")
    N, Fr = v.shape[:2]
    codes = encode_batched(model, v.reshape(N * Fr, *v.shape[2:]), batch_size).reshape(N, Fr, -1)
    lat = straightness(codes)
    pix = straightness(v.reshape(N, Fr, -1).double().numpy())
    return {"latent_straightness": lat["straightness"], "latent_curvature_deg": lat["curvature_deg"],
            "pixel_straightness": pix["straightness"], "pixel_curvature_deg": pix["curvature_deg"],
            "num_videos": int(N), "num_frames": int(Fr)}


def attribute_metrics(model: SAMI, images, attributes, *, tad_variant: str = "infodiffusion", seed: int = 0,
                      batch_size: int = 256) -> dict:
    """TAD, latent AUROC and the logistic-regression participation ratio (Fig. 3H, Table 2) of the
    posterior means for binary ``attributes`` [N, A]."""
    codes = encode_batched(check_model(model), images, batch_size)
    attrs = np.asarray(attributes)
    out = {}
    for res in (tad(codes, attrs, variant=tad_variant, seed=seed), latent_auroc(codes, attrs, seed=seed),
                lr_participation_ratio(codes, attrs)):
        out.update({k: float(v) for k, v in res.items() if isinstance(v, (int, float))})
    out["num_images"] = int(codes.shape[0])
    return out


def _observations_to_images(obs) -> torch.Tensor:
    a = np.asarray(obs)
    x = torch.from_numpy(a.astype(np.float32) / (255.0 if a.dtype == np.uint8 else 1.0))
    if x.dim() == 3:
        x = x[..., None]
    return x.permute(0, 3, 1, 2).contiguous() * 2 - 1


def factor_metrics(model: SAMI, dataset, *, num_train: int = 10000, num_test: int = 5000, seed: int = 0,
                   batch_size: int = 256) -> dict:
    """Modularity/explicitness and DCI of the posterior means on a ground-truth dataset
    (``sample_factors`` / ``sample_observations_from_factors``; dSprites in A.7 with 10,000 train
    and 5,000 test samples). Observations in [0, 1] (or uint8) HWC are mapped to [-1, 1] CHW."""
    model = check_model(model)
    for name in ("sample_factors", "sample_observations_from_factors"):
        if not callable(getattr(dataset, name, None)):
            raise TypeError(f"dataset must be a ground-truth dataset with {name}()")
    positive_int(num_train, "num_train")
    positive_int(num_test, "num_test")
    rng = np.random.RandomState(seed)
    splits = []
    for n in (num_train, num_test):
        f = dataset.sample_factors(n, rng)
        x = _observations_to_images(dataset.sample_observations_from_factors(f, rng))
        splits += [encode_batched(model, x, batch_size), np.asarray(f)]
    out = {}
    for res in (modularity_explicitness(*splits), dci(*splits, seed=seed)):
        out.update({k: float(v) for k, v in res.items() if isinstance(v, (int, float))})
    out.update(num_train=num_train, num_test=num_test, seed=seed)
    return out
