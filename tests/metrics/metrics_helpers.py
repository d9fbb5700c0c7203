"""Helpers shared by the metric tests (imported by basename; tests/ has no packages)."""

import numpy as np

SIZES = (10, 10, 10, 8, 4, 15)  # the six Shapes3D factors


class TinyGroundTruth:
    """disentanglement_lib interface: factors drawn one ``randint`` per factor in factor order; the
    observation is the factor vector itself (as IdentityObservationsData), as float."""

    def __init__(self, factor_sizes=(4, 5, 3)):
        self.factor_sizes = list(factor_sizes)
        self.num_factors = len(self.factor_sizes)

    def sample_factors(self, num, random_state):
        return np.stack([random_state.randint(s, size=num) for s in self.factor_sizes], axis=1)

    def sample_observations_from_factors(self, factors, random_state):
        return np.asarray(factors, dtype=np.float64)


def sample_factors(n, rng, sizes=SIZES):
    return np.stack([rng.randint(0, s, n) for s in sizes], axis=1)
