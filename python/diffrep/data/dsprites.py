"""dSprites: the procedural renderer and the reader of the original ``.npz`` / ``.hdf5`` files.

Factors (docs/data.md#dsprites), slowest first: color 1, shape 3 (square, ellipse, heart), scale 6
(linspace(0.5, 1, 6)), orientation 40 (linspace(0, 2*pi, 40), both ends included, so class 39 renders like
class 0), posX 32, posY 32 (linspace(0, 1, 32)). By default the constant ``color`` factor is dropped, as in
disentanglement_lib's ``dsprites_full`` (5 factors 3 x 6 x 40 x 32 x 32); the flat index is the same either
way because color has one class. ``keep_color=True`` exposes all 6 file factors.

Images: binary. ``images()`` returns uint8 (n, 64, 64, 1) with values {0, 255}; ``observations()`` float32
{0, 1} (disentanglement_lib feeds dSprites as 0/1 floats); ``ds[i]`` follows ``item_format``.

Renderer geometry (docs/data.md#dsprites, fitted to the published preview animation): a pixel (row i, col j)
is ON iff its centre (j + 0.5, i + 0.5) lies inside the shape (no anti-aliasing); the sprite centre is
x = 16 + 32 * posX, y = 16 + 32 * posY (image y down, posY = 0 at the top); square side 19.2 * scale; ellipse
semi-axes 12.8 (horizontal) x 7.2 (vertical) * scale; heart = for each lobe the convex hull of a disc
(r = 5.2, centre (+-4.6, -4.0)) and the tip (0, 8.75), all * scale; rotation counter-clockwise as displayed.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from .. import _checks
from .._checks import positive_int
from .._progress import progress
from . import npzfile
from .base import GroundTruthData, check_file, check_flag, check_item_format, grid_row_map, import_h5py

FILE_NAMES = ("color", "shape", "scale", "orientation", "posX", "posY")
FILE_SIZES = (1, 3, 6, 40, 32, 32)
SHAPE_NAMES = ("square", "ellipse", "heart")
NPZ_NAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
HDF5_NAME = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5"
SIZE = 64

#: geometry in pixels of the 64 canvas at scale 1 (docs/data.md#dsprites)
SQUARE_SIDE = 19.2
ELLIPSE_AXES = (12.8, 7.2)
HEART_LOBES = ((-4.6, -4.0), (4.6, -4.0))
HEART_RADIUS = 5.2
HEART_TIP = (0.0, 8.75)


def file_factor_values() -> list[np.ndarray]:
    """The physical value grids of the six file factors (docs/data.md#dsprites)."""
    return [
        np.array([1.0]),
        np.array([1.0, 2.0, 3.0]),
        np.linspace(0.5, 1.0, 6),
        np.linspace(0.0, 2 * np.pi, 40),
        np.linspace(0.0, 1.0, 32),
        np.linspace(0.0, 1.0, 32),
    ]


# --------------------------------------------------------------------------------------------------
# renderer: per-row intervals of convex pieces, evaluated at the pixel-centre rows of each image
# --------------------------------------------------------------------------------------------------


def _rot(theta: float) -> np.ndarray:
    """Rotation counter-clockwise as displayed, acting on (x, y) column vectors with y pointing down."""
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, s], [-s, c]])


def _halfplane_interval(normals: np.ndarray, offsets: np.ndarray, y: np.ndarray):
    """Row interval [lo, hi] of {x : n . (x, y) <= d for all half-planes}, for each y (any shape)."""
    lo = np.full(y.shape, -np.inf)
    hi = np.full(y.shape, np.inf)
    for (nx, ny), d in zip(normals, offsets):
        rhs = d - ny * y
        if abs(nx) < 1e-12:
            lo = np.where(rhs < 0, np.inf, lo)
        elif nx > 0:
            hi = np.minimum(hi, rhs / nx)
        else:
            lo = np.maximum(lo, rhs / nx)
    return lo, hi


