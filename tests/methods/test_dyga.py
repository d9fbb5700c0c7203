"""DyGA (the DyGA paper's Alg. 2-3, Eq. 4-6): alignment and its gradient against hand computations,
assignment paths, anchor selection on planted unit distributions, the stored normalisation, the
compat mode's differences (docs/methods/dyga.md#compat), buffers and the EMA, bad inputs."""

from __future__ import annotations

import math

import pytest
import torch

from diffrep.config import ConfigError
from diffrep.methods.dyga import DyGA, DyGAConfig, align, cluster_density

U, D = 3, 4
COUNTS = (1, 2, 4)


def planted(n=800, seed=0, spread=0.05, scale=4.0, offset=1.0):
    """(n, U, D) features: unit u holds COUNTS[u] well separated Gaussian modes, balanced."""
    g = torch.Generator().manual_seed(seed)
    feats, centres = torch.empty(n, U, D), []
    for u, k in enumerate(COUNTS):
        c = offset + torch.rand(k, D, generator=g) * scale
        while k > 1 and torch.pdist(c).min() < 1.0:
            c = offset + torch.rand(k, D, generator=g) * scale
        centres.append(c)
        feats[:, u] = c[torch.arange(n) % k] + spread * torch.randn(n, D, generator=g)
    return feats, centres


_FITS: dict = {}


def fitted(compat="paper", **kw):
    """A DyGA fitted on planted() (K0 = 1, psi = 0.15, no random splits); fits are cached by config."""
    feats, centres = planted()
    cfg = DyGAConfig(**{**dict(num_units=U, token_dim=D, n_components=1, psi=0.15, p_arbitrary=0.0, compat=compat), **kw})
    key = repr(cfg)
    if key not in _FITS:
        m = DyGA(cfg)
        m.fit(feats)
        _FITS[key] = (m.state_dict(), m.last_fit)
    m = DyGA(cfg)
    m.load_state_dict(_FITS[key][0])
    m.last_fit = _FITS[key][1]
    return m, feats, centres


def eq6(c, mu_hat, lam):
    """Eq. 6 by hand, one (sample, unit) at a time, float64."""
    out = torch.empty_like(c)
    for b in range(c.shape[0]):
        for u in range(c.shape[1]):
            m = sum(abs((c[b, u, j] - mu_hat[b, u, j]) / (abs(c[b, u, j]) + 1e-6)) for j in range(c.shape[2])) / c.shape[2]
            delta = lam * math.exp(-float(m))
            out[b, u] = c[b, u] + delta * (mu_hat[b, u] - c[b, u])
    return out


# -- anchor selection ------------------------------------------------------------------------------
def test_refresh_recovers_planted_means_and_counts():
    m, feats, centres = fitted()
    assert m.n_anchors.tolist() == list(COUNTS)
    assert m.last_fit["n_anchors"] == list(COUNTS)
    for u in range(U):
        got = m.anchors[u][m.active[u]]
        d = torch.cdist(got, centres[u])                                  # each planted mean found once
        assert torch.equal(d.argmin(1).sort().values, torch.arange(COUNTS[u]))
        assert float(d.min(1).values.max()) < 0.02
    # the normalisation is stored with the fit: per-unit min/max of the whole block, anchors = lo + mu * span
    torch.testing.assert_close(m.norm_lo, feats.amin(dim=(0, 2)))
    torch.testing.assert_close(m.norm_hi, feats.amax(dim=(0, 2)))
    span = (m.norm_hi - m.norm_lo + 1e-6)[:, None, None]
    torch.testing.assert_close(m.anchors, m.norm_lo[:, None, None] + m.means * span)
    assert m.last_fit["clusters_above_psi"] == [0, 0, 0]
    assert max(m.last_fit["density_max"]) < 0.15


def test_psi_is_absolute_so_default_rarely_splits_on_normalised_features():
    """The issue's correction: psi = 0.5 is an absolute distance. Two modes 1.0 apart in a unit whose
    features span ~4 are 0.25 apart after the [0, 1] normalisation, so the merged cluster's Eq. 5
    density (~0.12) stays below psi: without random splits K stays K0 = 1; the same modes scaled up
    (psi relative to the raw scale) would split. With the coin, the count is driven by the coin."""
    g = torch.Generator().manual_seed(3)
    n = 600
    base = torch.rand(U, D, generator=g) * 4
    feats = torch.empty(n, U, D)
    for u in range(U):
        modes = torch.stack([base[u], base[u] + torch.tensor([1.0, 0, 0, 0])])
        feats[:, u] = modes[torch.arange(n) % 2] + 0.03 * torch.randn(n, D, generator=g)
    no_coin = DyGA(DyGAConfig(num_units=U, token_dim=D, n_components=1, p_arbitrary=0.0))
    no_coin.fit(feats)
    assert no_coin.n_anchors.tolist() == [1, 1, 1]
    assert all(0.05 < d < 0.5 for d in no_coin.last_fit["density_max"])
    assert no_coin.last_fit["clusters_above_psi"] == [0, 0, 0]
    # in raw units the merged cluster's density is the distance of each mode to the midpoint,
    # sqrt(0.5^2 + 4 * 0.03^2) ~ 0.504, i.e. psi's scale: the normalisation alone keeps it below psi
    span = (no_coin.norm_hi - no_coin.norm_lo + 1e-6).tolist()
    for u in range(U):
        raw = no_coin.last_fit["density_max_raw"][u]
        assert raw == pytest.approx(no_coin.last_fit["density_max"][u] * span[u], rel=1e-12)
        assert raw == pytest.approx(math.sqrt(0.25 + 4 * 0.03 ** 2), abs=0.01)
    low_psi = DyGA(DyGAConfig(num_units=U, token_dim=D, n_components=1, p_arbitrary=0.0, psi=0.05))
    low_psi.fit(feats)
    assert low_psi.n_anchors.tolist() == [2, 2, 2]
    coin = DyGA(DyGAConfig(num_units=U, token_dim=D, n_components=1, p_arbitrary=1.0, min_mass=5))
    coin.fit(feats)
    assert coin.n_anchors.tolist() == [8, 8, 8]            # 3 passes, every cluster split: 1 -> 2 -> 4 -> 8


