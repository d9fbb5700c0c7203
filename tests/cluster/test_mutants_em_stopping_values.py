"""The HDDC EM's stopping rule, the split-pass loop, k-means' Lloyd budget and empty clusters, and the
degenerate-component rules (HDclassif's min.individuals count, the renormalisation after the filter),
each against an independent computation: the survivors judged "matters, not pinned" in
benches/results/mutation_cluster_2026-12-07b.md.

The stopping rule (docs/kernels/hddc.md, step 2; HDclassif's tests): EM (M then E) stops after the first
iteration t >= 2 with |L_t - L_{t-1}| < tol or |L_t - L_{t-1}| / (0.1 + |L_t|) < tol, or at max_iter.
The tests run the library's single EM step (M-step sums, parameters, E-step) by hand, apply that rule
to the recorded log-likelihoods, and choose tol equal to one of the recorded test values, so that a
strict and a non-strict comparison stop at different iterations.
"""

import torch

from diffrep.cluster import hddc
from diffrep.cluster.em import em
from diffrep.cluster.kmeans import kmeans_labels
from diffrep.ops import hddc as ops


def _blobs(centres, n_per, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    c = torch.tensor(centres, dtype=torch.float64)
    lab = torch.arange(len(centres)).repeat_interleave(torch.tensor(n_per))
    return (c[lab] + scale * torch.randn(len(lab), c.shape[1], generator=g, dtype=torch.float64))[None]


def _cfg(tol, max_iter=200):
    return dict(model="AkjBkQkDk", max_iter=max_iter, tol=tol, threshold=0.2, dim_rule="cattell", reg_covar=1e-6)


def _trajectory(x, w, r0, T):
    """L_1..L_T of T hand-run EM iterations (M-step, parameters, E-step) from responsibilities r0."""
    eng = ops.Engine(ops.prepare(x, r0.shape[2], r0.shape[2]).backend, x)
    units = torch.zeros(1, dtype=torch.int64)
    active = torch.ones(1, r0.shape[2], dtype=torch.bool)
    wtot = w.sum(1).to(eng.pdtype)
    resp, Ls = r0.clone(), []
    for _ in range(T):
        nk, mu, W = eng.mstep(units, w, resp, active)
        p = ops.params(nk, mu, W, wtot, active, _cfg(1.0))
        resp, L, _ = eng.estep(units, w, p, False)
        Ls.append(float(L[0]))
    return eng, units, active, Ls


def _tests(Ls):
    """(|dL_t|, |dL_t| / (0.1 + |L_t|)) for t = 2..T (index t - 2), in the rule's float64 arithmetic."""
    return [(abs(b - a), abs(b - a) / (0.1 + abs(b))) for a, b in zip(Ls, Ls[1:])]


def _documented_stop(Ls, tol):
    """The 1-based iteration where the documented rule stops (len(Ls) if it never does)."""
    for t, (dl, rel) in enumerate(_tests(Ls), start=2):
        if dl < tol or rel < tol:
            return t
    return len(Ls)


def _case(weight):
    # two overlapping elongated groups: EM needs many iterations, with L rising steadily
    x = _blobs([[0.0, 0.0, 0.0], [2.5, 1.0, 0.0]], [70, 50], seed=3, scale=1.0)
    n = x.shape[1]
    w = torch.full((1, n), weight, dtype=torch.float64)
    g = torch.Generator().manual_seed(5)
    r0 = torch.softmax(torch.randn(1, n, 2, generator=g, dtype=torch.float64), -1)
    return x, w, r0


def _stop_check(weight, which):
    """tol = the recorded test value `which` (0: |dL|, 1: relative) at an iteration t* where it is a
    new minimum; the strict rule must run past t*, to the documented stop."""
    x, w, r0 = _case(weight)
    T = 60
    eng, units, active, Ls = _trajectory(x, w, r0, T)
    tests = _tests(Ls)
    vals = [tv[which] for tv in tests]
    # t* = the third strict new minimum of the binding test (index i -> iteration i + 2)
    mins = [i for i in range(1, len(vals)) if 0 < vals[i] < min(vals[:i])]
    i_star = mins[2]
    tol = vals[i_star]
    # the other test must not fire at or before t* (so the binding test alone decides)
    assert all(tv[1 - which] >= tol for tv in tests[:i_star + 1])
    stop = _documented_stop(Ls, tol)
    assert i_star + 2 < stop < T  # the strict comparison runs past t*
    # at the stop, only the binding test fires (so "and" would run on)
    assert tests[stop - 2][which] < tol <= tests[stop - 2][1 - which]
    p, _, L = em(eng, units, w, r0.clone(), active.clone(), _cfg(tol))
    assert float(L[0]) == Ls[stop - 1]
    # the neighbouring iterations are far apart on this scale, so the equality identifies the stop
    assert abs(Ls[stop - 1] - Ls[stop - 2]) > 1e-9 and abs(Ls[i_star + 1] - Ls[stop - 1]) > 1e-9
    # max_iter caps the iterations: stopping at t* - 1 gives L_{t*-1}
    _, _, Lc = em(eng, units, w, r0.clone(), active.clone(), _cfg(tol, max_iter=i_star + 1))
    assert float(Lc[0]) == Ls[i_star]


def test_em_stops_by_the_relative_test_when_L_is_large():
    # unit weights: |L| is in the hundreds, so |dL| / (0.1 + |L|) < |dL| is the test that fires first
    _stop_check(1.0, which=1)


def test_em_stops_by_the_absolute_test_when_L_is_small():
    # weights 1e-3: |L| < 0.9, so 0.1 + |L| < 1 and |dL| < tol is the test that fires first
    x, w, r0 = _case(1e-3)
    _, _, _, Ls = _trajectory(x, w, r0, 5)
    assert max(abs(v) for v in Ls) < 0.9
    _stop_check(1e-3, which=0)


def test_split_passes_continue_after_a_pass_with_one_split():
    # three far-apart groups from one component, K_max = 3: pass 1 splits the only component (one split,
    # two components each straddling the groups), pass 2 splits one of them into the last free slot; the
    # passes stop only after a pass without a split (docs/kernels/hddc.md, step 3), so the fit ends with
    # one component per group
    x = _blobs([[0.0, 0.0], [30.0, 0.0], [0.0, 30.0]], [40, 40, 40], seed=1)
    r0 = torch.ones(1, x.shape[1], 1, dtype=torch.float64)
    one_pass = hddc.fit(x, n_components=1, max_components=3, init_resp=r0, seed=0, max_split_passes=1)
    assert one_pass.n_components.tolist() == [2] and one_pass.events["splits"].tolist() == [1]
    r = hddc.fit(x, n_components=1, max_components=3, init_resp=r0, seed=0)
    assert r.n_components.tolist() == [3] and r.events["splits"].tolist() == [2]
    got = sorted(r.means[0].tolist())
    want = sorted(x[0].view(3, 40, 2).mean(1).tolist())
    torch.testing.assert_close(torch.tensor(got, dtype=torch.float64), torch.tensor(want, dtype=torch.float64), atol=1e-6, rtol=0)


def _lloyd(x, w, cents, iters):
    """Brute-force weighted Lloyd steps (cdist, loops over clusters); an empty cluster keeps its centre."""
    for _ in range(iters):
        lab = torch.cdist(x, cents).argmin(1)
        new = cents.clone()
        for k in range(cents.shape[0]):
            m = (lab == k) & (w > 0)
            if bool(m.any()):
                new[k] = (w[m, None] * x[m]).sum(0) / w[m].sum()
        cents = new
    return torch.cdist(x, cents).argmin(1)


def test_kmeans_runs_exactly_ten_lloyd_steps_by_default():
    # uniform points, K = 8: Lloyd has not converged after 10 steps, so 9, 10 and 11 steps all differ;
    # "random" seeding draws K distinct points with the unit's generator (docs/kernels/hddc.md, step 1)
    g = torch.Generator().manual_seed(11)
    x = torch.rand(1, 200, 2, generator=g, dtype=torch.float64)
    w = torch.ones(1, 200, dtype=torch.float64)
    seed, K = 3, 8
    idx = torch.multinomial(w[0] / w[0].sum(), K, replacement=False,
                            generator=torch.Generator().manual_seed(seed))
    by = {t: _lloyd(x[0], w[0], x[0, idx].clone(), t) for t in (9, 10, 11)}
    assert not torch.equal(by[10], by[11]) and not torch.equal(by[9], by[10])
    assert torch.equal(kmeans_labels(x, w, K, [seed], init="random")[0], by[10])
    assert torch.equal(kmeans_labels(x, w, K, [seed], init="random", iters=11)[0], by[11])


def test_an_empty_cluster_keeps_its_centre():
    # one point of positive weight: both seeds are that point (drawn with replacement), every point goes
    # to the first of the two equal centres, and the second stays where it is, empty; had it moved to
    # the origin it would take the zero-weight points near the origin
    x = torch.tensor([[[10.0, 10.0], [0.1, 0.2], [-0.3, 0.1], [9.0, 11.0]]], dtype=torch.float64)
    w = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    for init in ("random", "kmeans++"):
        assert kmeans_labels(x, w, 2, [0], init=init).tolist() == [[0, 0, 0, 0]]


def _three_column_start(n, seed, tail):
    g = torch.Generator().manual_seed(seed)
    r = torch.softmax(torch.randn(1, n, 2, generator=g, dtype=torch.float64), -1) * (1 - tail)
    return torch.cat([r, torch.full((1, n, 1), tail, dtype=torch.float64)], -1)


def _one_m_step_means(x, r, **kw):
    return hddc.fit(x, n_components=r.shape[2], max_components=r.shape[2], init_resp=r, split=False, max_iter=1,
                    **kw).means


def test_min_individuals_threshold_is_one_over_each_problems_own_K():
    # two units in one batch, each with K = 3: column 2 has one point above 1/3 and every other point at
    # 0.2 (above 1/6 = 1/(total K of the batch)); HDclassif's count uses the problem's own K, so the
    # column is dropped in both units and the fit equals a 2-component start from the renormalised columns
    x = torch.cat([_blobs([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0]], [40, 40], seed=s) for s in (0, 1)])
    n = x.shape[1]
    r3 = torch.cat([_three_column_start(n, 4, 0.2), _three_column_start(n, 5, 0.2)])
    r3[:, 5] = torch.tensor([0.05, 0.05, 0.9], dtype=torch.float64)
    a = hddc.fit(x, n_components=3, max_components=3, init_resp=r3, split=False, max_iter=1)
    assert a.n_components.tolist() == [2, 2] and a.events["deactivated"].tolist() == [1, 1]
    r2 = r3[..., :2] / r3[..., :2].sum(-1, keepdim=True)
    torch.testing.assert_close(a.means[:, :2], _one_m_step_means(x, r2), rtol=1e-12, atol=1e-12)


