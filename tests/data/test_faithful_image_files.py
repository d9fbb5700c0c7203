"""Faithfulness of the image readers against the original file formats (docs/data.md), on fixtures
written here byte by byte: MNIST IDX (big-endian magic 2051 / 2049), CIFAR-10 python pickles (three
1024-value colour planes), CelebA (list_attr_celeba.txt -1/1, list_eval_partition.txt 0/1/2, the
64 px crops), plus BFN's binarisation and validation split."""

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from diffrep.data import load
from diffrep.data.celeba import ATTRIBUTES, CelebA
from diffrep.data.cifar10 import CIFAR10
from diffrep.data.mnist import MNIST, bfn_validation_split


# ---------------- MNIST / FashionMNIST IDX ----------------

def _write_idx_pair(folder, prefix, imgs, labels, gz=False):
    n, h, w = imgs.shape
    img_bytes = struct.pack(">IIII", 2051, n, h, w) + imgs.tobytes()  # magic 0x00000803
    lab_bytes = struct.pack(">II", 2049, n) + labels.tobytes()  # magic 0x00000801
    for name, data in ((f"{prefix}-images-idx3-ubyte", img_bytes), (f"{prefix}-labels-idx1-ubyte", lab_bytes)):
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_idx_bytes_row_major(tmp_path, name, folder):
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    n = 3
    imgs = np.zeros((n, 28, 28), np.uint8)
    imgs[0, 0, 27] = 255  # top-right corner: byte 16 + 27 of the file
    imgs[1, 27, 0] = 128  # bottom-left corner: byte 16 + 784 + 27 * 28
    imgs[2, 5, 9] = 7
    labels = np.array([9, 0, 4], np.uint8)
    _write_idx_pair(raw, "train", imgs, labels)
    _write_idx_pair(raw, "t10k", imgs[::-1].copy(), labels[::-1].copy(), gz=True)
    blob = (raw / "train-images-idx3-ubyte").read_bytes()
    assert blob[:4] == b"\x00\x00\x08\x03" and blob[16 + 27] == 255 and blob[16 + 784 + 27 * 28] == 128
    d = load(name, root=tmp_path, split="train", item_format="01")
    assert len(d) == 3 and d.labels.tolist() == [9, 0, 4]
    raw_imgs = d.images([0, 1, 2])
    assert raw_imgs.shape == (3, 28, 28, 1) and raw_imgs.dtype == np.uint8
    assert raw_imgs[0, 0, 27, 0] == 255 and raw_imgs[1, 27, 0, 0] == 128 and raw_imgs[2, 5, 9, 0] == 7
    assert int(raw_imgs.astype(int).sum()) == 255 + 128 + 7
    x, y = d[1]
    assert x.shape == (1, 28, 28) and abs(float(x[0, 27, 0]) - 128 / 255) < 1e-7 and int(y) == 0
    x, _ = load(name, root=tmp_path, split="train")[1]  # default "pm1": 2 x / 255 - 1
    assert abs(float(x[0, 27, 0]) - (2 * 128 / 255 - 1)) < 1e-6 and float(x[0, 0, 0]) == -1.0
    t = load(name, root=tmp_path, split="test", item_format="uint8")
    assert t.labels.tolist() == [4, 0, 9] and int(t[0][0][0, 5, 9]) == 7
    assert MNIST(tmp_path, split="test", name=name).classes[0] == ("0" if name == "mnist" else "T-shirt/top")


def test_binarisation_conventions(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    imgs = np.zeros((2, 28, 28), np.uint8)
    imgs[0] = 64  # p = 64 / 255
    imgs[1, :, :14] = 127
    imgs[1, :, 14:] = 128
    _write_idx_pair(raw, "t10k", imgs, np.array([1, 2], np.uint8))
    thr = MNIST(tmp_path, split="test", binarize="threshold", item_format="01")
    b = thr.images([1])[0, :, :, 0]
    assert (b[:, :14] == 0).all() and (b[:, 14:] == 255).all()  # pixel / 255 > 0.5
    nz = MNIST(tmp_path, split="test", binarize="nonzero")
    assert (nz.images([0]) == 255).all()
    dyn = MNIST(tmp_path, split="test", binarize="dynamic", seed=3)
    draws = []
    for e in range(40):
        dyn.set_epoch(e)
        draws.append(dyn.images([0])[0, :, :, 0] == 255)
    freq = np.mean(draws)
    # Bernoulli(64 / 255) per pixel (BFN's torch.bernoulli(ToTensor(x))): 31,360 draws, sd ~ 0.0025
    assert abs(freq - 64 / 255) < 0.012
    x, _ = dyn[0]
    assert set(torch.unique(x).tolist()) <= {-1.0, 1.0}


def test_bfn_validation_split_is_torch_random_split():
    train, val = bfn_validation_split()
    ref = torch.utils.data.random_split(range(60000), [1.0 - 0.01, 0.01],
                                        generator=torch.Generator().manual_seed(2147483647))
    assert train.tolist() == list(ref[0].indices) and val.tolist() == list(ref[1].indices)


# ---------------- CIFAR-10 python pickles ----------------

def test_cifar10_planes_and_batch_order(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for b in range(1, 6):
        data = np.zeros((2, 3072), np.uint8)
        data[:, 0] = 10 * b  # R of pixel (0, 0)
        data[0, 1024 + 31] = 200  # G of pixel (0, 31)
        data[1, 2048 + 32 * 31] = 150  # B of pixel (31, 0)
        with open(folder / f"data_batch_{b}", "wb") as f:
            pickle.dump({b"batch_label": f"training batch {b} of 5".encode(), b"labels": [b, 9 - b],
                         b"data": data, b"filenames": [b"a.png", b"b.png"]}, f, protocol=2)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"labels": [7], b"data": np.full((1, 3072), 3, np.uint8)}, f, protocol=2)
    d = load("cifar10", root=tmp_path, split="train", item_format="uint8")
    assert len(d) == 10 and d.labels.tolist() == [1, 8, 2, 7, 3, 6, 4, 5, 5, 4]
    im = d.images(np.arange(10))
    assert im.shape == (10, 32, 32, 3)
    assert im[:, 0, 0, 0].tolist() == [10, 10, 20, 20, 30, 30, 40, 40, 50, 50]
    assert im[0, 0, 31, 1] == 200 and im[0, 31, 0, 1] == 0  # column 31 of row 0, not row 31
    assert im[1, 31, 0, 2] == 150 and im[1, 0, 31, 2] == 0
    assert int(im[0].astype(int).sum()) == 10 + 200 and int(im[1].astype(int).sum()) == 10 + 150
    x, y = d[0]
    assert x.shape == (3, 32, 32) and int(x[1, 0, 31]) == 200 and int(y) == 1
    assert len(CIFAR10(tmp_path, split="test")) == 1