def test_cluster_density_eq5_by_hand():
    x = torch.tensor([[0.0, 0.0], [2.0, 0.0], [10.0, 10.0], [5.0, 5.0]], dtype=torch.float64)
    resp = torch.tensor([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.5, 0.5]], dtype=torch.float64)
    dens, cnt = cluster_density(x, resp, torch.tensor([True, True]), phi=0.5)
    assert cnt.tolist() == [2, 1]                           # t > phi strictly: point 4 belongs to neither
    torch.testing.assert_close(dens, torch.tensor([1.0, 0.0], dtype=torch.float64))


# -- alignment (Eq. 6) -----------------------------------------------------------------------------
def test_eval_alignment_equals_eq6_with_the_map_anchor():
    m, feats, centres = fitted()
    m.eval()
    c = feats[:7].double() + 0.3 * torch.rand(7, U, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    k = m.assign(c.float())
    mu_hat = torch.stack([m.anchors[u][k[:, u]] for u in range(U)], 1).double()
    want = eq6(c, mu_hat, 0.1)
    got = m(c.float()).double()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # the MAP anchor is the nearest planted mode
    for u in range(U):
        near = torch.cdist(c[:, u].float(), m.anchors[u]).masked_fill(~m.active[u], math.inf).argmin(1)
        assert torch.equal(k[:, u], near)


def test_alignment_gradient_matches_the_closed_form():
    """d c~ / d c with the assignment fixed: (1 - delta) I + (mu_hat - c) d delta/dc, where
    d delta / d c_j = -delta/D [sgn(c_j - mu_j)/(|c_j| + e) - |c_j - mu_j| sgn(c_j)/(|c_j| + e)^2]."""
    m, feats, _ = fitted()
    m.eval()
    c = (feats[:5].double() + 0.2).requires_grad_(True)
    w = torch.randn(5, U, D, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    res = m.mixture
    out = align(res, c, 0.1, 1e-4, assignment="hard", normalise=(m.norm_lo.double(), m.span.double()),
                anchors=m.anchors.double())
    (out * w).sum().backward()
    k = m.assign(c.detach().float())
    mu = torch.stack([m.anchors[u][k[:, u]] for u in range(U)], 1).double()
    cd = c.detach()
    den = cd.abs() + 1e-6
    delta = 0.1 * torch.exp(-((cd - mu) / den).abs().mean(-1, keepdim=True))
    ddelta = -delta / D * (torch.sign(cd - mu) / den - (cd - mu).abs() * torch.sign(cd) / den**2)
    want = (1 - delta) * w + ddelta * ((mu - cd) * w).sum(-1, keepdim=True)
    torch.testing.assert_close(c.grad, want, rtol=1e-9, atol=1e-9)


def test_argmax_and_gumbel_paths_agree_as_tau_goes_to_zero():
    """On points whose MAP responsibility is clear but not saturated (1 - t_max in [1e-6, 1e-4]), the
    Gumbel-softmax sample (log t input) moves towards the argmax path as tau -> 0 and equals it at
    tau = 1e-4; the straight-through argmax's forward is the argmax exactly."""
    m, feats, _ = fitted()
    res, norm = m.mixture, (m.norm_lo, m.span)
    a, b = m.anchors[1][m.active[1]]
    s = torch.linspace(0.45, 0.55, 4001)[:, None]
    c = feats[:1].repeat(len(s), 1, 1)
    c[:, 1] = a + s * (b - a)
    t = res.responsibilities(m.normalise(c).transpose(0, 1))[1]
    keep = ((1 - t.max(-1).values) > 1e-6) & ((1 - t.max(-1).values) < 1e-4)
    c = c[keep]
    assert len(c) >= 10
    hard = align(res, c, assignment="hard", normalise=norm, anchors=m.anchors)
    st = align(res, c, assignment="argmax", normalise=norm, anchors=m.anchors)
    torch.testing.assert_close(st, hard, rtol=0, atol=0)
    errs = []
    for tau in (10.0, 1.0, 1e-4):
        gum = align(res, c, tau=tau, assignment="gumbel", normalise=norm, anchors=m.anchors,
                    generator=torch.Generator().manual_seed(0))
        errs.append(float((gum - hard).abs().max()))
    assert errs[0] > 1e-3 and errs[-1] < 1e-6 and errs[0] > errs[1] > errs[2]
    # every one of the 800 points: the miss rates below are binomial; on 64 points their bounds were ~3 sd away and
    # 4 in 1000 Gumbel seeds fell outside them (the seed here passed), on 800 they are ~10 sd away
    c = feats
    hard = align(res, c, assignment="hard", normalise=norm, anchors=m.anchors)
    # the literal Alg. 3 input (t instead of log t): noise dominates, so it disagrees often even as tau -> 0
    lit = align(res, c, tau=1e-4, gumbel_input="responsibility", normalise=norm, anchors=m.anchors,
                generator=torch.Generator().manual_seed(0))
    # a confident point keeps its anchor with probability e / (e + K - 1): K = 2: 0.731, K = 4: 0.475
    miss = (lit - hard).abs().amax(-1).gt(1e-4).float().mean(0)
    assert float(miss[0]) == 0.0
    assert 0.1 < float(miss[1]) < 0.45 and 0.35 < float(miss[2]) < 0.7


def test_straight_through_argmax_passes_a_gradient_through_the_assignment_near_ties():
    m, feats, _ = fitted()
    res = m.mixture
    # the point of the segment between unit 1's two anchors where their responsibilities tie
    a, b = m.anchors[1][m.active[1]]
    s = torch.linspace(0.2, 0.8, 20001)[:, None]
    seg = feats[:1].repeat(len(s), 1, 1)
    seg[:, 1] = a + s * (b - a)
    t = res.responsibilities(m.normalise(seg).transpose(0, 1))[1].max(-1).values
    c = seg[int((t - 0.5).abs().argmin())][None].clone().requires_grad_(True)
    kw = dict(tau=1.0, normalise=(m.norm_lo, m.span), anchors=m.anchors)
    align(res, c, assignment="argmax", **kw)[0, 1].sum().backward()
    g_st = c.grad.clone()
    c.grad = None
    align(res, c, assignment="argmax", detach_assignment=True, **kw)[0, 1].sum().backward()
    assert float((g_st - c.grad).abs().max()) > 1e-3


def test_before_the_first_fit_dyga_is_the_identity_and_eval_can_skip_alignment():
    m = DyGA(DyGAConfig(num_units=U, token_dim=D))
    c = torch.rand(4, U, D)
    assert m(c) is c
    m2, feats, _ = fitted(align_at_eval=False)
    m2.eval()
    assert m2(feats[:3]) is feats[:3] or torch.equal(m2(feats[:3]), feats[:3])
    m2.train()
    assert not torch.equal(m2(feats[:3]), feats[:3])


# -- compat "dis-dis" (docs/methods/dyga.md#compat) ------------------------------------------------
def test_compat_mode_differs_exactly_where_the_spec_says():
    paper, feats, _ = fitted()
    code, _, _ = fitted(compat="dis-dis")
    # mixture: full-covariance GMM vs HDDC
    assert hasattr(code, "covariances") and not hasattr(code, "subspaces")
    assert hasattr(paper, "subspaces") and not hasattr(paper, "covariances")
    # normalisation: (x - max)/(max - min + 1e-6) in [-1, 0] vs (x - min)/(...) in [0, 1]
    zn, pn = code.normalise(feats), paper.normalise(feats)
    assert float(zn.max()) <= 0 and float(zn.min()) >= -1 and float(pn.min()) >= 0 and float(pn.max()) <= 1
    torch.testing.assert_close(zn, pn - 1 + 1e-6 / paper.span[None, :, None], atol=1e-6, rtol=0)
    # anchors: normalised space (code) vs raw space (paper); the fitted means agree up to the shift
    assert float(code.anchors[code.active].max()) <= 0 and float(paper.anchors[paper.active].min()) > 0
    # alignment, training mode: batch statistics, hard argmax, one lambda over the batch, c_q in the
    # normalised space mixed with raw c (the authors' ddpm_dyga.py), by hand
    code.train()
    c = feats[:16] + 0.1
    lo, hi = c.amin(dim=(0, 2)), c.amax(dim=(0, 2))
    xn = (c - hi[None, :, None]) / (hi - lo + 1e-6)[None, :, None]
    k = code.mixture.labels(xn.transpose(0, 1)).T
    cq = torch.stack([code.anchors[u][k[:, u]] for u in range(U)], 1)
    lam = 0.1 * torch.exp(-((c - cq) / (c + 1e-6)).abs().mean())
    torch.testing.assert_close(code(c), lam * cq + (1 - lam) * c)
    # the code's assignment is the same with any generator (hard argmax); the paper's Gumbel is not
    assert torch.equal(code(c, generator=torch.Generator().manual_seed(1)),
                       code(c, generator=torch.Generator().manual_seed(2)))
    paper.train()
    paper.config = DyGAConfig(**{**paper.config.to_dict(), "gumbel_input": "responsibility"})
    assert not torch.equal(paper(c, generator=torch.Generator().manual_seed(1)),
                           paper(c, generator=torch.Generator().manual_seed(2)))


# -- state ---------------------------------------------------------------------------------------------
def test_anchors_are_buffers_saved_and_never_in_the_ema():
    from diffrep.train.ema import EMA

    m, feats, _ = fitted()
    holder = torch.nn.Sequential(torch.nn.Linear(2, 2), m)
    names = dict(holder.named_buffers())
    assert {"1.anchors", "1.means", "1.norm_lo", "1.norm_hi", "1.n_anchors", "1.active"} <= set(names)
    assert not any(n.startswith("1.") for n, _ in holder.named_parameters())
    assert not any(n.startswith("1.") for n in EMA(holder, 0.9).shadow)
    fresh = DyGA(m.config)
    fresh.load_state_dict(m.state_dict())
    m.eval(), fresh.eval()
    assert torch.equal(fresh(feats[:9]), m(feats[:9])) and bool(fresh.fitted)


def test_bad_inputs_raise_clear_errors():
    m = DyGA(DyGAConfig(num_units=U, token_dim=D))
    with pytest.raises(ValueError, match="shape"):
        m(torch.rand(4, U + 1, D))
    with pytest.raises(ValueError, match=r"^DyGA has no anchors yet: call fit\(features\) first$"):
        m.assign(torch.rand(4, U, D))
    with pytest.raises(ValueError, match="at least"):
        m.fit(torch.rand(3, U, D))
    with pytest.raises(ValueError, match="finite|NaN"):
        m.fit(torch.full((50, U, D), math.nan))
    with pytest.raises(ValueError, match="epoch"):
        m.fit(torch.rand(50, U, D), epoch=-1)
    with pytest.raises(ConfigError):
        DyGAConfig(n_components=9, max_components=8)
    with pytest.raises(ConfigError):
        DyGAConfig(lam=0.0)
    with pytest.raises(TypeError):
        DyGA({"num_units": 3})
    m2, feats, _ = fitted()
    with pytest.raises(ValueError, match="assignment"):
        align(m2.mixture, feats[:2], assignment="soft")
    with pytest.raises(ValueError, match="anchors"):
        align(m2.mixture, feats[:2], anchors=torch.zeros(1, 1, 1))


def test_raw_covariance_keeps_the_trace_of_the_data():
    """HDDC's b_k = (tr W_k - sum a_kj)/(p - d_k) keeps tr Sigma_k = tr W_k (Eq. 3); unit 0 has one
    Gaussian, so its raw-space covariance has the trace of the features' biased covariance."""
    m, feats, _ = fitted()
    cov = m.covariances_raw()
    k = int(m.active[0].nonzero()[0])
    x = feats[:, 0].double()
    w = (x - x.mean(0)).T @ (x - x.mean(0)) / len(x)
    torch.testing.assert_close(cov[0, k].double().trace(), w.trace(), rtol=1e-3, atol=0)
    torch.testing.assert_close(cov[0, k], cov[0, k].T)


def test_eq6_guard_and_normalisation_epsilon_on_tiny_features():
    """The 1e-6 guards matter where features are of order 1e-6 (ReLU outputs near zero): Eq. 6's
    |c_j| + 1e-6 and the span hi - lo + 1e-6, both by hand."""
    m, feats, _ = fitted()
    res = m.mixture
    c = torch.full((2, U, D), 1e-6, dtype=torch.float64)
    c[1] = 3e-6
    anchors = torch.full(tuple(m.anchors.shape), 1.1e-6, dtype=torch.float64)
    got = align(res, c, 0.1, assignment="hard", normalise=(m.norm_lo, m.span), anchors=anchors)
    mu_hat = torch.full_like(c, 1.1e-6)
    torch.testing.assert_close(got, eq6(c, mu_hat, 0.1), rtol=1e-12, atol=0)
    small = DyGA(DyGAConfig(num_units=U, token_dim=D, n_components=1, p_arbitrary=0.0))
    small.fit(feats * 1e-4)
    hi, lo = small.norm_hi.double(), small.norm_lo.double()
    x = small.normalise(small.norm_hi.double()[None, :, None].expand(1, U, D))
    torch.testing.assert_close(x[0, :, 0], (hi - lo) / (hi - lo + 1e-6), rtol=1e-6, atol=0)


def test_subsampling_per_unit_and_epoch_and_the_compat_subset():
    feats, _ = planted()
    cfg = dict(num_units=U, token_dim=D, n_components=1, psi=0.15, p_arbitrary=0.0, fit_max_points=300)
    a, b = DyGA(DyGAConfig(**cfg)), DyGA(DyGAConfig(**cfg))
    sa, sb = a.fit(feats, epoch=1), b.fit(feats, epoch=1)
    assert sa["n_points"] == sb["n_points"] == 300 and sa["n_anchors"] == list(COUNTS)
    assert torch.equal(a.means, b.means)                                  # same (seed, epoch): same subsample
    b.fit(feats, epoch=2)
    assert not torch.equal(a.means, b.means)                              # another epoch: another subsample
    # the normalisation uses the whole block, not the subsample
    torch.testing.assert_close(a.norm_lo, feats.amin(dim=(0, 2)))
    code = DyGA(DyGAConfig(**{**cfg, "compat": "dis-dis"}))
    assert code.fit(feats)["n_points"] == 80                              # [C]: a 10% subset when n > the cap
    torch.testing.assert_close(code.covariances_raw(), code.covariances)  # compat: normalised space, no span


def test_token_dim_is_bounded_by_the_kernels():
    with pytest.raises(ConfigError, match="token_dim"):
        DyGAConfig(token_dim=65)


def test_gumbel_max_frequencies_are_the_responsibilities_and_straight_through_has_the_softmax_gradient():
    from diffrep.methods.dyga import _assign

    t = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    logits = t.log().expand(40000, 3)
    y = _assign(logits, 1e-4, "gumbel", torch.Generator().manual_seed(0))
    freq = y.argmax(-1).bincount(minlength=3).double() / 40000
    assert float((freq - t).abs().max()) < 4 * (0.25 / 40000) ** 0.5             # Categorical(t) (Gumbel-max)
    assert float((y.max(-1).values < 0.999).double().mean()) < 1e-3               # one-hot at tau = 1e-4 (but ties)
    l = torch.tensor([[0.2, -0.1, 0.4]], dtype=torch.float64, requires_grad=True)
    w = torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64)
    st = _assign(l, 0.7, "argmax", None)
    assert torch.equal(st.detach(), torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64))
    (st * w).sum().backward()
    g_st = l.grad.clone()
    l.grad = None
    (torch.softmax(l / 0.7, -1) * w).sum().backward()
    torch.testing.assert_close(g_st, l.grad, rtol=1e-12, atol=0)
    hard = _assign(l, 0.7, "hard", None)
    assert torch.equal(hard, st.detach()) and not hard.requires_grad


