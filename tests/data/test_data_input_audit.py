"""Regression tests of the data-reader input audit (2026-12-07): malformed files and option values that
were accepted silently or failed with an obscure numpy/h5py/scipy error. Each test names what happened
before the fix. Tiny fixture files are built in tmp_path; no real dataset is read."""

from __future__ import annotations

import numpy as np
import pytest

from diffrep.data import npzfile
from diffrep.data.dsprites import DSpritesFile

GRID = (1, 3, 2, 2, 2, 2)  # a tiny dSprites-like grid (color kept at 1 class so it can be dropped)


def _grid_classes(sizes=GRID) -> np.ndarray:
    n = int(np.prod(sizes))
    return np.stack(np.unravel_index(np.arange(n), sizes), axis=1).astype(np.int64)


def _dsprites_npz(path, classes=None, values=None, imgs=None):
    classes = _grid_classes() if classes is None else classes
    values = np.asarray(classes, dtype=np.float64) if values is None else values
    imgs = np.zeros((len(classes), 64, 64), np.uint8) if imgs is None else imgs
    np.savez(path, imgs=imgs, latents_classes=classes, latents_values=values)
    return path


def test_load_member_of_a_non_zip_file_names_the_file(tmp_path):
    # before: np.load fell through to its pickle path: "This file contains pickled (object) data ..."
    # without the file's name
    p = tmp_path / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
    p.write_text("not an archive")
    with pytest.raises(ValueError, match="not a readable .npz"):
        npzfile.load_member(p, "latents_classes")
    with pytest.raises(ValueError, match=str(p.name)):
        DSpritesFile(p)


def test_dsprites_non_integer_latents_classes_refused(tmp_path):
    # before: latents_classes were cast with astype(int64), so 0.5, 1.5, ... were truncated silently
    p = _dsprites_npz(tmp_path / "d.npz", classes=_grid_classes() + 0.5)
    with pytest.raises(ValueError, match="latents_classes must be whole numbers"):
        DSpritesFile(p)


def test_dsprites_latents_values_disagreeing_with_classes_refused(tmp_path):
    # before: the value grid took the last row of each class silently, whatever the other rows held
    classes = _grid_classes()
    values = classes.astype(np.float64)
    values[0, 1] = 7.0  # row 0 says shape class 0 has value 7, every other row says 0
    with pytest.raises(ValueError, match="latents_values column 1 disagrees"):
        DSpritesFile(_dsprites_npz(tmp_path / "d.npz", classes, values))
    ok = DSpritesFile(_dsprites_npz(tmp_path / "ok.npz"))
    np.testing.assert_array_equal(ok.factor_values[0], [0.0, 1.0, 2.0])  # shape values of the good file


def _dsprites_h5(path, imgs_dtype=np.uint8, imgs_group=False):
    h5py = pytest.importorskip("h5py")
    classes = _grid_classes()
    with h5py.File(path, "w") as f:
        if imgs_group:
            f.create_group("imgs")
        else:
            f["imgs"] = np.zeros((len(classes), 64, 64), imgs_dtype)
        f["latents/classes"] = classes
        f["latents/values"] = classes.astype(np.float64)
    return path


def test_dsprites_hdf5_checks_match_the_npz_reader(tmp_path):
    # before: the .hdf5 reader accepted float imgs (the .npz reader refuses them), ignored
    # read_metadata=True silently, and an 'imgs' group raised AttributeError ('Group' has no 'shape')
    assert len(DSpritesFile(_dsprites_h5(tmp_path / "ok.hdf5"))) == 48
    with pytest.raises(ValueError, match="imgs must be uint8, got float32"):
        DSpritesFile(_dsprites_h5(tmp_path / "f.hdf5", imgs_dtype=np.float32))
    with pytest.raises(ValueError, match="read_metadata=True needs the .npz"):
        DSpritesFile(tmp_path / "ok.hdf5", read_metadata=True)
    with pytest.raises(ValueError, match="'imgs' is an HDF5 group"):
        DSpritesFile(_dsprites_h5(tmp_path / "g.hdf5", imgs_group=True))