def _polygon_halfplanes(vertices: np.ndarray):
    """Outward normals and offsets of a convex polygon given counter-clockwise or clockwise vertices."""
    centre = vertices.mean(axis=0)
    normals, offsets = [], []
    for a, b in zip(vertices, np.roll(vertices, -1, axis=0)):
        e = b - a
        n = np.array([e[1], -e[0]])
        if np.dot(n, centre - a) > 0:
            n = -n
        normals.append(n)
        offsets.append(np.dot(n, a))
    return np.array(normals), np.array(offsets)


def _quadric_interval(m: np.ndarray, c: np.ndarray, y: np.ndarray):
    """Row interval of {(x, y) : (p - c)^T m (p - c) <= 1}."""
    v = y - c[1]
    a, b, d = m[0, 0], m[0, 1], m[1, 1]
    disc = (b * v) ** 2 - a * (d * v * v - 1.0)
    ok = disc >= 0
    root = np.sqrt(np.where(ok, disc, 0.0))
    lo = np.where(ok, c[0] + (-b * v - root) / a, np.inf)
    hi = np.where(ok, c[0] + (-b * v + root) / a, -np.inf)
    return lo, hi


def _union_convex(a, b):
    """Interval hull of two row intervals known to form a convex union (empty ones ignored)."""
    (l1, h1), (l2, h2) = a, b
    e1, e2 = l1 > h1, l2 > h2
    lo = np.where(e1, l2, np.where(e2, l1, np.minimum(l1, l2)))
    hi = np.where(e1, h2, np.where(e2, h1, np.maximum(h1, h2)))
    return lo, hi


def shape_row_intervals(shape: int, scale: float, theta: float, y: np.ndarray):
    """List of (lo, hi) x-intervals (sprite-centred pixels) of the sprite's convex pieces at rows ``y``.

    ``y`` holds vertical offsets from the sprite centre (pixels, y down). The shape is the union of the
    pieces; each piece's row set is one interval (empty when lo > hi).
    """
    r = _rot(theta)
    if shape == 0:
        h = SQUARE_SIDE * scale / 2
        verts = np.array([[-h, -h], [h, -h], [h, h], [-h, h]]) @ r.T
        return [_halfplane_interval(*_polygon_halfplanes(verts), y)]
    if shape == 1:
        a, b = ELLIPSE_AXES[0] * scale, ELLIPSE_AXES[1] * scale
        m = r @ np.diag([1 / a**2, 1 / b**2]) @ r.T
        return [_quadric_interval(m, np.zeros(2), y)]
    if shape == 2:
        rad = HEART_RADIUS * scale
        tip = r @ (np.array(HEART_TIP) * scale)
        pieces = []
        for lobe in HEART_LOBES:
            c = r @ (np.array(lobe) * scale)
            u = tip - c
            dist = np.linalg.norm(u)
            u = u / dist
            alpha = np.arccos(rad / dist)
            t1 = c + rad * (_rot(alpha) @ u)
            t2 = c + rad * (_rot(-alpha) @ u)
            disc = _quadric_interval(np.eye(2) / rad**2, c, y)
            tri = _halfplane_interval(*_polygon_halfplanes(np.array([tip, t1, t2])), y)
            pieces.append(_union_convex(disc, tri))
        return pieces
    raise ValueError(f"shape class must be 0, 1 or 2, got {shape}")


