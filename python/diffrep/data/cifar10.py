"""CIFAR-10 from the python pickle batches (docs/data.md#mnist-and-binarisation).

Files under ``root`` or ``root/cifar-10-batches-py``: ``data_batch_1`` .. ``data_batch_5`` (split
``"train"``, 50,000 images, in that order) and ``test_batch`` (``"test"``, 10,000), plus ``batches.meta``
for the class names (optional). Each batch is a pickled dict with ``data`` uint8 (10000, 3072) = 1024 R,
1024 G, 1024 B values, each a row-major 32x32 plane, and ``labels`` (a list of ints); both str and bytes
keys are accepted. The batches (30 MB each) are unpickled when the dataset is built; pickle executes code
from the file, so only read files you trust.

Item access: ``(image, label)``; raw images uint8 (n, 32, 32, 3) 0..255 (HWC); ``ds[i]`` per ``item_format``.
"""

from __future__ import annotations

import pickle

import numpy as np

from .. import _checks
from .base import ImageDataset, check_choice, check_file, check_item_format, missing_file_error

BATCHES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _get(d: dict, key: str):
    if key in d:
        return d[key]
    if key.encode() in d:
        return d[key.encode()]
    raise KeyError(key)


def read_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (n, 32, 32, 3), labels int64 (n,)) of one pickled CIFAR-10 batch."""
    path = check_file(path, "path", "a pickled CIFAR-10 batch")
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="latin1")
        data, labels = np.asarray(_get(d, "data")), np.asarray(_get(d, "labels"))
    except FileNotFoundError:
        raise
    except KeyError as exc:
        raise ValueError(f"{path}: CIFAR-10 batch has no {exc} entry") from None
    except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable CIFAR-10 pickle batch: {exc}") from exc
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"{path}: 'data' must be uint8 (n, 3072), got {data.dtype} {data.shape}")
    if labels.size and (labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer)):
        raise ValueError(f"{path}: 'labels' must be integer classes 0..9, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    if labels.shape != (data.shape[0],) or (labels.size and (labels.min() < 0 or labels.max() > 9)):
        raise ValueError(f"{path}: 'labels' must hold {data.shape[0]} classes in 0..9")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


class CIFAR10(ImageDataset):
    """CIFAR-10 read from the python batches (see the module docstring)."""

    name = "cifar10"
    source = "file"
    target_names = ("label",)

    def __init__(self, root, split: str = "train", item_format: str = "pm1"):
        check_choice("split", split, BATCHES)
        self.item_format, self.split = check_item_format(item_format), split
        root = _checks.path(root, "root")
        folder = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root
        paths = [folder / b for b in BATCHES[split]]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise missing_file_error("cifar10", missing, folder)
        parts = [read_batch(p) for p in paths]
        self._imgs = np.ascontiguousarray(np.concatenate([p[0] for p in parts]))
        self.labels = np.concatenate([p[1] for p in parts])
        self.classes = CLASSES
        meta = folder / "batches.meta"
        if meta.is_file():
            try:
                with open(meta, "rb") as f:
                    self.classes = tuple(str(c) for c in _get(pickle.load(f, encoding="latin1"), "label_names"))
            except (KeyError, pickle.UnpicklingError, EOFError) as exc:
                raise ValueError(f"{meta}: unreadable batches.meta: {exc}") from exc

    def __len__(self):
        return len(self.labels)

    def _images(self, idx):
        return self._imgs[idx]

    def _targets(self, idx):
        return self.labels[idx]
