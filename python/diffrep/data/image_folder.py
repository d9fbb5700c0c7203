"""A folder of images (FFHQ-style), and the shared decode / crop / resize helpers.

Files: every ``.png .jpg .jpeg .webp .bmp`` under ``root`` (recursively), sorted by relative path.
Images are decoded lazily per item with Pillow, converted to RGB (or ``"L"``), optionally centre-cropped to
a square and resized to ``size`` x ``size`` (bilinear, the torchvision Resize default).

Subset (``start``, ``num_images``): the files ``start .. start + num_images - 1`` of that sorted list
(default: all of them), so a training subset is fixed (the first N files) and the files after it are a
disjoint held-out set (``start=N``). More files than the folder holds is an error naming both counts.

Item access: ``(image, target)`` with an empty int64 target (a folder has no labels); raw images uint8
(n, size, size, C) 0..255; ``ds[i]`` per ``item_format``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .._progress import progress
from .. import _checks
from .base import ImageDataset, check_choice, check_file, check_item_format

EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


def open_image(path, mode: str = "RGB") -> Image.Image:
    """Decode one image file, raising ValueError naming it if it is not a readable image."""
    path = check_file(path, "path", "an image file")
    if not isinstance(mode, str) or not mode:
        raise TypeError(f"mode must be a PIL mode name such as 'RGB' or 'L', got {mode!r}")
    try:
        with Image.open(path) as im:
            return im.convert(mode)
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"{path}: not a readable image: {exc}") from exc


def resize_center_crop(im: Image.Image, size: int) -> Image.Image:
    """Resize the shorter side to ``size`` (bilinear) then centre-crop ``size`` x ``size`` (torchvision
    Resize(size) + CenterCrop(size) rounding: left = round((w - size) / 2))."""
    check_image(im)
    size = _checks.positive_int(size, "size")
    w, h = im.size
    if w <= h:
        nw, nh = size, int(size * h / w)
    else:
        nw, nh = int(size * w / h), size
    im = im.resize((nw, nh), Image.BILINEAR)
    left, top = int(round((nw - size) / 2.0)), int(round((nh - size) / 2.0))
    return im.crop((left, top, left + size, top + size))


def check_num_images(num_images) -> None:
    """``num_images`` None or an int >= 1 (a dataset subset's size); else ValueError."""
    if num_images is not None and (isinstance(num_images, bool) or not isinstance(num_images, (int, np.integer))
                                   or num_images < 1):
        raise ValueError(f"num_images must be None or an int >= 1, got {num_images!r}")


def check_image(im, name: str = "im") -> Image.Image:
    """``im`` unchanged when it is a PIL image (an array has no ``.size`` (W, H) and no ``.crop``)."""
    if not isinstance(im, Image.Image):
        raise TypeError(f"{name} must be a PIL image, got {type(im).__name__}")
    return im


def to_array(im: Image.Image) -> np.ndarray:
    """uint8 (H, W, C) of a PIL image or an image array (a greyscale one gets C = 1)."""
    if not isinstance(im, (Image.Image, np.ndarray)):
        raise TypeError(f"im must be a PIL image or a numpy array, got {type(im).__name__}")
    a = np.asarray(im, dtype=np.uint8)
    return a[..., None] if a.ndim == 2 else a


class ImageFolder(ImageDataset):
    """Every image under a folder (see the module docstring)."""

    name = "image_folder"
    source = "file"

    def __init__(self, root, size: int | None = 64, mode: str = "RGB", crop: str = "center",
                 item_format: str = "pm1", num_images: int | None = None, start: int = 0):
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"root must be a folder path, got {type(root).__name__}")
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"image_folder: folder {str(root)!r} does not exist")
        check_choice("mode", mode, ("RGB", "L"))
        check_choice("crop", crop, ("center", "none"))
        if size is not None and (isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1):
            raise ValueError(f"size must be a positive int or None, got {size!r}")
        self.root, self.size, self.mode, self.crop = root, size, mode, crop
        self.item_format = check_item_format(item_format)
        self.files = sorted(p for p in root.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file())
        if not self.files:
            raise FileNotFoundError(f"image_folder: no image files ({', '.join(EXTENSIONS)}) under {str(root)!r}")
        check_num_images(num_images)
        if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or start < 0:
            raise ValueError(f"start must be an int >= 0, got {start!r}")
        end = len(self.files) if num_images is None else start + num_images
        if end > len(self.files) or start >= len(self.files):
            want = f"start={start}" + ("" if num_images is None else f", num_images={num_images}")
            raise ValueError(f"image_folder: {want} but {str(root)!r} holds only {len(self.files)} images")
        self.files = self.files[start:end]

    def __len__(self):
        return len(self.files)

    def _load(self, path) -> np.ndarray:
        im = open_image(path, self.mode)
        if self.size is not None:
            im = resize_center_crop(im, self.size) if self.crop == "center" else im.resize((self.size, self.size), Image.BILINEAR)
        return to_array(im)

    def _images(self, idx):
        imgs = [self._load(self.files[i]) for i in progress(idx, total=len(idx), desc="reading images", unit="img",
                                                            enabled=len(idx) >= 1000)]
        shapes = {a.shape for a in imgs}
        if len(shapes) > 1:
            raise ValueError(f"image_folder: images of different sizes {sorted(shapes)}; pass size= to resize")
        return np.stack(imgs) if imgs else np.zeros((0, 1, 1, 3), np.uint8)
