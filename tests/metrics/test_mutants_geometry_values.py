"""Value tests for metrics/geometry.py written against the survivors of a mutation run
(benches/results/mutation_geometry_guidance_2026-12-07b.md): zero-length steps, the averaging over
several trajectories, the [-1, 1] clamp of the cosine, float32 inputs computed in float64, the meta
fields, and ``lr_participation_ratio`` against a logistic regression solved by Newton's method here
(docs/methods/sami.md#analyses: z-scored latents, L2, C = 1, unpenalised intercept)."""

import math

import numpy as np
import pytest

from diffrep.metrics.geometry import lr_participation_ratio, participation_ratio, straightness


def _cosines(traj):
    """Brute force: the cosine of each pair of consecutive non-zero steps, per trajectory (float64)."""
    out = []
    for t in np.asarray(traj, dtype=np.float64):
        d = np.diff(t, axis=0)
        row = []
        for a, b in zip(d[:-1], d[1:]):
            na, nb = math.sqrt(float(a @ a)), math.sqrt(float(b @ b))
            if na * nb > 0:
                row.append(min(1.0, max(-1.0, float(a @ b) / (na * nb))))
        out.append(row)
    return out


def test_zero_length_steps_are_left_out_and_counted():
    # trajectory 0: steps (1,0), (0,0), (0,0), (0,1): every pair touches a zero step except none -> all undefined
    # trajectory 1: steps (1,0), (1,0), (0,0), (1,1): pairs (s0,s1) cos 1; (s1,s2), (s2,s3) undefined
    # trajectory 2: steps (1,0), (0,1), (-1,0), (0,-1): cosines 0, 0, 0
    t = np.array([[[0.0, 0], [1, 0], [1, 0], [1, 0], [1, 1]],
                  [[0.0, 0], [1, 0], [2, 0], [2, 0], [3, 1]],
                  [[0.0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]])
    r = straightness(t)
    assert r.meta["zero_steps"] == 3 + 2 + 0
    assert r.meta["num_trajectories"] == 3 and r.meta["num_frames"] == 5
    # per trajectory: no valid pair -> 0 (and the trajectory is left out of the mean), 1, 0
    assert r.meta["per_trajectory"] == pytest.approx([0.0, 1.0, 0.0], abs=1e-15)
    assert r["straightness"] == pytest.approx((1.0 + 0.0) / 2, abs=1e-15)
    assert r["curvature_deg"] == pytest.approx((0.0 + 90.0) / 2, abs=1e-12)
    assert r.meta["metric"] == "straightness" and r.variant == "henaff2019-cosine"


def test_a_trajectory_with_only_zero_steps_gives_nan():
    r = straightness(np.zeros((4, 3)))
    assert math.isnan(r["straightness"]) and math.isnan(r["curvature_deg"])
    assert r.meta["zero_steps"] == 2


def test_three_frames_one_angle_per_trajectory_averaged_over_trajectories():
    # one cosine per trajectory; straightness and curvature are the plain means over the trajectories
    rng = np.random.RandomState(3)
    t = rng.randn(4, 3, 5)
    cos = [c[0] for c in _cosines(t)]
    r = straightness(t)
    assert r.meta["per_trajectory"] == pytest.approx(cos, abs=1e-13)
    assert r["straightness"] == pytest.approx(np.mean(cos), abs=1e-13)
    assert r["curvature_deg"] == pytest.approx(np.mean(np.degrees(np.arccos(cos))), abs=1e-10)


def test_curvature_of_trajectories_with_different_numbers_of_steps():
    rng = np.random.RandomState(4)
    t = rng.randn(3, 6, 4)
    t[1, 3] = t[1, 2]  # one repeated frame: trajectory 1 keeps 2 of its 4 cosines
    cos = _cosines(t)
    assert [len(c) for c in cos] == [4, 2, 4]
    r = straightness(t)
    assert r["straightness"] == pytest.approx(np.mean([np.mean(c) for c in cos]), abs=1e-13)
    want = np.mean([np.mean(np.degrees(np.arccos(c))) for c in cos])
    assert r["curvature_deg"] == pytest.approx(want, abs=1e-10)


def test_cosine_is_clamped_to_minus_one_and_one():
    # for this v, v.v / (|v| |v|) rounds to 1 + 2**-52 in float64: unclamped, arccos gives NaN
    v = np.array([0.9700530018065531, 0.707819864399788, 0.45938294312745087])
    straight = straightness(np.stack([0 * v, v, 2 * v]))
    assert straight["straightness"] == 1.0 and straight["curvature_deg"] == 0.0
    back = straightness(np.stack([0 * v, v, 0 * v]))
    assert back["straightness"] == -1.0 and back["curvature_deg"] == 180.0


def test_float32_trajectories_are_computed_in_float64():
    rng = np.random.RandomState(5)
    t = rng.randn(2, 7, 6).astype(np.float32)
    cos = _cosines(t.astype(np.float64))  # the float32 values, exactly, in float64
    r = straightness(t)
    assert r["straightness"] == pytest.approx(np.mean([np.mean(c) for c in cos]), abs=1e-14)
    assert r["curvature_deg"] == pytest.approx(np.mean([np.mean(np.degrees(np.arccos(c))) for c in cos]), abs=1e-11)


def test_participation_ratio_meta_and_float32():
    w = np.array([[0.1, 0.7, -0.3], [0.2, 0.2, 0.9]], dtype=np.float32)
    r = participation_ratio(w)
    w64 = w.astype(np.float64)
    per = (w64 ** 2).sum(1) / np.sqrt((w64 ** 4).sum(1))
    assert r.meta["per_row"] == pytest.approx(per.tolist(), abs=1e-15)
    assert r["participation_ratio"] == pytest.approx(per.mean(), abs=1e-15)
    assert r.meta["dim"] == 3
    assert r.meta["metric"] == "participation_ratio" and r.variant == "l2sq_over_l4sq"


def _logistic_l2_newton(x, y, C=1.0, iters=50):
    """argmin_{w, b} C sum_i log(1 + exp(-s_i (w.x_i + b))) + |w|^2 / 2, s = 2y - 1 (the intercept is not
    penalised), by Newton's method."""
    n, d = x.shape
    X = np.hstack([x, np.ones((n, 1))])
    s = 2.0 * y - 1.0
    theta = np.zeros(d + 1)
    reg = np.eye(d + 1)
    reg[d, d] = 0.0
    for _ in range(iters):
        m = s * (X @ theta)
        sig = 1.0 / (1.0 + np.exp(m))  # sigma(-m)
        grad = -C * X.T @ (s * sig) + reg @ theta
        hess = C * (X * (sig * (1 - sig))[:, None]).T @ X + reg
        theta -= np.linalg.solve(hess, grad)
    return theta[:d]


def test_lr_participation_ratio_matches_a_newton_logistic_regression():
    rng = np.random.RandomState(6)
    n = 80
    z = rng.randn(n, 4) * np.array([1.0, 3.0, 0.5, 2.0]) + np.array([0.0, 5.0, -1.0, 2.0])
    y = np.stack([(z[:, 0] + 0.5 * rng.randn(n) > 0),               # one dominant latent
                  (z[:, 1] / 3 - z[:, 3] / 2 + rng.randn(n) > 0.3),  # two latents
                  np.ones(n, dtype=bool)], axis=1).astype(np.int64)  # constant: skipped
    zs = (z - z.mean(0)) / z.std(0)  # z-scores with the population std, as StandardScaler
    ws = [_logistic_l2_newton(zs, y[:, a].astype(np.float64)) for a in range(2)]
    pr = [float((w ** 2).sum() / np.sqrt((w ** 4).sum())) for w in ws]
    r = lr_participation_ratio(z, y)
    assert r.meta["per_row"] == pytest.approx(pr, rel=1e-3)
    assert r["participation_ratio"] == pytest.approx(np.mean(pr), rel=1e-3)
    assert pr[0] < 1.3 < pr[1]  # the two attributes are told apart


def test_lr_participation_ratio_rejects_non_binary_attributes():
    z = np.random.RandomState(0).randn(20, 3)
    y = np.zeros((20, 1), dtype=np.int64)
    y[::2] = 2
    with pytest.raises(ValueError, match="binary"):
        lr_participation_ratio(z, y)


def test_error_messages_name_the_argument():
    with pytest.raises(ValueError, match="^trajectories: need at least 3 frames, got 2$"):
        straightness(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="^trajectories: contains NaN or inf$"):
        straightness(np.array([[0.0, 1.0], [np.nan, 0.0], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="^weights: an all-zero weight vector has no participation ratio$"):
        participation_ratio(np.array([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="^weights: contains NaN or inf$"):
        participation_ratio(np.array([1.0, np.inf]))
    z = np.random.RandomState(0).randn(20, 3)
    with pytest.raises(ValueError, match="^codes and attributes disagree on the number of samples: 20 vs 19$"):
        lr_participation_ratio(z, np.zeros((19, 1), dtype=np.int64))
    with pytest.raises(ValueError, match="^attributes: expected 2 dimensions"):
        lr_participation_ratio(z, np.zeros(20, dtype=np.int64))


def test_python_lists_are_refused_with_a_type_error_naming_the_argument():
    with pytest.raises(TypeError, match="^trajectories: expected a numpy array or torch tensor, got list$"):
        straightness([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    with pytest.raises(TypeError, match="^weights: expected a numpy array or torch tensor, got list$"):
        participation_ratio([1.0, 2.0])
