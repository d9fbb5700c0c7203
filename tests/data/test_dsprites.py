"""dSprites: renderer semantics, the preview-animation regression, and the npz/hdf5 readers."""

from pathlib import Path

import numpy as np
import pytest

from diffrep.data.dsprites import DSprites, DSpritesFile, file_factor_values, render_dsprites

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def centroid(img):
    ii, jj = np.nonzero(img)
    return jj.mean(), ii.mean()


def test_posx_moves_centroid_right():
    # ellipse at orientation 0 is symmetric: centroid = centre (16 + 32 posX) - 0.5 pixel-centre offset
    f = np.array([[0, 1, 5, 0, kx, 10] for kx in (0, 10, 31)])
    imgs = render_dsprites(f)
    xs = [centroid(im)[0] + 0.5 for im in imgs]
    expected = [16 + 32 * k / 31 for k in (0, 10, 31)]
    assert np.allclose(xs, expected, atol=0.5)
    assert xs[2] - xs[0] == pytest.approx(32, abs=0.6)
    # posY moves down (rows), posY = 0 at the top
    ys = [centroid(im)[1] + 0.5 for im in render_dsprites(np.array([[0, 1, 5, 0, 5, 0], [0, 1, 5, 0, 5, 31]]))]
    assert ys[0] == pytest.approx(16, abs=0.5) and ys[1] == pytest.approx(48, abs=0.5)


def test_square_sides_and_binary():
    imgs = render_dsprites(np.array([[0, 0, s, 0, 0, 0] for s in range(6)]))  # integer centre (16, 16)
    assert set(np.unique(imgs)) == {0, 1} and imgs.dtype == np.uint8
    # docs/data.md#dsprites sanity: sides 10, 12, 14, 16, 18, 20 px
    sides = [int(im.any(0).sum()) for im in imgs]
    assert sides == [10, 12, 14, 16, 18, 20]
    assert [int(im.sum()) for im in imgs] == [s * s for s in sides]


