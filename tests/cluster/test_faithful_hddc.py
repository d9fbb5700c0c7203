"""HDDC (Bouveyron et al. 2007, model [a_kj b_k Q_k d_k]; cran/HDclassif 2.2.2) against independent
computations: the M-step on soft responsibilities, the fitted mixture's densities, responsibilities,
log-likelihood and BIC (``hdclassif_bic``/``hdc_getComplexity``) from full covariances built by
hand, the BIC intrinsic-dimension rule (``hdclassif_dim_choice``, written out as R's loop), and the
DyGA split/filter thresholds (Eq. 5 density > psi strictly; soft size < min_mass dropped)."""

import math

import torch

from diffrep.cluster import hddc
from diffrep.ops.reference import hddc as ref


def _sigma(Q, a, b, dk):
    """Sigma = Q diag(a_1..a_dk, b, ..., b) Q^T (Eq. 3)."""
    d = Q.shape[-1]
    diag = torch.cat([a[:dk], b.expand(d - dk)])
    return Q @ torch.diag(diag) @ Q.T


def _blobs(seed=0, n=(150, 120, 90), d=5):
    g = torch.Generator().manual_seed(seed)
    xs = []
    for k, m in enumerate(n):
        centre = torch.zeros(d, dtype=torch.float64)
        centre[k % d] = 6.0 * (k + 1)
        A = torch.randn(d, d, generator=g, dtype=torch.float64) * 0.5
        xs.append(centre + torch.randn(m, d, generator=g, dtype=torch.float64) @ A)
    return torch.cat(xs)[None]


def test_m_step_on_soft_responsibilities_by_hand():
    x = _blobs()
    n, d = x.shape[1:]
    g = torch.Generator().manual_seed(1)
    t = torch.softmax(torch.randn(1, n, 3, generator=g, dtype=torch.float64) * 2, -1)
    w = torch.ones(1, n, dtype=torch.float64)
    p = ref.m_step(x, w, t, torch.ones(1, 3, dtype=torch.bool))
    for k in range(3):
        tk = t[0, :, k]
        nk = tk.sum()
        mu = (tk[:, None] * x[0]).sum(0) / nk
        W = ((x[0] - mu) * tk[:, None]).T @ (x[0] - mu) / nk          # biased: 1 / n_k
        lam = torch.linalg.eigvalsh(W).flip(0)
        dk = int(p["dk"][0, k])
        torch.testing.assert_close(p["pi"][0, k], nk / n)
        torch.testing.assert_close(p["mu"][0, k], mu)
        torch.testing.assert_close(p["a"][0, k, :dk], lam[:dk])
        torch.testing.assert_close(p["b"][0, k], lam[dk:].mean())        # (tr W - sum a) / (d - d_k)
        # Cattell: the largest j with |lam_j - lam_j+1| > 0.2 max gap
        gaps = (lam[:-1] - lam[1:]).abs()
        assert dk == max(j + 1 for j in range(d - 1) if gaps[j] > 0.2 * gaps.max())


def test_fitted_mixture_density_posterior_likelihood_and_bic_from_full_covariances():
    x = _blobs(seed=3)
    n, d = x.shape[1:]
    r = hddc.fit(x, n_components=3, max_components=3, split=False, seed=0)
    act = r.active[0].nonzero()[:, 0].tolist()
    comps = []
    for k in act:
        dk = int(r.dims[0, k])
        S = _sigma(r.subspaces[0, k], r.a[0, k], r.b[0, k], dk)
        comps.append(torch.log(r.weights[0, k]) + torch.distributions.MultivariateNormal(r.means[0, k], S).log_prob(x[0]))
    lp = torch.stack(comps, -1)                                         # (n, K) log pi_k N_k
    torch.testing.assert_close(r.log_prob(x)[0][:, act], lp)
    torch.testing.assert_close(r.responsibilities(x)[0][:, act], torch.softmax(lp, -1))
    L = torch.logsumexp(lp, -1).sum()
    torch.testing.assert_close(r.log_likelihood[0], L)
    # hdc_getComplexity AKJBKQKDK: ro + tot + 2K + D with ro = K p + K - 1, tot = sum d_k (p - (d_k + 1)/2)
    K = len(act)
    dks = [int(r.dims[0, k]) for k in act]
    m = (K * d + K - 1) + sum(q * (d - (q + 1) / 2) for q in dks) + 2 * K + sum(dks)
    torch.testing.assert_close(r.bic[0], 2 * L - m * math.log(n))


