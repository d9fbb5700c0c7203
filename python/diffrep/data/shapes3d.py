"""Shapes3D: the reader of the published files and a procedural "Shapes3D-grid" generator.

Factors (docs/data.md#shapes3d), slowest first: floor_hue 10, wall_hue 10, object_hue 10 (values 0.0 ... 0.9),
scale 8 (linspace(0.75, 1.25, 8)), shape 4 (0 cube, 1 cylinder, 2 sphere, 3 capsule), orientation 15
(linspace(-30, 30, 15) degrees). N = 480,000.

Images: uint8 (n, 64, 64, 3) in 0..255 from ``images()``; float32 [0, 1] (/255, as disentanglement_lib) from
``observations()``; ``ds[i]`` follows ``item_format``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .. import _checks
from .._progress import progress
from . import npzfile
from .base import GroundTruthData, LRUCache, check_file, check_flag, check_item_format, grid_row_map, import_h5py

NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
SIZES = (10, 10, 10, 8, 4, 15)
SHAPE_NAMES = ("cube", "cylinder", "sphere", "capsule")
H5_NAME = "3dshapes.h5"
NPZ_NAMES = ("3dshapes.npz", "look-at-object-room_floor-hueXwall-hueXobj-hueXobj-sizeXobj-shapeXview-azi.npz")


def factor_values() -> list[np.ndarray]:
    """The six value grids as stored in the file's ``labels`` (docs/data.md#shapes3d)."""
    hue = np.arange(10) / 10.0
    return [hue, hue.copy(), hue.copy(), np.linspace(0.75, 1.25, 8), np.arange(4.0), np.linspace(-30.0, 30.0, 15)]


def classes_from_labels(labels: np.ndarray, path) -> tuple[np.ndarray, list[np.ndarray]]:
    """Factor classes (int64 (N, 6)) and value grids from the ``labels`` values, ranking each column's
    distinct values (as TFDS does; values equal to 1e-6 are merged)."""
    labels = np.asarray(labels)
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.number) or np.iscomplexobj(labels):
        raise TypeError(f"labels: {path}: factor values must be real numbers, got dtype {labels.dtype}")
    if labels.ndim != 2 or labels.shape[1] != 6:
        raise ValueError(f"{path}: labels must be (N, 6) factor values, got shape {labels.shape}")
    if not np.isfinite(labels).all():
        raise ValueError(f"{path}: labels contain non-finite values")
    classes, values = np.empty(labels.shape, np.int64), []
    for k in range(6):
        v, inv = np.unique(np.round(labels[:, k], 6), return_inverse=True)
        classes[:, k], values = inv.reshape(-1), values + [v]
    return classes, values


