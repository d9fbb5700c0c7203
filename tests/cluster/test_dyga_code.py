"""The authors' code's anchor selection (``compat="dis-dis"``; docs/methods/dyga.md#compat, rows 1-6):
against an independent per-component re-implementation of the code's algorithm with the same
injected generator, and the split bookkeeping of rows 5-6 traced by hand."""

import math

import pytest
import torch

from diffrep.cluster import dyga_code
from diffrep.ops import use_backend

EPS = 1e-6


# -- an independent re-implementation of the code's DyGA.fit (float64, one component at a time) -------
def _logp(X, means, covs, weights):
    d = X.shape[1]
    cols = []
    for mu, cov, pi in zip(means, covs, weights):
        L = torch.linalg.cholesky(cov + EPS * torch.eye(d, dtype=X.dtype))
        z = torch.linalg.solve_triangular(L, (X - mu).T, upper=False)
        cols.append(-0.5 * (z * z).sum(0) - L.diagonal().log().sum() - 0.5 * d * math.log(2 * math.pi) + pi.log())
    return torch.stack(cols, 1)


def _e(X, means, covs, weights):
    return torch.softmax(_logp(X, means, covs, weights), 1)


def _m(X, r):
    nk = r.sum(0)
    means = (r.T @ X) / nk[:, None]
    covs = torch.stack([((r[:, k, None] * (X - means[k])).T @ (X - means[k])) / nk[k] for k in range(r.shape[1])])
    return means, covs, nk / nk.sum()


def _density(X, r, psi_members=0.5):
    out = []
    for k in range(r.shape[1]):
        Y = X[r[:, k] > psi_members]
        out.append(float((Y - Y.mean(0)).norm(dim=1).mean()) if len(Y) else math.nan)
    return out


def oracle(X, K0, Kmax, iters, min_size, psi, p_arb, max_split_iter, gen):
    n, d = X.shape
    eye = torch.eye(d, dtype=X.dtype)
    means = X[torch.randperm(n, generator=gen)[:K0]]
    covs = eye.expand(K0, d, d).clone()
    weights = torch.full((K0,), 1.0 / K0, dtype=X.dtype)
    for _ in range(iters):
        means, covs, weights = _m(X, _e(X, means, covs, weights))
    splits, count = 0, 0
    while count < max_split_iter and len(means) < Kmax:
        r = _e(X, means, covs, weights)
        if int(((r > 0.5).sum(0) >= 2).sum()) == 0:     # nothing splittable (the code would loop forever at p = 1)
            break
        dens = _density(X, r)
        cands = [i for i, dv in enumerate(dens) if dv > psi or float(torch.rand(1, generator=gen)) < p_arb]
        if not cands:
            break
        for i in cands:
            Y = X[_e(X, means, covs, weights)[:, i] > 0.5]
            if len(Y) < 2:
                continue
            sm = Y[torch.randperm(len(Y), generator=gen)[:2]]
            sc, sw = eye.expand(2, d, d).clone(), torch.full((2,), 0.5, dtype=X.dtype)
            for _ in range(iters):
                sm, sc, sw = _m(Y, _e(Y, sm, sc, sw))
            keep = [j for j in range(len(means)) if j != i]
            means = torch.cat([means[keep], sm])
            covs = torch.cat([covs[keep], sc])
            weights = torch.cat([weights[keep], sw / 2])
            weights = weights / weights.sum()
            splits += 1
            if all(dv <= psi for dv in _density(X, _e(X, means, covs, weights))):
                break
            count += 1
    sizes = _e(X, means, covs, weights).sum(0)
    keep = sizes >= min_size
    means, covs, weights = means[keep], covs[keep], weights[keep] / weights[keep].sum()
    for _ in range(iters):
        means, covs, weights = _m(X, _e(X, means, covs, weights))
    return means, covs, weights, splits


