"""The procedural datasets' "pm1" items lie in [-1, 1] exactly, so the models' range check on entry
(docs/architecture.md#inputs) refuses none of them: resizing (digits' bilinear upscale, average
pooling), soft edges and jitter stay inside the range, with no round-off past its ends."""

import numpy as np
import pytest
import torch

from diffrep.data import load
from diffrep.data.disks import DisksTensorDataset
from diffrep.data.pooled import Pooled
from diffrep.nn.images import IMAGE_RANGE, check_images


def _items(ds, n=256, seed=0):
    idx = np.random.default_rng(seed).choice(len(ds), min(n, len(ds)), replace=False)
    if isinstance(ds, Pooled):
        return torch.stack([x for x, _ in ds.__getitems__(idx)])
    if hasattr(ds, "get_batch"):
        return ds.get_batch(idx)[0]
    return torch.stack([ds[int(i)][0] for i in idx])


CASES = {
    "dsprites": lambda: load("dsprites"),
    "shapes3d": lambda: load("shapes3d"),
    "disks": lambda: load("disks"),
    "disks-jitter": lambda: load("disks", jitter=True),
    "disks-hard": lambda: load("disks", hard_edge=True),
    "disks-continuous": lambda: DisksTensorDataset(256, seed=1),
    "digits-grey-bilinear": lambda: load("digits", split="all", binarize=None, size=64),
    "digits": lambda: load("digits", split="train"),
    "shapes3d-mean-pooled": lambda: Pooled(load("shapes3d"), 4, "mean"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_procedural_items_lie_in_minus_one_one_and_pass_the_check(name):
    x = _items(CASES[name]())
    assert x.dtype == torch.float32
    lo, hi = float(x.min()), float(x.max())
    assert -1.0 <= lo and hi <= 1.0, (lo, hi)
    assert check_images(x, value_range=IMAGE_RANGE) is x
