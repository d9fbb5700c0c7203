"""``split_rule="bic"`` keeps a unit's splits only if its final BIC, after the filter and the final
EM, is strictly higher than that of the same fit without splits (docs/kernels/hddc.md, "split_rule").

Each split is accepted when it raises the unit's BIC at that moment, but the filter may then drop a
child and the final EM start from the rest. The hand-made case: a tight group A (100 points), 8
outliers near (3, 3) and a broad group C (100 points) at (20, 0), started as {A + outliers, C}. The
split of {A + outliers} into A and the outliers raises the BIC; the outlier child (soft mass 8) is
then filtered (min_mass 10), and the final EM ends about 26 below the model without the split. The
tests rebuild that path from the library's steps and compare with the fit."""

import math

import torch

from diffrep.cluster import hddc
from diffrep.cluster.em import bic, em_compact
from diffrep.cluster.split import split_pass
from diffrep.ops import hddc as ops

CFG = dict(model="AkjBkQkDk", max_iter=30, tol=1e-3, threshold=0.2, dim_rule="cattell", reg_covar=1e-6)


def _case():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(100, 2, generator=g, dtype=torch.float64) * 0.5
    o = torch.randn(8, 2, generator=g, dtype=torch.float64) * 0.3 + torch.tensor([3.0, 3.0], dtype=torch.float64)
    c = torch.randn(100, 2, generator=g, dtype=torch.float64) * 2.0 + torch.tensor([20.0, 0.0], dtype=torch.float64)
    x = torch.cat([a, o, c])[None]
    r0 = torch.zeros(1, 208, 2, dtype=torch.float64)
    r0[0, :108, 0] = 1.0
    r0[0, 108:, 1] = 1.0
    return x, r0


KW = dict(n_components=2, max_components=4, min_mass=10)


def _unguarded_path(x, r0):
    """The fit's steps without the final comparison: EM, one split pass ("bic"), the filter written
    from its description (soft mass < min_mass dropped, rows renormalised), the final EM."""
    n = x.shape[1]
    eng = ops.Engine("cpu", x)
    units = torch.zeros(1, dtype=torch.int64)
    w = torch.ones(1, n, dtype=torch.float64)
    stats = {k: torch.zeros(1, dtype=torch.int64) for k in ("splits", "filtered", "deactivated")}
    resp = torch.zeros(1, n, 4, dtype=torch.float64)
    resp[..., :2] = r0
    act = torch.zeros(1, 4, dtype=torch.bool)
    act[:, :2] = True
    p, resp, L = em_compact(eng, units, w, resp, act, CFG, stats)
    bic_start = float(bic(L, p, w.sum(1), 2)[0])
    p, resp, L, n_split = split_pass(eng, w, p, resp, L, CFG, "bic", 0.5, 0.5, 0.0, 10, 4,
                                     torch.Generator().manual_seed(0), stats)
    bic_split = float(bic(L, p, w.sum(1), 2)[0])
    mass = resp.sum(1)[0]
    keep = p["active"] & (resp.sum(1) >= 10)
    resp = resp * keep[:, None]
    resp = resp / resp.sum(-1, keepdim=True)
    p, _, L = em_compact(eng, units, w, resp, keep, CFG, stats)
    return dict(bic_start=bic_start, n_split=n_split, bic_split=bic_split, mass=mass, active=p["active"][0],
                bic_final=float(bic(L, p, w.sum(1), 2)[0]), K=int(p["active"].sum()))


def test_an_accepted_split_whose_child_is_filtered_ends_below_no_split_and_is_undone():
    x, r0 = _case()
    path = _unguarded_path(x, r0)
    # the split of {A + outliers} raises the BIC when it is made (and only that one: C is one Gaussian)
    assert path["n_split"] == 1 and path["bic_split"] > path["bic_start"] + 100
    # its outlier child holds the 8 outliers (soft mass 8 < 10) and is filtered: K is 2 again
    small = [float(m) for m, a in zip(path["mass"], path["active"]) if 0 < m < 10]
    assert len(small) == 1 and abs(small[0] - 8.0) < 1e-6 and path["K"] == 2
    # ... and the final EM ends below the model without the split
    none = hddc.fit(x, init_resp=r0, psi=1e9, **KW)                 # no candidate: filter + final EM only
    assert none.events["splits"].tolist() == [0] and none.n_components.tolist() == [2]
    assert path["bic_final"] < float(none.bic[0]) - 20
    assert abs(float(none.bic[0]) - path["bic_start"]) < 1e-6       # the start was converged already
    # the fit keeps the better model: the one without the split, with its events
    r = hddc.fit(x, init_resp=r0, **KW)
    assert r.bic.tolist() == none.bic.tolist() and torch.equal(r.means, none.means)
    assert torch.equal(r.weights, none.weights) and torch.equal(r.log_likelihood, none.log_likelihood)
    assert r.events["splits"].tolist() == [0] and r.events["splits_undone"].tolist() == [1]
    assert r.events["filtered"].tolist() == [0] and r.events["deactivated"].tolist() == [0]
    # BIC = 2 L - m log n, m = hdc_getComplexity for K = 2, d = 2
    dk = r.dims[0].tolist()
    m = (2 * 2 + 1) + sum(k * (2 - (k + 1) / 2) + k for k in dk) + 2 * 2
    assert abs(float(r.bic[0]) - (2 * float(r.log_likelihood[0]) - m * math.log(208))) < 1e-9


