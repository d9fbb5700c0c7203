"""Faithfulness of the ground-truth readers against the ORIGINAL published file formats (docs/data.md).

Each fixture is written here in the original layout (keys, dtypes, axis order) with hand-computed
expected factors and images: dSprites npz (deepmind/dsprites-dataset), 3dshapes.h5 with the real value
grids and the real 480,000-row layout, MPI3D npz with the real 1,036,800 / 460,800 layouts (1x1 images
so the files stay small), and Cars3D MATLAB files (H, W, 3, 24 azimuths, 4 elevations).
"""

import pickle

import numpy as np
import pytest

from diffrep.data import load
from diffrep.data.cars3d import Cars3D
from diffrep.data.dsprites import DSpritesFile
from diffrep.data.mpi3d import MPI3D
from diffrep.data.shapes3d import Shapes3DFile


def _stamp_rgb(n):
    """(n, 1, 1, 3) uint8 images holding their own row number in 24 bits (R low byte)."""
    i = np.arange(n)
    return np.stack([i % 256, (i // 256) % 256, i // 65536], 1).astype(np.uint8).reshape(n, 1, 1, 3)


def _row_of(imgs):
    imgs = imgs.reshape(len(imgs), -1)[:, :3].astype(np.int64)
    return imgs[:, 0] + 256 * imgs[:, 1] + 65536 * imgs[:, 2]


# --------------------------------------------------------------------------------------------------
# dSprites: dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz
# --------------------------------------------------------------------------------------------------

def _dsprites_npz(path, sizes=(1, 3, 2, 3, 2, 2)):
    """A sub-grid of the real file: the real value grids restricted to the first classes, rows in the
    published order (posY fastest), imgs uint8 {0, 1}, metadata a pickled dict (protocol 2)."""
    full = [np.array([1.0]), np.array([1.0, 2.0, 3.0]), np.linspace(0.5, 1, 6), np.linspace(0, 2 * np.pi, 40),
            np.linspace(0, 1, 32), np.linspace(0, 1, 32)]
    n = int(np.prod(sizes))
    classes = np.zeros((n, 6), np.int64)
    # hand-written odometer (not numpy's unravel_index): the last factor turns fastest
    cur = [0] * 6
    for r in range(n):
        classes[r] = cur
        for k in range(5, -1, -1):
            cur[k] += 1
            if cur[k] < sizes[k]:
                break
            cur[k] = 0
    values = np.stack([full[k][classes[:, k]] for k in range(6)], 1)
    imgs = np.zeros((n, 64, 64), np.uint8)
    for r in range(n):  # row r lights the pixels of its binary digits along the top row
        imgs[r, 0, :12] = [(r >> b) & 1 for b in range(12)]
    meta = {"latents_sizes": np.array(sizes), "latents_names": ("color", "shape", "scale", "orientation", "posX",
                                                                  "posY"),
            "latents_possible_values": {"scale": full[2][: sizes[2]]}, "date": "April 2017", "version": 1}
    np.savez_compressed(path, imgs=imgs, latents_classes=classes, latents_values=values,
                        metadata=np.array(pickle.loads(pickle.dumps(meta, protocol=2)), dtype=object))
    return classes, values, imgs


def test_dsprites_npz_rows_classes_values(tmp_path):
    p = tmp_path / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
    classes, values, imgs = _dsprites_npz(p)
    d = load("dsprites", root=tmp_path, item_format="01")
    assert isinstance(d, DSpritesFile)
    # disentanglement_lib dsprites_full: color dropped, 5 factors in file order
    assert d.factor_names == ("shape", "scale", "orientation", "posX", "posY")
    assert d.factor_sizes == (3, 2, 3, 2, 2)
    # bases by hand: posY 1, posX 2, orientation 4, scale 12, shape 24
    assert d.factor_bases.tolist() == [24, 12, 4, 2, 1]
    f = np.array([[2, 1, 2, 1, 0], [1, 0, 1, 0, 1], [0, 0, 0, 0, 0]])
    rows = np.array([2 * 24 + 12 + 2 * 4 + 2, 24 + 4 + 1, 0])
    assert d.factors_to_index(f).tolist() == rows.tolist()
    obs = d.sample_observations_from_factors(f, np.random.RandomState(0))
    assert obs.dtype == np.float32 and obs.shape == (3, 64, 64, 1)  # HWC, one channel
    assert np.array_equal(obs[..., 0], imgs[rows].astype(np.float32))  # {0, 1}, not /255
    # targets are the integer classes (what metrics receive), the values are the physical grid
    _, y = d[int(rows[0])]
    assert y.dtype.is_floating_point is False and y.tolist() == [2, 1, 2, 1, 0]
    assert np.allclose(d.factor_values[1], [0.5, 0.6])
    assert np.allclose(d.factor_values[2], [0, 2 * np.pi / 39, 4 * np.pi / 39])
    assert np.allclose(d.factor_values[3], [0, 1 / 31]) and np.allclose(d.factor_values[0], [1, 2, 3])
    assert np.allclose(d.factor_classes_to_values(f[:1]), [[3.0, 0.6, 4 * np.pi / 39, 1 / 31, 0.0]])
    # keep_color exposes the 6 file factors with the same flat index
    d6 = DSpritesFile(p, keep_color=True, read_metadata=True)
    assert d6.factor_names[0] == "color" and d6.factors_to_index([[0, 2, 1, 2, 1, 0]]).tolist() == [rows[0]]


def test_dsprites_sampling_matches_disentanglement_lib_stream():
    # SplitDiscreteStateSpace.sample_latent_factors: factor by factor, random_state.randint(size_i, size=num)
    from diffrep.data.dsprites import DSprites

    d = DSprites(cache=False)
    ours = d.sample_factors(50, np.random.RandomState(7))
    rs = np.random.RandomState(7)
    ref = np.stack([rs.randint(s, size=50) for s in (3, 6, 40, 32, 32)], 1)
    assert ours.dtype == np.int64 and np.array_equal(ours, ref)


# --------------------------------------------------------------------------------------------------
# Shapes3D: 3dshapes.h5, the full 480,000-row layout
# --------------------------------------------------------------------------------------------------

SHAPES3D_VALUES = [np.arange(10) / 10, np.arange(10) / 10, np.arange(10) / 10, np.linspace(0.75, 1.25, 8),
                   np.arange(4.0), np.linspace(-30, 30, 15)]


@pytest.fixture(scope="module")
def shapes3d_h5(tmp_path_factory):
    h5py = pytest.importorskip("h5py")
    sizes = (10, 10, 10, 8, 4, 15)
    # labels built with meshgrid in 'ij' order = row-major over the factors, orientation fastest
    grids = np.meshgrid(*SHAPES3D_VALUES, indexing="ij")
    labels = np.stack([g.reshape(-1) for g in grids], 1).astype(np.float64)
    assert labels.shape == (480000, 6) and np.prod(sizes) == 480000
    p = tmp_path_factory.mktemp("s3d") / "3dshapes.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("images", data=_stamp_rgb(480000))
        f.create_dataset("labels", data=labels)
    return p, labels


def test_shapes3d_real_layout_values_to_classes(shapes3d_h5):
    p, labels = shapes3d_h5
    d = Shapes3DFile(p, in_memory=True)
    assert d.factor_names == ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
    assert d.factor_sizes == (10, 10, 10, 8, 4, 15) and len(d) == 480000
    assert d.factor_bases.tolist() == [48000, 4800, 480, 60, 15, 1]
    for got, want in zip(d.factor_values, SHAPES3D_VALUES):
        assert np.allclose(got, want)
    # labels hold VALUES; the classes are their ranks: orientation -30 deg is class 0, +30 class 14
    f = np.array([[9, 0, 3, 7, 2, 14], [0, 0, 0, 0, 0, 0], [1, 2, 3, 4, 3, 5]])
    rows = np.array([9 * 48000 + 3 * 480 + 7 * 60 + 2 * 15 + 14, 0, 48000 + 2 * 4800 + 3 * 480 + 4 * 60 + 3 * 15 + 5])
    assert d.factors_to_index(f).tolist() == rows.tolist()
    assert np.array_equal(_row_of(d.images(rows)), rows)
    assert np.allclose(labels[rows[0]], [0.9, 0.0, 0.3, 1.25, 2.0, 30.0])
    assert np.allclose(labels[rows[2]], [0.1, 0.2, 0.3, 0.75 + 4 * 0.5 / 7, 3.0, -30 + 5 * 60 / 14])
    # the README's reshape semantics: images.reshape(10, 10, 10, 8, 4, 15, ...)[f] is the image of f
    cube = _stamp_rgb(480000).reshape(10, 10, 10, 8, 4, 15, 3)
    assert np.array_equal(d.images(rows)[:, 0, 0], cube[tuple(f.T)])
    obs = d.sample_observations_from_factors(f[:1], np.random.RandomState(0))
    assert obs.dtype == np.float32 and np.allclose(obs[0, 0, 0], d.images(rows[:1])[0, 0, 0] / 255.0)
    _, y = d[int(rows[2])]
    assert y.tolist() == f[2].tolist()


# --------------------------------------------------------------------------------------------------
# MPI3D: mpi3d_{toy,realistic,real}.npz, key 'images' (N, 64, 64, 3), reshape [6,6,2,3,3,40,40,...]
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n,sizes,name", [(1036800, (6, 6, 2, 3, 3, 40, 40), "mpi3d_real"),
                                           (460800, (4, 4, 2, 3, 3, 40, 40), "mpi3d_toy")])
def test_mpi3d_layout_from_n_and_row_major_index(tmp_path, n, sizes, name):
    sub = tmp_path / name
    sub.mkdir()
    np.savez(sub / f"{name}.npz", images=_stamp_rgb(n))  # np.savez: stored, as the release
    d = load(name, root=tmp_path)  # disentanglement_lib layout root/<name>/<name>.npz
    assert isinstance(d, MPI3D) and d.factor_sizes == sizes
    assert d.factor_names == ("object_color", "object_shape", "object_size", "camera_height", "background_color",
                              "horizontal_axis", "vertical_axis")
    if n == 1036800:
        assert d.factor_bases.tolist() == [172800, 28800, 14400, 4800, 1600, 40, 1]
    else:
        assert d.factor_bases.tolist() == [115200, 28800, 14400, 4800, 1600, 40, 1]
    f = np.array([[sizes[0] - 1, 2, 1, 2, 1, 39, 17], [0, 0, 0, 0, 0, 0, 1], [1, 0, 0, 0, 0, 1, 0]])
    rows = f @ d.factor_bases
    hand = [(sizes[0] - 1) * d.factor_bases[0] + 2 * 28800 + 14400 + 2 * 4800 + 1600 + 39 * 40 + 17, 1,
            d.factor_bases[0] + 40]
    assert rows.tolist() == hand
    obs = d.sample_observations_from_factors(f, np.random.RandomState(0))
    assert np.array_equal(_row_of(np.round(obs * 255).astype(np.uint8)), hand)
    cube = _stamp_rgb(n).reshape(sizes + (3,))
    assert np.array_equal(d.images(hand)[:, 0, 0], cube[tuple(f.T)])
    assert d.index_to_factors(hand).tolist() == f.tolist()


def test_mpi3d_realistic_name_and_file(tmp_path):
    np.savez(tmp_path / "mpi3d_realistic.npz", images=_stamp_rgb(1036800))
    d = load("mpi3d_realistic", root=tmp_path)
    assert d.name == "mpi3d_realistic" and len(d) == 1036800
    with pytest.raises(FileNotFoundError, match="mpi3d_real.npz"):
        load("mpi3d_real", root=tmp_path)


# --------------------------------------------------------------------------------------------------
# Cars3D: cars/*_mesh.mat with 'im' (H, W, 3, 24 azimuths, 4 elevations)
# --------------------------------------------------------------------------------------------------

def _car_im(k, h=16, w=16):
    """im[r, c, ch, a, e]: an asymmetric image (a bright row r=1 and column c=2 only) so transposes show."""
    im = np.zeros((h, w, 3, 24, 4), np.uint8)
    for a in range(24):
        for e in range(4):
            im[1, :, 0, a, e] = 200
            im[:, 2, 1, a, e] = 100 + a
            im[h - 1, w - 1, 2, a, e] = 10 * e + k + 1
    return im


def test_cars3d_mat_axes_without_list(tmp_path):
    from scipy.io import savemat

    cars = tmp_path / "cars"
    cars.mkdir()
    for k, name in enumerate(("car_002_mesh", "car_001_mesh")):  # written out of order on purpose
        savemat(cars / f"{name}.mat", {"im": _car_im(k)})
    d = load("cars3d", root=tmp_path, size=16)
    assert isinstance(d, Cars3D) and d.cars == ["car_001_mesh", "car_002_mesh"]  # sorted file names
    assert d.factor_names == ("elevation", "azimuth", "object") and d.factor_sizes == (4, 24, 2)
    assert d.factor_bases.tolist() == [48, 2, 1]
    f = np.array([[3, 5, 0], [1, 23, 1]])
    img = d.images(d.factors_to_index(f))
    assert img.shape == (2, 16, 16, 3)
    for (e, a, o), x in zip(f, img):
        k = 1 - o  # car_001_mesh was written second (k = 1)
        assert np.array_equal(x, _car_im(k)[:, :, :, a, e])  # no transpose: rows stay rows
        assert x[1, 7, 0] == 200 and x[7, 1, 0] == 0 and x[9, 2, 1] == 100 + a
        assert x[15, 15, 2] == 10 * e + k + 1


def test_cars3d_resize_is_disentanglement_lib_thumbnail(tmp_path):
    from PIL import Image
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    im = rng.integers(0, 256, (32, 32, 3, 24, 4), dtype=np.uint8)
    savemat(tmp_path / "car_001_mesh.mat", {"im": im})
    (tmp_path / "list.txt").write_text("car_001_mesh\n")
    d = Cars3D(tmp_path, size=16)
    got = d.images(d.factors_to_index([[2, 7, 0]]))[0]
    pic = Image.fromarray(np.ascontiguousarray(im[:, :, :, 7, 2]))
    pic.thumbnail((16, 16), Image.LANCZOS)  # disentanglement_lib: thumbnail((64, 64, 3), ANTIALIAS)
    assert np.array_equal(got, np.asarray(pic))
    assert np.allclose(d.sample_observations_from_factors([[2, 7, 0]])[0], np.asarray(pic) / 255.0)


def test_mpi3d_compressed_npz_is_read(tmp_path, monkeypatch):
    import diffrep.data.mpi3d as mpi3d_mod

    # np.savez_compressed writes the same keys: a valid npz of the format, read like the stored one
    np.savez_compressed(tmp_path / "mpi3d_toy.npz", images=_stamp_rgb(460800))
    d = load("mpi3d_toy", root=tmp_path)
    rows = np.array([0, 115200 * 3 + 40 * 39 + 39, 460799])
    assert np.array_equal(_row_of(d.images(rows)), rows)
    monkeypatch.setattr(mpi3d_mod, "AUTO_DECOMPRESS_BYTES", 1000)  # a large compressed file still needs in_memory
    with pytest.raises(ValueError, match="in_memory=True"):
        MPI3D(tmp_path / "mpi3d_toy.npz")
    assert len(MPI3D(tmp_path / "mpi3d_toy.npz", in_memory=True)) == 460800


def test_cars3d_list_names_with_extension_and_default_size(tmp_path):
    from scipy.io import savemat

    im = np.zeros((64, 64, 3, 24, 4), np.uint8)
    im[0, 63, 0] = 255  # top-right pixel red in every view
    for name in ("car_007_mesh", "car_003_mesh"):
        savemat(tmp_path / f"{name}.mat", {"im": im})
    (tmp_path / "list.txt").write_text("car_007_mesh.mat\ncar_003_mesh.mat\n")  # names with the extension
    d = Cars3D(tmp_path)
    assert d.cars == ["car_007_mesh", "car_003_mesh"] and d.size == 64
    assert d.observation_shape == (64, 64, 3)  # disentanglement_lib's data_shape [64, 64, 3]
    obs = d.sample_observations_from_factors([[3, 23, 1]])
    assert obs[0, 0, 63, 0] == 1.0 and obs.sum() == 1.0


def test_mpi3d_file_with_leading_factor_axes(tmp_path):
    sizes = (4, 4, 2, 3, 3, 40, 40)
    np.savez(tmp_path / "mpi3d_toy.npz", images=_stamp_rgb(460800).reshape(sizes + (1, 1, 3)))
    d = MPI3D(tmp_path / "mpi3d_toy.npz")
    assert d.factor_sizes == sizes and d.observation_shape == (1, 1, 3)
    rows = np.array([3 * 115200 + 2 * 28800 + 14400 + 2 * 4800 + 2 * 1600 + 39 * 40 + 39, 41])
    assert np.array_equal(_row_of(d.images(rows)), rows)
