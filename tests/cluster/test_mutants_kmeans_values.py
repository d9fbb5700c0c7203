"""The k-means start of the HDDC fits (cluster/kmeans.py) against brute force and exact
probabilities, for the survivors of a mutation run (benches/results/mutation_cluster_2026-12-07b.md):
k-means++ seeding draws the next centre with probability proportional to w_i min_c |x_i - c|^2
(Arthur & Vassilvitskii 2007, with point weights), Lloyd steps move each centre to the weighted mean
sum w x / sum w (also when a cluster's total weight is below 1), the "random" seeding draws distinct
weighted points, and every unit uses its own generator."""

import math

import pytest
import torch

from diffrep.cluster.kmeans import kmeans_labels, nearest_centre


def _kmeanspp_pair_probability(pts, w, pair):
    """P(the two k-means++ seeds are the points ``pair``) for K = 2, by enumeration."""
    tot = 0.0
    for first in pair:
        second = pair[1] if first == pair[0] else pair[0]
        d2 = [w[i] * (pts[i] - pts[first]) ** 2 for i in range(len(pts))]
        tot += w[first] / sum(w) * d2[second] / sum(d2)
    return tot


def test_kmeanspp_second_seed_is_drawn_in_proportion_to_weighted_squared_distance():
    # points 10, 10.5, 13 (1-D, far from the origin: the probabilities only depend on differences) with
    # weights 1, 0.5, 0.8; K = 2 and no Lloyd step: the seeds {10, 10.5} give the partition
    # {10} | {10.5, 13}, every other pair puts 10 and 10.5 together. One unit per seed.
    pts, w = [10.0, 10.5, 13.0], [1.0, 0.5, 0.8]
    U = 10000
    x = torch.tensor(pts, dtype=torch.float64).reshape(1, 3, 1).expand(U, 3, 1).contiguous()
    ww = torch.tensor(w, dtype=torch.float64).expand(U, 3).contiguous()
    lab = kmeans_labels(x, ww, 2, list(range(U)), iters=0)
    freq = float((lab[:, 0] != lab[:, 1]).double().mean())
    p = _kmeanspp_pair_probability(pts, w, (0, 1))
    assert abs(freq - p) < 4 * math.sqrt(p * (1 - p) / U)
    assert p == pytest.approx(0.01777, abs=1e-4)  # (1/2.3)(0.125/7.325) + (0.5/2.3)(0.25/5.25)


def _weighted_means(x, w, lab, K):
    return torch.stack([(w[lab == k, None] * x[lab == k]).sum(0) / w[lab == k].sum() for k in range(K)])


def test_lloyd_fixed_point_with_light_weights():
    # after convergence the labels are the nearest weighted means of their own clusters (total weights < 1)
    g = torch.Generator().manual_seed(0)
    U, n, d, K = 3, 60, 2, 4
    x = torch.randn(U, n, d, generator=g, dtype=torch.float64) + 3 * torch.randn(U, 1, d, generator=g,
                                                                                   dtype=torch.float64)
    w = 0.05 + 0.05 * torch.rand(U, n, generator=g, dtype=torch.float64)
    lab = kmeans_labels(x, w, K, [11, 12, 13], iters=100)
    for u in range(U):
        assert sorted(set(lab[u].tolist())) == list(range(K))
        cents = _weighted_means(x[u], w[u], lab[u], K)
        d2 = ((x[u][:, None] - cents[None]) ** 2).sum(-1)
        assert torch.equal(d2.argmin(1), lab[u])


def test_light_clusters_do_not_collapse():
    # two tight groups at 10 and 4 with weights 0.2: the weighted means are 10.1 and 4.1, whatever the
    # total weight (a mean divided by max(sum w, 1) would put the first centre at 4.04 and merge them)
    x = torch.tensor([10.0, 10.2, 4.0, 4.2], dtype=torch.float64).reshape(1, 4, 1)
    w = torch.full((1, 4), 0.2, dtype=torch.float64)
    for seed in range(5):
        lab = kmeans_labels(x, w, 2, [seed])[0].tolist()
        assert lab[0] == lab[1] and lab[2] == lab[3] and lab[0] != lab[2]


def test_labels_do_not_depend_on_the_scale_of_the_data():
    # k-means++ probabilities and Lloyd steps are invariant to scaling x (no absolute threshold)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 40, 3, generator=g, dtype=torch.float64)
    w = torch.rand(4, 40, generator=g, dtype=torch.float64) + 0.1
    a = kmeans_labels(x, w, 3, [1, 2, 3, 4])
    b = kmeans_labels(1e-3 * x, w, 3, [1, 2, 3, 4])
    assert torch.equal(a, b)


