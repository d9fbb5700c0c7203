"""LSUN scene categories in their original LMDB layout (docs/data.md#lsun).

The LSUN release (Yu et al. 2015, ``fyu/lsun``) ships one LMDB environment per category and split,
a folder ``<category>_<split>_lmdb/`` holding ``data.mdb`` and ``lock.mdb`` (e.g.
``bedroom_train_lmdb/``, 3,033,042 images; ``bedroom_val_lmdb/``, 300). Each record's key is the
image id (ASCII, a 40-character hex digest) and its value the encoded image bytes (WebP for the
scene categories, JPEG in some object releases); Pillow detects the format from the bytes.

``root`` is the environment folder itself (the one holding ``data.mdb``; when its name follows the
release pattern it must match ``category`` and ``split``), or a folder holding
``<category>_<split>_lmdb/`` (directly or under ``lsun/``). Images are taken in key order (LMDB's
byte order, the order of the release's own ``export`` script), so a subset (``start``,
``num_images``: keys ``start .. start + num_images - 1``) is fixed and the keys after it are a
disjoint held-out set. Keys are listed once, when the dataset is built, only as far as the subset
needs.

Preprocessing (``crop``, ``size``, ``resample``):

* ``"center"`` (default; the latent-diffusion convention for LSUN 256): the central
  min(H, W) x min(H, W) square (offsets (H - m) // 2, (W - m) // 2), then resized to ``size`` x
  ``size`` with ``resample`` (``"bicubic"`` default, or ``"bilinear"``); a square already of the
  right size is returned unchanged;
* ``"none"``: the whole image resized to ``size`` x ``size`` (aspect not kept); ``size=None``
  keeps the decoded image (batches then need equal sizes).

The environment is opened read-only without a lock file (``lock=False``), so read-only media work,
and reopened in each process (DataLoader workers never share a handle across ``fork``). Reading
needs the ``lmdb`` package (``pip install 'diffrep[lsun]'``).

Item access: ``(image, target)`` with an empty int64 target (LSUN scenes have no labels per image);
raw images uint8 (n, size, size, 3) 0..255; ``ds[i]`` per ``item_format``.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .. import _checks
from .base import ImageDataset, check_choice, check_indices, check_item_format
from .image_folder import check_image, check_num_images, to_array

__all__ = ["LSUN", "find_lmdb", "holds_lmdb", "import_lmdb", "center_square", "SPLITS"]

SPLITS = ("train", "val")
RESAMPLE = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}
_CATEGORY = re.compile(r"^[a-z][a-z0-9_]*$")
_ENVS: dict = {}  # resolved folder -> (pid, environment): one handle per process
_ENV_NAME = re.compile(r"^([a-z][a-z0-9_]*)_(train|val)_lmdb$")


def import_lmdb():
    """The ``lmdb`` module, or an ImportError saying how to install it."""
    try:
        import lmdb
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("reading LSUN's LMDB files needs the lmdb package: pip install 'diffrep[lsun]' "
                          "(or pip install lmdb)") from exc
    return lmdb


def find_lmdb(root, category: str = "bedroom", split: str = "train") -> Path | None:
    """The LMDB environment folder under ``root``: ``root`` itself when it holds ``data.mdb``, else
    ``<category>_<split>_lmdb`` in ``root`` or ``root/lsun``; None when there is none."""
    root = _checks.path(root, "root")
    _check_category(category)
    check_choice("split", split, SPLITS)
    if (root / "data.mdb").is_file():
        return root
    for base in (root, root / "lsun"):
        cand = base / f"{category}_{split}_lmdb"
        if (cand / "data.mdb").is_file():
            return cand
    return None


def holds_lmdb(root) -> bool:
    """Whether ``root`` is an LMDB environment folder or holds ``*_lmdb/data.mdb`` (directly or under
    ``lsun/``): the registry's test that a root holds LSUN files."""
    root = _checks.path(root, "root")
    if (root / "data.mdb").is_file():
        return True
    return any((p / "data.mdb").is_file() for base in (root, root / "lsun") if base.is_dir()
               for p in base.glob("*_lmdb"))


def _check_category(category) -> str:
    if not isinstance(category, str) or not _CATEGORY.match(category):
        raise ValueError(f"category must be a lower-case LSUN category name such as 'bedroom', got {category!r}")
    return category


def center_square(im: Image.Image) -> Image.Image:
    """The central min(W, H) square of a PIL image (offsets (W - m) // 2, (H - m) // 2)."""
    check_image(im)
    w, h = im.size
    m = min(w, h)
    left, top = (w - m) // 2, (h - m) // 2
    return im.crop((left, top, left + m, top + m))