class _RowIntervalTable:
    """The row intervals of every sprite at the 64 pixel-centre rows of each of the 32 posY classes.

    A sprite's intervals depend only on (shape, scale, orientation) and, through the row offsets ``y``, on
    posY; posX only shifts them. They are computed on first use of a (shape, scale, orientation), for all
    posY at once, by :func:`shape_row_intervals` on the very ``y`` values a per-sprite call would see
    (element-wise float64 operations, so each entry is bit for bit what that call returns), and kept:
    rendering a batch is then one gather and a few array operations instead of one Python-level
    geometry call per sprite (docs/data.md#dsprites). Entries: float64 (3 * 6 * 40, 32, 2 pieces, lo/hi,
    64 rows), 47 MB when every sprite has been drawn; only the heart has a second piece (the square's and
    the ellipse's second entries are never set and never read). Filled under a lock (``render_all`` renders
    from several threads).
    """

    PIECES = 2

    def __init__(self):
        self._table = None
        self._done = np.zeros(FILE_SIZES[1] * FILE_SIZES[2] * FILE_SIZES[3], dtype=bool)
        self._lock = threading.Lock()

    def gather(self, keys: np.ndarray, pos_y: np.ndarray) -> np.ndarray:
        """float64 (n, 2, 2, 64): the intervals of sprites ``keys`` (shape * 240 + scale * 40 + orientation) at
        posY classes ``pos_y``."""
        with self._lock:
            if self._table is None:
                self._table = np.empty((len(self._done), FILE_SIZES[5], self.PIECES, 2, SIZE))
            for key in np.unique(keys[~self._done[keys]]):
                self._fill(int(key))
        return self._table[keys, pos_y]

    def _fill(self, key: int) -> None:
        vals = file_factor_values()
        shape, rest = divmod(key, FILE_SIZES[2] * FILE_SIZES[3])
        sc, orr = divmod(rest, FILE_SIZES[3])
        cy = 16.0 + 32.0 * vals[5]
        y = (np.arange(SIZE, dtype=np.float64) + 0.5)[None, :] - cy[:, None]  # (32, 64)
        pieces = shape_row_intervals(shape, vals[2][sc], vals[3][orr], y)
        entry = self._table[key]
        for p, (lo, hi) in enumerate(pieces):
            entry[:, p, 0], entry[:, p, 1] = lo, hi
        self._done[key] = True


_ROWS = _RowIntervalTable()
#: sprites rendered per array pass (bounds the temporaries: the gathered intervals and the images, 16 MB each)
_CHUNK = 4096


def render_dsprites(factors: np.ndarray) -> np.ndarray:
    """Render dSprites images for file-order factor classes.

    ``factors``: int (n, 6) classes (color, shape, scale, orientation, posX, posY) or (n, 5) without color.
    Returns uint8 (n, 64, 64) with values {0, 1} (the npz convention).
    """
    f = np.asarray(factors)
    if f.ndim != 2 or f.shape[1] not in (5, 6):
        raise ValueError(f"factors must be (n, 6) or (n, 5) dSprites classes, got shape {f.shape}")
    if f.shape[1] == 5:
        f = np.concatenate([np.zeros((len(f), 1), dtype=f.dtype), f], axis=1)
    f = f.astype(np.int64)
    sizes = np.array(FILE_SIZES)
    if f.size and ((f < 0) | (f >= sizes)).any():
        r, c = np.argwhere((f < 0) | (f >= sizes))[0]
        raise ValueError(f"dSprites factor {FILE_NAMES[c]!r} class {f[r, c]} out of range [0, {sizes[c]})")
    out = np.zeros((len(f), SIZE, SIZE), dtype=np.uint8)
    for lo in range(0, len(f), _CHUNK):
        out[lo : lo + _CHUNK] = _render_chunk(f[lo : lo + _CHUNK])
    return out


#: _RUNS[a, b] is the row whose pixels a <= j < b are ON (a, b in 0..64): a row of a sprite piece is one run
_RUNS = (np.arange(SIZE)[None, None, :] >= np.arange(SIZE + 1)[:, None, None]) \
    & (np.arange(SIZE)[None, None, :] < np.arange(SIZE + 1)[None, :, None])


