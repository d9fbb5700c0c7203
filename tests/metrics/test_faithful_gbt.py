"""Faithfulness review of the fast gradient-boosted trees behind DCI and the downstream task
(diffrep.metrics.gbt) against hand-derived trees: sklearn's ``GradientBoostingClassifier()`` splits a
node whenever a valid threshold exists, also at zero improvement (``min_impurity_decrease=0``), its
importances are the impurity decreases n_l n_r / n (mean_l - mean_r)^2 over the root weight, averaged
over non-trivial trees and normalised; leaf values are sum(r) / sum(p (1 - p)) (docs/metrics.md#dci).
"""

import numpy as np
import pytest
import torch
from sklearn.ensemble import GradientBoostingClassifier

from diffrep.metrics import gbt
from diffrep.metrics.dci import dci


def _xor_grid(reps=25):
    g = np.array([(a, b) for a in range(2) for b in range(2)] * reps, dtype=float)
    return g, g[:, 0].astype(int) ^ g[:, 1].astype(int)


def test_xor_factor_needs_the_zero_gain_root_split():
    # regression: the root of an XOR factor improves nothing on either code (both halves keep mean
    # residual 0), so a "gain > 0" rule never split it and every tree stayed a single leaf: zero
    # importances, accuracy 1/2. sklearn splits the root anyway (on a random one of the two codes),
    # and the depth-2 splits on the other code separate the classes.
    g, y = _xor_grid()
    one = gbt.fit_predict(torch.tensor(g), torch.tensor(y), [torch.tensor(g)], n_estimators=1, max_depth=2)
    imp = one.importances.numpy()
    assert sorted(imp.tolist()) == [0.0, 1.0]  # the root adds 0; the two depth-2 splits all of it
    # one stage: pure leaves, residual +-1/2, leaf value (1/2 n) / (n / 4) = +-2, raw = 0.1 * (+-2)
    assert (one.predictions[0].numpy() == y).all() and one.relevant_trees == 1
    full = gbt.fit_predict(torch.tensor(g), torch.tensor(y), [torch.tensor(g)])
    assert full.relevant_trees == 100 and (full.predictions[1].numpy() == y).all()
    assert full.importances.numpy().min() > 0.1  # split between the codes, as sklearn's random order
    r = dci(g, y[:, None], g, y[:, None])
    assert r["dci_informativeness_test"] == 1.0


def test_stump_importance_and_leaf_values_by_hand():
    # binary factor, code 0 splits it perfectly at 0.5, code 1 constant: one depth-1 stump
    x = np.stack([np.array([0.0, 0.0, 0.0, 1.0, 1.0]), np.full(5, 3.0)], 1)
    y = np.array([0, 0, 0, 1, 1])
    r = gbt.fit_predict(torch.tensor(x), torch.tensor(y), [torch.tensor(np.array([[0.2, 3.0], [0.9, 3.0]]))],
                        n_estimators=1, max_depth=1, learning_rate=1.0)
    assert r.importances.numpy().tolist() == [1.0, 0.0]
    # prior log-odds log(2/3); p = 2/5; leaves: left r = -2/5 (3 points), right r = 3/5 (2 points);
    # value = sum r / sum p (1 - p) = -1.2 / (3 * 0.24) and 1.2 / (2 * 0.24); raw = log(2/3) + lr value
    left = np.log(2 / 3) + 1.0 * (-1.2 / 0.72)
    right = np.log(2 / 3) + 1.0 * (1.2 / 0.48)
    assert left < 0 < right  # so the new points go to classes 0 and 1
    assert r.predictions[1].numpy().tolist() == [0, 1]
    sk = GradientBoostingClassifier(n_estimators=1, max_depth=1, learning_rate=1.0).fit(x, y)
    assert sk.decision_function(np.array([[0.2, 3.0], [0.9, 3.0]])) == pytest.approx([left, right], abs=1e-12)


def test_binary_raw_score_zero_predicts_the_second_class_as_sklearn():
    # regression: balanced binary factor, codes without any split (constant): every raw score stays at
    # the prior log-odds log(1) = 0, where sklearn's predict gives class 1 (raw >= 0); ">" gave class 0
    x = np.full((6, 2), 1.5)
    y = np.array([3, 7, 3, 7, 7, 3])
    xe = np.full((4, 2), 1.5)
    r = gbt.fit_predict(torch.tensor(x), torch.tensor(y), [torch.tensor(xe)])
    sk = GradientBoostingClassifier().fit(x, y)
    assert sk.predict(xe).tolist() == [7] * 4
    assert r.predictions[1].numpy().tolist() == [7] * 4 and r.relevant_trees == 0
    assert r.importances.numpy().tolist() == [0.0, 0.0]
    # DCI's test informativeness on an unbalanced test split: 3 of 4 points in class 7 -> 3/4
    d = dci(x, y[:, None], xe, np.array([[7], [7], [7], [3]]), n_jobs=1)
    assert d["dci_informativeness_test"] == 0.75


@pytest.mark.parametrize("k,depth,stages,rounded", [(2, 3, 10, False), (2, 3, 10, True), (3, 3, 5, False),
                                                   (4, 2, 10, False)])