class Shapes3DFile(GroundTruthData):
    """Reader of ``3dshapes.h5`` (datasets ``images`` uint8 (N, 64, 64, 3) and ``labels`` float64 (N, 6)
    holding factor VALUES) and of the npz variants (keys ``images``/``labels``, either flat (N, ...) or with
    the 6 leading factor axes of disentanglement_lib's file).

    The factor grids are taken from the distinct label values; the reader checks that the rows form the full
    grid and follow the canonical order (or reorders through an index map), so a wrong factor order cannot
    pass silently. Images are read lazily: h5 reads only the requested rows (sorted for h5py), an uncompressed
    npz member is memory-mapped; ``in_memory=True`` loads all images once (5.9 GB for the real file), which
    is much faster for random access than h5py. A compressed npz is always loaded on first image access.
    """

    name = "shapes3d"
    source = "file"

    def __init__(self, path, item_format: str = "pm1", in_memory: bool = False):
        path = check_file(path, "path", f"a shapes3d file ({', '.join((H5_NAME,) + NPZ_NAMES)})")
        self.path, self.item_format, self.in_memory = path, check_item_format(item_format), check_flag(in_memory, "in_memory")
        self._h5 = path.suffix.lower() in (".h5", ".hdf5")
        self._file = self._pid = self._arr = None
        if self._h5:
            h5py = import_h5py()
            try:
                with h5py.File(path, "r") as f:
                    for key in ("images", "labels"):
                        if key in f and not isinstance(f[key], h5py.Dataset):
                            raise ValueError(f"{path}: {key!r} is an HDF5 group, expected a dataset")
                    labels, shape, dtype = np.asarray(f["labels"][()], np.float64), f["images"].shape, f["images"].dtype
            except KeyError as exc:
                raise ValueError(f"{path}: missing dataset {exc} (expected 'images' and 'labels')") from None
            except OSError as exc:
                raise ValueError(f"{path}: not a readable HDF5 file: {exc}") from exc
        else:
            labels = npzfile.load_member(path, "labels").astype(np.float64)
            shape, _, dtype = npzfile.member_header(path, "images")
            labels = labels.reshape(-1, labels.shape[-1]) if labels.ndim > 2 else labels
            shape = (int(np.prod(shape[:-3])),) + tuple(shape[-3:]) if len(shape) >= 4 else shape
        if dtype != np.uint8 or len(shape) != 4 or shape[-1] != 3:
            raise ValueError(f"{path}: images must be uint8 (N, H, W, 3), got {dtype} {tuple(shape)}")
        if shape[0] != len(labels):
            raise ValueError(f"{path}: {shape[0]} images but {len(labels)} label rows")
        classes, values = classes_from_labels(labels, path)
        sizes = tuple(int(v.size) for v in values)
        self._init_factors(NAMES, sizes, values)
        self._row = grid_row_map(classes, sizes, path)
        self._shape = tuple(shape)

    def _h5file(self):
        if self._file is None or self._pid != os.getpid():  # reopen in each DataLoader worker
            self._file, self._pid = import_h5py().File(self.path, "r"), os.getpid()
        return self._file["images"]

    def _load(self):
        if self._h5:
            self._arr = self._h5file()[()]
            return
        mem = npzfile.member_memmap(self.path, "images")
        arr = mem if mem is not None else npzfile.load_member(self.path, "images")
        arr = arr.reshape(self._shape)
        self._arr = np.ascontiguousarray(arr) if self.in_memory else arr

    def _images(self, idx):
        rows = self._row[idx] if self._row is not None else idx
        if self._arr is None and (self.in_memory or not self._h5):
            self._load()
        if self._arr is not None:
            return np.asarray(self._arr[rows])
        uniq, inv = np.unique(rows, return_inverse=True)
        return self._h5file()[uniq.tolist()][inv.reshape(-1)]

    def __getstate__(self):
        st = self.__dict__.copy()
        st["_file"] = None
        if not self.in_memory:
            st["_arr"] = None
        return st


def hue_to_rgb(h: np.ndarray) -> np.ndarray:
    """Fully saturated, full-value HSV hue in [0, 1) -> RGB float (..., 3)."""
    h = np.asarray(h, dtype=np.float64)
    k = (np.array([5.0, 3.0, 1.0]) + h[..., None] * 6.0) % 6.0
    return 1.0 - np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