def test_shapes3d_hdf5_group_instead_of_dataset_is_a_clear_error(tmp_path):
    # before: AttributeError: 'Group' object has no attribute 'shape'
    h5py = pytest.importorskip("h5py")
    from diffrep.data.shapes3d import Shapes3DFile

    labels = np.stack(np.unravel_index(np.arange(64), (2,) * 6), axis=1) / 10.0
    with h5py.File(tmp_path / "3dshapes.h5", "w") as f:
        f.create_group("images")
        f["labels"] = labels
    with pytest.raises(ValueError, match="'images' is an HDF5 group"):
        Shapes3DFile(tmp_path / "3dshapes.h5")


def test_mpi3d_factor_sizes_must_be_ints(tmp_path):
    # before: factor_sizes="1111125" was read digit by digit as (1, 1, 1, 1, 1, 2, 5), and 2.5 was truncated
    # to 2 (the product error then showed sizes the caller never passed)
    from diffrep.data.mpi3d import MPI3D

    np.savez(tmp_path / "mpi3d_toy.npz", images=np.zeros((10, 4, 4, 3), np.uint8))
    assert MPI3D(tmp_path / "mpi3d_toy.npz", factor_sizes=(1, 1, 1, 1, 1, 2, 5)).factor_sizes == (1, 1, 1, 1, 1, 2, 5)
    for bad in ("1111125", (1, 1, 1, 1, 1, 2.5, 4), (1, 1, 1, 1, 1, True, 10)):
        with pytest.raises(TypeError, match="factor_sizes must be a sequence of 7 ints"):
            MPI3D(tmp_path / "mpi3d_toy.npz", factor_sizes=bad)


def test_cifar10_non_integer_labels_refused(tmp_path):
    # before: labels were cast with np.asarray(..., dtype=int64), so 0.5 became class 0 silently
    import pickle

    from diffrep.data.cifar10 import CIFAR10

    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({"data": np.zeros((2, 3072), np.uint8), "labels": [0.5, 1.0]}, f)
    with pytest.raises(ValueError, match="'labels' must be integer classes"):
        CIFAR10(tmp_path, "test")
    with open(tmp_path / "test_batch", "wb") as f:
        pickle.dump({"data": np.zeros((2, 3072), np.uint8), "labels": [3, 1]}, f)
    np.testing.assert_array_equal(CIFAR10(tmp_path, "test").labels, [3, 1])


def _idx(path, arr, code):
    import struct

    with open(path, "wb") as f:
        f.write(bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape))
        f.write(arr.astype(arr.dtype.newbyteorder(">")).tobytes())


def test_mnist_float_label_file_refused(tmp_path):
    # before: a float IDX label file (type 0x0D) was cast to int64, 1.5 -> class 1 silently
    from diffrep.data.mnist import MNIST

    _idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8), 0x08)
    _idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([1.5, 2.0, 3.0], np.float32), 0x0D)
    with pytest.raises(ValueError, match="labels must be an integer IDX file"):
        MNIST(tmp_path, "test")
    _idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([1, 2, 3], np.uint8), 0x08)
    np.testing.assert_array_equal(MNIST(tmp_path, "test").labels, [1, 2, 3])


def _png(path, h=8, w=8):
    from PIL import Image

    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(path)


def test_image_folder_and_celeba_refuse_size_true(tmp_path):
    # before: size=True passed the int check and gave 1x1 images
    from diffrep.data.celeba import CelebA
    from diffrep.data.image_folder import ImageFolder

    _png(tmp_path / "a.png")
    with pytest.raises(ValueError, match="size must be a positive int"):
        ImageFolder(tmp_path, size=True)
    with pytest.raises(ValueError, match="size must be a positive int"):
        CelebA(tmp_path, size=True)


def _celeba(root, names):
    (root / "img_align_celeba").mkdir(parents=True)
    header = " ".join(f"A{i}" for i in range(40))
    rows = "".join(f"{n} " + " ".join(["1"] * 40) + "\n" for n in names)
    (root / "list_attr_celeba.txt").write_text(f"{len(names)}\n{header}\n{rows}")
    (root / "list_eval_partition.txt").write_text("".join(f"{n} 0\n" for n in set(names)))
    for n in set(names):
        _png(root / "img_align_celeba" / n, 218, 178)


