"""Contract of issue 3: datasets with ground-truth factors, original-format readers and offline generators.

One test (or one parametrised table) per item the issue names, each calling the public name by the path the
issue gives (``diffrep.data.load`` and the objects it returns, ``diffrep.data.sampling``, ``diffrep data``).
Fixtures are written here, tiny, in the published formats (same keys, dtypes, layouts), every image
encoding its own file row so that factor order is checked against the index. Expected values come from
the published format descriptions (docs/data.md) and from hand-written computations in this file.
Deeper value tests of the same readers live in tests/data/ (test_faithful_gt_files.py,
test_faithful_image_files.py, test_readers.py, test_faithful_dsprites_render.py; test_dsprites.py compares
the renderer with the published preview animation when a copy is present; test_load_sampling_cli.py runs
DataLoader workers; test_roots.py holds the root rules that issue 17 added). The full-grid render time
(issue: within a minute on 2 cores) and the images/s target are measured by benches/bench_data.py, not
asserted here.
"""

import gzip
import inspect
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import diffrep.data as D
from diffrep.data.sampling import EpochBatchSampler, epoch_permutation, make_loader
from reader_fixtures import (ATTRS, DSPRITES_NPZ, PUBLISHED_DSPRITES, PUBLISHED_SHAPES3D, idx_bytes, odometer,
                             stamp, unstamp, write_car, write_dsprites, write_mnist)


@pytest.fixture(autouse=True)
def _no_env_root(monkeypatch):
    monkeypatch.delenv("DIFFREP_DATA", raising=False)


# --------------------------------------------------------------------------------------------------
# Interface: load(), the names, the ground-truth interface
# --------------------------------------------------------------------------------------------------

def test_load_signature():
    """diffrep.data.load(name, root=None, source="auto", split=None, **options)."""
    params = list(inspect.signature(D.load).parameters.values())
    assert [(p.name, p.default) for p in params[:4]] == [
        ("name", inspect.Parameter.empty), ("root", None), ("source", "auto"), ("split", None)]
    assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params[:4])
    assert params[-1].kind is inspect.Parameter.VAR_KEYWORD
    # anything between split and **options is keyword-only (it cannot shift a positional argument)
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[4:-1])
    with pytest.raises(ValueError, match="source"):
        D.load("disks", source="web")


# name -> (has a reader of the original files, has a procedural generator), as the issue lists them
NAMES = {"dsprites": (True, True), "shapes3d": (True, True), "mpi3d_toy": (True, False), "cars3d": (True, False),
         "celeba": (True, False), "mnist": (True, False), "fashion_mnist": (True, False), "cifar10": (True, False),
         "image_folder": (True, False), "disks": (False, True), "digits": (False, True)}


@pytest.mark.parametrize("name", NAMES)
def test_every_name_is_registered(name):
    info = D.available()[name]
    assert (info["file"], info["procedural"]) == NAMES[name]
    if not NAMES[name][1]:  # no generator: "procedural" is refused, naming the expected files
        with pytest.raises(ValueError, match="no procedural generator"):
            D.load(name, source="procedural")


def test_ground_truth_method_signatures():
    """sample_factors(n, rng), sample_observations_from_factors(factors, rng), index_to_factors /
    factors_to_index, on the base class every ground-truth dataset shares."""
    gt = D.GroundTruthData
    assert list(inspect.signature(gt.sample_factors).parameters) == ["self", "n", "rng"]
    assert list(inspect.signature(gt.sample_observations_from_factors).parameters) == ["self", "factors", "rng"]
    assert list(inspect.signature(gt.index_to_factors).parameters) == ["self", "indices"]
    assert list(inspect.signature(gt.factors_to_index).parameters) == ["self", "factors"]
    for name in ("dsprites", "shapes3d", "disks"):
        assert isinstance(D.load(name), gt)


GT_PROCEDURAL = {
    "dsprites": (("shape", "scale", "orientation", "posX", "posY"), (3, 6, 40, 32, 32), (64, 64, 1)),
    "shapes3d": (("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation"), (10, 10, 10, 8, 4, 15),
                 (64, 64, 3)),
    "disks": (("x", "y", "background"), (32, 32, 32), (32, 32, 1)),
}