def _r_bic_dim(ev, n_k, prop, noise_ctrl=1e-8):
    """hdclassif_dim_choice(method="bic") for one class, as R's loop (1-based kdim, stop 10 past the best)."""
    p = len(ev)
    nmax = max(i + 1 for i in range(p) if ev[i] > noise_ctrl) - 1
    d, best = 0, -math.inf
    for kdim in range(1, nmax + 1):
        if d != 0 and kdim > d + 10:
            break
        a = sum(ev[:kdim]) / kdim
        b = sum(ev[kdim:]) / (p - kdim)
        if b < 0 or a < 0:
            B = -math.inf
        else:
            L2 = -0.5 * (kdim * math.log(a) + (p - kdim) * math.log(b) - 2 * math.log(prop)
                         + p * (1 + 0.5 * math.log(2 * math.pi))) * n_k
            B = 2 * L2 - (p + kdim * (p - (kdim + 1) / 2) + 1) * math.log(n_k)
        if B > best:
            best, d = B, kdim
    return d


def test_bic_intrinsic_dimension_is_hdclassifs_loop():
    spectra = [
        [9.0, 4.0, 0.5, 0.4, 0.3, 0.2],
        [5.0, 4.9, 4.8, 0.1, 0.1, 0.1, 0.1, 0.1],
        [1.0, 1.0, 1.0, 1.0, 1.0],
        [3.0, 2.0, 1.5, 1.2, 1.1, 1.0, 0.0, 0.0],
        [10.0, 1e-3, 1e-3, 1e-3],
        [100.0] + [5.0] * 3 + [4.0] * 12 + [0.01] * 16,                  # d = 32, as DyGA's tokens
        [10.0, 0.5] + [0.45] * 11 + [0.4] * 8 + [0.001] * 11,
    ]
    for n_k, prop in ((40.0, 0.3), (500.0, 0.5), (5000.0, 0.9)):
        for ev in spectra:
            lam = torch.tensor([ev], dtype=torch.float64)
            got = int(ref.bic_dims(lam, torch.tensor([n_k], dtype=torch.float64),
                                   torch.tensor([prop], dtype=torch.float64))[0])
            assert got == _r_bic_dim(ev, n_k, prop), (ev, n_k, prop)


def test_eq5_split_threshold_is_strict_on_a_ring_of_density_one():
    """One Gaussian fitted to 40 points evenly spaced on the unit circle: every point is a member
    (t = 1 > phi) and Eq. 5's density is exactly 1 (the plain mean is the centre). With the coin off
    it splits when psi < 1 and not when psi >= 1."""
    ang = torch.arange(40, dtype=torch.float64) * (2 * math.pi / 40)
    x = torch.stack([ang.cos(), ang.sin()], -1)[None]
    kw = dict(n_components=1, max_components=4, split_rule="dyga", p_arbitrary=0.0, max_split_passes=1,
              min_mass=10, seed=0)
    assert int(hddc.fit(x, psi=0.999, **kw).events["splits"][0]) == 1
    assert int(hddc.fit(x, psi=1.0, **kw).events["splits"][0]) == 0
    assert int(hddc.fit(x, psi=1.001, **kw).events["splits"][0]) == 0
    # members must number at least 2 min_mass: with min_mass = 21 (> 40 / 2) the ring is not split
    assert int(hddc.fit(x, psi=0.5, **{**kw, "min_mass": 21}).events["splits"][0]) == 0


def test_filter_drops_a_component_whose_soft_size_is_below_min_mass():
    """Three far-apart groups of 200, 200 and m points (2-d): the third Gaussian's soft size is m. The
    DyGA filter drops it for m = 9 < 10 and keeps it for m = 11."""
    g = torch.Generator().manual_seed(0)

    def data(m):
        parts = [torch.randn(200, 2, generator=g, dtype=torch.float64) * 0.3,
                 torch.randn(200, 2, generator=g, dtype=torch.float64) * 0.3 + torch.tensor([50.0, 0.0]),
                 torch.randn(m, 2, generator=g, dtype=torch.float64) * 0.3 + torch.tensor([0.0, 50.0])]
        return torch.cat(parts)[None]

    kw = dict(n_components=3, max_components=4, split_rule="dyga", psi=1e9, p_arbitrary=0.0, min_mass=10, seed=0)
    small = hddc.fit(data(9), **kw)
    assert int(small.n_components[0]) == 2 and int(small.events["filtered"][0]) == 1
    big = hddc.fit(data(11), **kw)
    assert int(big.n_components[0]) == 3 and int(big.events["filtered"][0]) == 0
    sizes = sorted(round(float(v)) for v in big.weights[0][big.active[0]] * 411)
    assert sizes == [11, 200, 200]


