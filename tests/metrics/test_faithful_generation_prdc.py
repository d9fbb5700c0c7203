"""Faithfulness of precision/recall (Kynkaanniemi et al. 2019, Eq. 1-2, k = 3) and density/coverage
(Naeem et al. 2020, Eq. 3-4, k = 5) against hand-derived point sets and an independent brute force
(docs/metrics.md, "Precision, recall, density, coverage")."""

import numpy as np
import pytest

from diffrep import _native
from diffrep.metrics import generation as G

pytestmark = pytest.mark.skipif(not _native.cpu_available(), reason="diffrep._cpu not built")


def _line(xs):
    """1-d points as [N, 2] features (a zero second coordinate): every squared distance is exact."""
    xs = np.asarray(xs, dtype=np.float64)
    return np.stack([xs, np.zeros_like(xs)], 1)


# real 0..6 on a line, fakes 6.5, 10, 10.5, 11, 11.5.
# k-th neighbour distance excluding the point itself:
#   real, k = 3: [3, 2, 2, 2, 2, 2, 3]; real, k = 5: [5, 4, 3, 3, 3, 4, 5]
#   fake, k = 3: 6.5 -> 4.5 (others 3.5, 4, 4.5, 5), 10 -> 1.5, 10.5 -> 1, 11 -> 1, 11.5 -> 1.5
REAL = _line(np.arange(7.0))
FAKE = _line([6.5, 10.0, 10.5, 11.0, 11.5])


def test_prdc_hand_derived_k3_for_pr_and_naeem_k5_for_dc():
    got = G.prdc(REAL, FAKE, dc_k=5, device="cpu")
    # precision: only 6.5 lies in a real 3-NN ball (of 6: 0.5 <= 3)            -> 1/5
    # recall: the fake ball of 6.5 (radius 4.5) holds 2 (boundary), 3, 4, 5, 6 -> 5/7
    # density (k = 5): 6.5 in the balls of 4, 5, 6; 10, 10.5 and 11 (boundary, 5 <= 5) in that of 6;
    #   11.5 in none: 6 / (5 * 5)
    # coverage (k = 5): reals 4, 5, 6 have their nearest fake (6.5) inside their ball   -> 3/7
    assert got == {"precision": 1 / 5, "recall": 5 / 7, "density": 6 / 25, "coverage": 3 / 7}


def test_prdc_hand_derived_strict_membership_drops_the_boundary_points():
    got = G.prdc(REAL, FAKE, dc_k=5, strict=True, device="cpu")
    # recall loses real 2 (|2 - 6.5| = 4.5 = radius), density loses fake 11 in the ball of 6 (5 = 5)
    assert got == {"precision": 1 / 5, "recall": 4 / 7, "density": 5 / 25, "coverage": 3 / 7}


def test_prdc_hand_derived_default_single_k3_as_the_prdc_package_with_nearest_k_3():
    assert G.prdc(REAL, FAKE, device="cpu") == G.prdc(REAL, FAKE, k=3, dc_k=3, device="cpu")
    got = G.prdc(REAL, FAKE, k=3, device="cpu")
    # k = 3 real radii [3, 2, 2, 2, 2, 2, 3]: 6.5 lies in the balls of 5 (1.5 <= 2) and 6 (0.5 <= 3),
    # 10 is 4 > 3 from 6 -> density 2 / (3 * 5); coverage: reals 5 and 6 -> 2/7
    assert got == {"precision": 1 / 5, "recall": 5 / 7, "density": 2 / 15, "coverage": 2 / 7}