def test_alignment_stats_are_delta_mean_and_the_small_delta_fraction():
    m, feats, _ = fitted()
    c = feats[:6].double()
    c[0, 0, 0] = 0.0                                    # an exact ReLU zero: delta = 0 for (sample 0, unit 0)
    stats = {}
    align(m.mixture, c, 0.1, assignment="hard", normalise=(m.norm_lo, m.span), anchors=m.anchors, stats=stats)
    k = m.assign(c.float())
    mu = torch.stack([m.anchors[u][k[:, u]] for u in range(U)], 1).double()
    delta = 0.1 * torch.exp(-((c - mu) / (c.abs() + 1e-6)).abs().mean(-1))
    assert stats["delta_mean"] == pytest.approx(float(delta.mean()), rel=1e-6)
    assert stats["delta_small_frac"] == pytest.approx(float((delta < 1e-4).double().mean()))
    assert 0 < stats["delta_small_frac"] < 1


def test_config_switches_reach_the_fit():
    feats, _ = planted()
    base = dict(num_units=U, token_dim=D, n_components=1, p_arbitrary=1.0, min_mass=5)
    one_pass = DyGA(DyGAConfig(**base, max_split_passes=1))
    assert one_pass.fit(feats)["n_anchors"] == [2, 2, 2]
    capped = DyGA(DyGAConfig(**base, max_components=4))
    assert capped.fit(feats)["n_anchors"] == [4, 4, 4]
    flat = DyGA(DyGAConfig(**{**base, "p_arbitrary": 0.0}, threshold=1.0))
    flat.fit(feats)
    assert bool((flat.dims[flat.active] == 1).all())                              # Cattell: no gap > max gap