def blobs(U=2, k=4, n_per=60, d=3, spread=0.05, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = torch.rand(U, k, d, generator=g, dtype=torch.float64) * scale
    lab = torch.arange(k * n_per) % k
    return c[:, lab] + spread * scale * torch.randn(U, k * n_per, d, generator=g, dtype=torch.float64)


def _match(res, u, means, covs, weights):
    act = res.active[u]
    assert int(act.sum()) == len(means)
    got_mu, got_cov, got_w = res.means[u][act], res.covariances[u][act], res.weights[u][act]
    dist = torch.cdist(means, got_mu) + (weights[:, None] - got_w[None]).abs()
    order, used = [], set()
    for i in range(len(means)):                                   # greedy: coincident components are interchangeable
        j = min((j for j in range(len(means)) if j not in used), key=lambda j: float(dist[i, j]))
        used.add(j)
        order.append(j)
    order = torch.tensor(order)
    torch.testing.assert_close(got_mu[order], means, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(got_cov[order], covs + EPS * torch.eye(means.shape[1], dtype=covs.dtype),
                               rtol=1e-5, atol=1e-8)
    torch.testing.assert_close(got_w[order], weights, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.parametrize("case", [dict(psi=0.5, p_arb=0.5, scale=1.0, K0=2, Kmax=6),       # coins, uncounted splits
                                  dict(psi=0.0, p_arb=0.5, scale=1.0, K0=3, Kmax=5),       # every cluster, counted
                                  dict(psi=0.2, p_arb=0.3, scale=3.0, K0=2, Kmax=8)])
def test_matches_an_independent_reimplementation_with_the_same_generator(backend, case):
    x = blobs(scale=case["scale"])
    seeds = [11, 12]
    with use_backend(backend):
        res, failed = dyga_code.fit_code(x, case["K0"], case["Kmax"], 12, 10.0, psi=case["psi"],
                                         p_arbitrary=case["p_arb"], max_split_iter=3, seeds=seeds)
    assert not failed.any()
    for u in range(2):
        means, covs, weights, splits = oracle(x[u], case["K0"], case["Kmax"], 12, 10.0, case["psi"], case["p_arb"], 3,
                                              torch.Generator().manual_seed(seeds[u]))
        _match(res, u, means, covs, weights)
        assert int(res.events["splits"][u]) == splits


def test_all_densities_below_psi_splits_uncounted_up_to_max_components():
    """Row 5: after a split with every density <= psi the pass ends without counting it, so with a
    sure coin the loop adds one Gaussian per pass until max_components, whatever max_split_iter."""
    x = blobs(spread=0.01)
    res, failed = dyga_code.fit_code(x, 2, 7, 10, 0.0, psi=100.0, p_arbitrary=1.0, max_split_iter=1, seeds=[1, 2])
    assert not failed.any()
    assert res.n_components.tolist() == [7, 7] and res.events["splits"].tolist() == [5, 5]
    none, _ = dyga_code.fit_code(x, 2, 7, 10, 0.0, psi=100.0, p_arbitrary=0.0, seeds=[1, 2])
    assert none.n_components.tolist() == [2, 2] and none.events["splits"].tolist() == [0, 0]


def test_a_pass_can_split_every_candidate_and_exceed_max_components():
    """Row 6: the budget (3) counts splits but is checked between passes, and max_components between
    passes: with every density above psi, the first pass splits all 4 candidate positions (the 4th
    after the counter reached 3), ending with 8 > max_components = 5 Gaussians."""
    x = blobs(U=1, k=4, n_per=100, spread=0.02, scale=10.0)
    res, failed = dyga_code.fit_code(x, 4, 5, 10, 0.0, psi=0.0, p_arbitrary=0.0, max_split_iter=3, seeds=[4])
    assert not failed.any()
    assert res.n_components.tolist() == [8] and res.events["splits"].tolist() == [4]
    means, covs, weights, splits = oracle(x[0], 4, 5, 10, 0.0, 0.0, 0.0, 3, torch.Generator().manual_seed(4))
    assert splits == 4
    _match(res, 0, means, covs, weights)
    assert res.means.shape[1] == dyga_code.capacity(5) == 8
    assert [dyga_code.capacity(k) for k in (1, 2, 8, 32, 33)] == [1, 2, 14, 62, 64]


def test_positional_candidates_shift_after_a_split():
    """Row 5: candidates are positions fixed at the pass start; deleting the parent shifts the rest,
    so a later position names another cluster (here a freshly appended child) -- the oracle, which
    indexes a Python list the same way, agrees on which clusters were split."""
    x = blobs(U=1, k=4, n_per=80, spread=0.15)
    res, _ = dyga_code.fit_code(x, 3, 6, 10, 0.0, psi=0.0, p_arbitrary=0.0, max_split_iter=3, seeds=[5])
    means, covs, weights, splits = oracle(x[0], 3, 6, 10, 0.0, 0.0, 0.0, 3, torch.Generator().manual_seed(5))
    assert splits == 3 and int(res.events["splits"][0]) == 3
    _match(res, 0, means, covs, weights)


def test_invalid_mixtures_are_the_codes_value_errors():
    d = 2
    p = {"model": "full", "active": torch.tensor([[True, True], [True, False], [True, True]]),
         "pi": torch.full((3, 2), 0.5, dtype=torch.float64),
         "nk": torch.tensor([[3.0, 2.0], [3.0, 0.0], [3.0, 0.0]], dtype=torch.float64),
         "mu": torch.zeros(3, 2, d, dtype=torch.float64),
         "cov": torch.eye(d, dtype=torch.float64).expand(3, 2, d, d).clone()}
    assert dyga_code._invalid(p).tolist() == [False, False, True]     # an active component with n_k = 0
    p["nk"][2, 1] = 1.0
    p["cov"][0, 1] = torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=torch.float64)   # not positive definite
    p["cov"][1, 1] = torch.tensor([[1.0, 2.0], [2.0, 1.0]], dtype=torch.float64)   # ... but inactive
    p["mu"][2, 0, 0] = math.nan
    assert dyga_code._invalid(p).tolist() == [True, False, True]
    safe = dyga_code._safe(p, torch.tensor([True, False, False]))
    assert torch.equal(safe["cov"][0], torch.eye(d, dtype=torch.float64).expand(2, d, d))
    assert torch.equal(safe["cov"][1], p["cov"][1]) and safe["pi"][0].tolist() == [0.5, 0.5]


def test_bad_inputs():
    x = blobs()
    with pytest.raises(ValueError, match="seeds"):
        dyga_code.fit_code(x, 2, 4, seeds=[1])
    with pytest.raises(ValueError, match="distinct points"):
        dyga_code.fit_code(x[:, :3], 4, 4)
    with pytest.raises(ValueError, match="p_arbitrary"):
        dyga_code.fit_code(x, 2, 4, p_arbitrary=2.0)
    with pytest.raises(TypeError, match="floating"):
        dyga_code.fit_code(x.long(), 2, 4)


@pytest.mark.parametrize("p_arb", [0.0, 1.0])
def test_exact_boundaries_on_duplicate_points_match_the_reimplementation(p_arb):
    """Groups of identical points (exact integer coordinates) give densities of exactly 0, soft sizes
    of exactly 10 and symmetric children with t = 1/2 exactly: with psi = 0 and min_mass = 10 every
    boundary of the code (density > psi, all densities <= psi, t > phi, size >= min_mass) is hit,
    and the fit still equals the re-implementation; a group of 5 is filtered."""
    pts = torch.tensor([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [10.0, 5.0], [-6.0, 3.0]], dtype=torch.float64)
    reps = torch.tensor([30, 30, 10, 20, 5])
    x = pts.repeat_interleave(reps, 0)[None].expand(4, -1, -1).contiguous()
    seeds = [0, 1, 2, 3]
    res, failed = dyga_code.fit_code(x, 3, 6, 8, 10.0, psi=0.0, p_arbitrary=p_arb, max_split_iter=2, seeds=seeds)
    assert not failed.any()
    for u in range(4):
        means, covs, weights, splits = oracle(x[u], 3, 6, 8, 10.0, 0.0, p_arb, 2, torch.Generator().manual_seed(seeds[u]))
        _match(res, u, means, covs, weights)
        assert int(res.events["splits"][u]) == splits
    assert int(res.events["filtered"].sum()) > 0


def test_an_uncounted_split_on_exact_zero_densities_lets_the_next_pass_run():
    """After a split whose children hold one duplicate group each, every density is exactly 0 <= psi =
    0: the split is not counted, so even with max_split_iter = 1 the next pass runs (the coin, p = 1,
    picks the single-group clusters): as the re-implementation does."""
    pts = torch.tensor([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0]], dtype=torch.float64)
    x = pts.repeat_interleave(30, 0)[None].expand(6, -1, -1).contiguous()
    seeds = list(range(20, 26))
    res, _ = dyga_code.fit_code(x, 2, 8, 6, 0.0, psi=0.0, p_arbitrary=1.0, max_split_iter=1, seeds=seeds)
    more = 0
    for u in range(6):
        means, covs, weights, splits = oracle(x[u], 2, 8, 6, 0.0, 0.0, 1.0, 1, torch.Generator().manual_seed(seeds[u]))
        _match(res, u, means, covs, weights)
        assert int(res.events["splits"][u]) == splits
        more += splits > 1
    assert more >= 1                                   # some unit split again after an uncounted split


def test_a_filter_that_would_drop_every_gaussian_is_a_failure():
    x = blobs()
    _, failed = dyga_code.fit_code(x, 2, 4, 5, 1e9, psi=100.0, p_arbitrary=0.0)
    assert failed.tolist() == [True, True]
    _, ok = dyga_code.fit_code(x, 2, 4, 5, 10.0, psi=100.0, p_arbitrary=0.0)
    assert ok.tolist() == [False, False]