@pytest.mark.parametrize("name", GT_PROCEDURAL)
def test_ground_truth_interface(name):
    names, sizes, shape = GT_PROCEDURAL[name]
    ds = D.load(name, source="procedural")
    assert ds.source == "procedural"
    assert ds.factor_names == names and tuple(ds.factor_sizes) == sizes and ds.num_factors == len(sizes)
    assert len(ds) == int(np.prod(sizes)) and ds.factors_num_values == list(sizes)  # disentanglement_lib alias
    assert [np.asarray(v).shape for v in ds.factor_values] == [(s,) for s in sizes]
    # index <-> factors: row-major mixed radix, against the hand-written enumeration (sampled rows)
    rng = np.random.default_rng(0)
    idx = np.concatenate([[0, 1, len(ds) - 1], rng.integers(0, len(ds), 20)])
    bases = [int(np.prod(sizes[k + 1:])) for k in range(len(sizes))]
    expect = np.array([[(i // b) % s for b, s in zip(bases, sizes)] for i in idx])
    assert np.array_equal(ds.index_to_factors(idx), expect)
    assert np.array_equal(ds.factors_to_index(expect), idx)
    # item access: (image float32 CHW in [-1, 1], int64 factor classes of that index)
    x, y = ds[int(idx[4])]
    assert x.dtype == torch.float32 and tuple(x.shape) == (shape[2], shape[0], shape[1])
    assert float(x.min()) >= -1 and float(x.max()) <= 1
    assert y.dtype == torch.int64 and y.tolist() == expect[4].tolist()
    # sampling: uniform classes in range, reproducible per seed; observations float32 HWC in [0, 1]
    f = ds.sample_factors(64, np.random.RandomState(3))
    assert f.dtype == np.int64 and f.shape == (64, len(sizes)) and (f >= 0).all() and (f < np.array(sizes)).all()
    assert np.array_equal(f, ds.sample_factors(64, np.random.RandomState(3)))
    assert np.array_equal(ds.sample_factors(n=5, rng=7), ds.sample_factors(5, 7))  # the keyword names
    obs = ds.sample_observations_from_factors(f[:3], np.random.RandomState(0))
    assert obs.dtype == np.float32 and obs.shape == (3,) + shape and obs.min() >= 0 and obs.max() <= 1
    assert np.array_equal(obs, ds.observations(ds.factors_to_index(f[:3])))
    assert np.allclose(x.numpy(), obs_of(ds, int(idx[4])) * 2 - 1, atol=1e-6)


def obs_of(ds, i):
    return ds.observations([i])[0].transpose(2, 0, 1)


@pytest.mark.parametrize("name", GT_PROCEDURAL)
def test_factor_indices_out_of_range_are_value_errors(name):
    ds = D.load(name)
    sizes = np.array(ds.factor_sizes)
    for bad in (sizes - 0, -np.ones_like(sizes)):
        row = np.zeros_like(sizes)
        row[0] = bad[0]
        with pytest.raises(ValueError, match=ds.factor_names[0]):
            ds.factors_to_index(row[None])
        with pytest.raises(ValueError, match=ds.factor_names[0]):
            ds.sample_observations_from_factors(row[None])
    with pytest.raises(ValueError, match="out of range"):
        ds.index_to_factors([len(ds)])


def test_plain_image_dataset_item_access_with_labels():
    """A plain image dataset (here the digits) has the same item access, with its labels."""
    ds = D.load("digits", split="test", item_format="01")
    x, y = ds[3]
    assert x.dtype == torch.float32 and tuple(x.shape) == (1, 32, 32) and y.dtype == torch.int64
    xs, ys = ds[[0, 3]]
    assert torch.equal(xs[1], x) and ys.tolist() == [int(ds.labels[0]), int(y)]


# --------------------------------------------------------------------------------------------------
# source="auto" / "file" / "procedural", and errors naming the files
# --------------------------------------------------------------------------------------------------

def test_sources(tmp_path, monkeypatch):
    # no root anywhere: auto = the generator where one exists
    assert D.load("dsprites").source == "procedural"
    # source="file" without the files: FileNotFoundError naming the dataset and the expected file
    with pytest.raises(FileNotFoundError, match=f"dsprites.*{DSPRITES_NPZ}"):
        D.load("dsprites", root=tmp_path, source="file")
    with pytest.raises(FileNotFoundError, match="DIFFREP_DATA is unset"):  # no root at all, no generator
        D.load("cars3d")
    # auto with the original file present reads the file
    write_dsprites(tmp_path / DSPRITES_NPZ, (1, 2, 1, 1, 2, 2))
    assert D.load("dsprites", root=tmp_path).source == "file"
    monkeypatch.setenv("DIFFREP_DATA", str(tmp_path))
    assert D.load("dsprites").source == "file"
    assert D.load("dsprites", source="procedural").source == "procedural"
    # issue 17 (later, wins): a DIFFREP_DATA lacking a dataset falls back to the generator with a warning
    with pytest.warns(UserWarning, match="procedural"):
        assert D.load("shapes3d").source == "procedural"


@pytest.mark.parametrize("name, expected", [
    ("dsprites", DSPRITES_NPZ), ("shapes3d", "3dshapes.h5"), ("mpi3d_toy", "mpi3d_toy.npz"),
    ("cars3d", ".mat"), ("celeba", "list_attr_celeba.txt"), ("mnist", "train-images-idx3-ubyte"),
    ("fashion_mnist", "train-labels-idx1-ubyte"), ("cifar10", "data_batch_1")])
def test_missing_files_name_the_file_and_the_dataset(tmp_path, name, expected):
    with pytest.raises(FileNotFoundError) as err:
        D.load(name, root=tmp_path, source="file")
    msg = str(err.value)
    assert name in msg and expected in msg and str(tmp_path) in msg


# --------------------------------------------------------------------------------------------------
# Readers of the original files
# --------------------------------------------------------------------------------------------------

def dsprites_row(obs):
    bits = (np.asarray(obs)[:, 0, :16, 0] > 0).astype(np.int64)
    return bits @ (1 << np.arange(16))


def test_dsprites_npz_reader(tmp_path):
    sizes = (1, 3, 2, 3, 2, 2)
    classes = write_dsprites(tmp_path / DSPRITES_NPZ, sizes)
    ds = D.load("dsprites", root=tmp_path, source="file")
    assert ds.factor_names == ("shape", "scale", "orientation", "posX", "posY")  # colour dropped (dsprites_full)
    assert ds.factor_sizes == sizes[1:]
    for k in range(5):
        assert np.allclose(ds.factor_values[k], PUBLISHED_DSPRITES[k + 1][: sizes[k + 1]])
    rows = np.array([0, 5, 17, len(classes) - 1])
    assert np.array_equal(dsprites_row(ds.observations(rows)), rows)  # images in file order
    assert np.array_equal(ds.index_to_factors(rows), classes[rows, 1:])
    obs = ds.sample_observations_from_factors(classes[rows, 1:], None)
    assert np.array_equal(dsprites_row(obs), rows) and set(np.unique(obs)) <= {0.0, 1.0}  # binary, {0, 1}
    x, y = ds[17]
    assert y.tolist() == classes[17, 1:].tolist() and set(torch.unique(x).tolist()) <= {-1.0, 1.0}
    six = D.load("dsprites", root=tmp_path, keep_color=True, read_metadata=True)
    assert six.factor_names[0] == "color" and six.factor_sizes == sizes


def test_dsprites_shuffled_file_keeps_factor_order(tmp_path):
    """Rows stored in another order are reordered by their latents_classes, never read in file order."""
    sizes = (1, 3, 1, 2, 2, 2)
    perm = np.random.default_rng(1).permutation(int(np.prod(sizes)))
    classes = write_dsprites(tmp_path / DSPRITES_NPZ, sizes, shuffle=perm)
    ds = D.load("dsprites", root=tmp_path)
    got_rows = dsprites_row(ds.observations(np.arange(len(ds))))  # file row shown at each canonical index
    assert np.array_equal(classes[got_rows, 1:], odometer(sizes)[:, 1:])


SUB3D = (2, 2, 2, 2, 2, 3)


def shapes3d_arrays():
    classes = odometer(SUB3D)
    labels = np.stack([PUBLISHED_SHAPES3D[k][classes[:, k]] for k in range(6)], 1)  # VALUES, not classes
    return classes, labels, stamp(len(classes), 2, 2)


def test_shapes3d_h5_reader(tmp_path):
    import h5py

    classes, labels, images = shapes3d_arrays()
    with h5py.File(tmp_path / "3dshapes.h5", "w") as f:
        f.create_dataset("images", data=images)
        f.create_dataset("labels", data=labels)
    ds = D.load("shapes3d", root=tmp_path, source="file")
    assert ds.source == "file" and ds.factor_names == GT_PROCEDURAL["shapes3d"][0] and ds.factor_sizes == SUB3D
    for k in range(6):
        assert np.allclose(ds.factor_values[k], PUBLISHED_SHAPES3D[k][: SUB3D[k]])
    rows = np.array([0, 7, 50, len(classes) - 1])
    assert np.array_equal(unstamp(ds.images(rows)), rows)
    assert np.array_equal(ds.index_to_factors(rows), classes[rows])
    obs = ds.sample_observations_from_factors(classes[rows], 0)
    assert np.allclose(obs * 255, images[rows]) and obs.dtype == np.float32  # /255, HWC


def test_shapes3d_npz_variant_with_factor_axes(tmp_path):
    """disentanglement_lib's npz: keys images/labels with the 6 factor axes leading."""
    classes, labels, images = shapes3d_arrays()
    np.savez(tmp_path / "3dshapes.npz", images=images.reshape(SUB3D + (2, 2, 3)), labels=labels.reshape(SUB3D + (6,)))
    ds = D.load("shapes3d", root=tmp_path, source="file")
    rows = np.array([3, 33, 95])
    assert ds.factor_sizes == SUB3D and np.array_equal(unstamp(ds.images(rows)), rows)
    assert np.array_equal(ds.factors_to_index(classes[rows]), rows)


def test_mpi3d_toy_layout_inferred_from_n_and_memory_mapped(tmp_path):
    n = 460800  # the old toy set: (4, 4, 2, 3, 3, 40, 40); 1x1 images keep the file small
    path = tmp_path / "mpi3d_toy.npz"
    np.savez(path, images=stamp(n))
    ds = D.load("mpi3d_toy", root=tmp_path, source="file")
    assert ds.factor_sizes == (4, 4, 2, 3, 3, 40, 40)
    assert ds.factor_names == ("object_color", "object_shape", "object_size", "camera_height", "background_color",
                               "horizontal_axis", "vertical_axis")
    assert not ds.in_memory and isinstance(D.npzfile.member_memmap(path, "images"), np.memmap)
    f = np.array([[3, 2, 1, 2, 1, 39, 0], [0, 0, 0, 0, 0, 0, 1], [1, 0, 0, 0, 0, 1, 0]])
    want = f @ np.array([115200, 28800, 14400, 4800, 1600, 40, 1])
    assert np.array_equal(unstamp(ds.images(ds.factors_to_index(f))), want)
    (tmp_path / "odd").mkdir()
    np.savez(tmp_path / "odd" / "mpi3d_toy.npz", images=stamp(1000))  # N matches no published layout
    with pytest.raises(ValueError, match="factor_sizes"):
        D.load("mpi3d_toy", root=tmp_path / "odd")
    custom = D.load("mpi3d_toy", root=tmp_path / "odd", factor_sizes=(1, 1, 1, 2, 5, 10, 10))
    assert custom.factor_sizes == (1, 1, 1, 2, 5, 10, 10) and unstamp(custom.images([999]))[0] == 999


def test_cars3d_mat_folder_in_list_order(tmp_path):
    listed = ["car_b_mesh", "car_c_mesh", "car_a_mesh"]  # list.txt order differs from name order
    codes = {"car_a_mesh": 10, "car_b_mesh": 20, "car_c_mesh": 30}
    folder = tmp_path / "cars"
    folder.mkdir()
    for name in listed:
        write_car(folder / f"{name}.mat", codes[name])
    (folder / "list.txt").write_text("\n".join(listed) + "\n")
    ds = D.load("cars3d", root=tmp_path, size=4)
    assert ds.factor_names == ("elevation", "azimuth", "object") and ds.factor_sizes == (4, 24, 3)
    f = np.array([[0, 0, 0], [3, 23, 1], [2, 5, 2], [1, 7, 0]])
    img = ds.images(ds.factors_to_index(f))[:, 0, 0]  # (n, 3): (code, azimuth, elevation)
    assert img[:, 0].tolist() == [codes[listed[o]] for o in f[:, 2]]
    assert img[:, 1].tolist() == f[:, 1].tolist() and img[:, 2].tolist() == f[:, 0].tolist()
    assert ds.factors_to_index(f).tolist() == (f @ np.array([72, 3, 1])).tolist()
    (folder / "list.txt").unlink()  # without list.txt: sorted by file name
    assert D.load("cars3d", root=tmp_path, size=4).images([0, 1, 2])[:, 0, 0, 0].tolist() == [10, 20, 30]


@pytest.fixture(scope="module")
def celeba_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("celeba")
    (root / "img_align_celeba").mkdir()
    yy, xx = np.mgrid[0:218, 0:178]
    signs = np.where(np.random.default_rng(0).random((4, 40)) < 0.5, -1, 1)
    lines = ["4", " ".join(ATTRS)]
    for k in range(4):
        a = np.stack([xx * 255 // 177, yy * 255 // 217, np.full_like(xx, 60 * k)], -1).astype(np.uint8)
        Image.fromarray(a).save(root / "img_align_celeba" / f"{k + 1:06d}.jpg", quality=95)
        lines.append(f"{k + 1:06d}.jpg " + " ".join(f"{v:2d}" for v in signs[k]))
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (root / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg 0\n000003.jpg 1\n000004.jpg 2\n")
    return root, (signs + 1) // 2


def test_celeba_attributes_partition_and_crops(celeba_root):
    root, attrs01 = celeba_root
    ds = D.load("celeba", root=root, split="train")
    assert len(ds) == 2 and tuple(ds.target_names) == tuple(ATTRS)
    x, y = ds[1]
    assert y.dtype == torch.int64 and y.tolist() == attrs01[1].tolist()  # -1/1 read as 0/1
    assert [len(D.load("celeba", root=root, split=s)) for s in ("valid", "test", "all")] == [1, 1, 4]
    assert D.load("celeba", root=root, split="test")[0][1].tolist() == attrs01[3].tolist()
    raw = Image.open(root / "img_align_celeba" / "000002.jpg").convert("RGB")
    # DiffAE / D2C box (cx 89, cy 121, 128 x 128), then bilinear resize to 64
    diffae = np.asarray(raw.crop((89 - 64, 121 - 64, 89 + 64, 121 + 64)).resize((64, 64), Image.BILINEAR))
    assert np.array_equal(ds.images([1])[0], diffae)
    # resize the shorter side to 64 (178 x 218 -> 64 x 78), then centre-crop 64
    small = raw.resize((64, int(64 * 218 / 178)), Image.BILINEAR)
    top = round((small.size[1] - 64) / 2)
    centre = np.asarray(small.crop((0, top, 64, top + 64)))
    assert np.array_equal(D.load("celeba", root=root, split="train", crop="center").images([1])[0], centre)


@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("mnist")
    data = write_mnist(root)
    fashion = root.parent / "fashion" / "FashionMNIST" / "raw"  # the torchvision layout
    fashion.mkdir(parents=True)
    for p in root.glob("*ubyte*"):
        (fashion / p.name).write_bytes(p.read_bytes())
    return root, data


def test_mnist_idx_gzipped_or_not(mnist_root):
    root, data = mnist_root
    for name, r in (("mnist", root), ("fashion_mnist", root.parent / "fashion")):
        train = D.load(name, root=r, split="train")  # gzipped files
        test = D.load(name, root=r, split="test")  # plain files
        assert np.array_equal(train.images(np.arange(6))[..., 0], data["train"][0])
        assert np.array_equal(test.images(np.arange(3))[..., 0], data["t10k"][0])
        assert train.labels.tolist() == data["train"][1].tolist()
        assert test[2][1].item() == data["t10k"][1][2]


def test_mnist_dynamic_and_static_binarisation(mnist_root):
    """dynamic: Bernoulli(pixel / 255) per read, seeded by (seed, epoch, index) (docs/data.md), so it is
    reproducible and changes with the epoch; static: one sample per image, seeded by (seed, index)."""
    root, data = mnist_root
    dyn = D.load("mnist", root=root, binarize="dynamic", seed=3)
    for i in range(6):
        pi = data["train"][0][i].astype(np.float64) / 255.0
        want = np.where(np.random.default_rng([3, 0, i]).random(pi.shape) < pi, 255, 0)
        assert np.array_equal(dyn.images([i])[0, ..., 0], want)
    p = data["train"][0][4].astype(np.float64) / 255.0
    a = dyn.images([4])[0, ..., 0]
    assert np.array_equal(a, dyn.images([4])[0, ..., 0])  # reproducible
    dyn.set_epoch(1)
    b = dyn.images([4])[0, ..., 0]
    assert not np.array_equal(a, b)
    assert np.array_equal(b, np.where(np.random.default_rng([3, 1, 4]).random(p.shape) < p, 255, 0))
    assert np.array_equal(D.load("mnist", root=root, binarize="dynamic", seed=3).images([4])[0, ..., 0], a)
    st = D.load("mnist", root=root, binarize="static", seed=3)
    s0 = st.images([4])[0, ..., 0]
    st.set_epoch(5)
    assert np.array_equal(st.images([4])[0, ..., 0], s0)
    assert np.array_equal(s0, np.where(np.random.default_rng([3, 4]).random(p.shape) < p, 255, 0))
    assert st.describe()["binarize"] == "static"
    x, _ = D.load("mnist", root=root, binarize="static", seed=3, item_format="01")[4]
    assert set(torch.unique(x).tolist()) <= {0.0, 1.0}


def test_cifar10_python_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(4)
    expect = {}
    for b in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (2, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, 2).tolist()
        with open(folder / b, "wb") as f:  # the Python 2 pickles read with latin1 have bytes keys
            pickle.dump({b"batch_label": b.encode(), b"data": data, b"labels": labels,
                         b"filenames": [b"a.png", b"b.png"]}, f, protocol=2)
        # 1024 R, 1024 G, 1024 B, each a row-major 32 x 32 plane -> HWC
        hwc = np.stack([data[:, c * 1024:(c + 1) * 1024].reshape(2, 32, 32) for c in range(3)], -1)
        expect[b] = (hwc, labels)
    train = D.load("cifar10", root=tmp_path, split="train")
    assert len(train) == 10
    assert np.array_equal(train.images(np.arange(10)), np.concatenate([expect[f"data_batch_{i}"][0] for i in range(1, 6)]))
    assert train.labels.tolist() == sum((expect[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    test = D.load("cifar10", root=tmp_path, split="test")
    x, y = test[1]
    assert y.item() == expect["test_batch"][1][1] and tuple(x.shape) == (3, 32, 32)


def test_image_folder(tmp_path):
    for k, rel in enumerate(["b/2.png", "a/1.png", "a/0.png"]):
        (tmp_path / rel).parent.mkdir(exist_ok=True)
        Image.fromarray(np.full((8, 8, 3), 40 * k + 10, np.uint8)).save(tmp_path / rel)
    ds = D.load("image_folder", root=tmp_path, size=None)
    assert len(ds) == 3 and ds.images([0, 1, 2])[:, 0, 0, 0].tolist() == [90, 50, 10]  # sorted relative paths
    x, y = ds[0]
    assert tuple(x.shape) == (3, 8, 8) and y.numel() == 0  # a folder has no labels


# --------------------------------------------------------------------------------------------------
# Procedural generators: factor semantics
# --------------------------------------------------------------------------------------------------

def centroid(img):
    """(x, y) of the on-pixels' centres, image y down."""
    ii, jj = np.nonzero(np.asarray(img)[..., 0] > 0)
    return jj.mean() + 0.5, ii.mean() + 0.5


def test_dsprites_generator_grid_and_factor_semantics():
    ds = D.load("dsprites", source="procedural")
    assert len(ds) == 3 * 6 * 40 * 32 * 32 == 737280
    for k in range(5):
        assert np.allclose(ds.factor_values[k], PUBLISHED_DSPRITES[k + 1])
    # a square at scale 1, orientation 0: side 19.2 px; centre x = 16 + 32 posX, y = 16 + 32 posY
    f = np.array([[0, 5, 0, px, py] for px, py in ((0, 10), (1, 10), (31, 10), (10, 0), (10, 31))])
    obs = ds.sample_observations_from_factors(f, 0)
    cs = [centroid(o) for o in obs]
    for (cx, cy), (px, py) in zip(cs, f[:, 3:]):
        assert abs(cx - (16 + 32 * px / 31)) <= 0.5 and abs(cy - (16 + 32 * py / 31)) <= 0.5
    assert cs[1][0] - cs[0][0] == pytest.approx(32 / 31, abs=0.5) and cs[2][0] > cs[1][0]  # posX moves right
    assert cs[4][1] - cs[3][1] == pytest.approx(32, abs=1)  # posY moves down
    # the raster model (docs/data.md#dsprites): a pixel is on iff its centre (j + 0.5, i + 0.5) is inside;
    # at orientation 0 the square is |dx|, |dy| <= 9.6 * scale and the ellipse (dx / 12.8 s)^2 + (dy / 7.2 s)^2 <= 1
    yy, xx = np.mgrid[0:64, 0:64] + 0.5
    cases = [(0, sc, px, (7 * px) % 32) for sc in (0, 3, 5) for px in range(0, 32, 3)] + [(1, 5, 7, 3), (1, 0, 30, 18)]
    for shape, sc, px, py in cases:
        s = PUBLISHED_DSPRITES[2][sc]
        dx, dy = xx - (16 + 32 * px / 31), yy - (16 + 32 * py / 31)
        inside = ((np.abs(dx) <= 9.6 * s) & (np.abs(dy) <= 9.6 * s) if shape == 0
                  else (dx / (12.8 * s)) ** 2 + (dy / (7.2 * s)) ** 2 <= 1)
        got = ds.sample_observations_from_factors(np.array([[shape, sc, 0, px, py]]), 0)[0, ..., 0]
        assert np.array_equal(got, inside.astype(np.float32)), (shape, sc, px, py)
    shapes = ds.sample_observations_from_factors(np.array([[s, 5, 0, 16, 16] for s in range(3)]), 0)
    assert all(not np.array_equal(shapes[a], shapes[b]) for a, b in ((0, 1), (0, 2), (1, 2)))
    assert set(np.unique(shapes)) == {0.0, 1.0}  # binary
    # orientation linspace(0, 2 pi, 40) includes both ends: class 39 renders as class 0
    ends = ds.sample_observations_from_factors(np.array([[2, 3, 0, 9, 20], [2, 3, 39, 9, 20]]), 0)
    assert np.array_equal(ends[0], ends[1])


def test_disks_generator_factor_semantics():
    ds = D.load("disks")
    cfg = ds.config
    assert (cfg.foreground, cfg.size) == (0.5, 32) and ds.factor_names == ("x", "y", "background")
    f = np.array([[3, 20, 0], [3, 20, 9], [20, 20, 9], [20, 5, 31]])
    obs = ds.sample_observations_from_factors(f, 0)[..., 0]
    vx, vy, vb = ds.factor_values
    for o, (i, j, k) in zip(obs, f):
        assert o[0, 0] == np.float32(vb[k]) and o[31, 31] == np.float32(vb[k])  # background = the factor
        yy, xx = np.mgrid[0:32, 0:32]
        inner = (xx - vx[i]) ** 2 + (yy - vy[j]) ** 2 <= (cfg.radius - cfg.transition) ** 2
        assert inner.any() and np.all(o[inner] == np.float32(0.5))  # foreground 0.5 inside the edge
    # moving x moves the disk's mass right by the factor step (|image - background| weights)
    w1, w2 = np.abs(obs[1] - obs[1][0, 0]), np.abs(obs[2] - obs[2][0, 0])
    cols = np.arange(32)
    shift = (w2.sum(0) @ cols) / w2.sum() - (w1.sum(0) @ cols) / w1.sum()
    assert shift == pytest.approx(vx[20] - vx[3], abs=1e-3)


def test_disks_size_and_edge_are_configurable_fields():
    from diffrep.data.disks import DisksConfig

    fields = DisksConfig.__dataclass_fields__
    assert {"size", "radius", "transition", "hard_edge", "foreground"} <= set(fields)
    ds = D.load("disks", size=16, radius=4.0, hard_edge=True, x_range=(4.0, 12.0), y_range=(4.0, 12.0), bins=(5, 5, 2))
    assert ds.observation_shape == (16, 16, 1) and ds.factor_sizes == (5, 5, 2)
    o = ds.observations([ds.factors_to_index([[1, 2, 1]])[0]])[0, ..., 0]
    x, y, bg = (ds.factor_values[k][c] for k, c in enumerate((1, 2, 1)))
    assert (x, y, bg) == (6.0, 8.0, 1.0)  # integer centres, so some pixels sit exactly on the radius
    yy, xx = np.mgrid[0:16, 0:16]  # hard disk: pixel (i, j) at (x=j, y=i) is inside iff distance^2 <= r^2
    assert np.array_equal(o, np.where((xx - x) ** 2 + (yy - y) ** 2 <= 16.0, 0.5, bg).astype(np.float32))


def test_shapes3d_grid_generator():
    ds = D.load("shapes3d", source="procedural")
    assert ds.factor_sizes == (10, 10, 10, 8, 4, 15)
    for k in range(6):
        assert np.allclose(ds.factor_values[k], PUBLISHED_SHAPES3D[k])
    doc = " ".join(type(ds).__doc__.split()).lower()
    assert "pixels differ" in doc and "mujoco" in doc  # the docstring says so
    base = np.array([1, 4, 7, 3, 2, 7])
    img0 = ds.sample_observations_from_factors(base[None], 0)[0]
    for k, s in enumerate(ds.factor_sizes):  # each of the six factors changes the picture
        f = base.copy()
        f[k] = (f[k] + 1) % s
        assert not np.array_equal(ds.sample_observations_from_factors(f[None], 0)[0], img0), ds.factor_names[k]


def test_digits_are_sklearns_real_digits_binarised_and_upscaled():
    import csv
    import importlib.util

    # the file scikit-learn's load_digits reads (parsed here with the csv module; importing sklearn costs ~2 s)
    path = Path(importlib.util.find_spec("sklearn").origin).parent / "datasets" / "data" / "digits.csv.gz"
    with gzip.open(path, "rt") as f:
        rows = np.array([[int(float(v)) for v in r] for r in csv.reader(f)])
    ref_images, ref_labels = rows[:, :64].reshape(-1, 8, 8), rows[:, 64]
    d8 = D.load("digits", size=8)  # threshold: round(v * 255 / 16) >= 128, i.e. v >= 8
    assert len(d8) == 1797 and d8.labels.tolist() == ref_labels.tolist()
    assert np.array_equal(d8.images(np.arange(1797))[..., 0], np.where(ref_images >= 8, 255, 0))
    d32 = D.load("digits", split="train")
    assert len(d32) == 1500 and d32.observation_shape == (32, 32, 1)
    assert set(np.unique(d32.images(np.arange(50)))) == {0, 255}


# --------------------------------------------------------------------------------------------------
# Loading: deterministic (seed, epoch) order, resumable; the bench
# --------------------------------------------------------------------------------------------------

def test_shuffling_from_seed_and_epoch_resumes():
    a = epoch_permutation(50, 7, 2)
    assert np.array_equal(a, epoch_permutation(50, 7, 2)) and sorted(a.tolist()) == list(range(50))
    assert not np.array_equal(a, epoch_permutation(50, 7, 3)) and not np.array_equal(a, epoch_permutation(50, 8, 2))
    batches = list(EpochBatchSampler(50, 8, seed=7, epoch=2))
    assert np.array_equal(np.concatenate(batches), a)  # batch b = order[8b : 8b + 8]
    assert list(EpochBatchSampler(50, 8, seed=7, epoch=2, start=3)) == batches[3:]  # a resumed run
    ds = D.load("digits", size=8, item_format="uint8")
    loader = make_loader(ds, batch_size=16, seed=7, epoch=2, start_batch=1)
    got = torch.cat([y for _, y in loader])
    assert got.tolist() == ds.labels[epoch_permutation(len(ds), 7, 2)[16:]].tolist()


def test_data_bench_exists():
    bench = Path(__file__).resolve().parents[2] / "benches" / "bench_data.py"
    assert bench.is_file() and "images/s" in bench.read_text()


# --------------------------------------------------------------------------------------------------
# Bad input: corrupt or wrong files are clear errors
# --------------------------------------------------------------------------------------------------

def _bad_dsprites_shape(p):
    write_dsprites(p, (1, 1, 1, 1, 2, 2))
    with np.load(p, allow_pickle=True) as z:
        d = dict(z)
    np.savez(p, **{**d, "imgs": d["imgs"][:, :32, :32]})


def _partial_dsprites(p):
    write_dsprites(p, (1, 1, 1, 1, 2, 2))
    with np.load(p, allow_pickle=True) as z:
        d = dict(z)
    np.savez(p, imgs=d["imgs"][:3], latents_classes=d["latents_classes"][:3], latents_values=d["latents_values"][:3])


def _write_bytes(data):
    return lambda p: p.write_bytes(data)


BAD = [
    ("dsprites", DSPRITES_NPZ, _write_bytes(b"PK\x03\x04 not really a zip"), "npz|zip"),
    ("dsprites", DSPRITES_NPZ, _bad_dsprites_shape, "imgs"),
    ("dsprites", DSPRITES_NPZ, _partial_dsprites, "grid"),
    ("shapes3d", "3dshapes.h5", _write_bytes(b"\x89HDF\r\n garbage"), "HDF5"),
    ("shapes3d", "3dshapes.npz", lambda p: np.savez(p, images=stamp(4)), "labels"),
    ("mpi3d_toy", "mpi3d_toy.npz", lambda p: np.savez(p, pictures=stamp(4)), "images"),
    ("mpi3d_toy", "mpi3d_toy.npz", lambda p: np.savez(p, images=np.zeros((10, 4, 4), np.uint8)), "images"),
    ("mnist", "train-images-idx3-ubyte", lambda p: (p.write_bytes(idx_bytes(np.zeros((2, 28, 28), np.uint8))[:-5]),
                                                   (p.parent / "train-labels-idx1-ubyte").write_bytes(
                                                       idx_bytes(np.zeros(2, np.uint8)))), "IDX"),
]


@pytest.mark.parametrize("name, file, write, what", BAD, ids=[f"{b[0]}-{b[3]}" for b in BAD])
def test_corrupt_files_are_clear_errors(tmp_path, name, file, write, what):
    write(tmp_path / file)
    with pytest.raises(ValueError, match=what) as err:
        ds = D.load(name, root=tmp_path, source="file")
        ds.images([0])
    assert str(tmp_path) in str(err.value)  # the message names the file


# --------------------------------------------------------------------------------------------------
# CLI: diffrep data info NAME / diffrep data preview NAME --out F.png
# --------------------------------------------------------------------------------------------------

def test_cli_data_info_prints_factors_sizes_and_source(tmp_path, capsys):
    from diffrep.cli import main

    assert main(["data", "info", "shapes3d"]) == 0
    out = capsys.readouterr().out
    assert "source=procedural" in out
    for name, size in zip(*GT_PROCEDURAL["shapes3d"][:2]):
        assert any(name in ln and f"size {size:>4d}" in ln for ln in out.splitlines()), name
    classes, labels, images = shapes3d_arrays()
    np.savez(tmp_path / "3dshapes.npz", images=images, labels=labels)
    assert main(["data", "info", "shapes3d", "--root", str(tmp_path)]) == 0
    assert "source=file" in capsys.readouterr().out
    # a root without the files: a message naming the flag and the files, not a traceback
    assert main(["data", "info", "cars3d", "--root", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "--root" in err and "cars3d" in err and "Traceback" not in err


def test_cli_data_preview_writes_a_labelled_grid(tmp_path, capsys):
    from diffrep.cli import main

    png = tmp_path / "grid.png"
    assert main(["data", "preview", "disks", "--out", str(png), "-n", "4", "--scale", "1"]) == 0
    im = np.asarray(Image.open(png).convert("L")).astype(float)
    assert im.shape[0] > 2 * 32 + 2 * 12 and im.shape[1] >= 2 * 32  # 2 x 2 tiles, a title and captions
    ds = D.load("disks")  # preview draws its samples with default_rng(seed) (--seed 0) and sorts them
    idx = np.sort(np.random.default_rng(0).choice(len(ds), 4, replace=False))
    for tile in np.round(ds.observations(idx)[..., 0] * 255):
        win = np.lib.stride_tricks.sliding_window_view(im, tile.shape)
        hits = np.argwhere(np.abs(win - tile).max(axis=(2, 3)) <= 1)
        assert len(hits), "a sample is missing from the grid"
        r, c = hits[0]
        assert (im[r + 32:r + 44, c:c + 32] < 128).any()  # its caption (the factor classes) is under it
