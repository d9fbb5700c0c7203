"""CelebA (aligned) with its 40 binary attributes and the official partition (docs/data.md#celeba).

Files under ``root`` (or ``root/celeba``): ``img_align_celeba/000001.jpg ..`` (178 x 218 JPEGs),
``list_attr_celeba.txt`` (line 1 the count, line 2 the 40 names, then "name v1 .. v40" with -1/1 values
padded with spaces) and ``list_eval_partition.txt`` ("name split" with 0 train, 1 valid, 2 test).
Attributes are returned as int64 0/1 (torchvision's (a + 1) // 2). Images are decoded lazily per item.

64x64 crop conventions (``crop``), docs/data.md#celeba:

* ``"diffae"`` (DiffAE / D2C, the default): PIL box (25, 57, 153, 185) (cx = 89, cy = 121, 128 x 128), then
  bilinear resize to ``size``;
* ``"center"`` (InfoDiffusion, torchvision CelebA): bilinear resize of the shorter side to ``size``, then a
  centre crop ``size`` x ``size``;
* an int ``N`` (e.g. 148, the beta-VAE/PyTorch-VAE convention, or 140): torchvision ``CenterCrop(N)`` of
  the aligned image (top = round((218 - N) / 2), left = round((178 - N) / 2)), then bilinear resize to
  ``size``;
* ``"none"``: the full aligned image, unresized.

Splits: ``"train"``, ``"valid"``, ``"test"`` (from the partition file) or ``"all"`` (all images in sorted file
order, DiffAE's training set; the partition file is then optional). No random flip is applied (augmentation
belongs to the training transform).

Subset (``num_images``): the first ``num_images`` images of the split in sorted file order (CelebA's file
names are its numbering, 000001.jpg ...), so a recipe's subset is fixed and reproducible; None keeps
the whole split. More than the split holds is an error naming both counts.

Item access: ``(image, attributes)``; raw images uint8 (n, size, size, 3) 0..255; ``ds[i]`` per
``item_format``.
"""

from __future__ import annotations


import numpy as np
from PIL import Image

from .._progress import progress
from .. import _checks
from .base import ImageDataset, check_choice, check_file, check_item_format, missing_file_error
from .image_folder import check_image, check_num_images, open_image, resize_center_crop, to_array

ATTRIBUTES = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips",
    "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin",
    "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open",
    "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline",
    "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)
SPLITS = {"train": 0, "valid": 1, "test": 2, "all": None}
DIFFAE_BOX = (25, 57, 153, 185)
FILES = ("img_align_celeba/", "list_attr_celeba.txt", "list_eval_partition.txt")


def read_attributes(path) -> tuple[list[str], np.ndarray, tuple[str, ...]]:
    """(file names, int64 (n, 40) 0/1 attributes, attribute names) from list_attr_celeba.txt."""
    path = check_file(path, "path", "list_attr_celeba.txt")
    with open(path) as f:
        lines = f.read().splitlines()
    if len(lines) < 2:
        raise ValueError(f"{path}: truncated attribute file (needs a count line and a header line)")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise ValueError(f"{path}: first line must be the image count, got {lines[0][:40]!r}") from None
    names = tuple(lines[1].split())
    if len(names) != 40:
        raise ValueError(f"{path}: header has {len(names)} attribute names, expected 40")
    rows = [ln.split() for ln in lines[2:] if ln.strip()]
    if len(rows) != count:
        raise ValueError(f"{path}: header says {count} images but {len(rows)} rows follow")
    bad = next((r for r in rows if len(r) != 41), None)
    if bad is not None:
        raise ValueError(f"{path}: row for {bad[0]!r} has {len(bad) - 1} values, expected 40")
    seen: set[str] = set()
    dup = next((r[0] for r in rows if r[0] in seen or seen.add(r[0])), None)
    if dup is not None:
        raise ValueError(f"{path}: image {dup!r} is listed more than once")
    try:
        vals = np.array([[int(v) for v in r[1:]] for r in rows], dtype=np.int64).reshape(len(rows), 40)
    except ValueError as exc:
        raise ValueError(f"{path}: attribute values must be -1/1: {exc}") from None
    if not np.isin(vals, (-1, 1)).all():
        raise ValueError(f"{path}: attribute values must be -1 or 1")
    return [r[0] for r in rows], (vals + 1) // 2, names


