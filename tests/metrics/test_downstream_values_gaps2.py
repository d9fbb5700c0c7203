"""Downstream task and statistical efficiency (Locatello et al. 2019 Sec. 7; docs/metrics.md#downstream-tasks):
hand cases whose accuracies are known without fitting anything of note.

A factor with one class in a train prefix is predicted as that class (the documented robust choice), so
its accuracies are counted by hand; a factor equal to a code is learned exactly by any tree.
"""

import math

import numpy as np
import pytest
import torch

from diffrep.metrics.downstream import check_sizes, downstream_efficiency, efficiency, size_scores

T = torch.as_tensor  # size_scores takes the tensors downstream_efficiency checked


def _split():
    # factor 0 = the code (5 classes, learned exactly); factor 1 is 0 on the first 10 train rows, then 0/1
    rng = np.random.default_rng(0)
    c_tr = rng.integers(0, 5, 40).astype(float)
    c_te = np.tile(np.arange(5.0), 4)  # 20 rows
    f1_tr = np.r_[np.zeros(10), np.arange(30) % 2]
    f1_te = np.r_[np.zeros(15), np.ones(5)]  # a constant 0 prediction scores 15/20
    ctr = np.stack([c_tr, f1_tr], 1)  # the second code carries factor 1, so size 40 learns it
    cte = np.stack([c_te, f1_te], 1)
    ftr = np.stack([c_tr, f1_tr], 1).astype(np.int64)
    fte = np.stack([c_te, f1_te], 1).astype(np.int64)
    return ctr, ftr, cte, fte


def test_one_class_prefix_is_predicted_as_that_class_and_flagged():
    ctr, ftr, cte, fte = _split()
    r = downstream_efficiency(ctr, ftr, cte, fte, sizes=(10, 40), n_jobs=1, seed=3)
    # size 10: factor 0 exact (1.0 both), factor 1 constant 0: train 10/10, test 15/20
    assert r["10:train_accuracy_factor_0"] == 1.0 and r["10:test_accuracy_factor_0"] == 1.0
    assert r["10:train_accuracy_factor_1"] == 1.0 and r["10:test_accuracy_factor_1"] == 0.75
    assert r["10:mean_test_accuracy"] == pytest.approx((1.0 + 0.75) / 2, abs=1e-15)
    assert r["10:min_test_accuracy"] == 0.75
    assert r["10:mean_train_accuracy"] == 1.0 and r["10:min_train_accuracy"] == 1.0
    # size 40: both factors carried exactly by a code
    assert r["40:mean_test_accuracy"] == 1.0 and r["40:min_test_accuracy"] == 1.0
    assert r.flags == ["size 10: factor 1 has one class in the train set"]
    assert r.meta["metric"] == "downstream" and r.meta["variant"] == "disentanglement_lib-prefix/fast"
    assert r.meta["sizes"] == [10, 40] and r.meta["num_test"] == 20 and r.meta["seed"] == 3
    # no size 100 or 1000 below the largest: no efficiency keys
    assert not [k for k in r if k.startswith("efficiency")]
    assert len(r) == 2 * (4 + 2 + 2)  # per size: 4 means/mins, 2 train and 2 test factor accuracies


def test_sizes_are_prefixes_of_the_train_rows():
    ctr, ftr, cte, fte = _split()
    # reversing the rows moves the one-class block to the end: a prefix of 10 now has both classes
    # of factor 1 only if the function takes the first rows of the reversed arrays
    r = downstream_efficiency(ctr[::-1].copy(), ftr[::-1].copy(), cte, fte, sizes=(10,), n_jobs=1)
    assert r.flags == [] and r["10:test_accuracy_factor_1"] == 1.0
    # the largest size may equal the number of rows, one more is refused with the counts
    downstream_efficiency(ctr, ftr, cte, fte, sizes=(40,), n_jobs=1)
    with pytest.raises(ValueError, match="codes_train: 40 rows is fewer than the largest size 41"):
        downstream_efficiency(ctr, ftr, cte, fte, sizes=(10, 41), n_jobs=1)


def test_logistic_regression_cv_leaves_a_failed_factor_out_of_the_means():
    # factor 0 linearly separable (classes at -3 and +3, interleaved so every fold has both), factor 1 one class:
    # LogisticRegressionCV raises on one class, so factor 1 is left out and flagged
    x = np.r_[-3.0, 3.0] [np.arange(20) % 2][:, None] + np.linspace(-0.5, 0.5, 20)[:, None]
    y0 = (np.arange(20) % 2).astype(np.int64)
    ftr = np.stack([y0, np.zeros(20, np.int64)], 1)
    fte = np.stack([y0[::-1].copy(), np.ones(20, np.int64)], 1)
    out = []
    s = size_scores(T(x), T(ftr), T(x[::-1].copy()), T(fte), 20, "logistic_regression_cv", None, 1, out)
    assert s == {"20:mean_train_accuracy": 1.0, "20:min_train_accuracy": 1.0, "20:train_accuracy_factor_0": 1.0,
                 "20:mean_test_accuracy": 1.0, "20:min_test_accuracy": 1.0, "20:test_accuracy_factor_0": 1.0}
    assert len(out) == 1 and out[0].startswith("size 20: factor 1: LogisticRegressionCV failed (")
    assert out[0].endswith("); left out")