def test_min_individuals_counts_strictly_above_one_over_K_and_only_weighted_points():
    # K = 2: column 1 has one point at 0.9; a second point at exactly 1/2 does not count (t_ik > 1/K), nor
    # does a point of weight 0 at 0.9; so column 1 has fewer than 2 members and is dropped
    x = _blobs([[0.0, 0.0], [5.0, 1.0]], [30, 30], seed=2)
    n = x.shape[1]
    r = torch.zeros(1, n, 2, dtype=torch.float64)
    r[..., 0] = 0.8
    r[..., 1] = 0.2
    r[0, 3] = torch.tensor([0.1, 0.9], dtype=torch.float64)
    r[0, 7] = torch.tensor([0.5, 0.5], dtype=torch.float64)
    for extra, w in ((None, None), (11, torch.ones(1, n, dtype=torch.float64))):
        rr = r.clone()
        kw = {}
        if extra is not None:  # the half point becomes a clear member, but its weight is 0
            rr[0, extra] = torch.tensor([0.1, 0.9], dtype=torch.float64)
            rr[0, 7] = torch.tensor([0.8, 0.2], dtype=torch.float64)
            w = w.clone()
            w[0, extra] = 0.0
            kw["weights"] = w
        res = hddc.fit(x, n_components=2, max_components=2, init_resp=rr, split=False, max_iter=1, **kw)
        assert res.n_components.tolist() == [1] and res.events["deactivated"].tolist() == [1]
        # the lone component after one M-step from all-ones responsibilities: the weighted data mean
        ww = torch.ones(n, dtype=torch.float64) if w is None else w[0]
        torch.testing.assert_close(res.means[0, 0], (ww[:, None] * x[0]).sum(0) / ww.sum(), rtol=1e-12, atol=1e-12)
    # and two clear members keep the column
    r2 = r.clone()
    r2[0, 7] = torch.tensor([0.1, 0.9], dtype=torch.float64)
    assert hddc.fit(x, n_components=2, max_components=2, init_resp=r2, split=False,
                    max_iter=1).n_components.tolist() == [2]