def read_partition(path) -> dict[str, int]:
    """Image name -> partition (0 train, 1 valid, 2 test) from list_eval_partition.txt."""
    path = check_file(path, "path", "list_eval_partition.txt")
    out = {}
    with open(path) as f:
        for k, ln in enumerate(f):
            parts = ln.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise ValueError(f"{path}: line {k + 1} must be 'name 0|1|2', got {ln.strip()[:60]!r}")
            out[parts[0]] = int(parts[1])
    return out


def check_crop(crop) -> str | int:
    """A crop convention (see the module docstring): "diffae", "center", "none" or an int N in [1, 178]."""
    if isinstance(crop, (int, np.integer)) and not isinstance(crop, (bool, np.bool_)):
        if not 1 <= crop <= 178:
            raise ValueError(f"crop={crop}: a centre-crop side must be in [1, 178] (the aligned images are "
                             "178 x 218)")
        return int(crop)
    if crop not in ("diffae", "center", "none"):
        raise ValueError(f"crop must be 'diffae', 'center', 'none' or an int N (a centre crop N x N), got {crop!r}")
    return crop


def crop_image(im: Image.Image, crop: str, size: int) -> Image.Image:
    """Apply a crop convention (see the module docstring) to an aligned CelebA PIL image."""
    check_image(im)
    crop, size = check_crop(crop), _checks.positive_int(size, "size")
    if crop == "diffae":
        return im.crop(DIFFAE_BOX).resize((size, size), Image.BILINEAR)
    if crop == "center":
        return resize_center_crop(im, size)
    if not isinstance(crop, str):  # an int N: CenterCrop(N) then Resize(size)
        w, h = im.size
        top, left = int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))
        return im.crop((left, top, left + crop, top + crop)).resize((size, size), Image.BILINEAR)
    return im


class CelebA(ImageDataset):
    """Aligned CelebA with attributes (see the module docstring)."""

    name = "celeba"
    source = "file"
    target_names = ATTRIBUTES

    def __init__(self, root, split: str = "train", crop: str | int = "diffae", size: int = 64,
                 item_format: str = "pm1", num_images: int | None = None):
        check_choice("split", split, SPLITS)
        check_num_images(num_images)
        crop = check_crop(crop)
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"size must be a positive int, got {size!r}")
        self.item_format = check_item_format(item_format)
        root = _checks.path(root, "root")
        if not (root / "list_attr_celeba.txt").is_file() and (root / "celeba" / "list_attr_celeba.txt").is_file():
            root = root / "celeba"
        attr_path, part_path, img_dir = root / "list_attr_celeba.txt", root / "list_eval_partition.txt", root / "img_align_celeba"
        needed = [attr_path, img_dir] + ([part_path] if split != "all" else [])
        missing = [p.name for p in needed if not p.exists()]
        if missing:
            raise missing_file_error("celeba", missing, root)
        files, attrs, names = read_attributes(attr_path)
        self.target_names = names
        order = np.argsort(files, kind="stable")
        files, attrs = [files[i] for i in order], attrs[order]
        if split != "all":
            part = read_partition(part_path)
            absent = [f for f in files if f not in part]
            if absent:
                raise ValueError(f"{part_path}: no partition entry for {absent[0]!r} ({len(absent)} missing)")
            keep = np.array([part[f] == SPLITS[split] for f in files], dtype=bool)
            files, attrs = [f for f, k in zip(files, keep) if k], attrs[keep]
        if num_images is not None:
            if num_images > len(files):
                raise ValueError(f"celeba: num_images={num_images} but split {split!r} under {root} holds only "
                                 f"{len(files)} images")
            files, attrs = files[:num_images], attrs[:num_images]
        self.root, self.img_dir, self.split, self.crop, self.size = root, img_dir, split, crop, int(size)
        self.files, self.attributes = files, attrs

    def __len__(self):
        return len(self.files)

    def _images(self, idx):
        out = []
        for i in progress(idx, total=len(idx), desc="reading CelebA", unit="img", enabled=len(idx) >= 1000):
            p = self.img_dir / self.files[i]
            if not p.is_file():
                raise FileNotFoundError(f"celeba: image {self.files[i]} listed in list_attr_celeba.txt is missing from {self.img_dir}")
            out.append(to_array(crop_image(open_image(p), self.crop, self.size)))
        return np.stack(out) if out else np.zeros((0, self.size, self.size, 3), np.uint8)

    def _targets(self, idx):
        return self.attributes[idx]