def test_boosting_equals_sklearn_where_sklearn_has_no_ties(k, depth, stages, rounded):
    # sklearn's defaults but the stage count and depth; no code separates the classes, so every
    # stage's residuals (the raw-score update, the hessian, the (K - 1)/K factor) shape its trees. The
    # cases are those where sklearn's own random feature order changes nothing (checked: two seeds
    # agree), so importances must agree to 1e-12 and every prediction must be equal; with tiny nodes,
    # ties between features isolating the same sample make sklearn itself vary by ~1e-3.
    rng = np.random.RandomState(k)
    y = rng.randint(0, k, 600)
    x = np.stack([y + 1.5 * rng.randn(600), np.full(600, 2.0), rng.randn(600) + 0.5 * y, rng.randn(600)], 1)
    if rounded:
        x = np.round(x, 1)
    xe = rng.randn(50, 4) + 1
    sk = [GradientBoostingClassifier(n_estimators=stages, max_depth=depth, random_state=s).fit(x, y) for s in (0, 1)]
    assert np.abs(sk[0].feature_importances_ - sk[1].feature_importances_).max() < 1e-12
    assert (sk[0].feature_importances_[[0, 2]] > 0.02).all()  # the trees use several codes
    # the rounded codes have < 256 distinct values: the default max_bins and max_depth (3) are used
    kw = {} if rounded else {"max_depth": depth, "max_bins": 10**6}
    r = gbt.fit_predict(torch.tensor(x), torch.tensor(y), [torch.tensor(xe)], n_estimators=stages, **kw)
    np.testing.assert_allclose(r.importances.numpy(), sk[0].feature_importances_, atol=1e-12)
    assert (r.predictions[0].numpy() == sk[0].predict(x)).all()
    agree = (r.predictions[1].numpy() == sk[0].predict(xe)).mean()
    # binary: every new point too; multiclass: thresholds of equal gain within one code (residuals take
    # K values at the first stage) are picked by floating-point rounding, which differs from sklearn's
    # running sums, so a few new points between two such thresholds can fall on the other side
    assert agree == 1.0 if k == 2 else agree >= 0.9


def test_candidate_thresholds_midpoints_the_1e7_rule_and_the_bin_cap():
    # midpoints of adjacent distinct float32 values; values closer than 1e-7 are never split apart;
    # more than max_bins - 1 midpoints: max_bins - 1 of them at evenly spaced ranks
    x = torch.tensor([[0.0, 0.0], [5e-8, 1.0], [1.0, 2.0], [3.0, 3.0], [3.0, 9.0]], dtype=torch.float32)
    thr = gbt._bin_features(x, 256)
    lo = float(torch.tensor(5e-8, dtype=torch.float32))
    assert thr[0, :2].tolist() == [lo / 2 + 0.5, 2.0] and thr[0, 2:].isinf().all()  # 0 | 5e-8 not split
    assert thr[1, :4].tolist() == [0.5, 1.5, 2.5, 6.0]
    near = gbt._bin_features(torch.tensor([[0.0], [5e-8], [0.0], [5e-8]], dtype=torch.float32), 256)
    assert near.shape == (1, 1) and near.isinf().all()  # two values, no threshold between them
    capped = gbt._bin_features(torch.arange(10, dtype=torch.float32)[:, None], 4)
    assert capped[0].tolist() == [0.5, 4.5, 8.5]  # ranks 0, 4, 8 of the 9 midpoints


def test_a_point_on_a_threshold_goes_left_as_sklearn():
    # sklearn sends x <= threshold to the left child
    x = np.array([[0.0], [0.0], [1.0], [1.0]])
    y = np.array([0, 0, 1, 1])
    on = np.array([[0.5], [0.5000001]])
    r = gbt.fit_predict(torch.tensor(x), torch.tensor(y), [torch.tensor(on)], n_estimators=5, max_depth=1,
                        learning_rate=1.0)
    sk = GradientBoostingClassifier(n_estimators=5, max_depth=1, learning_rate=1.0).fit(x, y)
    assert sk.predict(on).tolist() == [0, 1] and r.predictions[1].numpy().tolist() == [0, 1]


def test_defaults_are_sklearns_and_two_samples_can_be_split():
    import inspect

    sig = inspect.signature(gbt.fit_predict).parameters
    sk = GradientBoostingClassifier()
    assert (sig["n_estimators"].default, sig["learning_rate"].default, sig["max_depth"].default) == \
        (sk.n_estimators, sk.learning_rate, sk.max_depth) == (100, 0.1, 3)
    assert (sig["max_bins"].default, sig["seed"].default) == (256, 0)  # diffrep's choices
    # min_samples_split = 2: a node of two samples is split
    r = gbt.fit_predict(torch.tensor([[0.0], [1.0]]), torch.tensor([0, 1]), [], n_estimators=1, max_depth=1)
    assert r.relevant_trees == 1 and r.importances.tolist() == [1.0]


def test_feature_ties_are_broken_by_the_seeded_generator():
    # the XOR root: both codes gain 0; the choice is random but reproducible for a seed (sklearn's
    # is unseeded); importances then split between the codes
    g, y = _xor_grid()
    a = gbt.fit_predict(torch.tensor(g), torch.tensor(y), [], seed=3).importances
    b = gbt.fit_predict(torch.tensor(g), torch.tensor(y), [], seed=3).importances
    c = [gbt.fit_predict(torch.tensor(g), torch.tensor(y), [], seed=s).importances[0].item() for s in range(4)]
    assert torch.equal(a, b) and len(set(c)) > 1


def test_only_zero_gain_trees_give_zero_importances_where_sklearn_divides_by_zero():
    # XOR with stumps: every tree splits at zero gain; sklearn's normalisation is 0/0 = NaN,
    # the fast GBT reports zeros (DCI's robust mode then flags the all-zero column)
    g, y = _xor_grid()
    r = gbt.fit_predict(torch.tensor(g), torch.tensor(y), [], max_depth=1)
    assert r.relevant_trees == 100 and r.importances.tolist() == [0.0, 0.0]
    with np.errstate(invalid="ignore"):
        sk = GradientBoostingClassifier(max_depth=1, random_state=0).fit(g, y)
        assert np.isnan(sk.feature_importances_).all()
