"""The quickstart's traversal analysis (diffrep.analysis.traversal) on hand-made cases: centroids of known
images, the shift a fake decoder with a known motion produces, NMI ordering and labels, basis spreading,
quantile ranges; the labelled figure's geometry (diffrep.viz.labelled_rows, upscaling)."""

import numpy as np
import pytest
import torch
from PIL import Image

from diffrep.analysis import traversal as tr
from diffrep.viz import labelled_rows, legible_scale, save_image


def square(cx: float, cy: float, size: int = 32, half: int = 2) -> torch.Tensor:
    """[1, size, size] in [-1, 1]: a (2 half) x (2 half) square of ones whose centre is at (cx, cy) (pixel units,
    pixel centres at j + 0.5), cx - half and cy - half integers."""
    img = -torch.ones(1, size, size)
    x0, y0 = int(round(cx - half)), int(round(cy - half))
    img[:, y0:y0 + 2 * half, x0:x0 + 2 * half] = 1
    return img


def test_image_centroids_hand_cases():
    a = square(10, 20)  # pixels 8..11 (centres 8.5..11.5) -> mean 10; rows 18..21 -> 20
    b = -torch.ones(1, 32, 32)
    b[0, 0, 0] = 1.0
    b[0, 0, 3] = 0.0  # half intensity: weight 0.5 at x = 3.5
    c = -torch.ones(1, 32, 32)  # empty
    got = tr.image_centroids(torch.stack([a, b, c]))
    torch.testing.assert_close(got[0], torch.tensor([10.0, 20.0], dtype=torch.float64))
    torch.testing.assert_close(got[1], torch.tensor([(0.5 * 1 + 3.5 * 0.5) / 1.5, 0.5], dtype=torch.float64))
    assert torch.isnan(got[2]).all()
    # value range [0, 1] and channel averaging: an RGB image lit in one channel weighs 1/3 per pixel
    d = torch.zeros(3, 8, 8)
    d[0, 2, 6] = 1.0
    d[:, 5, 1] = 1.0
    torch.testing.assert_close(tr.image_centroids(d[None], (0.0, 1.0))[0],
                               torch.tensor([(6.5 / 3 + 1.5) / (4 / 3), (2.5 / 3 + 5.5) / (4 / 3)], dtype=torch.float64))
    with pytest.raises(ValueError, match="images must be"):
        tr.image_centroids(torch.zeros(8, 8))
    with pytest.raises(ValueError, match="value_range"):
        tr.image_centroids(torch.zeros(1, 1, 8, 8), (1.0, 0.0))


def fake_decoder(codes: torch.Tensor) -> torch.Tensor:
    """z0 moves the square along x (4 px per unit), z2 along y (3 px per unit, downwards), z1 does nothing."""
    return torch.stack([square(16 + 4 * float(z[0]), 16 + 3 * float(z[2])) for z in codes])


def test_centroid_shifts_of_a_known_motion():
    base = torch.tensor([[0.0, 0.0, 0.0], [1.0, 5.0, -1.0]])
    values = torch.tensor([[-2.0, -1.0, 0.0, 1.0, 2.0], [-2.0, -1.0, 0.0, 1.0, 2.0], [-2.0, -1.0, 0.0, 1.0, 2.0]])
    r = tr.centroid_shifts(fake_decoder, base, [1, 0, 2], values)
    p = r["per_latent"]
    assert (p[0]["dx"], p[0]["dy"]) == pytest.approx((16.0, 0.0))  # 4 px x (2 - (-2))
    assert (p[2]["dx"], p[2]["dy"]) == pytest.approx((0.0, 12.0))
    assert (p[1]["dx"], p[1]["dy"]) == pytest.approx((0.0, 0.0))
    assert p[0]["range_x"] == pytest.approx(16.0) and p[2]["range_y"] == pytest.approx(12.0)
    assert p[0]["empty"] == 0.0
    assert (r["best_x"], r["best_y"]) == (0, 2)
    assert (r["max_abs_dx"], r["max_abs_dy"]) == pytest.approx((16.0, 12.0))
    assert r["images"].shape == (3, 2, 5, 1, 32, 32)
    # the images are in the order of dims: row 1 is z0's traversal of base 0, first value -2 -> x = 8
    torch.testing.assert_close(tr.image_centroids(r["images"][1, 0, :1])[0], torch.tensor([8.0, 16.0], dtype=torch.float64))
    # values given per listed dim ([len(dims), V]) and a reversed traversal: the sign follows the values
    r2 = tr.centroid_shifts(fake_decoder, base[:1], [0], torch.tensor([[1.0, -1.0]]))
    assert r2["per_latent"][0]["dx"] == pytest.approx(-8.0)


