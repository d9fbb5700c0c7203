"""Binarised digits: the real 8x8 handwritten digits bundled inside scikit-learn, upscaled.

A small real discrete data set for BFN-discrete tests and smoke runs with no download (docs/data.md
section 10). The 1797 images of ``sklearn/datasets/data/digits.csv.gz`` (64 pixels 0..16 + the label) are
read with numpy from the installed package (no sklearn import needed), mapped to 0..255 (``v * 255 / 16``,
rounded), upscaled to ``size`` x ``size`` with bilinear interpolation (PIL), then binarised (default
``"threshold"``: a fixed binary image per item; ``"dynamic"``/``"static"`` as in :mod:`.binarize`).

Item access: ``(image, label)``; images uint8 (n, size, size, 1) 0..255 raw ({0, 255} when binarised),
``ds[i]`` formatted by ``item_format``. Splits: ``None``/``"all"`` (1797), ``"train"`` (the first 1500) and
``"test"`` (the last 297): a fixed split in file order (a choice; sklearn has none).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
from PIL import Image

from .base import ImageDataset, check_choice, check_item_format
from .binarize import BinarizeMixin

SPLITS = {None: (0, 1797), "all": (0, 1797), "train": (0, 1500), "test": (1500, 1797)}


def digits_csv_path() -> Path:
    """Path of sklearn's bundled digits.csv.gz (located without importing sklearn)."""
    import importlib.util

    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("digits: scikit-learn is not installed; its bundled digits.csv.gz is needed")
    p = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
    if not p.is_file():
        raise FileNotFoundError(f"digits: expected scikit-learn's bundled file at {p}")
    return p


def load_digits_raw() -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (1797, 8, 8) in 0..16, labels int64 (1797,))."""
    with gzip.open(digits_csv_path(), "rt") as f:
        a = np.loadtxt(f, delimiter=",", dtype=np.int64)
    if a.ndim != 2 or a.shape[1] != 65:
        raise ValueError(f"digits.csv.gz has shape {a.shape}, expected (1797, 65)")
    return a[:, :64].reshape(-1, 8, 8).astype(np.uint8), a[:, 64]


class Digits(BinarizeMixin, ImageDataset):
    """scikit-learn's digits, upscaled and binarised (see the module docstring)."""

    name = "digits"
    source = "procedural"
    target_names = ("label",)

    def __init__(self, size: int = 32, split: str | None = None, binarize="threshold", seed: int = 0,
                 item_format: str = "pm1"):
        if not isinstance(size, (int, np.integer)) or not 8 <= size <= 256:
            raise ValueError(f"size must be an int in [8, 256], got {size!r}")
        check_choice("split", split, SPLITS)
        self.item_format = check_item_format(item_format)
        self._init_binarize(binarize, seed)
        raw, labels = load_digits_raw()
        lo, hi = SPLITS[split]
        grey = np.round(raw[lo:hi].astype(np.float64) * (255.0 / 16.0)).astype(np.uint8)
        if size != 8:
            grey = np.stack([np.asarray(Image.fromarray(g).resize((size, size), Image.BILINEAR)) for g in grey])
        self._grey = grey[..., None]
        self.labels = labels[lo:hi]
        self.split, self.size = split, int(size)

    def __len__(self):
        return len(self.labels)

    def _images(self, idx):
        return self._binarize(self._grey[idx], idx)

    def _targets(self, idx):
        return self.labels[idx]