def test_bic_dimension_scan_stops_ten_past_the_best_as_hdclassif():
    """At d = 32 the BIC curve can rise again more than 10 steps after a local best: HDclassif stops
    there (d_k = 1 here); the global argmax over q would give 16."""
    ev = [100.0] + [5.0] * 3 + [4.0] * 12 + [0.01] * 16
    lam = torch.tensor([ev], dtype=torch.float64)
    got = ref.bic_dims(lam, torch.tensor([1000.0], dtype=torch.float64), torch.tensor([0.5], dtype=torch.float64))
    assert int(got[0]) == _r_bic_dim(ev, 1000.0, 0.5) == 1


AT_TEN = [100.941654, 100.632129, 5.040988, 5.038927, 5.027171, 5.021732, 5.019235, 5.01557, 5.000682, 2.513182, 2.507011, 2.506455, 0.125882, 0.125428, 0.125397, 0.113526, 0.113383, 0.113379, 0.113289, 0.113075, 0.113022, 0.112986, 0.112932, 0.112659, 0.112541, 0.112507, 0.079523, 0.079459, 0.079379, 0.079349, 0.079251, 0.079035]


def test_bic_dimension_scan_reaches_exactly_ten_past_the_best():
    """R breaks when kdim > d_best + 10, so q = d_best + 10 is still evaluated: in this spectrum the
    best so far is 2 and BIC_12 beats it (n_k = 30, pi = 0.1)."""
    lam = torch.tensor([AT_TEN], dtype=torch.float64)
    got = int(ref.bic_dims(lam, torch.tensor([30.0], dtype=torch.float64), torch.tensor([0.1], dtype=torch.float64))[0])
    assert got == _r_bic_dim(AT_TEN, 30.0, 0.1) == 12