def test_centroid_shifts_empty_images_and_errors():
    def vanish(codes):  # the object disappears at the far end of z0
        return torch.stack([square(16 + 4 * float(z[0]), 16) if float(z[0]) < 1.5 else -torch.ones(1, 32, 32)
                            for z in codes])

    base = torch.tensor([[0.0, 0.0], [0.0, 1.0]])
    r = tr.centroid_shifts(vanish, base, [0], torch.tensor([[-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]))
    assert r["per_latent"][0]["dx"] == 0.0  # both bases vanish at z0 = 2: no movement is credited
    assert r["per_latent"][0]["empty"] == pytest.approx(1 / 3)
    assert r["per_latent"][0]["range_x"] == pytest.approx(8.0)  # over the non-empty images
    # one base moves (z0 in [-2, 1]: 12 px), one vanishes (counts 0): the mean is 6 px
    both = lambda c: torch.cat([vanish(c[:2]), vanish(c[2:] * torch.tensor([2.0, 1.0]))])  # noqa: E731
    r = tr.centroid_shifts(both, base, [0], torch.tensor([[-2.0, 1.0], [-2.0, 1.0]]))
    assert r["per_latent"][0]["dx"] == pytest.approx(6.0) and r["best_x"] == 0 and r["max_abs_dx"] == pytest.approx(6.0)
    with pytest.raises(ValueError, match="dims"):
        tr.centroid_shifts(fake_decoder, torch.zeros(1, 3), [3], torch.zeros(3, 2))
    with pytest.raises(ValueError, match="values"):
        tr.centroid_shifts(fake_decoder, torch.zeros(1, 3), [0], torch.zeros(3, 1))
    with pytest.raises(ValueError, match="decode must return"):
        tr.centroid_shifts(lambda c: torch.zeros(1, 1, 4, 4), torch.zeros(2, 3), [0], torch.zeros(3, 2))


def test_latent_factor_scores_and_ordering():
    rng = np.random.default_rng(0)
    n = 2000
    f = np.stack([rng.integers(0, 5, n), rng.integers(0, 4, n), np.zeros(n, dtype=np.int64)], 1)
    codes = np.stack([rng.normal(size=n),  # noise
                      f[:, 1] * 1.0,  # exactly factor 1 (4 classes -> 4 distinct histogram bins)
                      f[:, 0] + 0.0 * rng.normal(size=n),  # exactly factor 0
                      f[:, 0] + rng.normal(scale=2.0, size=n)], 1)  # factor 0 blurred
    sc = tr.latent_factor_scores(codes, f, ["a", "b", "const"])
    nmi = sc["nmi"]
    assert nmi.shape == (4, 3)
    assert nmi[1, 1] == pytest.approx(1.0) and nmi[2, 0] == pytest.approx(1.0)
    assert (nmi[:, 2] == 0).all()  # a constant factor scores 0 (H = 0), never NaN
    assert 0.05 < nmi[3, 0] < 0.9 and nmi[0].max() < 0.05
    # the plug-in estimate computed independently: 20 equal-width bins of z3 against factor a
    z = codes[:, 3]
    lab = np.digitize(z, np.histogram_bin_edges(z, 20)[1:-1])
    joint = np.histogram2d(lab, f[:, 0], bins=[np.arange(21) - 0.5, np.arange(6) - 0.5])[0] / n
    pa, pb = joint.sum(1, keepdims=True), joint.sum(0, keepdims=True)
    nz = joint > 0
    mi = np.sum(joint[nz] * np.log(joint[nz] / (pa * pb)[nz]))
    hb = -np.sum(pb * np.log(pb))
    assert nmi[3, 0] == pytest.approx(mi / hb, rel=1e-6)
    assert sc["best_factor"] == [sc["best_factor"][0], "b", "a", "a"] and sc["best_index"][1:] == [1, 0, 0]
    order = tr.order_latents(sc["best_score"], codes.std(0))
    assert order[:2] == [2, 1]  # ties at NMI 1: z2 (std ~1.41) before z1 (std ~1.12)
    assert order[2:] == [3, 0]
    assert tr.order_latents([0.5, 0.5, 0.9]) == [2, 0, 1]
    assert tr.row_label(3, "posX", 0.4567) == "z3: posX 0.46"
    with pytest.raises(ValueError, match="factor_names"):
        tr.latent_factor_scores(codes, f, ["a"])
    with pytest.raises(TypeError, match="integer"):
        tr.latent_factor_scores(codes, f.astype(float))
    with pytest.raises(ValueError, match="best_score"):
        tr.order_latents([float("nan")])


def test_spread_bases_and_traversal_values():
    f = np.array([[0, 0], [1, 0], [9, 0], [5, 0], [9, 9], [0, 9]])
    # scaled by sizes - 1 = 9: start (0, 0); farthest (9, 9); then (9, 0) and (0, 9) tie at 1 -> first index
    assert tr.spread_bases(f, 4, sizes=[10, 10]) == [0, 4, 2, 5]
    assert tr.spread_bases(f, 1, start=3) == [3]
    with pytest.raises(ValueError, match="exceeds"):
        tr.spread_bases(f, 7)
    codes = torch.randn(1001, 3, generator=torch.Generator().manual_seed(0))
    v = tr.traversal_values(codes, 5, q=0.1)
    lo = np.quantile(codes.numpy().astype(np.float64), 0.1, axis=0)
    hi = np.quantile(codes.numpy().astype(np.float64), 0.9, axis=0)
    np.testing.assert_allclose(v.numpy(), (lo[:, None] + (hi - lo)[:, None] * np.linspace(0, 1, 5)[None]), rtol=1e-5)
    with pytest.raises(ValueError, match="num"):
        tr.traversal_values(codes, 1)
    with pytest.raises(ValueError, match="q must"):
        tr.traversal_values(codes, 3, q=0.5)


def test_labelled_rows_and_upscaling(tmp_path):
    assert (legible_scale(32), legible_scale(16), legible_scale(64), legible_scale(7)) == (4, 8, 4, 19)
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    p = save_image(x, tmp_path / "s.png", nrow=3, padding=1, value_range=(-1, 1), scale=4)
    small = np.asarray(Image.open(save_image(x, tmp_path / "s1.png", nrow=3, padding=1, value_range=(-1, 1))))
    big = np.asarray(Image.open(p))
    assert big.shape[:2] == (4 * small.shape[0], 4 * small.shape[1])
    np.testing.assert_array_equal(big[::4, ::4], small)  # nearest-neighbour: every 4th pixel is the original
    rows = torch.rand(2, 6, 1, 8, 8) * 2 - 1
    q = labelled_rows(rows, tmp_path / "t.png", row_labels=["z0: posX 0.50", "z1: scale 0.10"], group_size=3,
                      group_labels=["a", "b"], title="t", scale=4, padding=1, group_gap=6, font_size=12)
    im = np.asarray(Image.open(q).convert("L"))
    # two groups of 3 x (8 + 1) + 1 pixels wide, 2 x 9 + 1 tall, x4; 6 x 4 px between the groups
    assert im.shape[0] > 4 * 19 and im.shape[1] > 2 * 4 * 28 + 24
    with pytest.raises(ValueError, match="row_labels"):
        labelled_rows(rows, tmp_path / "u.png", row_labels=["a"])
    with pytest.raises(ValueError, match="group_size"):
        labelled_rows(rows, tmp_path / "u.png", row_labels=["a", "b"], group_size=4)


def test_prior_decoder_reads_z_alone():
    """Decoding from the prior state is a function of z alone: a code decodes to the same image wherever it
    sits in the batch and on every call (no sender noise), matching ParamReL.decode from the prior state."""
    from diffrep.methods.paramrel import ReverseSample
    from helpers import tiny_paramrel

    m = tiny_paramrel(latent=4, steps=3).eval()
    dec = tr.prior_decoder(m)
    z = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    a = dec(z)
    b = dec(torch.stack([z[2], z[0], z[1], z[0]]))
    assert a.shape == (3, 1, 8, 8) and set(a.unique().tolist()) <= {-1.0, 1.0}
    torch.testing.assert_close(b[1], a[0])
    torch.testing.assert_close(b[3], a[0])
    torch.testing.assert_close(b[0], a[2])
    prior = m.flow.prior((3, 1, 8, 8))
    torch.testing.assert_close(a, m.decode(ReverseSample(z[None].expand(4, -1, -1), prior)))
    assert tr.prior_decoder(m, 2)(z).shape == (3, 1, 8, 8)
    with pytest.raises(ValueError, match="codes must be"):
        dec(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="num_steps"):
        tr.prior_decoder(m, 0)


def test_bounds_that_mutation_testing_found_untested():
    """Values above the range weigh as the top of the range (clamped), whatever the scaling; input shapes at
    the edges; basis spreading scales factor j by sizes_j - 1 (a binary factor's two classes are 1 apart)."""
    img = -torch.ones(1, 1, 4, 8)
    img[0, 0, 1, 1] = 1.0
    img[0, 0, 1, 6] = 1.5  # above the range: clamped to weight 1, as the pixel at x = 1.5
    torch.testing.assert_close(tr.image_centroids(img)[0], torch.tensor([4.0, 1.5], dtype=torch.float64))
    v = tr.traversal_values(torch.arange(5.0)[:, None], 3, q=0.0)  # one latent is enough
    torch.testing.assert_close(v, torch.tensor([[0.0, 2.0, 4.0]]))
    for bad in (torch.zeros(5, 0), torch.zeros(1, 3)):
        with pytest.raises(ValueError, match="codes must be"):
            tr.traversal_values(bad, 3)
    assert tr.spread_bases(np.array([[0, 0], [1, 0], [0, 6]]), 2, sizes=[2, 10]) == [0, 1]
    with pytest.raises(ValueError, match="sizes"):
        tr.spread_bases(np.array([[0, 0], [1, 0]]), 2, sizes=[2, 0])
    with pytest.raises(ValueError, match="exceeds the 2 examples"):
        tr.spread_bases(np.array([[0, 0, 0], [1, 0, 0]]), 3)
    with pytest.raises(ValueError, match="spread"):
        tr.order_latents([0.1, 0.2], [1.0, 2.0, 3.0])


def test_centroid_shifts_reads_each_latents_own_values_and_checks_decode():
    base = torch.zeros(1, 3)
    # values per latent ([L, V]) differ: z0 sweeps [-1, 1] (8 px), z2 sweeps [0, 2] (6 px)
    values = torch.tensor([[-1.0, 1.0], [5.0, 5.0], [0.0, 2.0]])
    r = tr.centroid_shifts(fake_decoder, base, [2, 0], values)
    assert r["per_latent"][0]["dx"] == pytest.approx(8.0) and r["per_latent"][2]["dy"] == pytest.approx(6.0)
    with pytest.raises(ValueError, match="decode must return"):  # right length, wrong rank
        tr.centroid_shifts(lambda c: torch.zeros(len(c), 4, 4), base, [0], values)
    with pytest.raises(ValueError, match="codes must be"):
        tr.traversal_values(torch.zeros(5), 3)
    codes = torch.randn(1001, 2, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(tr.traversal_values(codes, 4), tr.traversal_values(codes, 4, q=0.02))  # default q
