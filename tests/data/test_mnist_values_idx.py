"""The IDX reader and the MNIST dataset against the published IDX layout (LeCun's format: two zero bytes, a
type code, the number of dimensions, then one big-endian uint32 per dimension; docs/data.md#mnist-and-binarisation)
and BFN's validation split against torch's random_split. Found by mutation testing
(benches/results/mutation_gaps_2026-12-08.md)."""

import gzip
import struct

import numpy as np
import pytest
import torch

from diffrep.data.mnist import MNIST, bfn_validation_split, read_idx


def _header(code, dims):
    return bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)


def _idx(arr):
    code = {np.uint8: 0x08, np.int32: 0x0C}[arr.dtype.type]
    return _header(code, arr.shape) + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def test_read_idx_memmaps_uint8_read_only_and_reads_others_whole(tmp_path):
    u8 = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    p = tmp_path / "u8"
    p.write_bytes(_idx(u8))
    m = read_idx(p)  # the default maps the file, read-only
    assert isinstance(m, np.memmap) and not m.flags.writeable and np.array_equal(m, u8)
    a = read_idx(p, mmap=False)
    assert not isinstance(a, np.memmap) and np.array_equal(a, u8)
    # big-endian int32, 2-D: read whole in native order (never mapped, whatever mmap says)
    i32 = (np.arange(6, dtype=np.int32).reshape(2, 3) - 3) * 70000
    q = tmp_path / "i32"
    q.write_bytes(_idx(i32))
    b = read_idx(q, mmap=True)
    assert not isinstance(b, np.memmap) and b.shape == (2, 3) and b.dtype == np.int32 and np.array_equal(b, i32)
    # an empty file of shape (0,) has an 8-byte header and no payload
    e = tmp_path / "empty"
    e.write_bytes(_header(0x08, (0,)))
    assert read_idx(e, mmap=False).shape == (0,)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_messages_name_the_sizes(tmp_path, gz):
    p = tmp_path / "x"
    data = _idx(np.zeros((4, 28, 28), np.uint8))[:-5]
    p.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(ValueError, match=r"IDX payload has 3131 bytes, header \(4, 28, 28\) needs 3136"):
        read_idx(p)
    # dims are four big-endian bytes each: values beyond 2^24 and 2^16 keep their high bytes
    head = _header(0x08, (1, 2**24 + 1, 70000))
    p.write_bytes(gzip.compress(head) if gz else head)
    with pytest.raises(ValueError, match=r"header \(1, 16777217, 70000\) needs"):
        read_idx(p)


@pytest.mark.parametrize("head, why", [
    (b"\x00\x01\x08\x01" + b"\0" * 4, r"bad magic 00010801\)"),
    (b"\x01\x00\x08\x01" + b"\0" * 4, r"bad magic 01000801\)"),
    (b"\x00\x00\x07\x01" + b"\0" * 4, r"bad magic 00000701\)"),
    (b"\x00\x00\x08", r"bad magic 000008"),
    (b"\x00\x00\x08\x01", r"truncated IDX header"),
    (b"\x00\x00\x08\x00" + b"\0" * 8, r"truncated IDX header"),  # zero dimensions
    (b"\x00\x00\x08\x03" + b"\0" * 8, r"truncated IDX header"),  # three dims, two given
])
def test_read_idx_header_checks(tmp_path, head, why):
    p = tmp_path / "h"
    p.write_bytes(head)
    with pytest.raises(ValueError, match=why) as err:
        read_idx(p)
    assert str(p) in str(err.value)
    p.write_bytes(gzip.compress(head))
    with pytest.raises(ValueError, match=why) as err:
        read_idx(p)
    assert str(p) in str(err.value)


def test_read_idx_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"^path: .* does not exist \(expected an IDX file\)"):
        read_idx(tmp_path / "missing")
    p = tmp_path / "bad.gz"
    p.write_bytes(b"\x1f\x8b" + b"garbage")
    with pytest.raises(ValueError, match="bad.gz: corrupt gzip stream"):
        read_idx(p)


