"""Value tests of the sampling protocols (diffrep.metrics.protocols) on hand-derived small cases.

The factor draws are replayed here from the order docs/metrics.md documents (disentanglement_lib's:
a fresh RandomState(seed); per batch the factors, one ``randint`` per factor in factor order, then
the observations; FactorVAE draws its variance sample first, then per vote k = randint(F) and the
batch; BetaVAE per point k, batch 1, batch 2). With codes built from the factors by hand, the vote
matrix, the accuracies and the features follow in closed form: a perfectly disentangled code votes
only on the diagonal (accuracy 1), a code that swaps two factors votes on the swapped cells, a code
missing a factor loses exactly that factor's votes, an inactive code gets no vote (and in parity
mode the reference's compressed column index moves the next code's votes one column left).
"""

import inspect

import numpy as np
import pytest

from diffrep.metrics import modularity
from diffrep.metrics.dci import dci
from diffrep.metrics.mig import mig
from diffrep.metrics.protocols import (_Encoder, beta_vae_score, downstream_task_score, evaluate, factor_vae_score,
                                       generate_batch_factor_code)
from diffrep.metrics.sap import sap

from helpers import TinyGroundTruth

SIZES = (4, 5, 3)
KW = dict(batch_size=6, num_train=90, num_eval=60, num_variance_estimate=120)


def _fresh(s: str) -> str:
    """An equal string that is not the interned literal (so ``is`` and ``==`` differ)."""
    return "".join(list(s))


def _replay_factor_vae(sizes=SIZES, seed=0, batch_size=6, num_train=90, num_eval=60, num_variance_estimate=120):
    """(variance-sample factors, train ks, eval ks) in the documented draw order."""
    rs = np.random.RandomState(seed)
    var_f = np.stack([rs.randint(s, size=num_variance_estimate) for s in sizes], axis=1)

    def ks(n):
        out = []
        for _ in range(n):
            out.append(rs.randint(len(sizes)))
            for s in sizes:
                rs.randint(s, size=batch_size)
        return np.array(out)

    return var_f, ks(num_train), ks(num_eval)


def _counts(ks, nf=3):
    return np.bincount(ks, minlength=nf)


def _fv(rep, mode="robust", **kw):
    return factor_vae_score(TinyGroundTruth(SIZES), rep, mode=_fresh(mode), **{**KW, **kw})


def test_study_defaults():
    """disentanglement_lib's study gin values (docs/metrics.md): a changed default fails here."""
    fv = inspect.signature(factor_vae_score).parameters
    assert {k: fv[k].default for k in ("seed", "batch_size", "num_train", "num_eval", "num_variance_estimate",
                                       "threshold", "mode", "cache")} == dict(
        seed=0, batch_size=64, num_train=10000, num_eval=5000, num_variance_estimate=10000, threshold=0.05,
        mode="robust", cache=True)
    bv = inspect.signature(beta_vae_score).parameters
    assert {k: bv[k].default for k in ("seed", "batch_size", "num_train", "num_eval", "solver", "mode")} == dict(
        seed=0, batch_size=64, num_train=10000, num_eval=5000, solver="lbfgs", mode="robust")
    ev = inspect.signature(evaluate).parameters
    assert (ev["seed"].default, ev["num_train"].default, ev["num_test"].default, ev["mode"].default) == (
        0, 10000, 5000, "robust")
    ds = inspect.signature(downstream_task_score).parameters
    assert ds["sizes"].default == (10, 100, 1000, 10000) and ds["num_test"].default == 5000
    assert ds["seed"].default == 0 and ds["predictor"].default == "fast" and ds["cache"].default is True
    assert ds["batch_size"].default == 16
    assert inspect.signature(generate_batch_factor_code).parameters["batch_size"].default == 16


@pytest.mark.parametrize("mode", ["robust", "parity"])
@pytest.mark.parametrize("cache", [True, False])
def test_factor_vae_perfect_code_votes_on_the_diagonal(mode, cache):
    _, ktr, kev = _replay_factor_vae()
    r = _fv(lambda x: np.asarray(x, float) * np.array([1.0, 3.0, 0.5]), mode, cache=cache)
    np.testing.assert_array_equal(np.array(r.meta["train_votes"]), np.diag(_counts(ktr)))
    np.testing.assert_array_equal(np.array(r.meta["eval_votes"]), np.diag(_counts(kev)))
    assert r["factor_vae_train"] == 1.0 and r["factor_vae_eval"] == 1.0 and r["num_active_dims"] == 3
    assert r.flags == []  # nothing to guard on a clean code
    assert r.meta["num_train"] == 90 and r.meta["num_eval"] == 60 and r.meta["num_variance_estimate"] == 120