@pytest.mark.parametrize("init", ["kmeans++", "random"])
def test_each_unit_has_its_own_generator(init):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 30, 2, generator=g, dtype=torch.float64)
    w = torch.ones(3, 30, dtype=torch.float64)
    both = kmeans_labels(x, w, 3, [5, 6, 7], init=init)
    assert torch.equal(both, kmeans_labels(x, w, 3, [5, 6, 7], init=init))  # reproducible
    for u in range(3):  # a unit's labels do not depend on the batch it is in
        assert torch.equal(both[u], kmeans_labels(x[u:u + 1], w[u:u + 1], 3, [5 + u], init=init)[0])


def test_random_seeding_draws_distinct_weighted_points():
    # K = number of points with w > 0 and no Lloyd step: each weighted point is its own centre
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 8, 2, generator=g, dtype=torch.float64)
    w = torch.tensor([[1.0, 0, 0.5, 0, 1, 0, 0.7, 0], [0, 0.3, 0, 1, 0, 1, 0, 0.2]], dtype=torch.float64)
    lab = kmeans_labels(x, w, 4, [0, 1], init="random", iters=0)
    for u in range(2):
        on = w[u] > 0
        assert len(set(lab[u][on].tolist())) == 4
        # a point with w = 0 is labelled by the nearest weighted point
        for i in torch.nonzero(~on)[:, 0].tolist():
            near = torch.nonzero(on)[:, 0][((x[u][on] - x[u][i]) ** 2).sum(-1).argmin()]
            assert lab[u][i] == lab[u][near]
    # fewer weighted points than K: drawn with replacement among them (never a w = 0 point)
    w1 = torch.tensor([[1.0, 1, 0, 0, 0, 0, 0, 0]], dtype=torch.float64)
    for seed in range(4):
        lab = kmeans_labels(x[:1], w1, 3, [seed], init="random", iters=0)[0]
        for i in range(8):
            near = int(((x[0, :2] - x[0, i]) ** 2).sum(-1).argmin())
            assert lab[i] == lab[near]


def test_nearest_centre_is_the_brute_force_argmin():
    g = torch.Generator().manual_seed(4)
    x = 100 + torch.randn(2, 25, 3, generator=g, dtype=torch.float64)  # far from the origin
    c = 100 + torch.randn(2, 5, 3, generator=g, dtype=torch.float64)
    want = ((x[:, :, None] - c[:, None]) ** 2).sum(-1).argmin(-1)
    assert torch.equal(nearest_centre(x, c), want)


def test_kmeans_argument_checks():
    x = torch.randn(2, 5, 2, dtype=torch.float64)
    w = torch.ones(2, 5, dtype=torch.float64)
    lab = kmeans_labels(x, w, 5, [0, 1], iters=0)  # K = n: every point its own centre
    assert [sorted(r.tolist()) for r in lab] == [[0, 1, 2, 3, 4]] * 2
    bad = w.clone()
    bad[0, 1] = -0.5
    with pytest.raises(ValueError, match="^w must be >= 0 with a positive total per unit$"):
        kmeans_labels(x, bad, 2, [0, 1])
    zero = w.clone()
    zero[1] = 0.0
    with pytest.raises(ValueError, match="^w must be >= 0 with a positive total per unit$"):
        kmeans_labels(x, zero, 2, [0, 1])
    with pytest.raises(ValueError, match=r"^seeds must give one int per unit \(2\)"):
        kmeans_labels(x, w, 2, [0])
    with pytest.raises(ValueError, match=r"^K=6 exceeds the 5 points per unit$"):
        kmeans_labels(x, w, 6, [0, 1])


@pytest.mark.parametrize("bad, match", [
    (lambda x, w: (x.index_put((torch.tensor([0]), torch.tensor([1]), torch.tensor([0])), torch.tensor(float("nan"), dtype=x.dtype)), w),
     "x contains NaN"),
    (lambda x, w: (x, w.index_put((torch.tensor([0]), torch.tensor([2])), torch.tensor(float("inf"), dtype=w.dtype))), "w contains NaN"),
])
def test_kmeans_labels_refuses_non_finite_points_and_weights(bad, match):
    x, w = bad(torch.randn(1, 6, 2, dtype=torch.float64), torch.ones(1, 6, dtype=torch.float64))
    with pytest.raises(ValueError, match=match):
        kmeans_labels(x, w, 2, [0])


def test_kmeans_labels_float64_weights_with_float32_points_match_float32_weights():
    x = torch.tensor([[[0.0], [0.1], [0.2], [5.0], [5.1], [5.3]]])
    w = torch.tensor([[1.0, 0.5, 1.0, 1.0, 0.25, 1.0]])
    got = kmeans_labels(x, w.double(), 2, [0])
    assert torch.equal(got, kmeans_labels(x, w, 2, [0]))
    assert got[0, :3].unique().numel() == 1 and got[0, 3:].unique().numel() == 1 and got[0, 0] != got[0, 3]