def _mnist_files(folder, imgs, labels, split="train"):
    folder.mkdir(parents=True, exist_ok=True)
    names = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}[split]
    (folder / names[0]).write_bytes(_idx(imgs) if isinstance(imgs, np.ndarray) else imgs)
    (folder / names[1]).write_bytes(_idx(labels) if isinstance(labels, np.ndarray) else labels)


def test_mnist_defaults_and_the_raw_folder(tmp_path):
    imgs = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], np.uint8)
    _mnist_files(tmp_path / "raw", imgs, labels)  # root/raw is one of the searched folders
    d = MNIST(tmp_path)  # split "train" by default
    assert d.split == "train" and d.source == "file" and d.name == "mnist"
    assert d.labels.dtype == np.int64 and d.labels.tolist() == [3, 1, 4, 1, 5]
    assert np.array_equal(d.images([4, 0])[..., 0], imgs[[4, 0]])
    # the binarisation seed defaults to 0
    assert np.array_equal(MNIST(tmp_path, binarize="static").images([0, 1, 2]),
                          MNIST(tmp_path, binarize="static", seed=0).images([0, 1, 2]))


def test_mnist_file_checks(tmp_path):
    imgs = np.zeros((3, 28, 28), np.uint8)
    cases = {
        "count": (imgs, np.array([0, 1], np.uint8), r"do not match 2 labels"),
        "label10": (imgs, np.array([0, 1, 10], np.uint8), r"labels must be a 1-D array of classes 0\.\.9"),
        "labels2d": (imgs, np.array([[0], [1], [2]], np.uint8), r"labels must be a 1-D array of classes 0\.\.9"),
        "int32images": (np.zeros((3, 28, 28), np.int32), np.array([0, 1, 2], np.uint8), r"images must be uint8 IDX"),
        "magic": (b"\x00\x01\x08\x03" + b"\0" * 12, np.array([0, 1, 2], np.uint8), r"bad magic"),
        "gzip": (b"\x1f\x8b" + b"garbage", np.array([0, 1, 2], np.uint8), r"corrupt file"),
    }
    for name, (im, lab, why) in cases.items():
        root = tmp_path / name
        _mnist_files(root, im, lab)
        with pytest.raises(ValueError, match=why) as err:
            MNIST(root)
        assert "train-" in str(err.value), name  # the message names the file


@pytest.mark.parametrize("n, frac", [(7, 0.3), (10, 0.1), (10, 0.85), (101, 0.01), (60000, 0.01)])
def test_bfn_validation_split_matches_random_split(n, frac):
    # torch.utils.data.random_split with fractions floors both parts and gives the remainder round-robin
    train, val = bfn_validation_split(n, frac, seed=5)
    ref = torch.utils.data.random_split(range(n), [1.0 - frac, frac], generator=torch.Generator().manual_seed(5))
    assert train.tolist() == list(ref[0].indices) and val.tolist() == list(ref[1].indices)


def test_bfn_validation_split_refuses_empty_parts_and_closed_fractions():
    for n, frac in ((10, 0.05), (10, 0.95)):  # floor(0.5) = 0 rows in one part
        with pytest.raises(ValueError, match="leaves an empty training or validation part"):
            bfn_validation_split(n, frac)
    for frac in (0.0, 1.0):
        with pytest.raises(ValueError, match=r"val_frac must lie in \(0, 1\)"):
            bfn_validation_split(10, frac)


def test_pickled_mnist_drops_its_images(tmp_path):
    import pickle

    imgs = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    _mnist_files(tmp_path, imgs, np.array([1, 2], np.uint8))
    d = MNIST(tmp_path)
    d.images([0])
    st = d.__getstate__()
    assert st["_imgs"] is None and d._imgs is not None and st["labels"].tolist() == [1, 2]
    assert np.array_equal(pickle.loads(pickle.dumps(d)).images([1])[..., 0], imgs[[1]])