def _render_chunk(f: np.ndarray) -> np.ndarray:
    """bool (n, 64, 64) for validated (n, 6) classes: pixel (i, j) is ON iff ceil(lo + cx - 0.5) <= j <=
    floor(hi + cx - 0.5) for a piece's interval [lo, hi] at row i (its centre j + 0.5 lies inside); the run's
    ends are clipped to the canvas and the row looked up in :data:`_RUNS`."""
    keys = f[:, 1] * (FILE_SIZES[2] * FILE_SIZES[3]) + f[:, 2] * FILE_SIZES[3] + f[:, 3]
    iv = _ROWS.gather(keys, f[:, 5])  # (n, piece, lo/hi, 64)
    cx = (16.0 + 32.0 * file_factor_values()[4][f[:, 4]])[:, None]
    img = None
    for p in range(_RowIntervalTable.PIECES):
        part = np.flatnonzero(f[:, 1] == 2) if p else slice(None)  # only the heart has a second piece
        first = np.clip(np.ceil(iv[part, p, 0] + cx[part] - 0.5), 0, SIZE).astype(np.intp)
        stop = np.clip(np.floor(iv[part, p, 1] + cx[part] - 0.5) + 1, 0, SIZE).astype(np.intp)
        if img is None:
            img = _RUNS[first, stop]
        else:
            img[part] |= _RUNS[first, stop]
    return img


# --------------------------------------------------------------------------------------------------
# datasets
# --------------------------------------------------------------------------------------------------


class _DSpritesFactors(GroundTruthData):
    name = "dsprites"

    def _setup(self, keep_color: bool, item_format: str, values=None, sizes=FILE_SIZES, names=FILE_NAMES):
        self.item_format = check_item_format(item_format)
        self.keep_color = keep_color = check_flag(keep_color, "keep_color")
        values = file_factor_values() if values is None else values
        self._file_sizes = tuple(sizes)
        first = 0 if keep_color else 1
        if not keep_color and sizes[0] != 1:
            raise ValueError(f"cannot drop the color factor: it has {sizes[0]} classes")
        self._init_factors(names[first:], sizes[first:], values[first:])

    def _file_factors(self, idx: np.ndarray) -> np.ndarray:
        return np.stack(np.unravel_index(idx, self._file_sizes), axis=1).astype(np.int64)