def test_shapes_differ_and_heart_points_down():
    imgs = render_dsprites(np.array([[0, s, 5, 0, 15, 15] for s in range(3)]))
    assert not np.array_equal(imgs[0], imgs[1]) and not np.array_equal(imgs[1], imgs[2])
    ell = imgs[1]
    assert ell.any(0).sum() > ell.any(1).sum()  # ellipse wider than tall at orientation 0
    heart = imgs[2]
    rows = np.nonzero(heart.any(1))[0]
    widths = heart.sum(1)[rows]
    assert widths[: len(widths) // 3].max() > widths[-3:].max()  # lobes on top, tip at the bottom


def test_orientation_ends_coincide_and_rotation_ccw():
    f = np.array([[0, 2, 5, 0, 15, 15], [0, 2, 5, 39, 15, 15], [0, 1, 5, 10, 15, 15]])
    a, b, c = render_dsprites(f)
    assert np.array_equal(a, b)
    # ellipse rotated by 10 * 2pi/39 ~ 92 deg: now taller than wide
    assert c.any(1).sum() > c.any(0).sum()
    # CCW as displayed: at ~45 deg the ellipse's long axis runs bottom-left -> top-right
    d = render_dsprites(np.array([[0, 1, 5, 5, 15, 15]]))[0]
    ii, jj = np.nonzero(d)
    assert np.corrcoef(jj, ii)[0, 1] < -0.5


def test_render_validation():
    with pytest.raises(ValueError, match="out of range"):
        render_dsprites(np.array([[0, 3, 0, 0, 0, 0]]))
    with pytest.raises(ValueError, match="shape"):
        render_dsprites(np.zeros((2, 4), int))


def test_procedural_dataset_cache_and_items():
    d = DSprites(item_format="01")
    idx = np.array([5, 100000, 737279, 5])
    a = d.images(idx)
    assert a.shape == (4, 64, 64, 1) and a.dtype == np.uint8 and set(np.unique(a)) <= {0, 255}
    b = DSprites(cache=False).images(idx)
    assert np.array_equal(a, b) and np.array_equal(d.images(idx), a)
    x, y = d[100000]
    assert x.shape == (1, 64, 64) and set(x.unique().tolist()) <= {0.0, 1.0}
    assert y.tolist() == d.index_to_factors([100000])[0].tolist()


GIF_SEGMENTS = (
    [(k, (2, k, 0, 0, 0)) for k in range(6)] + [(18 + k, (2, 5, k, 0, 0)) for k in range(40)]
    + [(58 + k, (2, 5, 0, 0, k)) for k in range(32)] + [(90 + k, (2, 5, 0, k, 31)) for k in range(32)]
    + [(192 + k, (1, k, 0, 0, 0)) for k in range(6)] + [(210 + k, (1, 5, k, 0, 0)) for k in range(40)]
    + [(256 + k, (0, k, 0, 0, 0)) for k in range(6)] + [(274 + k, (0, 5, k, 0, 0)) for k in range(40)]
)


@pytest.mark.skipif(not (SHARED / "dsprites.gif").is_file(), reason="shared/data/dsprites.gif not present")
def test_renderer_matches_published_animation():
    from PIL import Image

    im = Image.open(SHARED / "dsprites.gif")
    frames = []
    for k, _ in GIF_SEGMENTS:
        im.seek(k)
        frames.append(np.asarray(im.convert("L")) > 127)
    frames = np.stack(frames)
    fac = np.array([f for _, f in GIF_SEGMENTS])
    ours = render_dsprites(fac).astype(bool)
    for shape, max_wrong_frac in ((0, 0.002), (1, 0.008), (2, 0.05)):
        m = fac[:, 0] == shape
        wrong = (ours[m] != frames[m]).sum()
        assert wrong / frames[m].sum() < max_wrong_frac, (shape, wrong)
    # square and ellipse: at most a few pixels wrong in any frame
    per = (ours != frames).reshape(len(fac), -1).sum(1)
    assert per[fac[:, 0] < 2].max() <= 4


# ---- the npz / hdf5 readers, on tiny fixtures in the original format ----

SIZES = (1, 3, 2, 2, 2, 3)


def _grid():
    n = int(np.prod(SIZES))
    classes = np.stack(np.unravel_index(np.arange(n), SIZES), 1).astype(np.int64)
    vals = file_factor_values()
    values = np.stack([vals[k][classes[:, k]] if SIZES[k] == len(vals[k]) else classes[:, k] * 0.5
                       for k in range(6)], 1).astype(np.float64)
    # images encode their own index: pixel (0, 0..) = binary digits of the row, all 0/1
    imgs = np.zeros((n, 64, 64), np.uint8)
    for i in range(n):
        imgs[i, 0, :8] = [(i >> b) & 1 for b in range(8)]
    return classes, values, imgs


def _decode(obs):
    bits = (obs[:, 0, :8, 0] > 0.5).astype(int)
    return (bits * (1 << np.arange(8))).sum(1)


def _write_npz(path, classes, values, imgs, compressed=True, metadata=True):
    meta = {"latents_sizes": np.array(SIZES), "latents_names": ("color", "shape", "scale", "orientation", "posX", "posY"),
            "title": "dSprites dataset"}
    kw = dict(imgs=imgs, latents_classes=classes, latents_values=values)
    if metadata:
        kw["metadata"] = np.array(meta, dtype=object)
    (np.savez_compressed if compressed else np.savez)(path, **kw)


@pytest.mark.parametrize("compressed", [True, False])
def test_npz_reader_factor_order(tmp_path, compressed):
    classes, values, imgs = _grid()
    p = tmp_path / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
    _write_npz(p, classes, values, imgs, compressed)
    d = DSpritesFile(p, read_metadata=True, item_format="01")
    assert d.factor_sizes == SIZES[1:] and d.factor_names[0] == "shape"
    idx = np.arange(len(d))
    assert np.array_equal(_decode(d.observations(idx)), idx)
    f = d.index_to_factors(idx)
    assert np.array_equal(f, classes[:, 1:])
    assert d.factor_values[0].tolist() == [1.0, 2.0, 3.0] and d.factor_values[1].tolist() == [0.0, 0.5]
    obs = d.sample_observations_from_factors(f[[7, 3]])
    assert _decode(obs).tolist() == [7, 3]
    x, y = d[7]
    assert y.tolist() == classes[7, 1:].tolist() and set(x.unique().tolist()) <= {0.0, 1.0}


def test_npz_reader_reorders_permuted_rows(tmp_path):
    classes, values, imgs = _grid()
    perm = np.random.default_rng(0).permutation(len(classes))
    p = tmp_path / "d.npz"
    _write_npz(p, classes[perm], values[perm], imgs[perm])
    d = DSpritesFile(p, keep_color=True)
    # canonical index k must give the image that was written for canonical row k
    assert np.array_equal(_decode(d.observations(np.arange(len(d)))), np.arange(len(d)))


def test_npz_reader_errors(tmp_path):
    classes, values, imgs = _grid()
    with pytest.raises(FileNotFoundError, match="dsprites.*dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"):
        DSpritesFile(tmp_path / "nope.npz")
    p = tmp_path / "partial.npz"
    _write_npz(p, classes[:-1], values[:-1], imgs[:-1])
    with pytest.raises(ValueError, match="full factor grid"):
        DSpritesFile(p)
    p = tmp_path / "dup.npz"
    c2 = classes.copy()
    c2[1] = c2[0]
    _write_npz(p, c2, values, imgs)
    with pytest.raises(ValueError, match="repeat"):
        DSpritesFile(p)
    p = tmp_path / "wrongkey.npz"
    np.savez(p, images=imgs, latents_classes=classes, latents_values=values)
    with pytest.raises(ValueError, match="no array 'imgs'"):
        DSpritesFile(p)
    p = tmp_path / "shape.npz"
    np.savez(p, imgs=imgs[:, :32], latents_classes=classes, latents_values=values)
    with pytest.raises(ValueError, match="expected"):
        DSpritesFile(p)
    p = tmp_path / "bad.npz"
    p.write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(ValueError, match="not a readable"):
        DSpritesFile(p)
    good = tmp_path / "good.npz"
    _write_npz(good, classes, values, imgs)
    trunc = tmp_path / "trunc.npz"
    trunc.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError):
        DSpritesFile(trunc)


def test_hdf5_reader(tmp_path):
    h5py = pytest.importorskip("h5py")
    classes, values, imgs = _grid()
    p = tmp_path / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5"
    with h5py.File(p, "w") as f:
        f.create_dataset("imgs", data=imgs, chunks=(1, 64, 64))
        f.create_dataset("latents/classes", data=classes)
        f.create_dataset("latents/values", data=values)
    d = DSpritesFile(p)
    assert np.array_equal(_decode(d.observations(np.arange(len(d)))), np.arange(len(d)))
    with h5py.File(tmp_path / "bad.hdf5", "w") as f:
        f.create_dataset("imgs", data=imgs)
    with pytest.raises(ValueError, match="missing dataset"):
        DSpritesFile(tmp_path / "bad.hdf5")


@pytest.mark.slow
def test_full_grid_render():
    d = DSprites()
    bits = d.render_all(workers=2)
    assert bits.shape == (737280, 512)
    idx = np.random.default_rng(0).integers(0, 737280, 200)
    assert np.array_equal(np.unpackbits(bits[idx], axis=1).reshape(-1, 64, 64),
                          render_dsprites(d._file_factors(idx)))