def test_survivors_of_the_mutation_run_defaults_determinism_and_state():
    """Written against the survivors of benches/results/mutation_encdiff_2026-12-06.md."""
    m, feats, _ = fitted()
    res, norm = m.mixture, (m.norm_lo, m.span)
    c = feats[:32]
    # align's defaults: lam = 0.1, tau = 1e-4, gumbel=False -> hard, anchors -> the mixture's means
    torch.testing.assert_close(align(res, c, gumbel=False, normalise=norm, anchors=m.anchors),
                               align(res, c, 0.1, 1e-4, assignment="hard", normalise=norm, anchors=m.anchors))
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    torch.testing.assert_close(align(res, c, normalise=norm, anchors=m.anchors, generator=g()),
                               align(res, c, 0.1, 1e-4, normalise=norm, anchors=m.anchors, generator=g()))
    xn = m.normalise(c)
    torch.testing.assert_close(align(res, xn, assignment="hard"), align(res, xn, assignment="hard", anchors=res.means))
    # the Gumbel draw follows the generator (literal input: the draw matters)
    a = align(res, c, gumbel_input="responsibility", normalise=norm, anchors=m.anchors, generator=g())
    b = align(res, c, gumbel_input="responsibility", normalise=norm, anchors=m.anchors, generator=g())
    assert torch.equal(a, b)
    # delta between the two thresholds: 0.1 e^-4 = 1.8e-3 is not < 1e-3 lam = 1e-4
    stats = {}
    align(res, torch.ones(3, U, D), 0.1, assignment="hard", normalise=norm, anchors=torch.full(tuple(m.anchors.shape), 5.0),
          stats=stats)
    assert stats["delta_mean"] == pytest.approx(0.1 * math.exp(-4.0), rel=1e-5) and stats["delta_small_frac"] == 0.0
    # DyGA.forward: eval is the hard argmax even with a noisy training assignment; training uses the
    # generator and records the stats
    lit = DyGA(DyGAConfig(**{**m.config.to_dict(), "gumbel_input": "responsibility"}))
    lit.load_state_dict(m.state_dict())
    lit.eval()
    torch.testing.assert_close(lit(c), align(res, c, assignment="hard", normalise=norm, anchors=m.anchors))
    lit.train()
    assert torch.equal(lit(c, generator=g()), lit(c, generator=g())) and "delta_mean" in lit.last_align
    # state: dtypes of the counters, empty diagnostics before any fit, default config
    assert m.n_anchors.dtype == m.num_fits.dtype == m.dims.dtype == torch.int64 and m.fitted.dtype == torch.bool
    fresh = DyGA()
    assert fresh.config == DyGAConfig() and fresh.last_fit == {} and fresh.last_align == {}
    DyGAConfig(n_components=8, max_components=8)
    DyGAConfig(token_dim=64)