class DSprites(_DSpritesFactors):
    """Procedural dSprites: the full grid rendered on demand to the measured geometry (see module doc).

    Rendered images are cached as packed bits, 512 bytes per image, in the order they were first drawn
    (a growing store plus the store slot of each index: memory follows the images drawn, 15 MB for a
    30,000-image training subset, 377 MB for the full grid); ``cache=False`` disables it. :meth:`render_all`
    renders the whole grid (threads over shape/scale/orientation groups; numpy releases the GIL).
    """

    source = "procedural"

    def __init__(self, keep_color: bool = False, item_format: str = "pm1", cache: bool = True):
        cache = check_flag(cache, "cache")
        self._setup(keep_color, item_format)
        # not a dense (737,280, 512) array indexed by image: numpy asks for huge pages on large arrays, so even
        # allocated lazily it has a random training subset fault in (and zero) all 377 MB in its first batches
        self._slot = np.full(len(self), -1, dtype=np.int32) if cache else None  # store slot of each image, -1: not drawn
        self._bits = np.empty((0, SIZE * SIZE // 8), dtype=np.uint8)
        self._stored = 0

    def _images(self, idx):
        if self._slot is None:
            return render_dsprites(self._file_factors(idx))[..., None] * np.uint8(255)
        todo = np.unique(idx[self._slot[idx] < 0])
        if todo.size:
            end = self._stored + len(todo)
            if end > len(self._bits):  # grow geometrically: amortised O(1) copies per image
                grown = np.empty((min(len(self), max(end, 2 * len(self._bits), 1024)), self._bits.shape[1]), np.uint8)
                grown[: self._stored] = self._bits[: self._stored]
                self._bits = grown
            self._bits[self._stored : end] = np.packbits(
                render_dsprites(self._file_factors(todo)).reshape(len(todo), -1), axis=1)
            self._slot[todo] = np.arange(self._stored, end, dtype=np.int32)
            self._stored = end
        bits = np.unpackbits(self._bits[self._slot[idx]], axis=1)
        return (bits * np.uint8(255)).reshape(len(idx), SIZE, SIZE, 1)

    def render_all(self, workers: int | None = None, packed: bool = True) -> np.ndarray:
        """Render the full grid with ``workers`` threads (None: up to 4). Returns packed bits uint8 (N, 512) (``packed=True``, 377 MB; unpack with
        ``np.unpackbits(a, axis=1).reshape(N, 64, 64)``) or uint8 {0,1} (N, 64, 64) (2.9 GB)."""
        n, block = len(self), 32 * 32
        out = np.empty((n, SIZE * SIZE // 8) if packed else (n, SIZE, SIZE), dtype=np.uint8)

        def work(start):
            idx = np.arange(start, start + block)
            img = render_dsprites(self._file_factors(idx))
            out[start : start + block] = np.packbits(img.reshape(block, -1), axis=1) if packed else img

        workers = min(4, os.cpu_count() or 1) if workers is None else positive_int(workers, "workers")
        with ThreadPoolExecutor(workers) as ex:
            list(progress(ex.map(work, range(0, n, block)), total=-(-n // block), desc="rendering dSprites",
                          unit="block"))
        if packed and self._slot is not None:
            self._bits, self._slot[:], self._stored = out.copy(), np.arange(n, dtype=np.int32), n
        return out


class DSpritesFile(_DSpritesFactors):
    """Reader of the published dSprites files (docs/data.md#dsprites).

    ``path``: the ``.npz`` (keys ``imgs`` uint8 (N, 64, 64) in {0,1}, ``latents_classes`` int64 (N, 6),
    ``latents_values`` float64 (N, 6), ``metadata`` a pickled dict) or the ``.hdf5`` variant (datasets
    ``imgs``, ``latents/classes``, ``latents/values``). Factor sizes and names come from
    ``latents_classes`` (and ``metadata`` when present); the reader checks that the file's rows follow the
    canonical row-major order and, if they are a permutation of the full grid, reorders through an index
    map; anything else (a partial grid, wrong shapes) is an error, never a silently wrong factor order.

    Images are loaded lazily: an uncompressed member is memory-mapped; the compressed official npz is
    streamed once on first image access into packed bits (N x 512 bytes, 377 MB for the full file) rather
    than the 2.9 GB raw array. The metadata member is unpickled only if ``read_metadata=True`` (it is a
    Python pickle; only do this for files you trust).
    """

    source = "file"

    def __init__(self, path, keep_color: bool = False, item_format: str = "pm1", read_metadata: bool = False):
        path = check_file(path, "path", f"a dsprites file ({NPZ_NAME} or {HDF5_NAME})")
        self.path = path
        read_metadata = check_flag(read_metadata, "read_metadata")
        self._h5 = path.suffix.lower() in (".h5", ".hdf5")
        classes, values, n_imgs, img_shape = self._read_latents()
        if classes.ndim != 2 or classes.shape[1] != 6 or values.shape != classes.shape:
            raise ValueError(
                f"{path}: latents_classes/latents_values must be (N, 6), got {classes.shape} / {values.shape}"
            )
        if n_imgs != len(classes) or tuple(img_shape[1:]) != (SIZE, SIZE):
            raise ValueError(f"{path}: imgs has shape {img_shape}, expected ({len(classes)}, 64, 64)")
        if classes.size and classes.min() < 0:
            raise ValueError(f"{path}: negative entries in latents_classes")
        sizes = tuple(int(s) for s in classes.max(axis=0) + 1)
        names = FILE_NAMES
        if read_metadata and self._h5:
            raise ValueError(f"{path}: read_metadata=True needs the .npz file (the .hdf5 variant has no metadata "
                             "member); drop read_metadata")
        if read_metadata:
            meta = npzfile.load_member(path, "metadata", allow_pickle=True)[()]
            names = tuple(meta.get("latents_names", names))
            msizes = tuple(int(s) for s in meta.get("latents_sizes", sizes))
            if msizes != sizes:
                raise ValueError(f"{path}: metadata latents_sizes {msizes} disagree with latents_classes {sizes}")
        row = grid_row_map(classes, sizes, path)  # the grid first: a repeated row is named as such
        grid_values = []
        for k, s in enumerate(sizes):
            v = np.zeros(s)
            v[classes[:, k]] = values[:, k]
            off = ~np.isclose(v[classes[:, k]], values[:, k], rtol=1e-6, atol=1e-9)
            if off.any():
                r = int(np.flatnonzero(off)[0])
                raise ValueError(f"{path}: latents_values column {k} disagrees with latents_classes: class "
                                 f"{classes[r, k]} has the values {float(values[r, k])!r} and {float(v[classes[r, k]])!r}")
            grid_values.append(v)
        self._setup(keep_color, item_format, grid_values, sizes, names)
        self._row = row
        self._mem = None
        self._bits = None

    def _read_latents(self):
        if self._h5:
            h5py = import_h5py()
            try:
                with h5py.File(self.path, "r") as f:
                    classes, values = np.asarray(f["latents/classes"][()]), np.asarray(f["latents/values"][()])
                    if not isinstance(f["imgs"], h5py.Dataset):
                        raise ValueError(f"{self.path}: 'imgs' is an HDF5 group, expected a dataset")
                    shape, dtype = f["imgs"].shape, f["imgs"].dtype
            except KeyError as exc:
                raise ValueError(f"{self.path}: missing dataset {exc} (expected imgs, latents/classes, latents/values)") from None
            except OSError as exc:
                raise ValueError(f"{self.path}: not a readable HDF5 file: {exc}") from exc
        else:
            classes = npzfile.load_member(self.path, "latents_classes")
            values = npzfile.load_member(self.path, "latents_values")
            shape, _, dtype = npzfile.member_header(self.path, "imgs")
        if dtype != np.uint8:
            raise ValueError(f"{self.path}: imgs must be uint8, got {dtype}")
        return _integer_classes(classes, self.path), np.asarray(values, dtype=np.float64), \
            (shape[0] if shape else 0), shape

    def _load_images(self):
        if self._h5:
            h5py = import_h5py()
            with h5py.File(self.path, "r") as f:
                chunks = [np.packbits(f["imgs"][i : i + 8192].reshape(-1, SIZE * SIZE) > 0, axis=1)
                          for i in range(0, len(self), 8192)]
            self._bits = np.concatenate(chunks) if chunks else np.zeros((0, 512), np.uint8)
            return
        mem = npzfile.member_memmap(self.path, "imgs")
        if mem is not None:
            self._mem = mem
            return
        chunks = [np.packbits(c.reshape(len(c), -1) > 0, axis=1) for c in npzfile.iter_member_rows(self.path, "imgs")]
        self._bits = np.concatenate(chunks) if chunks else np.zeros((0, 512), np.uint8)

    def _images(self, idx):
        if self._mem is None and self._bits is None:
            self._load_images()
        rows = self._row[idx] if self._row is not None else idx
        if self._mem is not None:
            img = (np.asarray(self._mem[rows]) > 0).astype(np.uint8)
        else:
            img = np.unpackbits(self._bits[rows], axis=1).reshape(len(rows), SIZE, SIZE)
        return (img * np.uint8(255))[..., None]

    def __getstate__(self):
        st = self.__dict__.copy()
        st["_mem"] = None  # re-mapped in each DataLoader worker
        return st


def _integer_classes(classes, path) -> np.ndarray:
    """latents_classes as int64, refusing non-integer values (a cast would truncate them silently)."""
    classes = np.asarray(classes)
    if classes.dtype == bool or not (np.issubdtype(classes.dtype, np.integer)
                                     or np.issubdtype(classes.dtype, np.floating)):
        raise ValueError(f"{path}: latents_classes must be integers, got dtype {classes.dtype}")
    if np.issubdtype(classes.dtype, np.floating) and not np.all(classes == np.round(classes)):
        raise ValueError(f"{path}: latents_classes must be whole numbers, got non-integer values "
                         "(is latents_values stored under that key?)")
    return classes.astype(np.int64)


def find_file(root) -> Path | None:
    """The dSprites file under ``root`` (npz preferred), or None."""
    root = _checks.path(root, "root")
    for sub in ("", "dsprites", "dsprites-dataset"):
        for name in (NPZ_NAME, HDF5_NAME):
            p = root / sub / name
            if p.is_file():
                return p
    return None
