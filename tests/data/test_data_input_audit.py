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
