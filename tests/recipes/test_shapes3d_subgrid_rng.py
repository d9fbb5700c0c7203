"""The EncDiff CPU recipes' Shapes3D sub-grid samples factors from every RNG form the dataset interface
accepts (it called RandomState.randint, so a numpy Generator or an int seed raised AttributeError)."""

import numpy as np
import torch

from diffrep.recipes.encdiff import Shapes3DSubgrid


def test_sample_factors_takes_every_rng_form():
    ds = Shapes3DSubgrid.__new__(Shapes3DSubgrid)  # sample_factors reads only the grid sizes: no rendering
    ds.factor_sizes = [4, 4, 4, 2, 4, 5]
    sizes = np.asarray(ds.factor_sizes)
    rs = np.random.RandomState(3)
    expected = np.stack([rs.randint(0, s, size=5) for s in ds.factor_sizes], 1)  # the metrics' RandomState draws
    np.testing.assert_array_equal(ds.sample_factors(5, np.random.RandomState(3)), expected)
    for rng in (np.random.default_rng(0), 7, torch.Generator().manual_seed(1)):
        f = ds.sample_factors(6, rng)
        assert f.shape == (6, len(sizes)) and f.dtype == np.int64 and (f >= 0).all() and (f < sizes).all()
    np.testing.assert_array_equal(ds.sample_factors(4), ds.sample_factors(4))  # None: RandomState(0), repeatable