def _brute(real, fake, k, dc_k, strict):
    """Loops over every pair, in float64: the papers' definitions read literally."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    n, m = len(real), len(fake)

    def dist(a, b):
        return float(np.sqrt(((a - b) ** 2).sum()))

    def knn_radius(pts, i, kk):  # distance to the kk-th nearest OTHER point (duplicates count)
        return sorted(dist(pts[i], pts[j]) for j in range(len(pts)) if j != i)[kk - 1]

    def inside(dd, r):
        return dd < r if strict else dd <= r

    r_pr = [knn_radius(real, i, k) for i in range(n)]
    r_dc = [knn_radius(real, i, dc_k) for i in range(n)]
    s_pr = [knn_radius(fake, j, k) for j in range(m)]
    prec = sum(any(inside(dist(fake[j], real[i]), r_pr[i]) for i in range(n)) for j in range(m)) / m
    rec = sum(any(inside(dist(real[i], fake[j]), s_pr[j]) for j in range(m)) for i in range(n)) / n
    dens = sum(inside(dist(fake[j], real[i]), r_dc[i]) for i in range(n) for j in range(m)) / (dc_k * m)
    cov = sum(any(inside(dist(fake[j], real[i]), r_dc[i]) for j in range(m)) for i in range(n)) / n
    return {"precision": prec, "recall": rec, "density": dens, "coverage": cov}


@pytest.mark.parametrize("strict", [False, True])
def test_prdc_equals_the_definitions_read_literally_with_duplicates(strict):
    rng = np.random.default_rng(11)
    real = rng.integers(0, 4, (30, 2)).astype(np.float64)   # duplicates: a twin is a neighbour at distance 0
    fake = np.vstack([real[:6], rng.integers(0, 5, (18, 2))]).astype(np.float64)
    assert G.prdc(real, fake, strict=strict, device="cpu") == pytest.approx(_brute(real, fake, 3, 3, strict),
                                                                            abs=1e-15)
    assert G.prdc(real, fake, dc_k=5, strict=strict, device="cpu") == pytest.approx(
        _brute(real, fake, 3, 5, strict), abs=1e-15)
    assert G.prdc(real, fake, k=2, dc_k=4, strict=strict, device="cpu") == pytest.approx(
        _brute(real, fake, 2, 4, strict), abs=1e-15)


def test_density_and_coverage_of_one_distribution_match_naeem_lemmas():
    """Naeem et al. 2020 (Lemma 1-2): for real and fake drawn from one distribution,
    E[density] = 1 and E[coverage] = 1 - prod_{i=1..k} (N - i) / (N + M - i), 0.969 at k = 5
    and N = M (the reason for their k = 5); with the default single k = 3 it is 0.875."""
    rng = np.random.default_rng(0)
    n = m = 2000
    real, fake = rng.normal(size=(n, 8)), rng.normal(size=(m, 8))
    for dc_k, want in ((5, 0.9688), (None, 0.8751)):
        got = G.prdc(real, fake, dc_k=dc_k, device="cpu")
        kk = dc_k or 3
        expected_cov = 1 - np.prod([(n - i) / (n + m - i) for i in range(1, kk + 1)])
        assert expected_cov == pytest.approx(want, abs=1e-4)
        assert got["coverage"] == pytest.approx(expected_cov, abs=0.015)
        assert got["density"] == pytest.approx(1.0, abs=0.06)


def test_dc_k_bounds_and_counts():
    from diffrep.ops.knn import MAX_K

    x = np.arange(12.0).reshape(6, 2)
    G.prdc(x, x[:4], dc_k=5, device="cpu")  # real needs dc_k + 1 = 6, fake only k + 1 = 4
    with pytest.raises(ValueError, match="real has 5 samples; k = 5 nearest neighbours need at least k \\+ 1 = 6"):
        G.prdc(x[:5], x, dc_k=5, device="cpu")
    with pytest.raises(ValueError, match="dc_k must be >= 1"):
        G.prdc(x, x, dc_k=0)
    with pytest.raises(ValueError, match=f"dc_k must be <= {MAX_K - 1}"):
        G.prdc(x, x, dc_k=MAX_K)
    with pytest.raises(TypeError, match="dc_k must be an int"):
        G.prdc(x, x, dc_k=5.0)


def test_cli_passes_k_and_dc_k_with_the_single_k_default(monkeypatch, tmp_path):
    from diffrep.cli import main

    seen = []

    def fake_evaluate(real, fake, **kw):
        seen.append(kw)
        return {"precision": 0.5, "protocol": {"preprocessing": "clean", "weights_file": "w", "weights_sha1": "0" * 40,
                                               "num_real": 1, "num_fake": 1}}

    monkeypatch.setattr(G, "evaluate", fake_evaluate)
    base = ["eval", "--generation", "--real", str(tmp_path), "--fake", str(tmp_path), "--gen-metrics", "prdc",
            "--device", "cpu", "--no-progress"]
    assert main(base) == 0
    assert (seen[-1]["k"], seen[-1]["dc_k"]) == (3, None)  # None: density/coverage take --k
    assert main(base + ["--k", "2", "--dc-k", "7"]) == 0
    assert (seen[-1]["k"], seen[-1]["dc_k"]) == (2, 7)