class LSUN(ImageDataset):
    """One LSUN category/split read from its original LMDB environment (see the module docstring)."""

    name = "lsun"
    source = "file"

    def __init__(self, root, category: str = "bedroom", split: str = "train", size: int | None = 256,
                 crop: str = "center", resample: str = "bicubic", item_format: str = "pm1",
                 num_images: int | None = None, start: int = 0):
        _check_category(category)
        check_choice("split", split, SPLITS)
        check_choice("crop", crop, ("center", "none"))
        check_choice("resample", resample, tuple(RESAMPLE))
        if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1):
            raise ValueError(f"size must be a positive int or None, got {size!r}")
        check_num_images(num_images)
        if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0:
            raise ValueError(f"start must be an int >= 0, got {start!r}")
        self.item_format = check_item_format(item_format)
        root = _checks.path(root, "root")
        if not root.exists():
            raise FileNotFoundError(f"lsun: {str(root)!r} does not exist; pass root= the LMDB folder "
                                    f"({category}_{split}_lmdb/ holding data.mdb) or the folder holding it")
        path = find_lmdb(root, category, split)
        if path is None:
            raise FileNotFoundError(f"lsun: no LMDB environment under {str(root)!r} for category={category!r}, "
                                    f"split={split!r}: expected data.mdb there or in {category}_{split}_lmdb/ (the LSUN "
                                    "release layout)")
        named = _ENV_NAME.match(path.name)
        if named and (named.group(1), named.group(2)) != (category, split):
            raise ValueError(f"lsun: {str(path)!r} is the {named.group(1)} {named.group(2)} set but category="
                             f"{category!r}, split={split!r} were asked for; pass category={named.group(1)!r}, "
                             f"split={named.group(2)!r} (or the folder holding {category}_{split}_lmdb/)")
        self.path, self.category, self.split = path, category, split
        self.size = None if size is None else int(size)
        self.crop, self.resample = crop, resample
        env = self._open()
        total = int(env.stat()["entries"])
        if total == 0:  # was "start=0 but ... holds only 0 images", as if start were the mistake
            raise ValueError(f"lsun: {str(path)!r} is an empty LMDB database (no images); pass the release's "
                             f"{category}_{split}_lmdb/ folder")
        end = total if num_images is None else start + int(num_images)
        if start >= total or end > total:
            want = f"start={start}" + ("" if num_images is None else f", num_images={num_images}")
            raise ValueError(f"lsun: {want} but {str(path)!r} holds only {total} images")
        keys: list[bytes] = []
        with env.begin(write=False) as txn:
            cur = txn.cursor()
            for k, key in enumerate(cur.iternext(keys=True, values=False)):
                if k >= end:
                    break
                if k >= start:
                    keys.append(bytes(key))
        if len(keys) != end - start:  # the statistics and the records disagree: a damaged file
            raise ValueError(f"lsun: {str(path)!r} reports {total} entries but its cursor yields fewer; the "
                             "database is damaged")
        self.keys = keys
        self.start = int(start)

    # -- the environment ------------------------------------------------------------------------
    def _open(self):
        """The read-only environment of this process (shared by every LSUN dataset on the same folder,
        since py-lmdb refuses to open one environment twice in a process; reopened after a fork)."""
        key = str(self.path.resolve())
        held = _ENVS.get(key)
        if held is not None and held[0] == os.getpid():
            return held[1]
        lmdb = import_lmdb()
        try:
            env = lmdb.open(str(self.path), readonly=True, lock=False, readahead=False, meminit=False,
                            subdir=True, max_readers=126)
        except lmdb.Error as exc:
            raise ValueError(f"lsun: {str(self.path)!r} is not a readable LMDB environment: {exc}") from None
        _ENVS[key] = (os.getpid(), env)
        return env

    def close(self) -> None:
        """Close this process's handle on the environment (reopened on the next read)."""
        held = _ENVS.pop(str(self.path.resolve()), None)
        if held is not None and held[0] == os.getpid():
            held[1].close()

    # -- images ---------------------------------------------------------------------------------
    def __len__(self):
        return len(self.keys)

    def key(self, index: int) -> str:
        """The LSUN image id of item ``index``."""
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"index must be an int, got {type(index).__name__}")
        return self.keys[int(check_indices(index, len(self))[()])].decode("ascii", errors="replace")

    def decode(self, data: bytes, key: bytes = b"?") -> Image.Image:
        """Encoded image bytes (WebP / JPEG / PNG) -> RGB PIL image, ValueError naming the key if unreadable."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data must be the encoded image bytes, got {type(data).__name__}")
        if isinstance(key, str):
            key = key.encode("ascii", errors="replace")
        if not isinstance(key, (bytes, bytearray)):
            raise TypeError(f"key must be the record's key (bytes or str), got {type(key).__name__}")
        try:
            with Image.open(io.BytesIO(data)) as im:
                return im.convert("RGB")
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise ValueError(f"lsun: record {key.decode('ascii', errors='replace')!r} of {str(self.path)!r} is not "
                             f"a readable image: {exc}") from None

    def transform(self, im: Image.Image) -> Image.Image:
        """The crop and resize of the module docstring."""
        check_image(im)
        if self.crop == "center":
            im = center_square(im)
        if self.size is not None and im.size != (self.size, self.size):
            im = im.resize((self.size, self.size), RESAMPLE[self.resample])
        return im

    def _images(self, idx):
        env = self._open()
        out = []
        with env.begin(write=False, buffers=False) as txn:
            for i in idx:
                key = self.keys[int(i)]
                data = txn.get(key)
                if data is None:
                    raise ValueError(f"lsun: key {key.decode('ascii', errors='replace')!r} vanished from "
                                     f"{str(self.path)!r}")
                out.append(to_array(self.transform(self.decode(data, key))))
        if not out:
            s = self.size or 1
            return np.zeros((0, s, s, 3), np.uint8)
        shapes = {a.shape for a in out}
        if len(shapes) > 1:
            raise ValueError(f"lsun: images of different sizes {sorted(shapes)}; pass size= to resize")
        return np.stack(out)

    def describe(self) -> dict:
        d = super().describe()
        d.update(category=self.category, split=self.split, path=str(self.path), crop=self.crop)
        return d