def test_cluster_density_of_an_empty_cluster_is_nan_and_phi_defaults_to_one_half():
    x = torch.tensor([[0.0, 0.0], [2.0, 0.0]], dtype=torch.float64)
    resp = torch.tensor([[0.6, 0.4], [0.6, 0.4]], dtype=torch.float64)
    dens, cnt = cluster_density(x, resp, torch.tensor([True, True]))
    assert cnt.tolist() == [2, 0] and float(dens[0]) == 1.0 and math.isnan(float(dens[1]))


def test_compat_batch_normalisation_and_assignment_by_hand():
    code, feats, _ = fitted(compat="dis-dis")
    c = feats[:16].clone()
    c[0, 0, 0] = 2e-6                                   # near-zero coordinate: the + 1e-6 guard matters
    lo, hi = c.amin(dim=(0, 2)), c.amax(dim=(0, 2))
    xn = (c - hi[None, :, None]) / (hi - lo + 1e-6)[None, :, None]
    torch.testing.assert_close(code._batch_normalise(c), xn, rtol=0, atol=1e-7)
    k = code.mixture.labels(xn.transpose(0, 1)).T
    assert torch.equal(code.assign(c), k)
    code.train()
    cq = torch.stack([code.anchors[u][k[:, u]] for u in range(U)], 1)
    lam = 0.1 * torch.exp(-((c - cq) / (c + 1e-6)).abs().mean())
    torch.testing.assert_close(code(c), lam * cq + (1 - lam) * c)
    assert code.last_align.keys() == {"lambda"} and float(code.last_align["lambda"]) == pytest.approx(float(lam))


