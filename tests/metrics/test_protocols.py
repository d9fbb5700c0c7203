"""RNG-stream parity of the protocols (docs/metrics.md#factorvae-score, #betavae-score, #downstream-tasks) against literal ports of
disentanglement_lib's loops, plus downstream, geometry, PCA-1, validation and result provenance."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from diffrep.metrics.downstream import downstream_efficiency
from diffrep.metrics.geometry import participation_ratio, straightness
from diffrep.metrics.mig import mig
from diffrep.metrics.pca import pca1_units
from diffrep.metrics.protocols import beta_vae_score, evaluate, factor_vae_score

from helpers import TinyGroundTruth


def _rep(x):
    x = np.asarray(x, dtype=np.float64)
    return np.hstack([x * np.array([1.0, 2.0, 0.5]), np.zeros((len(x), 1))])  # + one dead code


def _ref_factor_vae(data, fn, bs, ntr, nev, nvar, thr):
    rs = np.random.RandomState(0)
    f = data.sample_factors(nvar, rs)
    g = np.var(fn(data.sample_observations_from_factors(f, rs)), axis=0, ddof=1)
    active = np.sqrt(g) >= thr

    def votes(n):
        v = np.zeros((data.num_factors, g.shape[0]), dtype=np.int64)
        for _ in range(n):
            k = rs.randint(data.num_factors)
            fac = data.sample_factors(bs, rs)
            fac[:, k] = fac[0, k]
            r = fn(data.sample_observations_from_factors(fac, rs))
            lv = np.var(r, axis=0, ddof=1)
            v[k, np.argmin(lv[active] / g[active])] += 1
        return v

    tv = votes(ntr)
    c = np.argmax(tv, axis=0)
    ev = votes(nev)
    o = np.arange(tv.shape[1])
    return tv, ev, tv[c, o].sum() / tv.sum(), ev[c, o].sum() / ev.sum()


@pytest.mark.parametrize("cache", [True, False])
def test_factor_vae_rng_stream_parity(cache):
    data = TinyGroundTruth()
    tv, ev, tacc, eacc = _ref_factor_vae(data, _rep, 5, 300, 200, 250, 0.05)
    r = factor_vae_score(data, _rep, batch_size=5, num_train=300, num_eval=200, num_variance_estimate=250,
                         mode="parity", cache=cache)
    np.testing.assert_array_equal(np.array(r.meta["train_votes"]), tv)
    np.testing.assert_array_equal(np.array(r.meta["eval_votes"]), ev)
    assert r["train_accuracy"] == tacc and r["eval_accuracy"] == eacc and r["num_active_dims"] == 4
    assert r["factor_vae_eval"] >= 0.9
    if cache:
        assert r.meta["encoded_observations"] <= 60 + 250  # each distinct factor tuple once


def test_factor_vae_parity_with_an_entangled_code():
    # factor 1 only scales code 0: which vote a batch casts depends on the value factor k is fixed at
    # (the first row's, as the reference), not only on which factor is fixed
    data = TinyGroundTruth()
    rep = lambda x: np.stack([np.asarray(x)[:, 0] * (np.asarray(x)[:, 1] + 1.0), np.asarray(x)[:, 2]], 1)  # noqa: E731
    tv, ev, tacc, eacc = _ref_factor_vae(data, rep, 5, 200, 100, 250, 0.05)
    r = factor_vae_score(data, rep, batch_size=5, num_train=200, num_eval=100, num_variance_estimate=250,
                         mode="parity")
    np.testing.assert_array_equal(np.array(r.meta["train_votes"]), tv)
    np.testing.assert_array_equal(np.array(r.meta["eval_votes"]), ev)
    assert r["train_accuracy"] == tacc and r["eval_accuracy"] == eacc


def test_factor_vae_constant_code_collapse_vs_robust():
    data = TinyGroundTruth()
    kw = dict(batch_size=5, num_train=200, num_eval=200, num_variance_estimate=250, threshold=0.0)
    parity = factor_vae_score(data, _rep, mode="parity", **kw)
    robust = factor_vae_score(data, _rep, **kw)
    assert parity["factor_vae_eval"] < 0.5  # every vote lands on the dead code (NaN argmin)
    assert robust["factor_vae_eval"] >= 0.9 and robust["num_active_dims"] == 3 and robust.flags
    zeros = factor_vae_score(data, lambda x: np.zeros((len(x), 2)), **kw)
    assert zeros["factor_vae_eval"] == 0 and zeros.flags


def _ref_beta_vae(data, fn, bs, ntr, nev):
    rs = np.random.RandomState(0)

    def pts(n):
        xs, ys = [], []
        for _ in range(n):
            k = rs.randint(data.num_factors)
            f1, f2 = data.sample_factors(bs, rs), data.sample_factors(bs, rs)
            f2[:, k] = f1[:, k]
            r1 = fn(data.sample_observations_from_factors(f1, rs))
            r2 = fn(data.sample_observations_from_factors(f2, rs))
            xs.append(np.mean(np.abs(r1 - r2), axis=0))
            ys.append(k)
        return np.array(xs), np.array(ys)

    x, y = pts(ntr)
    m = LogisticRegression(random_state=rs).fit(x, y)
    xe, ye = pts(nev)
    return np.mean(m.predict(x) == y), m.score(xe, ye)


def test_beta_vae_rng_stream_parity():
    data = TinyGroundTruth()
    tr, ev = _ref_beta_vae(data, _rep, 5, 300, 300)
    r = beta_vae_score(data, _rep, batch_size=5, num_train=300, num_eval=300, mode="parity")
    assert r["train_accuracy"] == tr and r["eval_accuracy"] == ev and ev >= 0.9
    r2 = beta_vae_score(data, _rep, batch_size=5, num_train=300, num_eval=300, solver="liblinear-ovr")
    assert r2["beta_vae_eval"] >= 0.8


def test_evaluate_suite_small():
    data = TinyGroundTruth()
    r = evaluate(data, _rep, metrics=["mig", "dci", "sap", "modularity_explicitness", "infomec"],
                 num_train=400, num_test=200)
    for k in ("mig", "dci_disentanglement", "sap", "modularity", "infom"):
        assert k in r
    assert r["mig"] > 0.9 and r.meta["versions"]["scikit-learn"]
    with pytest.raises(ValueError, match="unknown"):
        evaluate(data, _rep, metrics=["nope"])


def test_downstream_efficiency(identity_split):
    # three of the six factors: one GBT per factor and size, the same path for each
    ctr, ftr, cte, fte = (a[:, :3] for a in identity_split)
    r = downstream_efficiency(ctr, ftr, cte, fte, sizes=(10, 100, 1000))
    assert r["1000:mean_test_accuracy"] > 0.95
    assert abs(r["efficiency_100"] - r["100:mean_test_accuracy"] / r["1000:mean_test_accuracy"]) < 1e-15
    with pytest.raises(ValueError, match="fewer"):
        downstream_efficiency(ctr, ftr, cte, fte, sizes=(10, 5000))


def test_geometry():
    line = np.outer(np.arange(6.0), [1, 2, 3])
    assert abs(straightness(line)["straightness"] - 1) < 1e-12
    back = np.array([[0.0, 0], [1, 0], [0, 0], [1, 0]])
    assert abs(straightness(back)["straightness"] + 1) < 1e-12
    assert abs(participation_ratio(np.eye(8)[0])["participation_ratio"] - 1) < 1e-12
    assert abs(participation_ratio(np.ones(16))["participation_ratio"] - 4) < 1e-12
    with pytest.raises(ValueError, match="all-zero"):
        participation_ratio(np.zeros(3))


def test_pca1_units(rng):
    base = rng.randn(300, 2)
    units = np.stack([np.outer(base[:, 0], [3.0, 4.0]), np.outer(base[:, 1], [0.0, -2.0])], axis=1)
    out = pca1_units(units).numpy()
    np.testing.assert_allclose(np.abs(np.corrcoef(out[:, 0], base[:, 0])[0, 1]), 1, atol=1e-12)
    np.testing.assert_allclose(out[:, 1], -2 * (base[:, 1] - base[:, 1].mean()), atol=1e-10)  # sign: largest entry > 0


def test_validation_errors(rng):
    c, f = rng.randn(50, 3), rng.randint(0, 3, (50, 2))
    with pytest.raises(ValueError, match="number of samples"):
        mig(c[:40], f)
    with pytest.raises(TypeError, match="factors"):
        mig(c, f + 0.5)
    bad = c.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="codes: contains NaN"):
        mig(bad, f)
    with pytest.raises(ValueError, match="empty"):
        mig(c[:0], f[:0])
    with pytest.raises(ValueError, match="dimensions"):
        mig(c[:, 0], f)
    with pytest.raises(TypeError, match="codes"):
        mig([[1.0]], f)


def test_result_provenance(rng):
    r = mig(rng.randn(100, 3), rng.randint(0, 3, (100, 2)))
    j = r.to_json()
    assert set(j["meta"]["versions"]) >= {"diffrep", "numpy", "scipy", "scikit-learn", "torch"}
    assert j["meta"]["num_points"] == 100 and "histogram" in j["meta"]["variant"]


def test_evaluate_progress_bars_change_nothing_but_stderr(monkeypatch, capsys):
    """DIFFREP_PROGRESS=1 shows the suite's bars (metrics, encoding, factor_vae votes) on stderr; the
    numbers equal those of a run without bars (the bars draw nothing from the RandomState)."""
    data = TinyGroundTruth()
    kw = dict(metrics=["mig", "factor_vae"], num_train=64, num_test=32,
              factor_vae_kwargs=dict(batch_size=8, num_train=20, num_eval=10, num_variance_estimate=64))
    monkeypatch.setenv("DIFFREP_PROGRESS", "0")
    quiet = evaluate(data, _rep, **kw)
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("DIFFREP_PROGRESS", "1")
    shown = evaluate(data, _rep, **kw)
    err = capsys.readouterr().err
    assert "metrics" in err and "encoding" in err and "factor_vae votes" in err
    assert dict(quiet) == dict(shown)