# ---------------- CelebA ----------------

def _celeba_root(tmp_path, n=4):
    """Aligned-CelebA layout. Images are stored losslessly (PNG bytes under the .jpg names; Pillow reads
    the content) so crop boundaries can be checked exactly."""
    img_dir = tmp_path / "img_align_celeba"
    img_dir.mkdir()
    names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    for k, name in enumerate(names):
        a = np.zeros((218, 178, 3), np.uint8)
        a[57:185, 25:153] = 200  # the DiffAE box (25, 57, 153, 185)
        a[35:183, 15:163, 2] = 100  # the torchvision CenterCrop(148) window, blue channel
        a[:, :, 1] = k  # identifies the file
        Image.fromarray(a).save(img_dir / name, format="PNG")
    attrs = np.ones((n, 40), np.int64)
    attrs[1, 20] = -1  # image 2 is not Male
    attrs[:, 39] = [-1, 1, -1, 1]
    lines = [str(n), " ".join(ATTRIBUTES)]
    lines += [name + "".join(f" {v:2d}" if j else f"  {v:2d}" for j, v in enumerate(row)) for name, row in
              zip(names, attrs)]
    (tmp_path / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg 1\n000003.jpg 2\n000004.jpg 0\n")
    return attrs


def test_celeba_attributes_partition_and_order(tmp_path):
    attrs = _celeba_root(tmp_path)
    tr = load("celeba", root=tmp_path, split="train", item_format="uint8")
    assert tr.files == ["000001.jpg", "000004.jpg"]
    assert load("celeba", root=tmp_path, split="valid").files == ["000002.jpg"]
    assert load("celeba", root=tmp_path, split="test").files == ["000003.jpg"]
    assert len(load("celeba", root=tmp_path, split="all")) == 4
    assert tr.target_names[20] == "Male" and tr.target_names[39] == "Young"
    _, y = tr[1]
    assert y.dtype == torch.int64 and y.tolist() == ((attrs[3] + 1) // 2).tolist() and int(y[39]) == 1
    v = load("celeba", root=tmp_path, split="valid")
    assert v.attributes[0, 20] == 0 and v.attributes[0, 0] == 1  # -1 -> 0, 1 -> 1


def test_celeba_crops_exact_windows(tmp_path):
    _celeba_root(tmp_path)
    diffae = CelebA(tmp_path, split="all", crop="diffae").images([2])[0].astype(int)
    # the 128 x 128 box is exactly the red 200 square: any 1-px shift would blend 0 into the border
    assert (diffae[:, :, 0] == 200).all() and (diffae[:, :, 1] == 2).all()
    c148 = CelebA(tmp_path, split="all", crop=148).images([0])[0].astype(int)
    assert (c148[:, :, 2] == 100).all()  # CenterCrop(148): top 35, left 15
    full = CelebA(tmp_path, split="all", crop="none").images([0])[0]
    assert full.shape == (218, 178, 3)
    # "center" = torchvision Resize(64) (178 x 218 -> 64 x int(64 * 218 / 178) = 78) + CenterCrop(64) (top 7)
    src = Image.open(tmp_path / "img_align_celeba" / "000001.jpg").convert("RGB")
    ref = np.asarray(src.resize((64, 78), Image.BILINEAR))[7:71]
    assert np.array_equal(CelebA(tmp_path, split="all", crop="center").images([0])[0], ref)
    with pytest.raises(ValueError, match="crop"):
        CelebA(tmp_path, split="all", crop="middle")
    with pytest.raises(ValueError, match="crop"):
        CelebA(tmp_path, split="all", crop=300)
