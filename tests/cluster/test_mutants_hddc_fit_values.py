"""The HDDC fit's EM bookkeeping (cluster/em.py, cluster/hddc.py ``fit``) against hand counts and
independent fits, for the survivors of a mutation run (benches/results/mutation_cluster_2026-12-07b.md):
the model complexity of ``hdc_getComplexity`` per unit, BIC's n clamp, HDclassif's min.individuals
rule (a component needs MIN_COUNT = 2 points), units converging at different iterations in one
batch, the split switch, the filter's fallback, the p_arbitrary default per split rule and the
accepted argument boundaries."""

import math

import pytest
import torch

from diffrep.cluster import hddc
from diffrep.cluster.em import MIN_COUNT, bic, deactivate, n_free_params


def _blobs(seps, n_per=60, d=3, K=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    xs = []
    for sep in seps:
        c = torch.randn(K, d, generator=g, dtype=torch.float64) * sep
        lab = torch.arange(K).repeat_interleave(n_per)
        xs.append(c[lab] + torch.randn(K * n_per, d, generator=g, dtype=torch.float64))
    return torch.stack(xs)


def test_model_complexity_per_unit_by_hand():
    # AkjBkQkDk: K d + K - 1 (means, proportions) + sum_k d_k (d - (d_k + 1)/2) (orientations)
    # + sum_k d_k (a_kj) + K (b_k) + K (d_k); inactive slots do not count
    d = 5
    p = {"model": "AkjBkQkDk", "mu": torch.zeros(2, 3, d, dtype=torch.float64),
         "active": torch.tensor([[True, True, False], [True, True, True]]),
         "dk": torch.tensor([[1, 3, 4], [2, 2, 1]])}
    want = []
    for act, dks in (([1, 1, 0], [1, 3, 4]), ([1, 1, 1], [2, 2, 1])):
        q = [k for a, k in zip(act, dks) if a]
        K = len(q)
        want.append(K * d + K - 1 + sum(k * (d - (k + 1) / 2) for k in q) + sum(q) + 2 * K)
    assert n_free_params(p, d).tolist() == pytest.approx(want, abs=1e-12)
    full = {"model": "full", "mu": p["mu"], "active": p["active"]}
    assert n_free_params(full, d).tolist() == pytest.approx([2 * 5 + 2 * 15 + 1, 3 * 5 + 3 * 15 + 2], abs=1e-12)
    # BIC = 2 L - m log n, with n clamped at 1 (n = 0.5 gives log 1 = 0)
    L = torch.tensor([-10.0, -20.0], dtype=torch.float64)
    got = bic(L, p, torch.tensor([1.5, 0.5], dtype=torch.float64), d)
    assert got.tolist() == pytest.approx([-20.0 - want[0] * math.log(1.5), -40.0], abs=1e-12)


def test_min_individuals_rule_and_its_fallback():
    assert MIN_COUNT == 2  # HDclassif min.individuals
    active = torch.tensor([[True, True, True, False], [False, True, True, False], [True, True, False, False]])
    cnt = torch.tensor([[2, 1, 5, 0], [0, 1, 0, 0], [0, 1, 0, 0]])
    # responsibilities x weights: masses 0.3 and 0.6 (both < 1) for row 1, 0.9 / 0.2 for row 2
    resp = torch.zeros(3, 2, 4, dtype=torch.float64)
    resp[1, 0, 1], resp[1, 1, 2] = 0.3, 0.6
    resp[2, 0, 0], resp[2, 1, 1] = 0.9, 0.2
    w = torch.ones(3, 2, dtype=torch.float64)
    keep, dead = deactivate(active, cnt, resp, w)
    assert keep.tolist() == [[True, False, True, False], [False, False, True, False], [True, False, False, False]]
    assert dead.tolist() == [1, 1, 1]


def test_units_converging_at_different_iterations_fit_as_if_alone():
    # unit 0: well separated (EM stops early); unit 1: overlapping (more iterations). From the same
    # responsibilities, each unit's fit in the batch equals its fit alone.
    x = _blobs([10.0, 0.7])
    g = torch.Generator().manual_seed(1)
    r0 = torch.softmax(torch.randn(2, x.shape[1], 2, generator=g, dtype=torch.float64), -1)
    kw = dict(n_components=2, max_components=2, split=False, max_iter=60, tol=1e-9)
    both = hddc.fit(x, init_resp=r0, **kw)
    for u in range(2):
        one = hddc.fit(x[u:u + 1], init_resp=r0[u:u + 1], **kw)
        torch.testing.assert_close(both.log_likelihood[u:u + 1], one.log_likelihood, rtol=1e-12, atol=1e-9)
        torch.testing.assert_close(both.means[u:u + 1], one.means, rtol=1e-10, atol=1e-10)


def test_split_switch_and_zero_passes_keep_the_initial_components():
    x = _blobs([8.0], K=4)
    assert int(hddc.fit(x, n_components=2, max_components=8, seed=0).n_components[0]) > 2  # it would split
    for kw in ({"split": False}, {"max_split_passes": 0}):
        r = hddc.fit(x, n_components=2, max_components=8, seed=0, **kw)
        assert r.n_components.tolist() == [2] and int(r.events["splits"][0]) == 0


def test_filter_that_drops_everything_keeps_the_heaviest_component():
    x = _blobs([8.0, 8.0], n_per=50)
    x[1, :70] = x[1, :70] * 0.1  # unit 1: an uneven split of the mass
    r = hddc.fit(x, n_components=3, max_components=4, split_rule="bic", max_split_passes=1, min_mass=1e9, seed=0)
    assert r.n_components.tolist() == [1, 1]
    assert r.events["filtered"].tolist() == [2 + int(r.events["splits"][0]), 2 + int(r.events["splits"][1])]
    torch.testing.assert_close(r.means[:, 0], x.mean(1), rtol=1e-9, atol=1e-9)  # one component: the data mean


def test_p_arbitrary_default_follows_the_split_rule():
    # tight blobs: every density is below psi = 0.5, so only the arbitrary-split coin makes candidates
    x = _blobs([3.0], K=4) * 0.05
    kw = dict(n_components=2, max_components=6, max_iter=10, seed=3)
    bic0 = hddc.fit(x, split_rule="bic", p_arbitrary=0.0, **kw)
    assert bic0.n_components.tolist() == [2]
    assert hddc.fit(x, split_rule="bic", p_arbitrary=1.0, **kw).n_components.tolist() == [4]  # the coin matters
    assert torch.equal(hddc.fit(x, split_rule="bic", **kw).means, bic0.means)  # "bic": 0 by default
    dyga_half = hddc.fit(x, split_rule="dyga", p_arbitrary=0.5, **kw)
    assert int(dyga_half.n_components[0]) > 2
    assert hddc.fit(x, split_rule="dyga", p_arbitrary=0.0, **kw).n_components.tolist() == [2]
    for _ in range(2):  # "dyga": 0.5 by default, and the coins come from the fit's seeded generator
        torch.manual_seed(_)
        assert torch.equal(hddc.fit(x, split_rule="dyga", **kw).means, dyga_half.means)


def test_argument_boundaries_are_accepted():
    x = _blobs([6.0], n_per=20)
    n = x.shape[1]
    hddc.fit(x, n_components=2, max_components=4, p_arbitrary=1.0, split_rule="dyga", max_iter=3)
    hddc.fit(x, n_components=2, max_components=4, threshold=1.0, max_iter=3)
    hddc.fit(x[:, :6], n_components=6, max_components=6, split=False, max_iter=2)  # one point per component
    w = torch.ones(1, n, dtype=torch.float64)
    w[0, :5] = 0.0
    hddc.fit(x, n_components=2, max_components=4, weights=w, max_iter=3)             # zeros and ones
    hddc.fit(x, n_components=2, max_components=4, weights=torch.full((1, n), 0.5 / n, dtype=torch.float64),
             max_iter=3, min_mass=0.0)                                                # total weight 0.5
    with pytest.raises(ValueError, match=r"p_arbitrary must be in \[0, 1\], got 1.5"):
        hddc.fit(x, n_components=2, max_components=4, p_arbitrary=1.5)
    r0 = torch.zeros(1, n, 2, dtype=torch.float64)
    r0[..., 0] = 1.5
    with pytest.raises(ValueError, match=r"init_resp must lie in \[0, 1\]"):
        hddc.fit(x, n_components=2, max_components=4, init_resp=r0)
    hddc.fit(x, n_components=2, max_components=4, phi=0.9, psi=0.0, max_iter=3)
    hddc.fit(x, n_components=2, max_components=4, model="full", reg_covar=0.0, max_iter=3)
    with pytest.raises(ValueError, match="phi"):
        hddc.fit(x, n_components=2, max_components=4, phi=1.5)
    w2 = torch.ones(2, n, dtype=torch.float64)
    w2[1] = 0.0
    with pytest.raises(ValueError, match="^every unit needs a positive total weight$"):
        hddc.fit(torch.cat([x, x]), n_components=2, max_components=4, weights=w2)


def test_defaults_are_dygas_and_hdclassifs():
    import inspect

    sig = inspect.signature(hddc.fit).parameters
    want = dict(n_components=8, max_components=32, model="AkjBkQkDk", max_iter=30, tol=1e-3, split=True,
                min_mass=10, seed=0, split_rule="bic", phi=0.5, psi=0.5, p_arbitrary=None, max_split_passes=3,
                threshold=0.2, dim_rule="cattell", init="kmeans++", reg_covar=1e-6)
    assert {k: sig[k].default for k in want} == want


def test_a_deactivated_component_leaves_renormalised_responsibilities():
    # component 2 has one point above 1/K = 1/3: fewer than MIN_COUNT, so it is dropped before the first
    # M-step and the other two columns are renormalised; one M-step then equals a 2-component start
    # from those renormalised columns
    x = _blobs([6.0], n_per=40)
    n = x.shape[1]
    g = torch.Generator().manual_seed(4)
    r = torch.softmax(torch.randn(1, n, 2, generator=g, dtype=torch.float64), -1) * 0.8
    r3 = torch.cat([r, torch.full((1, n, 1), 0.2, dtype=torch.float64)], -1)
    r3[0, 5] = torch.tensor([0.05, 0.05, 0.9], dtype=torch.float64)
    kw = dict(max_components=3, split=False, max_iter=1)
    a = hddc.fit(x, n_components=3, init_resp=r3, **kw)
    b = hddc.fit(x, n_components=2, init_resp=r3[..., :2] / r3[..., :2].sum(-1, keepdim=True), **kw)
    assert a.n_components.tolist() == [2] and int(a.events["deactivated"][0]) == 1
    torch.testing.assert_close(a.means[:, :2], b.means[:, :2], rtol=1e-12, atol=1e-12)


def test_filter_uses_the_weighted_soft_size():
    # weights 0.5: two components of 60 points have soft size sum_i w_i t_ik = 30 < min_mass = 40,
    # so both fall and the heavier one stays (sum_i t_ik = 60 would keep both)
    x = _blobs([8.0], n_per=60)
    w = torch.full((1, x.shape[1]), 0.5, dtype=torch.float64)
    r = hddc.fit(x, n_components=2, max_components=4, weights=w, min_mass=40, max_split_passes=1, seed=0)
    assert r.n_components.tolist() == [1]


def test_random_seeding_and_the_bic_dimension_rule_reach_the_fit():
    x = _blobs([4.0], K=3, d=6, n_per=40)
    kw = dict(n_components=3, max_components=3, max_iter=1, seed=2)
    assert not torch.equal(hddc.fit(x, init="random", **kw).means, hddc.fit(x, **kw).means)
    a, b = hddc.fit(x, dim_rule="bic", **kw), hddc.fit(x, dim_rule="cattell", **kw)
    assert not torch.equal(a.dims, b.dims)
