"""The Shapes3D file reader against the published layout (3dshapes.h5: images uint8 (N, 64, 64, 3), labels
float64 (N, 6) factor values; docs/data.md#shapes3d): label kinds, where the file is looked for, and how images
are held (lazy h5 rows, a memory-mapped npz, in_memory copies). Found by mutation testing
(benches/results/mutation_gaps_2026-12-08.md)."""

import pickle

import numpy as np
import pytest
import torch

from diffrep.data.shapes3d import Shapes3D, Shapes3DFile, classes_from_labels, factor_values, find_file

SIZES = (2, 1, 1, 2, 2, 1)  # a small full grid, rows in the canonical order (floor_hue slowest)


def _labels():
    cls = np.stack(np.unravel_index(np.arange(int(np.prod(SIZES))), SIZES), 1)
    grids = [np.arange(10) / 10, np.arange(10) / 10, np.arange(10) / 10, np.linspace(0.75, 1.25, 8), np.arange(4.0),
             np.linspace(-30, 30, 15)]
    return np.stack([grids[k][cls[:, k]] for k in range(6)], 1)


def _images(n):
    imgs = np.zeros((n, 64, 64, 3), np.uint8)
    imgs[:, 0, 0, 0] = np.arange(n) + 1  # the row's number, to find it again
    return imgs


def test_label_kinds():
    labels = _labels()
    # integer labels are numbers too: their distinct values rank into classes
    cls, values = classes_from_labels((labels * 100).astype(np.int64), "f")
    assert cls.tolist() == classes_from_labels(labels, "f")[0].tolist()
    assert values[3].tolist() == [75, 82]  # 0.75 and 0.75 + 0.5/7 = 0.8214..., times 100, truncated
    for bad in (labels.astype(complex), labels > 0.5, labels.astype(str)):
        with pytest.raises(TypeError, match=r"labels: f: factor values must be real numbers"):
            classes_from_labels(bad, "f")


def test_find_file_looks_in_the_root_and_two_subfolders(tmp_path):
    assert find_file(tmp_path) is None
    for sub in ("shapes3d", "3dshapes", ""):  # each found; the earlier in the search order wins
        p = tmp_path / sub / "3dshapes.npz"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
        assert find_file(tmp_path) == p


def test_h5_rows_are_read_lazily_then_in_memory(tmp_path):
    h5py = pytest.importorskip("h5py")
    labels, imgs = _labels(), _images(8)
    p = tmp_path / "3dshapes.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("images", data=imgs)
        f.create_dataset("labels", data=labels)
    lazy = Shapes3DFile(p)
    idx = np.array([5, 1, 5, 7])
    assert lazy.images(idx)[:, 0, 0, 0].tolist() == [6, 2, 6, 8]
    assert lazy._arr is None  # only the asked rows were read
    handle = lazy._file
    lazy.images([0])
    assert lazy._file is handle  # one open file per process ...
    lazy._pid = -1  # ... reopened in another process (a DataLoader worker)
    lazy.images([0])
    assert lazy._file is not handle
    mem = Shapes3DFile(p, in_memory=True)
    assert mem.images(idx)[:, 0, 0, 0].tolist() == [6, 2, 6, 8]
    assert isinstance(mem._arr, np.ndarray) and mem._arr.shape == (8, 64, 64, 3)  # loaded once, whole


def test_npz_images_are_mapped_or_copied(tmp_path):
    labels, imgs = _labels(), _images(8)
    p = tmp_path / "3dshapes.npz"
    np.savez(p, images=imgs, labels=labels)  # uncompressed: the member can be memory-mapped
    lazy = Shapes3DFile(p)
    assert lazy.images([3, 0])[:, 0, 0, 0].tolist() == [4, 1]
    assert isinstance(lazy._arr, np.memmap)
    mem = Shapes3DFile(p, in_memory=True)
    assert mem.images([3, 0])[:, 0, 0, 0].tolist() == [4, 1]
    assert type(mem._arr) is np.ndarray and mem._arr.flags.c_contiguous