def test_survivors_of_the_rerun_plumbing_of_gumbel_flag_compat_assign_and_forward_config():
    m, feats, _ = fitted()
    res, norm = m.mixture, (m.norm_lo, m.span)
    c = feats[:32]
    lit = dict(gumbel_input="responsibility", normalise=norm, anchors=m.anchors, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(align(res, c, gumbel=False, **lit), align(res, c, assignment="hard", **lit))
    # compat assign uses the batch's own statistics, not the fit's
    code, _, _ = fitted(compat="dis-dis")
    cb = feats[:16] * 0.5 + 1.0
    lo, hi = cb.amin(dim=(0, 2)), cb.amax(dim=(0, 2))
    xn = (cb - hi[None, :, None]) / (hi - lo + 1e-6)[None, :, None]
    assert torch.equal(code.assign(cb), code.mixture.labels(xn.transpose(0, 1)).T)
    assert not torch.equal(code.assign(cb), code.mixture.labels(code.normalise(cb).transpose(0, 1)).T)
    # forward passes the configured tau and detach_assignment to align
    a, b = m.anchors[1][m.active[1]]
    s = torch.linspace(0.2, 0.8, 20001)[:, None]
    seg = feats[:1].repeat(len(s), 1, 1)
    seg[:, 1] = a + s * (b - a)
    t = res.responsibilities(m.normalise(seg).transpose(0, 1))[1].max(-1).values
    tie = seg[int((t - 0.5).abs().argmin())][None].clone()
    for detach in (False, True):
        dy = DyGA(DyGAConfig(**{**m.config.to_dict(), "assignment": "argmax", "tau": 1.0, "detach_assignment": detach}))
        dy.load_state_dict(m.state_dict())
        dy.train()
        x1 = tie.clone().requires_grad_(True)
        dy(x1)[0, 1].sum().backward()
        x2 = tie.clone().requires_grad_(True)
        align(res, x2, 0.1, 1.0, assignment="argmax", detach_assignment=detach, normalise=norm,
              anchors=m.anchors)[0, 1].sum().backward()
        torch.testing.assert_close(x1.grad, x2.grad)


# -- compat rows 5-6 (diffrep.cluster.dyga_code, tested there), 11's retry loop, the slots -------------
def test_compat_fit_retries_failed_units_on_new_subsets_only_when_n_exceeds_the_cap(monkeypatch):
    """[C] row 11: with n > 100k (here fit_max_points) each unit fits a random 10% subset and a unit
    whose fit raises gets a new subset, up to 20 tries; with n <= the cap the failure propagates."""
    import diffrep.methods.dyga as mod

    real = mod.fit_code
    calls, results = [], []

    def flaky(x, *a, fail_unit=1, times=2, **kw):
        res, failed = real(x, *a, **kw)
        calls.append(x.clone())
        results.append(res)
        if len(calls) <= times and x.shape[0] == U:       # the first calls fit every unit: fail one of them
            failed = failed.clone()
            failed[fail_unit] = True
        elif len(calls) <= times:
            failed = torch.ones_like(failed)
        return res, failed

    monkeypatch.setattr(mod, "fit_code", flaky)
    feats, _ = planted()                                                  # n = 800
    base = dict(num_units=U, token_dim=D, n_components=1, psi=0.15, p_arbitrary=0.0, compat="dis-dis")
    m = DyGA(DyGAConfig(**base, fit_max_points=300))
    fit = m.fit(feats)
    assert fit["attempts"] == [1, 3, 1] and fit["n_points"] == 80
    assert [c.shape[0] for c in calls] == [U, 1, 1]                      # only the failed unit is refitted
    assert not torch.equal(calls[1][0], calls[0][1]) and not torch.equal(calls[2][0], calls[1][0])  # new subsets
    # the stored mixture is the successful attempt's of each unit
    assert torch.equal(m.means[1], results[2].means[0].float()) and torch.equal(m.means[0], results[0].means[0].float())
    assert int(m.n_anchors[1]) == int(results[2].n_components[0])
    assert fit["splits"][1] == int(results[2].events["splits"][0])       # the kept attempt's events
    assert fit["splits"][0] == int(results[0].events["splits"][0])
    calls.clear()
    with pytest.raises(ValueError, match=r"failed on unit\(s\) \[1\].*retries only when n > 1000"):
        DyGA(DyGAConfig(**base, fit_max_points=1000)).fit(feats)
    calls.clear()
    with pytest.raises(ValueError, match=r"unit\(s\) \[1\] on 2 random 10% subsets"):
        DyGA(DyGAConfig(**base, fit_max_points=300, code_retries=2)).fit(feats)


def test_compat_slots_and_schedule_constraints():
    code = DyGA(DyGAConfig(num_units=U, token_dim=D, compat="dis-dis"))
    assert code.config.slots == 62 and code.means.shape == (U, 62, D) and code.covariances.shape == (U, 62, D, D)
    assert DyGA(DyGAConfig(num_units=U, token_dim=D)).means.shape == (U, 32, D)
    with pytest.raises(ConfigError, match="max_components"):
        DyGAConfig(compat="dis-dis", max_components=34)
    with pytest.raises(ConfigError, match="refresh_every"):
        DyGAConfig(compat="dis-dis", refresh_every=5)
    assert DyGAConfig(compat="dis-dis", max_components=33).slots == 64


def test_compat_fit_is_the_codes_fit_on_the_codes_normalisation_with_the_seeded_generators():
    """DyGA(compat).fit = fit_code on (x - max)/(max - min + 1e-6) per unit (the whole block), with
    each unit's generator seeded by (seed, epoch, unit) and the configured split settings; all
    points when n <= fit_max_points (also at equality); seeded 10% subsets otherwise."""
    from diffrep.cluster.dyga_code import fit_code

    feats, _ = planted()
    n = feats.shape[0]
    cfg = DyGAConfig(num_units=U, token_dim=D, n_components=2, psi=0.3, p_arbitrary=0.4, min_mass=5, max_iter=7,
                     max_split_passes=2, compat="dis-dis", seed=3, fit_max_points=n)
    m = DyGA(cfg)
    fit = m.fit(feats, epoch=2)
    assert fit["n_points"] == n
    x = feats.permute(1, 0, 2).float()
    lo, hi = x.amin(dim=(1, 2)), x.amax(dim=(1, 2))
    xn = (x - hi[:, None, None]) / (hi - lo + 1e-6)[:, None, None]
    gens = [torch.Generator().manual_seed(3 * 1_000_003 + 2 * 1009 + u) for u in range(U)]
    seeds = [int(torch.randint(0, 2**62, (1,), generator=g)) for g in gens]
    ref, failed = fit_code(xn, 2, 32, 7, 5.0, phi=0.5, psi=0.3, p_arbitrary=0.4, max_split_iter=2, seeds=seeds)
    assert not failed.any()
    assert torch.equal(m.active, ref.active)
    torch.testing.assert_close(m.means, ref.means.float(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(m.weights, ref.weights.float(), rtol=1e-5, atol=1e-7)
    assert fit["splits"] == ref.events["splits"].tolist()
    # n > the cap: seeded subsets, the same for the same (seed, epoch)
    sub = DyGAConfig(**{**cfg.to_dict(), "fit_max_points": n - 1})
    a, b = DyGA(sub), DyGA(sub)
    assert a.fit(feats, epoch=2)["n_points"] == n // 10
    b.fit(feats, epoch=2)
    assert torch.equal(a.means, b.means) and not torch.equal(a.means, m.means)


def test_mixture_maths_ignores_the_trainers_bf16_autocast():
    """Under bf16 autocast (the trainer's default on CUDA; CPU autocast casts matmuls the same way) the
    HDDC cost's projection would round to 8 bits, and ||e||^2 - sum u^2 then cancels: before the fix
    MAP anchors and aligned tokens moved on these ReLU token clusters. Fit, assignment and alignment
    must equal their float32 results exactly."""
    g = torch.Generator().manual_seed(0)
    units, d, n = 2, 32, 1000
    centres = torch.randn(units, 12, d, generator=g) * 2 + 1
    lab = torch.randint(0, 12, (units, n), generator=g)
    feats = (torch.gather(centres, 1, lab[..., None].expand(-1, -1, d))
             + 0.3 * torch.randn(units, n, d, generator=g)).relu().permute(1, 0, 2).contiguous()
    cfg = DyGAConfig(num_units=units, token_dim=d, p_arbitrary=0.0, max_split_passes=1, max_iter=10)
    ref = DyGA(cfg)
    ref.fit(feats)
    c = feats[:300]
    ref.eval()
    want_k, want_c = ref.assign(c), ref(c)
    ref.train()
    ref.config = DyGAConfig(**{**cfg.to_dict(), "assignment": "argmax"})
    want_train = ref(c)
    m = DyGA(cfg)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        m.fit(feats)
        for name, buf in ref.named_buffers():
            assert torch.equal(buf, dict(m.named_buffers())[name]), name
        assert m.last_fit["density_max"] == ref.last_fit["density_max"]        # Eq. 5 on the fit's responsibilities
        m.eval()
        assert torch.equal(m.assign(c), want_k)
        torch.testing.assert_close(m(c), want_c, rtol=0, atol=0)
        m.train()
        m.config = ref.config
        torch.testing.assert_close(m(c), want_train, rtol=0, atol=0)


def test_assign_names_a_bad_c():
    """assign is public (the anchor index the metrics read): in dis-dis mode NaN reached argmax as anchor 0 (paper
    mode's normalise checks c again)."""
    for compat in ("paper", "dis-dis"):
        m, _, _ = fitted(compat)
        m.eval()
        _assign_refuses(m)


def _assign_refuses(m):
    for c, err, msg in ((torch.full((2, U, D), math.nan), ValueError, r"^c contains NaN or infinite values$"),
                        (torch.zeros(2, U, D + 1), ValueError, rf"^c must have shape \(B, {U}, {D}\), got \(2, {U}, {D + 1}\)$"),
                        (torch.zeros(0, U, D), ValueError, rf"^c is empty \(shape \(0, {U}, {D}\)\)$")):
        with pytest.raises(err, match=msg):
            m.assign(c)


def test_align_names_its_bad_arguments_and_defaults_to_tau_1e_4():
    m, feats, _ = fitted()
    c = feats[:4]
    for kw, err, msg in ((dict(features=[1.0]), TypeError, r"^features must be a torch.Tensor, got list$"),
                         (dict(features=feats[0]), ValueError, rf"^features must have shape \(B, U, d\), got \({U}, {D}\)$"),
                         (dict(lam=0.0), ValueError, r"^lam must be > 0 and finite, got 0.0$"),
                         (dict(tau=-1.0), ValueError, r"^tau must be > 0 and finite, got -1.0$"),
                         (dict(gumbel_input="logit"), ValueError, r"^gumbel_input must be 'log' or 'responsibility', got 'logit'$")):
        a = {"features": c, **kw}
        with pytest.raises(err, match=msg):
            align(m.mixture, a.pop("features"), **a)
    # no mixture (or the DyGA itself): named, not "'NoneType' object has no attribute 'log_prob'" from inside
    for bad, name in ((None, "NoneType"), (m, "DyGA")):
        with pytest.raises(TypeError, match=rf"^align: mixture must be the fitted per-unit anchors, a "
                                            rf"diffrep.cluster.HDDCResult \(DyGA.mixture after DyGA.fit\), got {name}$"):
            align(bad, c)
    # the Gumbel-softmax temperature of the paper's Alg. 3 (tau = 1e-4) is the default: on points between two
    # anchors of unit 1 (where the temperature matters) the default equals tau = 1e-4 and differs from tau = 1
    a, b = m.anchors[1][m.active[1]]
    s = torch.linspace(0.45, 0.55, 4001)[:, None]
    c = feats[:1].repeat(len(s), 1, 1)
    c[:, 1] = a + s * (b - a)
    t = m.mixture.responsibilities(m.normalise(c).transpose(0, 1))[1]
    c = c[(1 - t.max(-1).values) > 1e-6]  # not a sure assignment
    kw = dict(normalise=(m.norm_lo, m.span), anchors=m.anchors)
    want = align(m.mixture, c, tau=1e-4, generator=torch.Generator().manual_seed(3), **kw)
    torch.testing.assert_close(align(m.mixture, c, generator=torch.Generator().manual_seed(3), **kw), want, rtol=0, atol=0)
    assert (align(m.mixture, c, tau=1.0, generator=torch.Generator().manual_seed(3), **kw) - want).abs().max() > 1e-3
