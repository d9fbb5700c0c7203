"""The feature-level generation metrics name the argument they refuse, at the start of the
message (so a message about another name does not pass), and a dimension mismatch reports both
dimensions. Written for the mutation audit of 2026-12-07
(benches/results/mutation_contract_audit_2026-12-07.md)."""

import numpy as np
import pytest

from diffrep.metrics.generation import fid_from_features, frechet_distance_from_features, kid_from_features

A = np.random.default_rng(0).normal(size=(8, 3))


@pytest.mark.parametrize("kw, err, start", [
    (dict(num_subsets=0), ValueError, "num_subsets must be >= 1"),
    (dict(subset_size=1), ValueError, "subset_size must be >= 2"),
    (dict(subset_size=2.0), TypeError, "subset_size must be an int"),
    (dict(seed=-1), ValueError, "seed must be >= 0"),
    (dict(seed="0"), TypeError, "seed must be an int"),
])
def test_kid_names_the_refused_argument(kw, err, start):
    with pytest.raises(err) as e:
        kid_from_features(A, A, **{"subset_size": 4, **kw})
    assert str(e.value).startswith(start)


def test_fid_names_allow_singular():
    with pytest.raises(TypeError) as e:
        fid_from_features(A, A, allow_singular="no")
    assert str(e.value) == "allow_singular must be a bool, got 'no'"


def test_frechet_distance_from_features_names_each_set_and_both_dimensions():
    for args, start in (((A[:1], A), "feats_a must be features"), ((A, A[:1]), "feats_b must be features")):
        with pytest.raises(ValueError) as e:
            frechet_distance_from_features(*args)
        assert str(e.value).startswith(start)
    with pytest.raises(ValueError) as e:
        frechet_distance_from_features(A, A[:, :2])
    assert str(e.value) == "feats_a and feats_b must be features with equal k, got k = 3 and 2"
