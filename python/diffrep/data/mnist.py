"""MNIST and FashionMNIST from the original IDX files, gzipped or not (docs/data.md#mnist-and-binarisation).

Files looked for under ``root``, ``root/MNIST/raw`` (``root/FashionMNIST/raw``) and ``root/raw``:
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte``, each optionally with ``.gz``. Uncompressed image files are memory-mapped;
gzipped ones are decompressed into memory on first access (47 MB for the MNIST training set).

Binarisation (docs/data.md#mnist-and-binarisation, :mod:`.binarize`): ``binarize=None`` (greyscale), ``"dynamic"`` (BFN's
``bin_mnist``: a fresh Bernoulli sample per epoch, seeded by (seed, epoch, index)), ``"static"`` (one fixed
sample, seeded by (seed, index)) or ``"threshold"`` (pixel >= 128). The mode is recorded in ``describe()``.

Item access: ``(image, label)``; raw images uint8 (n, 28, 28, 1) 0..255 ({0, 255} when binarised);
``ds[i]`` formatted by ``item_format`` (``"01"`` gives the BFN {0, 1} values).
Splits: ``"train"`` (60,000) and ``"test"`` (10,000). BFN's 99%/1% validation split is
:func:`bfn_validation_split`.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from .. import _checks
from .base import ImageDataset, check_choice, check_file, check_flag, check_item_format, missing_file_error
from .binarize import BinarizeMixin

IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
CLASSES = {
    "mnist": tuple(str(i) for i in range(10)),
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                      "Bag", "Ankle boot"),
}


def _parse_header(head: bytes, path) -> tuple[np.dtype, tuple[int, ...], int]:
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic {head[:4].hex()})")
    ndim = head[3]
    if ndim < 1 or len(head) < 4 + 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header")
    dims = tuple(int.from_bytes(head[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim))
    return np.dtype(IDX_DTYPES[head[2]]), dims, 4 + 4 * ndim


def read_idx(path, mmap: bool = True) -> np.ndarray:
    """Read an IDX file (gzipped if its first bytes say so). Returns the array in native byte order, or a
    read-only memmap for an uncompressed uint8 file with ``mmap=True``. Truncated files raise ValueError."""
    path = check_file(path, "path", "an IDX file")
    mmap = check_flag(mmap, "mmap")
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    if gz:
        try:
            with gzip.open(path, "rb") as f:
                data = f.read()
        except (OSError, EOFError) as exc:
            raise ValueError(f"{path}: corrupt gzip stream: {exc}") from exc
        dtype, dims, off = _parse_header(data[:64], path)
        need = int(np.prod(dims)) * dtype.itemsize
        if len(data) - off != need:
            raise ValueError(f"{path}: IDX payload has {len(data) - off} bytes, header {dims} needs {need}")
        return np.frombuffer(data, dtype=dtype, offset=off, count=int(np.prod(dims))).reshape(dims).astype(
            dtype.newbyteorder("="))
    with open(path, "rb") as f:
        head = f.read(64)
    dtype, dims, off = _parse_header(head, path)
    need = int(np.prod(dims)) * dtype.itemsize
    if path.stat().st_size - off != need:
        raise ValueError(f"{path}: IDX payload has {path.stat().st_size - off} bytes, header {dims} needs {need}")
    if mmap and dtype == np.uint8:
        return np.memmap(path, dtype=np.uint8, mode="r", offset=off, shape=dims)
    return np.fromfile(path, dtype=dtype, offset=off).reshape(dims).astype(dtype.newbyteorder("="))


def find_files(root, name: str, split: str) -> tuple[Path, Path]:
    """The (images, labels) IDX files of ``split`` for dataset ``name`` under ``root`` (see the module doc)."""
    root = _checks.path(root, "root")
    check_choice("name", name, FOLDERS)
    check_choice("split", split, FILES)
    folders = [root, root / FOLDERS[name] / "raw", root / FOLDERS[name], root / "raw"]
    out = []
    for base in FILES[split]:
        hit = next((d / (base + ext) for d in folders for ext in ("", ".gz") if (d / (base + ext)).is_file()), None)
        if hit is None:
            raise missing_file_error(name, [f"{base}[.gz]"], f"{root} (also {FOLDERS[name]}/raw/)")
        out.append(hit)
    return out[0], out[1]


class MNIST(BinarizeMixin, ImageDataset):
    """MNIST or FashionMNIST (``name``) read from IDX files (see the module docstring)."""

    target_names = ("label",)

    def __init__(self, root, split: str = "train", name: str = "mnist", binarize=None, seed: int = 0,
                 item_format: str = "pm1"):
        check_choice("name", name, FOLDERS)
        check_choice("split", split, FILES)
        _checks.path(root, "root")
        self.name, self.source, self.split = name, "file", split
        self.item_format = check_item_format(item_format)
        self._init_binarize(binarize, seed)
        self.classes = CLASSES[name]
        img_path, lab_path = find_files(root, name, split)
        self._img_path = img_path
        labels = read_idx(lab_path, mmap=False)
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"{lab_path}: labels must be an integer IDX file (type 0x08), got {labels.dtype}")
        self.labels = labels.astype(np.int64)
        shape = self._peek_shape(img_path)
        if len(shape) != 3 or shape[0] != len(self.labels):
            raise ValueError(f"{img_path}: images {shape} do not match {len(self.labels)} labels in {lab_path}")
        if self.labels.ndim != 1 or (self.labels.size and (self.labels.min() < 0 or self.labels.max() > 9)):
            raise ValueError(f"{lab_path}: labels must be a 1-D array of classes 0..9")
        self._imgs = None

    @staticmethod
    def _peek_shape(path) -> tuple[int, ...]:
        opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
        try:
            with opener(path, "rb") as f:
                head = f.read(64)
        except (OSError, EOFError) as exc:
            raise ValueError(f"{path}: corrupt file: {exc}") from exc
        dtype, dims, _ = _parse_header(head, path)
        if dtype != np.uint8:
            raise ValueError(f"{path}: images must be uint8 IDX (type 0x08)")
        return dims

    def __len__(self):
        return len(self.labels)

    def _images(self, idx):
        if self._imgs is None:
            self._imgs = read_idx(self._img_path)
        return self._binarize(np.asarray(self._imgs[idx])[..., None], idx)

    def _targets(self, idx):
        return self.labels[idx]

    def describe(self):
        d = super().describe()
        d["binarize"] = self.binarize_mode
        return d

    def __getstate__(self):
        st = self.__dict__.copy()
        st["_imgs"] = None
        return st


def bfn_validation_split(n: int = 60000, val_frac: float = 0.01, seed: int = 2147483647):
    """(train_indices, val_indices) of BFN's random_split (docs/data.md#mnist-and-binarisation): torch.randperm with a
    Generator seeded ``seed``, val size ``int(n * val_frac)`` taken from the end as torch.random_split does
    for fractional lengths (59,400 / 600 for MNIST)."""
    import torch

    n = _checks.positive_int(n, "n")
    val_frac = _checks.probability(val_frac, "val_frac", open_low=True, open_high=True)
    seed = _checks.non_negative_int(seed, "seed")
    if int(np.floor(n * val_frac)) < 1 or int(np.floor(n * (1 - val_frac))) < 1:
        # an empty part: the caller's training or validation set would silently hold nothing
        raise ValueError(f"n={n} with val_frac={val_frac} leaves an empty training or validation part")
    # torch.utils.data.random_split with fractions: floor each part, give the remainder round-robin
    lengths = [int(np.floor(n * (1 - val_frac))), int(np.floor(n * val_frac))]
    for i in range(n - sum(lengths)):
        lengths[i % 2] += 1
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    return perm[: lengths[0]], perm[lengths[0] :]