def test_the_papers_rule_keeps_its_splits():
    # split_rule="dyga" splits unconditionally (DyGA Alg. 2): no final comparison
    x, r0 = _case()
    r = hddc.fit(x, init_resp=r0, split_rule="dyga", p_arbitrary=0.0, **KW)
    none = hddc.fit(x, init_resp=r0, psi=1e9, **KW)
    assert int(r.events["splits"][0]) >= 1 and r.events["splits_undone"].tolist() == [0]
    assert float(r.bic[0]) < float(none.bic[0]) - 20


def _random_units(U=24, n=80, d=4, seed=15):
    g = torch.Generator().manual_seed(seed)
    lab = torch.randint(0, 3, (U, n), generator=g)
    cent = torch.randn(U, 3, d, generator=g, dtype=torch.float64) * 3
    x = torch.randn(U, n, d, generator=g, dtype=torch.float64) * (torch.rand(U, 1, d, generator=g, dtype=torch.float64) + 0.2)
    return x + torch.gather(cent, 1, lab[..., None].expand(U, n, d))


def test_bic_rule_never_ends_below_the_fit_without_splits():
    # three groups per unit, K0 = 2, min_mass 25 (children are often filtered), all units started from
    # the same responsibilities: per unit, the result is the fit without splits where that is at least
    # as good, else strictly better than it
    x = _random_units()
    kw = dict(n_components=2, max_components=8, min_mass=25)
    r0 = torch.nn.functional.one_hot(hddc.fit(x, split=False, **kw).labels(x), 2).to(torch.float64)
    r = hddc.fit(x, init_resp=r0, **kw)
    none = hddc.fit(x, init_resp=r0, psi=1e9, **kw)
    undone = r.events["splits_undone"] > 0
    kept = r.events["splits"] > 0
    assert int(undone.sum()) >= 3 and int(kept.sum()) >= 3 and not bool((undone & kept).any())
    assert bool((r.bic[kept] > none.bic[kept]).all())
    for u in (~kept).nonzero()[:, 0].tolist():
        assert float(r.bic[u]) == float(none.bic[u])
        k = int(none.n_components[u])
        assert int(r.n_components[u]) == k and torch.equal(r.means[u, :k], none.means[u, :k])
        for key in ("filtered", "deactivated"):
            assert int(r.events[key][u]) == int(none.events[key][u])
    # the comparison is per unit (its own n in the penalty): each unit alone gets what it gets in the
    # batch (unit 17 keeps a third component by 25.8 BIC units only)
    assert r.n_components[17] > none.n_components[17] and float(r.bic[17] - none.bic[17]) < 26
    for u in range(x.shape[0]):
        one = hddc.fit(x[u:u + 1], init_resp=r0[u:u + 1], **kw)
        assert float(one.bic[0]) == float(r.bic[u])
        for key in ("splits", "splits_undone", "filtered"):
            assert int(one.events[key][0]) == int(r.events[key][u])


def _far_groups(sizes, weight=1.0):
    """Groups of the given sizes around far-apart centres on a line, started from their labels: every
    responsibility is exactly 0 or 1, so a group's soft mass is its size times the weight."""
    g = torch.Generator().manual_seed(7)
    lab = torch.arange(len(sizes)).repeat_interleave(torch.tensor(sizes))
    x = torch.randn(len(lab), 2, generator=g, dtype=torch.float64) * 0.3
    x[:, 0] += 1000.0 * lab
    r0 = torch.nn.functional.one_hot(lab, len(sizes)).to(torch.float64)
    w = torch.full((1, len(lab)), weight, dtype=torch.float64)
    return x[None], r0[None], w


def test_filter_keeps_a_component_whose_soft_mass_equals_min_mass():
    # step 4 drops the components of soft mass < min_mass: a group of exactly 10 points stays at 10
    x, r0, w = _far_groups([40, 10, 6])
    r = hddc.fit(x, n_components=3, max_components=4, init_resp=r0, psi=1e9, min_mass=10)
    assert r.n_components.tolist() == [2] and r.events["filtered"].tolist() == [1]
    # the final EM gives the 6 points of the dropped group (at 2000) to the nearer group (at 1000)
    assert sorted(round(float(v) * 56) for v in r.weights[0, :2]) == [16, 40]


def test_filter_keeps_the_largest_when_every_mass_is_below_min_mass_and_below_one():
    # weights 0.01: the masses are 0.4, 0.1 and 0.06, all below min_mass (and below 1, the size of a
    # fill that would make an empty slot the largest): the largest component alone stays
    x, r0, w = _far_groups([40, 10, 6], weight=0.01)
    r = hddc.fit(x, n_components=3, max_components=4, init_resp=r0, psi=1e9, min_mass=10, weights=w)
    assert r.n_components.tolist() == [1] and r.events["filtered"].tolist() == [2]
    # the final EM fits that one component to every point: their (equally weighted) mean, weight 1
    torch.testing.assert_close(r.means[0, 0], x[0].mean(0), rtol=1e-12, atol=1e-9)
    assert abs(float(r.weights[0, 0]) - 1.0) < 1e-12 and bool(torch.isfinite(r.log_likelihood).all())