def test_factor_vae_swapped_factors_vote_on_the_swapped_cells():
    _, ktr, kev = _replay_factor_vae()
    r = _fv(lambda x: np.asarray(x, float)[:, [1, 0, 2]])
    n, m = _counts(ktr), _counts(kev)
    expected = np.zeros((3, 3), int)
    expected[0, 1], expected[1, 0], expected[2, 2] = n[0], n[1], n[2]
    np.testing.assert_array_equal(np.array(r.meta["train_votes"]), expected)
    expected_eval = np.zeros((3, 3), int)
    expected_eval[0, 1], expected_eval[1, 0], expected_eval[2, 2] = m[0], m[1], m[2]
    np.testing.assert_array_equal(np.array(r.meta["eval_votes"]), expected_eval)
    assert r["factor_vae_train"] == 1.0 and r["factor_vae_eval"] == 1.0  # the score ignores the order of codes


def test_factor_vae_missing_factor_loses_exactly_its_votes():
    _, ktr, kev = _replay_factor_vae()
    r = _fv(lambda x: np.asarray(x, float)[:, [0, 2]])  # factor 1 is not encoded
    v, ve = np.array(r.meta["train_votes"]), np.array(r.meta["eval_votes"])
    n, m = _counts(ktr), _counts(kev)
    assert v[0].tolist() == [n[0], 0] and v[2].tolist() == [0, n[2]] and v[1].sum() == n[1]
    assert ve[0].tolist() == [m[0], 0] and ve[2].tolist() == [0, m[2]] and ve[1].sum() == m[1]
    assert v[1, 0] < n[0] and v[1, 1] < n[2]  # so the classifier maps code 0 -> factor 0, code 1 -> factor 2
    assert r["factor_vae_train"] == (n[0] + n[2]) / n.sum()
    assert r["factor_vae_eval"] == (m[0] + m[2]) / m.sum()
    assert r["factor_vae_train"] < 1.0


def test_factor_vae_inactive_code_and_the_parity_compressed_index():
    _, ktr, _ = _replay_factor_vae()
    n = _counts(ktr)
    rep = lambda x: np.asarray(x, float) * np.array([1.0, 1e-3, 1.0])  # noqa: E731  code 1: std < 0.05
    robust, parity = _fv(rep), _fv(rep, "parity")
    v = np.array(robust.meta["train_votes"])
    assert robust["num_active_dims"] == 2 and v[:, 1].sum() == 0
    assert v[0, 0] == n[0] and v[2, 2] == n[2] and v[1].sum() == n[1]
    assert robust["factor_vae_train"] == (n[0] + n[2]) / n.sum()
    # parity: the reference indexes votes by position among the active codes (code 2 -> column 1)
    vp = np.array(parity.meta["train_votes"])
    assert parity["num_active_dims"] == 3 and vp[:, 2].sum() == 0 and vp[2, 1] == n[2] and vp[0, 0] == n[0]
    assert parity["train_accuracy"] == (n[0] + n[2]) / n.sum() == parity["factor_vae_train"]


def test_factor_vae_activity_uses_the_ddof1_variance_and_an_inclusive_threshold():
    var_f, ktr, _ = _replay_factor_vae()
    s1, s0 = np.std(var_f[:, 2], ddof=1), np.std(var_f[:, 2], ddof=0)
    a = 0.05 / np.sqrt(s0 * s1)  # a * s0 < 0.05 < a * s1: active with ddof=1 only
    assert a * s0 < 0.05 < a * s1
    r = _fv(lambda x: np.asarray(x, float) * np.array([1.0, 1.0, a]))
    assert r["num_active_dims"] == 3 and r["factor_vae_train"] == 1.0
    r = _fv(lambda x: np.asarray(x, float) * np.array([1.0, 1.0, 0.05 / s1 * (1 - 1e-6)]))
    assert r["num_active_dims"] == 2
    # exactly at the threshold: active (sqrt(g) >= threshold)
    codes = var_f.astype(float) * np.array([1.0, 1.0, 0.7])
    thr = float(np.sqrt(np.var(codes, axis=0, ddof=1))[2])
    r = _fv(lambda x: np.asarray(x, float) * np.array([1.0, 1.0, 0.7]), threshold=thr)
    assert r["num_active_dims"] == 3
    assert r.meta["threshold"] == thr


