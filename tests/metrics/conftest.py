"""Shared fixtures for the metric tests: small factor samples and a tiny ground-truth dataset."""

import numpy as np
import pytest

from metrics_helpers import sample_factors

@pytest.fixture
def rng():
    return np.random.RandomState(0)


@pytest.fixture
def identity_split(rng):
    ftr, fte = sample_factors(1000, rng), sample_factors(1000, rng)
    return ftr + 0.05 * rng.randn(*ftr.shape), ftr, fte + 0.05 * rng.randn(*fte.shape), fte