def test_celeba_attribute_file_listing_an_image_twice_refused(tmp_path):
    # before: the image was taken twice (a silently duplicated example, and len() too large)
    from diffrep.data.celeba import CelebA

    _celeba(tmp_path / "dup", ["000001.jpg", "000001.jpg"])
    with pytest.raises(ValueError, match="'000001.jpg' is listed more than once"):
        CelebA(tmp_path / "dup", split="all")
    _celeba(tmp_path / "ok", ["000002.jpg", "000001.jpg"])
    assert CelebA(tmp_path / "ok", split="all").files == ["000001.jpg", "000002.jpg"]


def test_cars3d_duplicate_cars_and_unreadable_mat(tmp_path):
    # before: a car listed twice became two identical "objects" (object factor of size 2); a damaged .mat
    # raised scipy's MatReadError ("Mat file appears to be truncated") without the file's name
    pytest.importorskip("scipy")
    from scipy.io import savemat

    from diffrep.data.cars3d import Cars3D

    savemat(tmp_path / "car1.mat", {"im": np.zeros((8, 8, 3, 24, 4), np.uint8)})
    (tmp_path / "list.txt").write_text("car1\ncar1\n")
    with pytest.raises(ValueError, match="'car1' is listed more than once"):
        Cars3D(tmp_path, size=8)
    (tmp_path / "list.txt").write_text("car1\n")
    assert Cars3D(tmp_path, size=8).images([0]).shape == (1, 8, 8, 3)
    (tmp_path / "car1.mat").write_text("junk")
    with pytest.raises(ValueError, match="car1.mat: not a readable MATLAB file"):
        Cars3D(tmp_path, size=8).images([0])


def test_boolean_dataset_options_refuse_strings(tmp_path):
    # before: each was passed through bool(), so keep_color="no" KEPT the color factor, in_memory="false"
    # loaded the file into memory, etc.
    import diffrep.data as D
    from diffrep.data.mpi3d import MPI3D
    from diffrep.data.shapes3d import Shapes3DFile

    with pytest.raises(TypeError, match="keep_color must be True or False"):
        D.load("dsprites", source="procedural", keep_color="no")
    with pytest.raises(TypeError, match="cache must be True or False"):
        D.load("dsprites", source="procedural", cache="false")
    with pytest.raises(TypeError, match="jitter must be True or False"):
        D.load("disks", jitter="yes")
    p = _dsprites_npz(tmp_path / "d.npz")
    with pytest.raises(TypeError, match="keep_color must be True or False"):
        DSpritesFile(p, keep_color="no")
    with pytest.raises(TypeError, match="read_metadata must be True or False"):
        DSpritesFile(p, read_metadata="no")
    assert DSpritesFile(p, keep_color=np.bool_(True)).factor_names[0] == "color"
    np.savez(tmp_path / "mpi3d_toy.npz", images=np.zeros((10, 4, 4, 3), np.uint8))
    with pytest.raises(TypeError, match="in_memory must be True or False"):
        MPI3D(tmp_path / "mpi3d_toy.npz", factor_sizes=(1, 1, 1, 1, 1, 2, 5), in_memory="no")
    labels = np.stack(np.unravel_index(np.arange(64), (2,) * 6), axis=1) / 10.0
    np.savez(tmp_path / "3dshapes.npz", images=np.zeros((64, 4, 4, 3), np.uint8), labels=labels)
    with pytest.raises(TypeError, match="in_memory must be True or False"):
        Shapes3DFile(tmp_path / "3dshapes.npz", in_memory="no")


def test_disks_options_are_checked():
    # before: foreground=2 / background_range=(0, 5) rendered images outside [0, 1] (the dataset contract);
    # bins=(2.5, 2, 2) was truncated to 2; hard_edge="no" drew a HARD disk; seed=1.7 was truncated and
    # seed=-1 failed only at the first render with numpy's "expected non-negative integer"
    from diffrep.data.disks import Disks, DisksTensorDataset

    ok = Disks(size=8, radius=2.0, transition=1.0, x_range=(3.0, 4.0), y_range=(3.0, 4.0), bins=(2, 2, 2))
    assert 0.0 <= ok.observations(np.arange(len(ok))).min() and ok.observations(np.arange(len(ok))).max() <= 1.0
    for kw, msg in (({"foreground": 2.0}, "foreground must be an intensity in"),
                    ({"background_range": (0.0, 5.0)}, "background_range must lie in"),
                    ({"bins": (2.5, 2, 2)}, "bins must be three ints"),
                    ({"bins": (True, 2, 2)}, "bins must be three ints")):
        with pytest.raises(ValueError, match=msg):
            Disks(**kw)
    with pytest.raises(TypeError, match="hard_edge must be True or False"):
        Disks(hard_edge="no")
    for seed in (1.7, -1):
        with pytest.raises((TypeError, ValueError), match="seed"):
            Disks(jitter=True, seed=seed)
    # before: num_images=0 failed inside numpy ("cannot reshape array of size 0 into shape (0,newaxis)")
    with pytest.raises(ValueError, match="num_images"):
        DisksTensorDataset(num_images=0)


