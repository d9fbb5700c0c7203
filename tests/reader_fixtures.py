"""Writers of tiny fixtures in the datasets' original file formats (docs/data.md): the same keys, dtypes
and layouts as the published files, each image encoding its own file row so that a factor order can be
checked against the index. Shared by tests/contract/test_contract_issue_03.py and the readers' input
sweep (tests/data/test_input_sweep_readers.py).

Import as ``from reader_fixtures import ...`` (``tests/`` is on ``sys.path``, see ``tests/helpers.py``).
"""

from __future__ import annotations

import gzip
import io
import pickle
import struct
from pathlib import Path

import numpy as np

DSPRITES_NPZ = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
PUBLISHED_DSPRITES = [np.array([1.0]), np.array([1.0, 2.0, 3.0]), np.linspace(0.5, 1, 6),
                      np.linspace(0, 2 * np.pi, 40), np.linspace(0, 1, 32), np.linspace(0, 1, 32)]
PUBLISHED_SHAPES3D = [np.arange(10) / 10, np.arange(10) / 10, np.arange(10) / 10, np.linspace(0.75, 1.25, 8),
                      np.arange(4.0), np.linspace(-30, 30, 15)]


def odometer(sizes):
    """All factor rows in published order (the last factor turns fastest), written without numpy's index
    helpers so that the index math under test is checked against an independent enumeration."""
    rows, cur = [], [0] * len(sizes)
    for _ in range(int(np.prod(sizes))):
        rows.append(list(cur))
        for k in range(len(sizes) - 1, -1, -1):
            cur[k] += 1
            if cur[k] < sizes[k]:
                break
            cur[k] = 0
    return np.array(rows, dtype=np.int64)