def test_published_factor_grids():
    # docs/data.md#shapes3d: hues k/10, scale linspace(0.75, 1.25, 8), shape 0..3, orientation linspace(-30, 30, 15)
    v = factor_values()
    for k in range(3):
        assert v[k].tolist() == [i / 10 for i in range(10)]
    np.testing.assert_allclose(v[3], [0.75 + i * 0.5 / 7 for i in range(8)], rtol=0, atol=1e-12)
    assert v[4].tolist() == [0.0, 1.0, 2.0, 3.0]
    np.testing.assert_allclose(v[5], [-30.0 + i * 60.0 / 14 for i in range(15)], rtol=0, atol=1e-12)
    x, _ = Shapes3D()[0]  # pm1 by default
    assert x.dtype == torch.float32 and x.shape == (3, 64, 64) and x.min() >= -1 and x.max() <= 1 and x.min() < 0


def test_labels_within_1e6_are_one_value():
    labels = _labels()
    labels[1::2, 0] += 4e-7  # rounding to 6 decimals merges them; 7 would not
    cls, values = classes_from_labels(labels, "f")
    assert values[0].size == 2 and cls[:, 0].max() == 1


def test_file_checks_name_the_file(tmp_path):
    h5py = pytest.importorskip("h5py")
    labels, imgs = _labels(), _images(8)
    with pytest.raises(FileNotFoundError, match=r"^path: .* does not exist \(expected a shapes3d file \(3dshapes\.h5, "
                                                r"3dshapes\.npz, look-at-object-room"):
        Shapes3DFile(tmp_path / "missing.npz")
    p = tmp_path / "x.hdf5"  # the .hdf5 suffix is HDF5 too; float32 labels are read as float64
    with h5py.File(p, "w") as f:
        f.create_dataset("images", data=imgs)
        f.create_dataset("labels", data=labels.astype(np.float32))
    d = Shapes3DFile(p)
    assert d.images([3])[0, 0, 0, 0] == 4 and all(v.dtype == np.float64 for v in d.factor_values)
    assert d.factor_values[0].tolist() == [0.0, 0.1]  # float32 0.1 widened, then rounded to 6 decimals: exactly 0.1
    with h5py.File(tmp_path / "g.h5", "w") as f:
        f.create_dataset("images", data=imgs)
        f.create_group("labels")
    with pytest.raises(ValueError, match=r"'labels' is an HDF5 group, expected a dataset"):
        Shapes3DFile(tmp_path / "g.h5")
    cases = {
        "grey": (imgs[..., :1], labels, r"images must be uint8 \(N, H, W, 3\), got uint8 \(8, 64, 64, 1\)"),
        "float": (imgs.astype(np.float32), labels, r"images must be uint8 \(N, H, W, 3\), got float32 \(8, 64, 64, 3\)"),
        "rows": (imgs, labels[:7], r"8 images but 7 label rows"),
        "nan": (imgs, np.where(np.arange(8)[:, None] == 2, np.nan, labels), r"labels contain non-finite values"),
        "grid": (imgs[:7], labels[:7], r"full factor grid"),
    }
    for name, (im, lab, why) in cases.items():
        q = tmp_path / f"{name}.npz"
        np.savez(q, images=im, labels=lab)
        with pytest.raises(ValueError, match=why) as err:
            Shapes3DFile(q)
        assert str(q) in str(err.value), name


def test_pickled_readers_drop_their_file_handles(tmp_path):
    h5py = pytest.importorskip("h5py")
    p = tmp_path / "3dshapes.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("images", data=_images(8))
        f.create_dataset("labels", data=_labels())
    lazy = Shapes3DFile(p)
    lazy.images([0])
    st = lazy.__getstate__()
    assert st["_file"] is None and st["_arr"] is None and st["path"] == p and lazy._file is not None
    back = pickle.loads(pickle.dumps(lazy))
    assert back.images([5])[0, 0, 0, 0] == 6
    mem = Shapes3DFile(p, in_memory=True)
    mem.images([0])
    assert mem.__getstate__()["_arr"] is mem._arr  # in memory: the images travel with it
    q = tmp_path / "3dshapes.npz"
    np.savez(q, images=_images(8), labels=_labels())
    mapped = Shapes3DFile(q)
    mapped.images([0])
    assert isinstance(mapped._arr, np.memmap) and mapped.__getstate__()["_arr"] is None  # the map is not copied