def _array_ds():
    from diffrep.data import ArrayGroundTruthData

    imgs = np.arange(4 * 4 * 4, dtype=np.uint8).reshape(4, 4, 4, 1)
    return ArrayGroundTruthData(imgs, ("a", "b"), (2, 2))


def test_bool_item_index_refused():
    # before: ds[True] was item 1 (bool is an int subclass), ds[False] item 0
    ds = _array_ds()
    assert ds[1][1].tolist() == [0, 1]
    with pytest.raises(TypeError, match="index must be an int"):
        ds[True]


def test_pooled_factor_larger_than_the_images_refused():
    # before: a RuntimeError from torch's max_pool2d at the first item ("Output size is too small")
    from diffrep.data.pooled import Pooled

    ds = _array_ds()
    assert Pooled(ds, 4)[0][0].shape == (1, 1, 1)
    with pytest.raises(ValueError, match="factor 5 exceeds the 4x4 images"):
        Pooled(ds, 5)


def test_sampler_rank_true_refused():
    # before: rank=True passed the int check and ran rank 1's share
    from diffrep.data.sampling import EpochBatchSampler

    with pytest.raises(ValueError, match="rank"):
        EpochBatchSampler(10, 2, rank=True, world_size=2)


def test_array_ground_truth_data_float_images_must_be_in_unit_range():
    # before: float images in 0..255 (or [-1, 1], or with NaN) were accepted and read as [0, 1] intensities,
    # so observations and ds[i] came out scaled wrongly without a sign
    from diffrep.data import ArrayGroundTruthData

    ok = ArrayGroundTruthData(np.full((2, 1, 1, 1), 0.5, np.float32), ("a",), (2,))
    assert ok[0][0].item() == 0.0  # 0.5 -> pm1 0.0
    for bad in (np.full((2, 1, 1, 1), 255.0), np.full((2, 1, 1, 1), -1.0), np.full((2, 1, 1, 1), np.nan)):
        with pytest.raises(ValueError, match=r"float images must be finite and in \[0, 1\]"):
            ArrayGroundTruthData(bad, ("a",), (2,))


def test_sampler_flags_cache_sizes_and_binarize_seeds_are_checked():
    # before: shuffle="no" / drop_last="no" were bool() -> True; cache_size=True / 1.5 gave a 1-image cache
    # (int() truncation); Digits(seed=True) and set_epoch(True) were read as 1
    import diffrep.data as D
    from diffrep.data.sampling import EpochBatchSampler

    assert list(EpochBatchSampler(4, 2, shuffle=False)) == [[0, 1], [2, 3]]
    for kw in ({"shuffle": "no"}, {"drop_last": "no"}):
        with pytest.raises(TypeError, match="must be True or False"):
            EpochBatchSampler(4, 2, **kw)
    for bad in (True, 1.5):
        with pytest.raises(ValueError, match="cache_size"):
            D.load("disks", cache_size=bad)
    with pytest.raises(ValueError, match="seed must be a non-negative int"):
        D.load("digits", binarize="static", seed=True)
    d = D.load("digits", binarize="dynamic")
    with pytest.raises(ValueError, match="epoch must be a non-negative int"):
        d.set_epoch(True)


@pytest.mark.parametrize("workers", [0, -1, 2.5, True])
def test_dsprites_render_all_names_a_bad_worker_count(workers):
    # -1 raised the thread pool's "max_workers must be greater than 0"; 0 silently meant the default
    from diffrep.data.dsprites import DSprites

    with pytest.raises(ValueError, match=r"^workers must be a positive int"):
        DSprites().render_all(workers=workers)