def test_factor_vae_no_active_code_scores_zero_in_both_modes():
    for mode in ("robust", "parity"):
        r = _fv(lambda x: np.asarray(x, float) * 1e-4, mode)
        assert r["factor_vae_train"] == 0.0 and r["factor_vae_eval"] == 0.0 and r["num_active_dims"] == 0
        assert "no active code: scores 0" in r.flags
        if mode == "parity":
            assert r["train_accuracy"] == 0.0 and r["eval_accuracy"] == 0.0
        else:
            assert "train_accuracy" not in r


def test_factor_vae_nan_variance_code_is_excluded_and_flagged_in_robust_mode():
    r = _fv(lambda x: np.hstack([np.asarray(x, float), np.zeros((len(x), 1))]), threshold=0.0)
    assert r["num_active_dims"] == 3 and r["factor_vae_train"] == 1.0
    assert any("codes [3]" in f for f in r.flags)


class _Capture:
    """Wraps diffrep.metrics.modularity.logistic_regression to record what BetaVAE fits and scores."""

    def __init__(self, monkeypatch):
        self.fit_x = self.fit_y = self.score_x = self.score_y = None
        real = modularity.logistic_regression
        cap = self

        def make(*a, **k):
            model = real(*a, **k)
            fit, score = model.fit, model.score

            def fit_(x, y):
                cap.fit_x, cap.fit_y = np.array(x), np.array(y)
                fit(x, y)
                return model

            def score_(x, y):
                cap.score_x, cap.score_y = np.array(x), np.array(y)
                return score(x, y)

            model.fit, model.score = fit_, score_
            return model

        monkeypatch.setattr(modularity, "logistic_regression", make)


def _replay_beta_vae(rep, n_train, n_eval, bs, sizes=SIZES, seed=0, liblinear=False):
    rs = np.random.RandomState(seed)

    def pts(n):
        xs, ys = [], []
        for _ in range(n):
            k = rs.randint(len(sizes))
            f1 = np.stack([rs.randint(s, size=bs) for s in sizes], 1)
            f2 = np.stack([rs.randint(s, size=bs) for s in sizes], 1)
            f2[:, k] = f1[:, k]
            xs.append(np.mean(np.abs(rep(f1) - rep(f2)), axis=0))
            ys.append(k)
        return np.array(xs), np.array(ys)

    xtr, ytr = pts(n_train)
    if liblinear:
        rs.randint(np.iinfo("i").max)
    return xtr, ytr, *pts(n_eval)


@pytest.mark.parametrize("solver", ["lbfgs", "liblinear-ovr"])
def test_beta_vae_features_labels_and_accuracy_of_a_perfect_code(monkeypatch, solver):
    rep = lambda x: np.asarray(x, float) * np.array([1.0, 2.0, 0.5])  # noqa: E731
    cap = _Capture(monkeypatch)
    r = beta_vae_score(TinyGroundTruth(SIZES), rep, batch_size=5, num_train=120, num_eval=80, solver=_fresh(solver),
                       mode=_fresh("parity"))
    xtr, ytr, xev, yev = _replay_beta_vae(rep, 120, 80, 5, liblinear=solver == "liblinear-ovr")
    np.testing.assert_array_equal(cap.fit_y, ytr)
    np.testing.assert_allclose(cap.fit_x, xtr, rtol=0, atol=1e-15)  # the mean |r(x1) - r(x2)| of each point
    assert np.all(cap.fit_x[np.arange(120), ytr] == 0)  # the shared factor's code does not move
    np.testing.assert_array_equal(cap.score_y, yev)
    np.testing.assert_allclose(cap.score_x, xev, rtol=0, atol=1e-15)  # eval points drawn after the fit
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    ref = (LogisticRegression() if solver == "lbfgs"
           else OneVsRestClassifier(LogisticRegression(solver="liblinear", random_state=0))).fit(xtr, ytr)
    assert r["beta_vae_train"] == float(np.mean(ref.predict(xtr) == ytr)) >= 0.95
    assert r["beta_vae_eval"] == float(ref.score(xev, yev)) >= 0.95
    assert r["train_accuracy"] == r["beta_vae_train"] and r["eval_accuracy"] == r["beta_vae_eval"]
    assert r.flags == []  # the classifier converged: no flag
    assert r.meta["variant"].startswith(f"disentanglement_lib/{solver}/")


