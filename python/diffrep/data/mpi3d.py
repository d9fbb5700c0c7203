"""MPI3D (toy / realistic / real) from the published ``.npz`` (docs/data.md#mpi3d).

The file holds one member ``images`` uint8 (N, 64, 64, 3) in canonical factor order (vertical_axis fastest).
The layout is inferred from N rather than trusted from either README: 1,036,800 -> (6, 6, 2, 3, 3, 40, 40)
(the final release), 460,800 -> (4, 4, 2, 3, 3, 40, 40) (the old toy set and real_complex); any other N is an
error unless ``factor_sizes`` is given explicitly. The images member is memory-mapped in place inside the
zip (stored uncompressed, as ``np.savez`` writes it); nothing is read until an item is accessed. A compressed
member (``np.savez_compressed``) cannot be mapped: up to :data:`AUTO_DECOMPRESS_BYTES` (1 GiB) of images it is
decompressed into memory on first access; a larger one is refused unless ``in_memory=True`` (the full release
decompressed is ~12 GB).

Factor values are the class indices (the colours/shapes are categorical; names in ``CATEGORIES``).
Images: uint8 (n, 64, 64, 3) 0..255 raw; float32 [0, 1] observations (/255, as disentanglement_lib).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .._checks import non_negative_int
from . import npzfile
from .base import GroundTruthData, check_file, check_flag, check_item_format

NAMES = ("object_color", "object_shape", "object_size", "camera_height", "background_color",
         "horizontal_axis", "vertical_axis")
LAYOUTS = {1036800: (6, 6, 2, 3, 3, 40, 40), 460800: (4, 4, 2, 3, 3, 40, 40)}
FILE_NAMES = ("mpi3d_toy.npz", "mpi3d_realistic.npz", "mpi3d_real.npz", "mpi3d_real_complex.npz",
              "sim_toy_64x_ordered_without_heldout_factors.npz")
#: a compressed images member up to this many bytes is decompressed into memory without asking
AUTO_DECOMPRESS_BYTES = 1 << 30
CATEGORIES = {
    6: {"object_color": ("white", "green", "red", "blue", "brown", "olive"),
        "object_shape": ("cone", "cube", "cylinder", "hexagonal", "pyramid", "sphere")},
    "common": {"object_size": ("small", "large"), "camera_height": ("top", "center", "bottom"),
               "background_color": ("purple", "sea green", "salmon")},
}


def infer_layout(n: int) -> tuple[int, ...]:
    """Factor sizes of an MPI3D file with ``n`` images."""
    n = non_negative_int(n, "n")
    if n not in LAYOUTS:
        raise ValueError(
            f"mpi3d: n={n} images match no known layout ({', '.join(f'{k} -> {v}' for k, v in LAYOUTS.items())}); "
            "the file is truncated or not MPI3D (pass factor_sizes= for a custom subset)"
        )
    return LAYOUTS[n]


class MPI3D(GroundTruthData):
    """Memory-mapped MPI3D (see the module docstring)."""

    source = "file"

    def __init__(self, path, item_format: str = "pm1", factor_sizes=None, in_memory: bool = False,
                 name: str = "mpi3d_toy"):
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str (the dataset's name in descriptions), got {name!r}")
        path = check_file(path, "path", f"an MPI3D .npz ({', '.join(FILE_NAMES)})")
        self.path, self.name, self.item_format = path, name, check_item_format(item_format)
        in_memory = check_flag(in_memory, "in_memory")
        shape, _, dtype = npzfile.member_header(path, "images")
        if dtype != np.uint8 or len(shape) < 4 or shape[-1] != 3:
            raise ValueError(f"{path}: images must be uint8 (N, H, W, 3), got {dtype} {shape}")
        n = int(np.prod(shape[:-3]))
        if factor_sizes is not None and (isinstance(factor_sizes, (str, bytes)) or not isinstance(
                factor_sizes, (Sequence, np.ndarray)) or not all(
                isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in factor_sizes)):
            raise TypeError(f"factor_sizes must be a sequence of 7 ints, got {factor_sizes!r}")
        sizes = infer_layout(n) if factor_sizes is None else tuple(int(s) for s in factor_sizes)
        if len(sizes) != 7 or int(np.prod(sizes)) != n:
            raise ValueError(f"{path}: factor_sizes {sizes} must be 7 sizes whose product is N={n}")
        self._init_factors(NAMES, sizes)
        self._img_shape = (n,) + tuple(shape[-3:])
        mem = npzfile.member_memmap(path, "images")
        if mem is None and not in_memory:
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            if nbytes > AUTO_DECOMPRESS_BYTES:
                raise ValueError(f"{path}: the images member is compressed and cannot be memory-mapped; "
                                 f"pass in_memory=True to decompress it into RAM ({nbytes / 2**30:.1f} GiB)")
            in_memory = True  # a small compressed file (a subset, a test fixture): decompress it once
        self._arr = None
        self.in_memory = in_memory

    def _data(self):
        if self._arr is None:
            mem = npzfile.member_memmap(self.path, "images")
            arr = mem if mem is not None else npzfile.load_member(self.path, "images")
            self._arr = arr.reshape(self._img_shape)
        return self._arr

    def _images(self, idx):
        return np.asarray(self._data()[idx])

    def __getstate__(self):
        st = self.__dict__.copy()
        if not self.in_memory:
            st["_arr"] = None
        return st
