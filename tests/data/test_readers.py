"""File readers on tiny fixtures written in the original formats: Shapes3D, MPI3D, Cars3D, MNIST,
CIFAR-10, CelebA, image folders."""

import gzip
import pickle
import struct

import numpy as np
import pytest
from PIL import Image

from diffrep.data.cars3d import Cars3D
from diffrep.data.celeba import ATTRIBUTES, DIFFAE_BOX, CelebA
from diffrep.data.cifar10 import CIFAR10
from diffrep.data.image_folder import ImageFolder
from diffrep.data.mnist import MNIST, bfn_validation_split, read_idx
from diffrep.data.mpi3d import MPI3D, infer_layout
from diffrep.data.shapes3d import Shapes3D, Shapes3DFile, hue_to_rgb


def _stamp(n, shape):
    """uint8 images whose first pixel row encodes the index (little-endian bytes)."""
    imgs = np.zeros((n,) + shape, np.uint8)
    imgs[:, 0, 0, 0] = np.arange(n) % 256
    imgs[:, 0, 1, 0] = np.arange(n) // 256
    return imgs


def _index_of(imgs):
    return imgs[:, 0, 0, 0].astype(int) + 256 * imgs[:, 0, 1, 0].astype(int)


# ---------------- Shapes3D ----------------

S3_SIZES = (2, 2, 3, 2, 4, 3)


def _s3_labels():
    grids = [np.arange(2) / 10, np.arange(2) / 10, np.arange(3) / 10, np.linspace(0.75, 1.25, 8)[:2], np.arange(4.0),
             np.linspace(-30, 30, 15)[:3]]
    n = int(np.prod(S3_SIZES))
    cls = np.stack(np.unravel_index(np.arange(n), S3_SIZES), 1)
    return np.stack([grids[k][cls[:, k]] for k in range(6)], 1), cls


