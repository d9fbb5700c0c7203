"""A ground-truth dataset seen at a lower resolution (the CPU-sized ParamReL recipes use it).

:class:`Pooled` wraps a disentanglement_lib-style dataset (``diffrep.data``) and max- or
average-pools every observation by an integer ``factor``: items, batches and
``sample_observations_from_factors`` (what the metrics call) all go through the same pooling,
so a model trained on the pooled images is evaluated on the same view. Max-pooling keeps binary
images binary and keeps the smallest dSprites (an ellipse of 6 x 4 pixels at 64 x 64) visible.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .._checks import one_of, positive_int

__all__ = ["Pooled"]


class Pooled(torch.utils.data.Dataset):
    def __init__(self, base, factor: int = 2, mode: str = "max"):
        factor = positive_int(factor, "factor")
        one_of(mode, ("max", "mean"), "mode")
        for attr in ("num_factors", "factor_sizes", "sample_factors", "sample_observations_from_factors"):
            if not hasattr(base, attr):
                raise TypeError(f"base dataset lacks {attr!r} (a ground-truth dataset is needed)")
        shape = getattr(base, "observation_shape", None)
        if shape is not None and factor > min(shape[:2]):
            raise ValueError(f"factor {factor} exceeds the {shape[0]}x{shape[1]} images of the base dataset "
                             "(the pooled images would be empty)")
        self.base, self.factor, self.mode = base, factor, mode
        self.num_factors = base.num_factors
        self.factor_sizes = base.factor_sizes
        self.factor_names = getattr(base, "factor_names", None)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        if self.factor == 1:
            return x
        fn = F.max_pool2d if self.mode == "max" else F.avg_pool2d
        return fn(x, self.factor)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i):
        img, target = self.base[i]
        if img.dim() == 4:  # an index array: the base's batch (was pooled as one 5-d image: a RuntimeError)
            return self._pool(img), target
        return self._pool(img[None])[0], target

    def __getitems__(self, indices):
        imgs, targets = self.base.get_batch(np.asarray(indices))
        imgs = self._pool(imgs)
        return [(imgs[k], targets[k]) for k in range(len(indices))]

    def sample_factors(self, n, rng=None):
        return self.base.sample_factors(n, rng)

    def sample_observations_from_factors(self, factors, rng=None) -> np.ndarray:
        """float32 (n, H/f, W/f, C) in [0, 1], pooled like the training items."""
        obs = torch.from_numpy(np.asarray(self.base.sample_observations_from_factors(factors, rng)))
        return self._pool(obs.permute(0, 3, 1, 2)).permute(0, 2, 3, 1).contiguous().numpy()