def test_beta_vae_train_accuracy_is_measured_on_the_train_points(monkeypatch):
    # a code carrying only factor 2: the classifier tells k = 2 apart and guesses between 0 and 1
    rep = lambda x: np.asarray(x, float)[:, 2:] * 1.0  # noqa: E731
    cap = _Capture(monkeypatch)
    r = beta_vae_score(TinyGroundTruth(SIZES), rep, batch_size=5, num_train=150, num_eval=90)
    from sklearn.linear_model import LogisticRegression

    ref = LogisticRegression().fit(cap.fit_x, cap.fit_y)
    assert r["beta_vae_train"] == float(np.mean(ref.predict(cap.fit_x) == cap.fit_y))
    assert r["beta_vae_eval"] == float(ref.score(cap.score_x, cap.score_y))
    assert r["beta_vae_train"] < 0.9 and "train_accuracy" not in r


def test_generate_batch_factor_code_draws_in_batches():
    enc = _Encoder(TinyGroundTruth(SIZES), lambda x: np.asarray(x, float) * 2.0, cache=False)
    codes, factors = generate_batch_factor_code(enc, 20, np.random.RandomState(3), batch_size=16)
    rs = np.random.RandomState(3)
    expected = np.vstack([np.stack([rs.randint(s, size=b) for s in SIZES], 1) for b in (16, 4)])
    np.testing.assert_array_equal(factors, expected)
    np.testing.assert_array_equal(codes, 2.0 * expected)
    assert enc.meta() == {"cache": False, "representation_calls": 2, "encoded_observations": 20}
    codes, factors = generate_batch_factor_code(enc, 10, np.random.RandomState(5), batch_size=3)
    rs = np.random.RandomState(5)
    expected = np.vstack([np.stack([rs.randint(s, size=b) for s in SIZES], 1) for b in (3, 3, 3, 1)])
    np.testing.assert_array_equal(factors, expected)


class _NoisyData(TinyGroundTruth):
    """Observations random given the factors (they consume the RandomState)."""

    def sample_observations_from_factors(self, factors, random_state):
        return np.asarray(factors, float) + 1e-3 * random_state.rand(*np.shape(factors))


def test_the_cache_is_exact_and_switches_itself_off_for_random_observations():
    rep = lambda x: np.asarray(x, float)  # noqa: E731
    a = _fv(rep, cache=True)
    b = _fv(rep, cache=False)
    assert a.meta["train_votes"] == b.meta["train_votes"] and a["factor_vae_eval"] == b["factor_vae_eval"]
    assert a.meta["encoded_observations"] <= 4 * 5 * 3 + 120 < b.meta["encoded_observations"]
    data = _NoisyData(SIZES)
    c = factor_vae_score(data, rep, cache=True, **KW)
    d = factor_vae_score(data, rep, cache=False, **KW)
    assert c.meta["cache"] is False and c.meta["train_votes"] == d.meta["train_votes"]
    assert c.meta["encoded_observations"] == d.meta["encoded_observations"] == 120 + (90 + 60) * 6


def test_evaluate_gives_each_metric_a_fresh_random_state():
    data = TinyGroundTruth(SIZES)
    rep = lambda x: np.asarray(x, float) * np.array([1.0, -1.0, 2.0])  # noqa: E731
    r = evaluate(data, rep, metrics=[_fresh(m) for m in ("mig", "sap", "dci")], seed=4, num_train=64, num_test=32)
    rs = np.random.RandomState(4)
    enc = _Encoder(data, rep, cache=False)
    c, f = generate_batch_factor_code(enc, 64, np.random.RandomState(4))
    ctr, ftr = generate_batch_factor_code(enc, 64, rs)
    cte, fte = generate_batch_factor_code(enc, 32, rs)
    assert r["mig"] == mig(c, f)["mig"]
    assert r["sap"] == sap(ctr, ftr, cte, fte)["sap"]
    assert r["dci_disentanglement"] == dci(ctr, ftr, cte, fte)["dci_disentanglement"]
    assert r.meta["seed"] == 4 and r.meta["num_train"] == 64 and r.meta["num_test"] == 32


def test_downstream_draws_a_fresh_train_and_test_set_per_size():
    from diffrep.metrics.downstream import downstream_efficiency

    data = TinyGroundTruth(SIZES)
    rep = lambda x: np.asarray(x, float)  # noqa: E731
    r = downstream_task_score(data, rep, seed=2, sizes=(12, 24), num_test=20, batch_size=8)
    rs = np.random.RandomState(2)
    enc = _Encoder(data, rep, cache=False)
    arrays = [(generate_batch_factor_code(enc, s, rs, 8), generate_batch_factor_code(enc, 20, rs, 8)) for s in (12, 24)]
    for s, ((ctr, ftr), (cte, fte)) in zip((12, 24), arrays):
        ref = downstream_efficiency(ctr, ftr, cte, fte, sizes=(s,))
        assert r[f"{s}:mean_test_accuracy"] == ref[f"{s}:mean_test_accuracy"]
    assert r.meta["sizes"] == [12, 24] and r.meta["num_test"] == 20