def stamp(n, h=1, w=1):
    """uint8 (n, h, w, 3) RGB images holding their row number in 24 bits (R the low byte)."""
    i = np.arange(n)
    px = np.stack([i % 256, (i // 256) % 256, i // 65536], 1).astype(np.uint8)
    return np.broadcast_to(px[:, None, None, :], (n, h, w, 3)).copy()


def unstamp(imgs):
    a = np.asarray(imgs)[:, 0, 0, :3].astype(np.int64)
    return a[:, 0] + 256 * a[:, 1] + 65536 * a[:, 2]


def write_dsprites(path, sizes, shuffle=None):
    """dsprites npz with the published keys: imgs uint8 (N, 64, 64) {0, 1}, latents_classes int64 (N, 6),
    latents_values float64 (N, 6), metadata a pickled dict; row r carries r in binary along its top row."""
    classes = odometer(sizes)
    if shuffle is not None:
        classes = classes[shuffle]
    values = np.stack([PUBLISHED_DSPRITES[k][classes[:, k]] for k in range(6)], 1)
    imgs = np.zeros((len(classes), 64, 64), np.uint8)
    for r in range(len(classes)):
        imgs[r, 0, :16] = [(r >> b) & 1 for b in range(16)]
    meta = {"latents_sizes": np.array(sizes), "latents_names": ("color", "shape", "scale", "orientation", "posX",
                                                                  "posY"), "version": 1}
    np.savez_compressed(path, imgs=imgs, latents_classes=classes, latents_values=values,
                        metadata=np.array(meta, dtype=object))
    return classes


def write_car(path, code):
    """A Cars3D .mat: im uint8 (H, W, 3, 24 azimuths, 4 elevations); pixel = (code, azimuth, elevation)."""
    from scipy.io import savemat

    im = np.zeros((4, 4, 3, 24, 4), np.uint8)
    im[:, :, 0] = code
    im[:, :, 1] = np.arange(24)[:, None]
    im[:, :, 2] = np.arange(4)[None, :]
    savemat(path, {"im": im, "mask": np.ones((4, 4, 24, 4), np.uint8)})


ATTRS = ("5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
         "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
         "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
         "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
         "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young").split()


def idx_bytes(arr, magic_type=0x08):
    """An IDX file: 0, 0, type, ndim, big-endian uint32 dims, then the row-major payload."""
    return bytes([0, 0, magic_type, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.tobytes()

def write_shapes3d(folder, sizes=(2, 1, 1, 1, 2, 3), h5=True) -> Path:
    """``3dshapes.h5`` (datasets images uint8 (N, H, W, 3), labels float64 (N, 6) factor VALUES) or the
    flat ``3dshapes.npz`` (keys images/labels) holding the first ``sizes`` classes of each published grid."""
    classes = odometer(sizes)
    labels = np.stack([PUBLISHED_SHAPES3D[k][classes[:, k]] for k in range(6)], 1)
    images = stamp(len(classes), 2, 2)
    folder = Path(folder)
    if not h5:
        np.savez(folder / "3dshapes.npz", images=images, labels=labels)
        return folder / "3dshapes.npz"
    import h5py

    with h5py.File(folder / "3dshapes.h5", "w") as f:
        f.create_dataset("images", data=images)
        f.create_dataset("labels", data=labels)
    return folder / "3dshapes.h5"


def write_celeba(root, n=4, partition=(0, 0, 1, 2)):
    """Aligned-CelebA layout: img_align_celeba/000001.jpg .. (178 x 218), list_attr_celeba.txt (count, the
    40 names, rows of -1/1) and list_eval_partition.txt. Returns the 0/1 attributes (n, 40)."""
    from PIL import Image

    root = Path(root)
    (root / "img_align_celeba").mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:218, 0:178]
    signs = np.where(np.random.default_rng(0).random((n, 40)) < 0.5, -1, 1)
    lines = [str(n), " ".join(ATTRS)]
    for k in range(n):
        a = np.stack([xx * 255 // 177, yy * 255 // 217, np.full_like(xx, 60 * k)], -1).astype(np.uint8)
        Image.fromarray(a).save(root / "img_align_celeba" / f"{k + 1:06d}.jpg", quality=95)
        lines.append(f"{k + 1:06d}.jpg " + " ".join(f"{v:2d}" for v in signs[k]))
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (root / "list_eval_partition.txt").write_text("".join(f"{k + 1:06d}.jpg {p}\n" for k, p in enumerate(partition)))
    return (signs + 1) // 2


def write_mnist(root, n_train=6, n_test=3, gz_train=True, seed=2):
    """The four IDX files (train gzipped, t10k plain by default). Returns {"train"|"t10k": (images, labels)}."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    data = {}
    for split, n, gz in (("train", n_train, gz_train), ("t10k", n_test, False)):
        imgs = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        for kind, arr in (("images-idx3", imgs), ("labels-idx1", labels)):
            name = f"{split}-{kind}-ubyte"
            if gz:
                (root / (name + ".gz")).write_bytes(gzip.compress(idx_bytes(arr)))
            else:
                (root / name).write_bytes(idx_bytes(arr))
        data[split] = (imgs, labels)
    return data


def write_cifar10(root, per_batch=2, seed=4):
    """``root/cifar-10-batches-py/`` with data_batch_1..5 and test_batch as Python-2 style pickles (bytes
    keys; data uint8 (n, 3072) = R, G, B row-major 32 x 32 planes). Returns {batch: (hwc images, labels)}."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    expect = {}
    for b in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch).tolist()
        with open(folder / b, "wb") as f:
            pickle.dump({b"batch_label": b.encode(), b"data": data, b"labels": labels,
                         b"filenames": [b"%d.png" % k for k in range(per_batch)]}, f, protocol=2)
        hwc = np.stack([data[:, c * 1024:(c + 1) * 1024].reshape(per_batch, 32, 32) for c in range(3)], -1)
        expect[b] = (hwc, labels)
    return expect


def write_lsun(path, images: dict, fmt="PNG"):
    """An LSUN LMDB environment folder (``<category>_<split>_lmdb/data.mdb``): key = the image id (ASCII),
    value = the encoded image bytes."""
    import lmdb
    from PIL import Image

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    env = lmdb.open(str(path), map_size=1 << 24, subdir=True)
    with env.begin(write=True) as txn:
        for key, arr in images.items():
            buf = io.BytesIO()
            Image.fromarray(arr).save(buf, format=fmt)
            txn.put(key.encode("ascii"), buf.getvalue())
    env.close()