def test_bic_dimension_rule_on_random_spectra():
    g = torch.Generator().manual_seed(0)
    for d in (4, 8, 32):
        B = 120
        raw = torch.rand(B, d, generator=g, dtype=torch.float64) ** 3 * torch.logspace(2, -3, d, dtype=torch.float64)
        lam = raw.sort(-1, descending=True).values
        lam[: B // 6, d // 2:] = 0.0                                  # rank-deficient ones (q_max < d - 1)
        n_k = torch.tensor([5.0, 40.0, 400.0, 4000.0], dtype=torch.float64).repeat(B // 4)
        pi = torch.linspace(0.05, 0.95, B, dtype=torch.float64)
        got = ref.bic_dims(lam, n_k, pi).tolist()
        want = [_r_bic_dim(lam[i].tolist(), float(n_k[i]), float(pi[i])) for i in range(B)]
        assert got == want, d


def test_cattell_on_small_eigenvalues_and_at_the_threshold():
    # gaps below 1 in absolute terms: the test is relative to the largest gap
    lam = torch.tensor([[0.02, 0.011, 0.0105, 0.001, 0.0009]], dtype=torch.float64)
    # gaps .009, .0005, .0095, .0001 -> relative .947, .053, 1, .011: largest j above 0.2 is 3
    assert ref.cattell_dims(lam).tolist() == [3]
    # R tests dev / max > threshold strictly: a gap exactly at the threshold does not count
    tie = torch.tensor([[2.0, 1.0, 0.75, 0.5, 0.5]], dtype=torch.float64)     # gaps 1, .25, .25, 0
    assert ref.cattell_dims(tie, threshold=0.25).tolist() == [1]
    assert ref.cattell_dims(tie, threshold=0.24).tolist() == [3]
    # lam_{j+1} must exceed 1e-8 (noise.ctrl), strictly
    ctrl = torch.tensor([[1.0, 0.5, 1e-8]], dtype=torch.float64)              # gaps .5, .5: j = 2 needs lam_3 > 1e-8
    assert ref.cattell_dims(ctrl).tolist() == [1]


def test_m_step_with_the_bic_rule_and_b_when_one_noise_dimension_is_left():
    x = _blobs(seed=4, d=6)
    n, d = x.shape[1:]
    t = torch.softmax(torch.randn(1, n, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64), -1)
    w = torch.ones(1, n, dtype=torch.float64)
    p = ref.m_step(x, w, t, torch.ones(1, 2, dtype=torch.bool), dim_rule="bic")
    for k in range(2):
        tk = t[0, :, k]
        nk = tk.sum()
        mu = (tk[:, None] * x[0]).sum(0) / nk
        W = ((x[0] - mu) * tk[:, None]).T @ (x[0] - mu) / nk
        lam = torch.linalg.eigvalsh(W).flip(0)
        assert int(p["dk"][0, k]) == _r_bic_dim(lam.tolist(), float(nk), float(nk / n))
    # d = 2: Cattell keeps d_k = 1 = d - 1, so b is the second eigenvalue itself
    g = torch.Generator().manual_seed(3)
    y = (torch.randn(1, 500, 2, generator=g, dtype=torch.float64) * torch.tensor([3.0, 0.5], dtype=torch.float64))
    q = ref.m_step(y, torch.ones(1, 500, dtype=torch.float64), torch.ones(1, 500, 1, dtype=torch.float64),
                   torch.ones(1, 1, dtype=torch.bool))
    lam2 = torch.linalg.eigvalsh(torch.cov(y[0].T, correction=0))
    assert int(q["dk"][0, 0]) == 1
    torch.testing.assert_close(q["b"][0, 0], lam2[0])


def test_full_mode_log_density_and_the_twin_e_step():
    x = _blobs(seed=5, n=(60, 50, 40), d=3)
    r = hddc.fit(x, n_components=3, max_components=3, model="full", split=False, seed=0)
    act = r.active[0].nonzero()[:, 0].tolist()
    lp = torch.stack([torch.log(r.weights[0, k]) + torch.distributions.MultivariateNormal(
        r.means[0, k], r.covariances[0, k]).log_prob(x[0]) for k in act], -1)
    torch.testing.assert_close(r.log_prob(x)[0][:, act], lp)
    w = torch.rand(1, x.shape[1], generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    resp, L = ref.e_step(x, w, r._params())
    torch.testing.assert_close(resp[0][:, act], torch.softmax(lp, -1))
    torch.testing.assert_close(L[0], (w[0] * torch.logsumexp(lp, -1)).sum())


def test_twin_cluster_density_by_hand():
    """Eq. 5 in the twin kernel: members have w > 0 and t > phi strictly; the centroid is their plain
    mean; density the mean member distance to it; NaN when a cluster has no member."""
    x = torch.tensor([[[0.0, 0.0], [2.0, 0.0], [0.0, 4.0], [9.0, 9.0], [5.0, 5.0]]], dtype=torch.float64)
    t = torch.tensor([[[0.9, 0.1, 0.0], [0.6, 0.4, 0.0], [0.8, 0.2, 0.0], [0.2, 0.8, 0.0], [0.5, 0.5, 0.0]]],
                     dtype=torch.float64)
    w = torch.tensor([[1.0, 1.0, 0.0, 1.0, 1.0]], dtype=torch.float64)    # point 3 is out of this fit
    cnt, cent, dens = ref.cluster_density(x, w, t, torch.tensor([[True, True, True]]), phi=0.5)
    assert cnt[0].tolist() == [2.0, 1.0, 0.0]                              # point 5 (t = 0.5) is in neither
    torch.testing.assert_close(cent[0, 0], torch.tensor([1.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(dens[0, :2], torch.tensor([1.0, 0.0], dtype=torch.float64))
    assert math.isnan(float(dens[0, 2]))
    ring = torch.tensor([[[1.0, 0.0], [-1.0, 0.0], [0.0, 3.0], [0.0, -3.0]]], dtype=torch.float64)
    _, _, d1 = ref.cluster_density(ring, torch.ones(1, 4, dtype=torch.float64), torch.ones(1, 4, 1, dtype=torch.float64),
                                   torch.ones(1, 1, dtype=torch.bool))
    torch.testing.assert_close(d1[0, 0], torch.tensor(2.0, dtype=torch.float64))    # (1 + 1 + 3 + 3) / 4


def _exact_cov_data(ev, n=300, seed=0):
    """n points whose biased covariance is exactly R diag(ev) R^T (R a random rotation)."""
    g = torch.Generator().manual_seed(seed)
    d = len(ev)
    Z = torch.randn(n, d, generator=g, dtype=torch.float64)
    Z = Z - Z.mean(0)
    Z = Z @ torch.linalg.inv(torch.linalg.cholesky(Z.T @ Z / n)).T          # whitened: Z^T Z / n = I
    R, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return (Z * torch.tensor(ev, dtype=torch.float64).sqrt()) @ R.T + 3.0, R


def test_cattell_and_bic_rules_differ_where_they_should_in_the_m_step():
    ev = [100.0, 10.0, 9.0, 8.0, 0.01, 0.01]
    x, R = _exact_cov_data(ev)
    n = x.shape[0]
    args = (x[None], torch.ones(1, n, dtype=torch.float64), torch.ones(1, n, 1, dtype=torch.float64),
            torch.ones(1, 1, dtype=torch.bool))
    # gaps 90, 1, 1, 7.99, 0: relative to 90 only the first exceeds 0.2, so Cattell keeps 1
    assert int(ref.m_step(*args)["dk"][0, 0]) == 1
    assert int(ref.m_step(*args, threshold=0.05)["dk"][0, 0]) == 4        # 7.99 / 90 = .089 > .05
    want = _r_bic_dim(ev, float(n), 1.0)
    assert want != 1 and int(ref.m_step(*args, dim_rule="bic")["dk"][0, 0]) == want
    # eigenvectors: the columns of R up to sign, each with its largest-|.| entry made positive
    Q = ref.m_step(*args)["Q"][0, 0]
    for j in range(4):
        col = Q[:, j]
        assert float(col[col.abs().argmax()]) > 0
        torch.testing.assert_close(col.abs(), R[:, j].abs(), rtol=1e-6, atol=1e-8)


def test_cattell_is_relative_to_each_rows_own_largest_gap():
    lam = torch.tensor([[1.0, 0.0 + 0.5, 0.2, 0.19], [100.0, 50.0, 20.0, 19.0]], dtype=torch.float64)
    # row 1 gaps .5, .3, .01 -> 1, .6, .02 -> d = 2; row 2 is row 1 x 100 up to the last entry
    assert ref.cattell_dims(lam).tolist() == [2, 2]
    small = torch.tensor([[0.01, 0.005, 0.002, 0.0019], [100.0, 1.0, 0.9, 0.8]], dtype=torch.float64)
    assert ref.cattell_dims(small).tolist() == [2, 1]


def test_m_step_scatter_spans_several_chunks():
    x, _ = _exact_cov_data([4.0, 1.0], n=ref.CHUNK + 904)
    n = x.shape[0]
    p = ref.m_step(x[None], torch.ones(1, n, dtype=torch.float64), torch.ones(1, n, 1, dtype=torch.float64),
                   torch.ones(1, 1, dtype=torch.bool))
    torch.testing.assert_close(p["a"][0, 0, :1], torch.tensor([4.0], dtype=torch.float64))
    torch.testing.assert_close(p["b"][0, 0], torch.tensor(1.0, dtype=torch.float64))
    # the E-step's chunks too: log pi N(x | mu, Q diag(a, b) Q^T) for every point
    S = _sigma(p["Q"][0, 0], p["a"][0, 0], p["b"][0, 0], int(p["dk"][0, 0]))
    want = torch.distributions.MultivariateNormal(p["mu"][0, 0], S).log_prob(x)
    torch.testing.assert_close(ref.log_prob(x[None], p)[0, :, 0], want)
    full = ref.m_step(x[None], torch.ones(1, n, dtype=torch.float64), torch.ones(1, n, 1, dtype=torch.float64),
                      torch.ones(1, 1, dtype=torch.bool), model="full")
    want = torch.distributions.MultivariateNormal(full["mu"][0, 0], full["cov"][0, 0]).log_prob(x)
    torch.testing.assert_close(ref.log_prob(x[None], full)[0, :, 0], want)