def test_filter_renormalises_the_responsibilities_before_the_final_em():
    # three groups, the third small (8 points): with min_mass 20 the filter drops its component; the final
    # EM's first M-step then starts from the two surviving columns of the E-step, renormalised per point
    x = _blobs([[0.0, 0.0], [7.0, 0.0], [3.5, 3.0]], [60, 60, 8], seed=6)
    labels = torch.arange(3).repeat_interleave(torch.tensor([60, 60, 8]))
    r0 = torch.nn.functional.one_hot(labels, 3).to(torch.float64)[None] * 0.98 + 0.02 / 3
    first = hddc.fit(x, n_components=3, max_components=3, init_resp=r0, split=False, max_iter=1)
    t = first.responsibilities(x)
    mass = t.sum(1)[0]
    assert mass[2] < 20 < float(mass[:2].min())
    # no split can happen (psi above every density, no coin), so the filter sees the first phase's E-step
    got = hddc.fit(x, n_components=3, max_components=4, init_resp=r0, max_iter=1, min_mass=20, psi=1e9,
                   max_split_passes=1)
    assert got.n_components.tolist() == [2] and got.events["filtered"].tolist() == [1]
    r2 = t[..., :2] / t[..., :2].sum(-1, keepdim=True)
    assert float(t[0, 120:, :2].sum(-1).max()) < 0.5  # the small group's rows change a lot
    torch.testing.assert_close(got.means[:, :2], _one_m_step_means(x, r2), rtol=1e-8, atol=1e-8)


