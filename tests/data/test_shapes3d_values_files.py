"""The Shapes3D file reader against the published layout (3dshapes.h5: images uint8 (N, 64, 64, 3), labels
float64 (N, 6) factor values; docs/data.md#shapes3d): label kinds, where the file is looked for, and how images
are held (lazy h5 rows, a memory-mapped npz, in_memory copies). Found by mutation testing
(benches/results/mutation_gaps_2026-12-08.md)."""

import numpy as np
import pytest

from diffrep.data.shapes3d import Shapes3DFile, classes_from_labels, find_file

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