class Shapes3D(GroundTruthData):
    """Procedural Shapes3D-grid generator: the same six factors, value grids, order and index math as
    ``3dshapes.h5``, drawn by a simple 2D renderer. THE PIXELS DIFFER FROM THE ORIGINAL MuJoCo RENDERS; only
    the factor structure is the same (docs/data.md#shapes3d), so metric numbers are not comparable with
    published Shapes3D results.

    Scene (64 x 64 RGB, uint8): a light-blue sky band (RGB 152, 221, 249) over the top 17 rows, the wall
    (rows 17..39, pure HSV hue ``wall_hue``) with a vertical corner whose column moves with ``orientation``
    (the view azimuth; the left face is darker), the floor (rows 40..63, hue ``floor_hue`` with a lighting
    gradient), and the object centred on the floor with a soft shadow: cube (two shaded faces whose split
    moves with orientation), cylinder (a rectangle with a lighter elliptic top), sphere (radially shaded
    disc), capsule (a stadium), all scaled by ``scale`` and coloured by ``object_hue``.
    """

    name = "shapes3d"
    source = "procedural"

    def __init__(self, item_format: str = "pm1", cache_size: int = 65536):
        self.item_format = check_item_format(item_format)
        self._init_factors(NAMES, SIZES, factor_values())
        self._obj: dict[tuple[int, int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._cache = LRUCache(cache_size)

    def _object(self, sc: int, shape: int, orr: int):
        key = (sc, shape, orr)
        if key in self._obj:
            return self._obj[key]
        s = self.factor_values[3][sc]
        phi = np.deg2rad(self.factor_values[5][orr])
        yy, xx = np.mgrid[0:64, 0:64] + 0.5
        cx, base = 32.0, 55.0
        h = 18.0 * s
        if shape == 0:  # cube: width grows with the azimuth, two faces
            w = 14.0 * s * (np.cos(phi) + abs(np.sin(phi)))
            mask = (abs(xx - cx) <= w / 2) & (yy >= base - h) & (yy <= base)
            split = cx + (w / 2) * np.sin(phi) * 1.5
            shade = np.where(xx < split, 0.75, 1.0)
        elif shape == 1:  # cylinder
            w = 14.0 * s
            top = base - h
            body = (abs(xx - cx) <= w / 2) & (yy >= top) & (yy <= base)
            cap = ((xx - cx) / (w / 2)) ** 2 + ((yy - top) / (2.5 * s)) ** 2 <= 1.0
            mask = body | cap
            shade = np.where(cap, 1.0, 0.85 - 0.25 * abs(xx - cx) / (w / 2))
        elif shape == 2:  # sphere
            r = 8.5 * s
            d = np.hypot(xx - cx, yy - (base - r))
            mask = d <= r
            shade = 1.0 - 0.45 * np.clip(np.hypot(xx - cx + 0.35 * r, yy - (base - r) + 0.35 * r) / (1.6 * r), 0, 1)
        else:  # capsule: a stadium standing up
            r = 5.5 * s
            top, bot = base - h + r, base - r
            dy = np.clip(yy, top, bot)
            mask = np.hypot(xx - cx, yy - dy) <= r
            shade = 0.95 - 0.3 * abs(xx - cx) / r
        shadow = (((xx - cx - 4.0 * s) / (12.0 * s)) ** 2 + ((yy - base) / (3.0 * s)) ** 2 <= 1.0) & ~mask
        self._obj[key] = out = (mask, np.clip(shade, 0.0, 1.0) * mask, shadow)
        return out

    def render(self, factors) -> np.ndarray:
        """uint8 (n, 64, 64, 3) images for factor class rows (n, 6)."""
        f = self.check_factors(factors)
        n = len(f)
        v = self.factor_values
        cols = np.arange(64) + 0.5
        sky = np.array([152, 221, 249]) / 255.0
        img = np.empty((n, 64, 64, 3))
        img[:, :17] = sky
        wall = hue_to_rgb(v[1][f[:, 1]])
        corner = 32.0 - 20.0 * v[5][f[:, 5]] / 30.0
        wshade = np.where(cols[None, :] < corner[:, None], 0.8, 1.0)  # (n, 64)
        img[:, 17:40] = wall[:, None, None, :] * wshade[:, None, :, None]
        floor = hue_to_rgb(v[0][f[:, 0]])
        fshade = np.linspace(0.7, 1.0, 24)
        img[:, 40:] = floor[:, None, None, :] * fshade[None, :, None, None]
        obj = hue_to_rgb(v[2][f[:, 2]])
        for k in progress(range(n), total=n, desc="rendering Shapes3D", unit="img", enabled=n >= 1000):
            mask, shade, shadow = self._object(int(f[k, 3]), int(f[k, 4]), int(f[k, 5]))
            img[k][shadow] *= 0.6
            img[k][mask] = obj[k] * shade[mask][:, None]
        return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)

    def _images(self, idx):
        return self._cache.get_many(idx, lambda i: self.render(self._targets(i)))


def find_file(root) -> Path | None:
    """The Shapes3D file under ``root`` (h5 preferred), or None."""
    root = _checks.path(root, "root")
    for sub in ("", "3dshapes", "shapes3d"):
        for name in (H5_NAME, *NPZ_NAMES):
            if (root / sub / name).is_file():
                return root / sub / name
    return None
