"""Binarisation conventions for greyscale digit data (docs/data.md#mnist-and-binarisation).

Modes:

* ``None`` / ``"none"``: no binarisation (uint8 0..255 greyscale);
* ``"dynamic"`` (the BFN ``bin_mnist`` convention): a fresh Bernoulli(pixel / 255) sample on every epoch.
  To stay reproducible and safe in DataLoader workers, the sample for item ``i`` is drawn from
  ``numpy.random.default_rng([seed, epoch, i])``: the same (seed, epoch, index) always gives the same
  image, a new epoch (``set_epoch``) gives a new sample;
* ``"static"``: one fixed Bernoulli sample per image, from ``default_rng([seed, i])`` (a fixed-seed
  static sample);
* ``"threshold"``: pixel / 255 > 0.5 (i.e. pixel >= 128);
* ``"nonzero"``: pixel > 0, what the ParamReL notebook's ``collate_dynamic_binarize`` amounts to (it
  compares raw uint8 pixels with one U(0, 1) scalar per image; docs/methods/paramrel.md#paper-versus-public-code, item 16).

Binary output is uint8 {0, 255} in the dataset's raw images, i.e. {0, 1} after ``observations()`` or
``item_format="01"``.
"""

from __future__ import annotations

import numpy as np

MODES = ("none", "dynamic", "static", "threshold", "nonzero")


def check_mode(mode) -> str:
    mode = "none" if mode is None else mode
    if mode not in MODES:
        raise ValueError(f"binarize must be one of {MODES} or None, got {mode!r}")
    return mode


def binarize(images: np.ndarray, indices: np.ndarray, mode: str, seed: int = 0, epoch: int = 0) -> np.ndarray:
    """Binarise uint8 greyscale ``images`` (n, ...) of dataset items ``indices`` (n,) per ``mode``."""
    if mode is None or mode not in MODES:  # None fell through to the static sample
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not isinstance(images, np.ndarray) or images.ndim < 2:
        raise TypeError(f"images must be a numpy array (n, ...) of uint8 images, got {getattr(images, 'shape', type(images).__name__)}")
    if mode == "none":
        return images
    if images.dtype != np.uint8:
        raise TypeError(f"binarize expects uint8 images, got {images.dtype}")
    for name, v in (("seed", seed), ("epoch", epoch)):  # int() truncated 1.5 and read True as 1
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} must be a non-negative int, got {v!r}")
    idx = np.asarray(indices)
    if idx.ndim != 1 or len(idx) != len(images) or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        # a shorter or longer index list paired images with the wrong items' samples
        raise ValueError(f"indices must be {len(images)} integer item indices (n,) for the {len(images)} images, got "
                         f"{idx.dtype} shape {idx.shape}")
    if mode == "threshold":
        return np.where(images >= 128, np.uint8(255), np.uint8(0))
    if mode == "nonzero":
        return np.where(images > 0, np.uint8(255), np.uint8(0))
    out = np.empty_like(images)
    p = images.astype(np.float64) / 255.0
    for k, i in enumerate(idx):
        key = [int(seed), int(epoch), int(i)] if mode == "dynamic" else [int(seed), int(i)]
        u = np.random.default_rng(key).random(p[k].shape)
        out[k] = np.where(u < p[k], np.uint8(255), np.uint8(0))
    return out


class BinarizeMixin:
    """Adds ``binarize`` / ``seed`` / ``epoch`` handling to an image dataset with uint8 greyscale data."""

    binarize_mode: str = "none"
    seed: int = 0
    epoch: int = 0

    def _init_binarize(self, mode, seed: int) -> None:
        self.binarize_mode = check_mode(mode)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        self.seed, self.epoch = int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        """Select the dynamic-binarisation sample for this epoch (call it with the sampler's epoch)."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
        self.epoch = int(epoch)

    def _binarize(self, images, idx):
        return binarize(images, idx, self.binarize_mode, self.seed, self.epoch)