def test_every_factor_failing_gives_nan_means():
    x = np.linspace(0, 1, 10)[:, None]
    f = np.zeros((10, 1), np.int64)
    out = []
    s = size_scores(T(x), T(f), T(x), T(f), 10, "logistic_regression_cv", None, 1, out)
    assert set(s) == {"10:mean_train_accuracy", "10:min_train_accuracy", "10:mean_test_accuracy", "10:min_test_accuracy"}
    assert all(math.isnan(v) for v in s.values()) and len(out) == 1


def test_unknown_predictor_is_refused_by_name():
    x = np.zeros((4, 1))
    f = np.arange(4)[:, None]
    with pytest.raises(ValueError, match=r"predictor must be 'fast', 'sklearn' or 'logistic_regression_cv', got 'gbt'"):
        size_scores(T(x), T(f), T(x), T(f), 4, "gbt", None, 1, [])


def test_efficiency_is_divided_by_the_largest_size_only():
    s = {"10:mean_test_accuracy": 0.1, "100:mean_test_accuracy": 0.4, "1000:mean_test_accuracy": 0.6,
         "5000:mean_test_accuracy": 0.8}
    assert efficiency(s, (10, 100, 1000, 5000)) == {"efficiency_100": 0.4 / 0.8, "efficiency_1000": 0.6 / 0.8}
    # 1000 as the largest size has no efficiency of its own; 10 never has one
    assert efficiency(s, (10, 100, 1000)) == {"efficiency_100": 0.4 / 0.6}
    assert efficiency(s, (10, 1000)) == {}
    assert efficiency(s, (100,)) == {}
    # a zero accuracy at the largest size gives NaN, not a ZeroDivisionError
    z = efficiency({"100:mean_test_accuracy": 0.4, "1000:mean_test_accuracy": 0.0}, (100, 1000))
    assert list(z) == ["efficiency_100"] and math.isnan(z["efficiency_100"])
    # the default sizes are the paper's 10, 100, 1000, 10000
    d = {f"{k}:mean_test_accuracy": v for k, v in ((10, 0.1), (100, 0.3), (1000, 0.5), (10000, 0.6))}
    assert efficiency(d) == {"efficiency_100": 0.3 / 0.6, "efficiency_1000": 0.5 / 0.6}


@pytest.mark.parametrize("bad", [None, "10", b"10", 10, 2.5, (), [], iter(())])
def test_check_sizes_refuses_non_sequences(bad):
    with pytest.raises(ValueError, match="sizes must be a non-empty sequence of positive ints, got"):
        check_sizes(bad)


def test_check_sizes_names_the_bad_entry():
    assert check_sizes([10, np.int64(100)]) == (10, 100) and type(check_sizes([np.int64(3)])[0]) is int
    assert check_sizes(x for x in (1, 2)) == (1, 2)
    for bad, i in (((10, 0), 1), ((True,), 0), ((10, 100, 2.5), 2)):
        with pytest.raises(ValueError, match=rf"sizes\[{i}\] must be a positive int"):
            check_sizes(bad)
    with pytest.raises(ValueError, match="not iterable|sequence"):
        check_sizes(object())


def test_logistic_regression_cv_is_the_documented_estimator():
    # overlapping classes in sorted order: KFold(5) without shuffling, StratifiedKFold (cv=None) and
    # KFold(6) choose other regularisations here, so the accuracies tell the documented folds apart
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import KFold

    rng = np.random.default_rng(6)
    w = np.array([0.6, -0.3, 0.0, 0.2])
    y = np.sort(np.arange(60) % 3)
    x = rng.normal(size=(60, 4)) * 2.0 + y[:, None] * w
    yte = np.arange(30) % 3
    xte = rng.normal(size=(30, 4)) * 2.0 + yte[:, None] * w
    s = size_scores(T(x), T(y[:, None]), T(xte), T(yte[:, None]), 60, "logistic_regression_cv", None, 1, [])
    m = LogisticRegressionCV(Cs=10, cv=KFold(n_splits=5)).fit(x, y)
    got = (s["60:train_accuracy_factor_0"], s["60:test_accuracy_factor_0"])
    assert got == (np.mean(m.predict(x) == y), np.mean(m.predict(xte) == yte))
    for cv in (None, KFold(n_splits=6)):
        o = LogisticRegressionCV(Cs=10, cv=cv).fit(x, y)
        assert (np.mean(o.predict(x) == y), np.mean(o.predict(xte) == yte)) != got


def test_a_failed_first_factor_does_not_stop_the_next_ones():
    x = np.r_[-3.0, 3.0][np.arange(20) % 2][:, None]
    y1 = (np.arange(20) % 2).astype(np.int64)
    f = np.stack([np.zeros(20, np.int64), y1], 1)  # factor 0 fails (one class), factor 1 is separable
    out = []
    s = size_scores(T(x), T(f), T(x), T(f), 20, "logistic_regression_cv", None, 1, out)
    assert s["20:test_accuracy_factor_1"] == 1.0 and "20:test_accuracy_factor_0" not in s
    assert len(out) == 1 and out[0].startswith("size 20: factor 0:")


def test_sklearn_predictor_hand_case():
    # sklearn's GradientBoostingClassifier learns a factor equal to its code; the one-class factor is constant
    ctr, ftr, cte, fte = _split()
    r = downstream_efficiency(ctr, ftr, cte, fte, sizes=(10,), predictor="sklearn", seed=0, n_jobs=1)
    assert r["10:test_accuracy_factor_0"] == 1.0 and r["10:test_accuracy_factor_1"] == 0.75
    assert r["10:mean_test_accuracy"] == 0.875 and r.meta["variant"] == "disentanglement_lib-prefix/sklearn"
    assert r.flags == ["size 10: factor 1 has one class in the train set"]
