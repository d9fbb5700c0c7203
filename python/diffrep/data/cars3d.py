"""Cars3D from the folder of MATLAB files of Reed et al. 2015 (docs/data.md#cars3d).

Folder (``root``, ``root/cars`` or ``root/data/cars``): ``list.txt`` (the ordered names of the car files,
without extension) and one ``NAME.mat`` per car holding ``im`` uint8 (H, W, 3, 24, 4) (128 x 128 in the
release; azimuth axis 24, elevation axis 4). Cars are taken in ``list.txt`` order (disent; deterministic,
unlike disentanglement_lib's directory listing); a folder of ``.mat`` files without ``list.txt`` (the
layout disentanglement_lib reads) takes them sorted by file name. Factor order is disentanglement_lib's: elevation 4,
azimuth 24, object 183 (object fastest). Each image is resized to ``size`` (default 64) with Lanczos
(disentanglement_lib's PIL thumbnail ANTIALIAS). Cars are read and resized lazily, one .mat per car, and
kept (216 MB for all 183 at 64x64).

Images: uint8 (n, size, size, 3) 0..255 raw; float32 [0, 1] observations.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .._progress import progress
from .._checks import positive_int
from .. import _checks
from .base import GroundTruthData, check_folder, check_item_format, missing_file_error

NAMES = ("elevation", "azimuth", "object")


SUBFOLDERS = ("", "cars", "data/cars", "cars3d")


def find_folder(root) -> Path | None:
    """The Cars3D folder under ``root``: the first of ``root``, ``root/cars``, ``root/data/cars``,
    ``root/cars3d`` holding ``list.txt``; failing that, the first holding ``.mat`` files (the layout
    disentanglement_lib reads, ``$DISENTANGLEMENT_LIB_DATA/cars/*.mat``, with no list)."""
    root = _checks.path(root, "root")
    for sub in SUBFOLDERS:
        if (root / sub / "list.txt").is_file():
            return root / sub
    for sub in SUBFOLDERS:
        if (root / sub).is_dir() and any(p.is_file() for p in (root / sub).glob("*.mat")):
            return root / sub
    return None


def car_names(folder: Path) -> list[str]:
    """The car file names (without ``.mat``) in factor order: ``list.txt`` order when the folder has
    one, else every ``*.mat`` file sorted by name (car_001_mesh, car_002_mesh, ...)."""
    folder = check_folder(folder, "folder", "the Cars3D folder of .mat files")
    listing = folder / "list.txt"
    if listing.is_file():
        names = [ln.strip() for ln in listing.read_text().splitlines() if ln.strip()]
        names = [n[:-4] if n.endswith(".mat") else n for n in names]
        if not names:
            raise ValueError(f"{listing}: lists no car files")
        return names
    return sorted(p.stem for p in folder.glob("*.mat") if p.is_file())


class Cars3D(GroundTruthData):
    """Cars3D (see the module docstring)."""

    name = "cars3d"
    source = "file"

    def __init__(self, root, size: int = 64, item_format: str = "pm1"):
        folder = find_folder(root)
        if folder is None:
            raise missing_file_error("cars3d", ["car_*_mesh.mat (list.txt optional)"], root)
        positive_int(size, "size")
        names = car_names(folder)
        if len(set(names)) != len(names):
            dup = next(n for k, n in enumerate(names) if n in names[:k])
            raise ValueError(f"{folder / 'list.txt'}: car {dup!r} is listed more than once")
        missing = [n for n in names if not (folder / f"{n}.mat").is_file()]
        if missing:
            raise missing_file_error("cars3d", [f"{missing[0]}.mat" + (f" (+{len(missing) - 1} more)" if len(missing) > 1 else "")],
                                     folder)
        self.folder, self.cars, self.size = folder, names, int(size)
        self.item_format = check_item_format(item_format)
        self._init_factors(NAMES, (4, 24, len(names)))
        self._loaded: dict[int, np.ndarray] = {}

    def _car(self, k: int) -> np.ndarray:
        """uint8 (4, 24, size, size, 3) for car k (elevation, azimuth)."""
        if k in self._loaded:
            return self._loaded[k]
        from scipy.io import loadmat
        from scipy.io.matlab import MatReadError

        path = self.folder / f"{self.cars[k]}.mat"
        try:
            im = loadmat(path)["im"]
        except KeyError:
            raise ValueError(f"{path}: no 'im' array in the .mat file") from None
        except (MatReadError, ValueError, OSError, TypeError) as exc:
            raise ValueError(f"{path}: not a readable MATLAB file: {exc}") from exc
        if im.dtype != np.uint8 or im.ndim != 5 or im.shape[2:] != (3, 24, 4):
            raise ValueError(f"{path}: 'im' must be uint8 (H, W, 3, 24, 4), got {im.dtype} {im.shape}")
        frames = np.einsum("abcde->edabc", im)  # (elev 4, azim 24, H, W, 3)
        out = np.empty((4, 24, self.size, self.size, 3), np.uint8)
        for e in range(4):
            for a in range(24):
                pil = Image.fromarray(frames[e, a])
                if pil.size != (self.size, self.size):
                    pil = pil.resize((self.size, self.size), Image.LANCZOS)
                out[e, a] = np.asarray(pil)
        self._loaded[k] = out
        return out

    def _images(self, idx):
        f = self._targets(idx)
        new = sorted({int(o) for o in f[:, 2]} - set(self._loaded))
        for k in progress(new, total=len(new), desc="loading Cars3D", unit="car", enabled=len(new) > 1):
            self._car(k)
        out = np.empty((len(idx), self.size, self.size, 3), np.uint8)
        for k, (e, a, o) in enumerate(f):
            out[k] = self._car(int(o))[e, a]
        return out
