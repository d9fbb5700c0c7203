"""``Pooled(ds)[index_array]``: a batch of items pooled as a batch. The base dataset answers an index array
with a (B, C, H, W) batch, which ``__getitem__`` pooled as one 5-d image: a RuntimeError from max_pool2d
(``diffrep encdiff`` reads its images with one array index, ``dataset_images``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffrep import data
from diffrep.data.pooled import Pooled
from diffrep.nn.images import dataset_images


@pytest.mark.parametrize("mode", ["max", "mean"])
def test_an_index_array_gives_the_pooled_batch(mode):
    base = data.load("dsprites", source="procedural")
    ds = Pooled(base, 4, mode)
    idx = np.array([0, 5, 737279, 12345])
    imgs, factors = ds[idx]
    assert tuple(imgs.shape) == (4, 1, 16, 16)
    # the pooling written out: each 4 x 4 block of the 64 px image reduced by max or mean
    full = torch.stack([base[int(i)][0] for i in idx]).numpy().reshape(4, 1, 16, 4, 16, 4)
    want = full.max(axis=(3, 5)) if mode == "max" else full.mean(axis=(3, 5))
    np.testing.assert_allclose(imgs.numpy(), want, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(factors), np.stack([np.asarray(base[int(i)][1]) for i in idx]))
    for k, i in enumerate(idx):   # and item by item, as before
        np.testing.assert_array_equal(ds[int(i)][0].numpy(), imgs[k].numpy())
    np.testing.assert_array_equal(dataset_images(ds, idx.tolist()).numpy(), imgs.numpy())