def test_evaluate_runs_the_protocol_metrics_with_their_own_random_state():
    data = TinyGroundTruth(SIZES)
    rep = lambda x: np.asarray(x, float)[:, [0, 2]]  # noqa: E731
    fv = dict(batch_size=6, num_train=40, num_eval=30, num_variance_estimate=60)
    bv = dict(batch_size=4, num_train=60, num_eval=30)
    ds = dict(sizes=(12,), num_test=20)
    r = evaluate(data, rep, metrics=[_fresh(m) for m in ("infomec", "modularity_explicitness", "factor_vae",
                                                         "beta_vae", "downstream")],
                 seed=1, num_train=48, num_test=24, factor_vae_kwargs=fv, beta_vae_kwargs=bv, downstream_kwargs=ds)
    assert r["factor_vae_eval"] == factor_vae_score(data, rep, seed=1, **fv)["factor_vae_eval"]
    assert r["beta_vae_eval"] == beta_vae_score(data, rep, seed=1, **bv)["beta_vae_eval"]
    assert r["12:mean_test_accuracy"] == downstream_task_score(data, rep, seed=1, predictor="fast",
                                                               **ds)["12:mean_test_accuracy"]
    from diffrep.metrics.infomec import infomec
    from diffrep.metrics.modularity import modularity_explicitness

    enc = _Encoder(data, rep, cache=False)
    c, f = generate_batch_factor_code(enc, 48, np.random.RandomState(1))
    assert r["infom"] == infomec(c, f)["infom"]
    rs = np.random.RandomState(1)
    ctr, ftr = generate_batch_factor_code(enc, 48, rs)
    cte, fte = generate_batch_factor_code(enc, 24, rs)
    assert r["modularity"] == modularity_explicitness(ctr, ftr, cte, fte)["modularity"]


def test_encoder_validates_and_converts_codes():
    import torch

    data = TinyGroundTruth(SIZES)
    for attr in ("num_factors", "sample_factors", "sample_observations_from_factors"):
        class Broken(TinyGroundTruth):
            pass

        broken = Broken(SIZES)
        if attr == "num_factors":
            del broken.num_factors
        else:
            setattr(Broken, attr, property(lambda self: (_ for _ in ()).throw(AttributeError(attr))))
        with pytest.raises(TypeError, match=attr):
            _Encoder(broken, lambda x: x, cache=True)
    with pytest.raises(TypeError, match="representation_fn"):
        _Encoder(data, "not callable", cache=True)
    enc = _Encoder(data, lambda x: torch.from_numpy(np.asarray(x, np.float32) * 0.5), cache=True)
    codes, factors = generate_batch_factor_code(enc, 10, np.random.RandomState(0), batch_size=4)
    assert codes.dtype == np.float64 and np.array_equal(codes, factors * 0.5)
    with pytest.raises(ValueError, match=r"shape \(N, d\)"):
        generate_batch_factor_code(_Encoder(data, lambda x: np.zeros(len(x)), cache=False), 4,
                                   np.random.RandomState(0))


class _OneDrawData(TinyGroundTruth):
    """Observations that consume one double from the RandomState (its key block stays the same)."""

    def sample_observations_from_factors(self, factors, random_state):
        return np.asarray(factors, float) + 1e-3 * random_state.rand()


def test_the_cache_check_sees_a_single_draw_and_the_first_batch_is_cached():
    rep = lambda x: np.asarray(x, float)  # noqa: E731
    rs = np.random.RandomState(0)
    rs.randint(3, size=5)  # a used stream: the next double comes from the same key block
    enc = _Encoder(_OneDrawData(SIZES), rep, cache=True)
    f = np.array([[0, 1, 2], [1, 2, 0], [0, 1, 2]])
    enc.codes(f, rs)
    assert enc.cache is False  # the position moved, the keys did not: still random observations
    enc = _Encoder(TinyGroundTruth(SIZES), rep, cache=True)
    c1 = enc.codes(f, rs)
    c2 = enc.codes(f[::-1], rs)  # every tuple known from the first call: nothing new is encoded
    assert enc.cache is True and enc.meta() == {"cache": True, "representation_calls": 1, "encoded_observations": 3}
    np.testing.assert_array_equal(c2, c1[::-1])
    with pytest.raises(ValueError, match=r"shape \(N, d\)"):
        generate_batch_factor_code(_Encoder(TinyGroundTruth(SIZES), lambda x: np.zeros((len(x), 2, 1)), cache=False),
                                   4, np.random.RandomState(0))