def test_a_deactivation_in_the_final_em_is_counted():
    # column 2 starts on three points of two tight groups (t = 0.34 > 1/3): it passes the first count,
    # but after one M-step it is a broad component that no point prefers (no t_i2 > 1/3). The filter
    # (min_mass 0) keeps it; the final EM then deactivates it before its first M-step, counts the event,
    # and starts from the other two columns renormalised
    x = _blobs([[0.0, 0.0], [8.0, 0.0]], [60, 60], seed=7, scale=0.5)
    n = x.shape[1]
    r = torch.nn.functional.one_hot(torch.arange(2).repeat_interleave(60), 3).to(torch.float64)[None].clone()
    for i in (0, 61, 5):
        r[0, i] = torch.tensor([0.33, 0.33, 0.34], dtype=torch.float64)
    kw = dict(n_components=3, init_resp=r, max_iter=1)
    first = hddc.fit(x, max_components=3, split=False, **kw)
    assert first.n_components.tolist() == [3] and first.events["deactivated"].tolist() == [0]
    t = first.responsibilities(x)
    assert int((t[0, :, 2] > 1 / 3).sum()) == 0 and float(t[0, :, 2].sum()) > 0
    got = hddc.fit(x, max_components=4, psi=1e9, min_mass=0.0, max_split_passes=1, **kw)
    assert got.n_components.tolist() == [2]
    assert got.events["filtered"].tolist() == [0] and got.events["deactivated"].tolist() == [1]
    r2 = t[..., :2] / t[..., :2].sum(-1, keepdim=True)
    assert r2.shape == (1, n, 2)
    torch.testing.assert_close(got.means[:, :2], _one_m_step_means(x, r2), rtol=1e-8, atol=1e-8)