def test_shapes3d_h5(tmp_path):
    h5py = pytest.importorskip("h5py")
    labels, cls = _s3_labels()
    imgs = _stamp(len(labels), (64, 64, 3))
    perm = np.random.default_rng(1).permutation(len(labels))
    p = tmp_path / "3dshapes.h5"
    with h5py.File(p, "w") as f:
        f.create_dataset("images", data=imgs[perm])
        f.create_dataset("labels", data=labels[perm])
    d = Shapes3DFile(p)
    assert d.factor_names[0] == "floor_hue" and d.factor_sizes == S3_SIZES
    assert np.allclose(d.factor_values[5], [-30, -30 + 60 / 14, -30 + 120 / 14])
    idx = np.array([5, 0, 100, 5, len(d) - 1])
    assert np.array_equal(_index_of(d.images(idx)), idx)
    assert np.array_equal(d.index_to_factors(idx), cls[idx])
    x, y = d[100]
    assert x.shape == (3, 64, 64) and y.tolist() == cls[100].tolist()
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f.create_dataset("images", data=imgs)
        f.create_dataset("label", data=labels)
    with pytest.raises(ValueError, match="missing dataset"):
        Shapes3DFile(tmp_path / "bad.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match="HDF5"):
        Shapes3DFile(tmp_path / "junk.h5")


def test_shapes3d_npz_variants(tmp_path):
    labels, cls = _s3_labels()
    imgs = _stamp(len(labels), (64, 64, 3))
    flat = tmp_path / "flat.npz"
    np.savez(flat, images=imgs, labels=labels)
    axes = tmp_path / "axes.npz"
    np.savez_compressed(axes, images=imgs.reshape(S3_SIZES + (64, 64, 3)), labels=labels.reshape(S3_SIZES + (6,)))
    for p in (flat, axes):
        d = Shapes3DFile(p)
        assert np.array_equal(_index_of(d.images(np.arange(len(d)))), np.arange(len(d)))
    bad = tmp_path / "partial.npz"
    np.savez(bad, images=imgs[:-1], labels=labels[:-1])
    with pytest.raises(ValueError, match="full factor grid"):
        Shapes3DFile(bad)
    bad = tmp_path / "mismatch.npz"
    np.savez(bad, images=imgs[:-1], labels=labels)
    with pytest.raises(ValueError, match="label rows"):
        Shapes3DFile(bad)


def test_shapes3d_procedural_semantics():
    d = Shapes3D()
    assert d.factor_sizes == (10, 10, 10, 8, 4, 15) and len(d) == 480000
    f = np.array([[0, 6, 3, 7, 2, 7], [5, 6, 3, 7, 2, 7], [0, 6, 3, 0, 2, 7], [0, 6, 3, 7, 0, 7]])
    img = d.render(f).astype(float) / 255
    # floor colour at the bottom-left corner is the floor hue (full saturation), shaded
    for k in range(2):
        c = img[k, 63, 1]
        assert np.allclose(c / c.max(), hue_to_rgb(d.factor_values[0][f[k, 0]]), atol=0.02)
    assert np.allclose(img[0, 2, 2] * 255, [152, 221, 249], atol=1)  # sky
    wall = img[0, 20, 62]
    assert np.allclose(wall / wall.max(), hue_to_rgb(0.6), atol=0.02)
    # object hue at the object's centre; larger scale -> more object pixels
    obj = img[0, 47, 32]
    assert np.allclose(obj / obj.max(), hue_to_rgb(0.3), atol=0.02)
    mask = lambda im: np.all(np.abs(im / np.maximum(im.max(-1, keepdims=True), 1e-9) - hue_to_rgb(0.3)) < 0.02, -1)
    assert mask(img[0]).sum() > mask(img[2]).sum() * 1.5
    assert not np.array_equal(img[0], img[3])  # shape classes differ
    assert d.images([7])[0].dtype == np.uint8


# ---------------- MPI3D ----------------

def test_mpi3d_layout_and_memmap(tmp_path):
    assert infer_layout(1036800) == (6, 6, 2, 3, 3, 40, 40) and infer_layout(460800) == (4, 4, 2, 3, 3, 40, 40)
    with pytest.raises(ValueError, match="no known layout"):
        infer_layout(1000)
    sizes = (2, 2, 2, 3, 3, 2, 2)
    n = int(np.prod(sizes))
    imgs = _stamp(n, (8, 8, 3))
    p = tmp_path / "mpi3d_toy.npz"
    np.savez(p, images=imgs)
    with pytest.raises(ValueError, match="no known layout"):
        MPI3D(p)
    d = MPI3D(p, factor_sizes=sizes)
    idx = np.array([0, 77, n - 1])
    assert np.array_equal(_index_of(d.images(idx)), idx)
    assert isinstance(d._data(), np.memmap)
    assert d.index_to_factors([n - 1]).tolist() == [[1, 1, 1, 2, 2, 1, 1]]
    pc = tmp_path / "c.npz"
    np.savez_compressed(pc, images=imgs)
    assert np.array_equal(_index_of(MPI3D(pc, factor_sizes=sizes).images(idx)), idx)  # small: decompressed
    assert np.array_equal(_index_of(MPI3D(pc, factor_sizes=sizes, in_memory=True).images(idx)), idx)
    np.savez(tmp_path / "k.npz", imgs=imgs)
    with pytest.raises(ValueError, match="no array 'images'"):
        MPI3D(tmp_path / "k.npz", factor_sizes=sizes)
    raw = p.read_bytes()
    (tmp_path / "t.npz").write_bytes(raw[:-2000])
    with pytest.raises(ValueError):
        MPI3D(tmp_path / "t.npz", factor_sizes=sizes)


# ---------------- Cars3D ----------------

def test_cars3d_list_order(tmp_path):
    from scipy.io import savemat

    names = ["car_b_mesh", "car_a_mesh"]
    (tmp_path / "list.txt").write_text("\n".join(names) + "\n")
    for k, n in enumerate(names):
        im = np.zeros((16, 16, 3, 24, 4), np.uint8)
        for a in range(24):
            for e in range(4):
                im[:, :, 0, a, e] = 10 * k + 1
                im[:, :, 1, a, e] = a * 10
                im[:, :, 2, a, e] = e * 60
        savemat(tmp_path / f"{n}.mat", {"im": im})
    d = Cars3D(tmp_path, size=8)
    assert d.factor_names == ("elevation", "azimuth", "object") and d.factor_sizes == (4, 24, 2)
    f = np.array([[3, 5, 0], [1, 23, 1]])
    img = d.images(d.factors_to_index(f))
    assert img.shape == (2, 8, 8, 3)
    assert img[0, 4, 4].tolist() == [1, 50, 180] and img[1, 4, 4].tolist() == [11, 230, 60]
    savemat(tmp_path / "car_a_mesh.mat", {"img": np.zeros(3)})
    with pytest.raises(ValueError, match="'im'"):
        Cars3D(tmp_path, size=8).images([1])
    (tmp_path / "car_a_mesh.mat").unlink()
    with pytest.raises(FileNotFoundError, match="car_a_mesh.mat"):
        Cars3D(tmp_path)


# ---------------- MNIST ----------------

def _idx_bytes(arr):
    code = {np.uint8: 0x08, np.int32: 0x0C}[arr.dtype.type]
    head = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">I", s) for s in arr.shape)
    return head + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx(tmp_path, gz):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    imgs = np.random.default_rng(0).integers(0, 256, (10, 28, 28), dtype=np.uint8)
    labels = np.arange(10, dtype=np.uint8)[::-1].copy()
    for name, arr in (("t10k-images-idx3-ubyte", imgs), ("t10k-labels-idx1-ubyte", labels)):
        data = _idx_bytes(arr)
        if gz:
            (raw / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (raw / name).write_bytes(data)
    d = MNIST(tmp_path, split="test", item_format="uint8")
    assert len(d) == 10 and d.labels.tolist() == labels.tolist()
    x, y = d[3]
    assert x.shape == (1, 28, 28) and np.array_equal(x[0].numpy(), imgs[3]) and int(y) == 6
    b = MNIST(tmp_path, split="test", binarize="dynamic", seed=1)
    a1 = b.images([2, 3])
    assert np.array_equal(a1, MNIST(tmp_path, split="test", binarize="dynamic", seed=1).images([2, 3]))
    b.set_epoch(1)
    assert not np.array_equal(a1, b.images([2, 3]))
    assert b.describe()["binarize"] == "dynamic"
    with pytest.raises(FileNotFoundError, match="mnist.*train-images-idx3-ubyte"):
        MNIST(tmp_path, split="train")


def test_idx_errors(tmp_path):
    arr = np.zeros((4, 28, 28), np.uint8)
    p = tmp_path / "x"
    p.write_bytes(_idx_bytes(arr)[:-5])
    with pytest.raises(ValueError, match="needs"):
        read_idx(p)
    p.write_bytes(b"\x12\x34\x08\x03" + b"\0" * 12)
    with pytest.raises(ValueError, match="magic"):
        read_idx(p)
    p.write_bytes(gzip.compress(_idx_bytes(np.arange(6, dtype=np.int32))))
    assert read_idx(p).tolist() == list(range(6))


def test_bfn_split():
    tr, va = bfn_validation_split()
    assert len(tr) == 59400 and len(va) == 600 and len(np.union1d(tr, va)) == 60000


# ---------------- CIFAR-10 ----------------

def test_cifar10_pickle(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    hwc = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    data = hwc.transpose(0, 3, 1, 2).reshape(3, 3072)  # 1024 R, 1024 G, 1024 B
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": data, b"labels": [3, 1, 4], b"batch_label": b"testing batch 1 of 1"}, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                                     "truck"]}, f)
    d = CIFAR10(tmp_path, split="test", item_format="uint8")
    assert np.array_equal(d.images([0, 1, 2]), hwc) and d.labels.tolist() == [3, 1, 4]
    x, y = d[2]
    assert x.shape == (3, 32, 32) and np.array_equal(x.permute(1, 2, 0).numpy(), hwc[2]) and int(y) == 4
    assert d.classes[3] == "cat"
    assert data[0, 0] == hwc[0, 0, 0, 0] and data[0, 1024] == hwc[0, 0, 0, 1]
    with pytest.raises(FileNotFoundError, match="data_batch_1"):
        CIFAR10(tmp_path, split="train")
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": data[:, :100], "labels": [0, 0, 0]}, f)
    with pytest.raises(ValueError, match="3072"):
        CIFAR10(tmp_path, split="test")


# ---------------- CelebA ----------------

def _celeba(tmp_path):
    img_dir = tmp_path / "img_align_celeba"
    img_dir.mkdir()
    names = [f"{i:06d}.jpg" for i in (1, 2, 3)]
    rng = np.random.default_rng(0)
    attrs = rng.choice([-1, 1], size=(3, 40))
    for k, n in enumerate(names):
        a = np.zeros((218, 178, 3), np.uint8)
        a[57:185, 25:153] = 40 * (k + 1)  # the DiffAE box
        Image.fromarray(a).save(img_dir / n, quality=100)
    lines = ["3", " ".join(ATTRIBUTES)] + [f"{n} " + "  ".join(f"{v:2d}" for v in row) for n, row in zip(names, attrs)]
    (tmp_path / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg 0\n000003.jpg 2\n")
    return attrs


def test_celeba(tmp_path):
    attrs = _celeba(tmp_path)
    d = CelebA(tmp_path, split="train", crop="diffae", item_format="uint8")
    assert len(d) == 2 and d.target_names[20] == "Male"
    x, y = d[1]
    assert x.shape == (3, 64, 64) and y.tolist() == ((attrs[1] + 1) // 2).tolist()
    assert abs(int(x[0, 32, 32]) - 80) <= 2 and abs(int(x[0, 0, 0]) - 80) <= 3  # the box is filled
    t = CelebA(tmp_path, split="test", crop="center")
    assert len(t) == 1 and t.images([0]).shape == (1, 64, 64, 3)
    c = t.images([0])[0, :, :, 0].astype(int)
    # centre crop of the resized 64x78 image: the box covers rows ~(57/218*78-7) .. and leaves a dark top rim
    assert c[0, 32] < 20 and abs(c[32, 32] - 120) <= 3
    assert len(CelebA(tmp_path, split="all", crop="none")) == 3
    assert CelebA(tmp_path, split="all", crop="none").images([0]).shape == (1, 218, 178, 3)
    assert DIFFAE_BOX == (25, 57, 153, 185)
    (tmp_path / "list_eval_partition.txt").unlink()
    with pytest.raises(FileNotFoundError, match="list_eval_partition.txt"):
        CelebA(tmp_path, split="train")
    txt = (tmp_path / "list_attr_celeba.txt").read_text().replace("\n000003.jpg", "\n000003.jpg 1")
    (tmp_path / "list_attr_celeba.txt").write_text(txt)
    with pytest.raises(ValueError, match="41 values|expected 40"):
        CelebA(tmp_path, split="all")


# ---------------- image folder ----------------

def test_image_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    Image.fromarray(np.full((100, 80, 3), 200, np.uint8)).save(tmp_path / "sub" / "b.png")
    Image.fromarray(np.full((64, 64, 3), 10, np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "notes.txt").write_text("x")
    d = ImageFolder(tmp_path, size=32, item_format="uint8")
    assert [p.name for p in d.files] == ["a.png", "b.png"]
    x, y = d[1]
    assert x.shape == (3, 32, 32) and int(x[0, 5, 5]) == 200 and y.numel() == 0
    (tmp_path / "c.jpg").write_bytes(b"garbage")
    d2 = ImageFolder(tmp_path, size=32)
    with pytest.raises(ValueError, match="c.jpg"):
        d2.images([[p.name for p in d2.files].index("c.jpg")])
    with pytest.raises(FileNotFoundError):
        ImageFolder(tmp_path / "missing")
