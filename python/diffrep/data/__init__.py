"""Datasets with ground-truth factors: original-format readers and offline procedural generators.

Entry point: :func:`load`. Conventions (factor order, index math, image dtype/range/layout) are in
:mod:`diffrep.data.base`; the specification is docs/data.md.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .base import ArrayGroundTruthData, GroundTruthData, ImageDataset, MissingFilesError, missing_file_error, setting_text
from .sampling import EpochBatchSampler, epoch_permutation, make_loader

SOURCES = ("auto", "file", "procedural")


@dataclass(frozen=True)
class _Entry:
    description: str
    expected: tuple[str, ...]
    find: Callable | None = None  # root -> path/folder or None
    from_file: Callable | None = None  # (found, split, options) -> dataset
    procedural: Callable | None = None  # (split, options) -> dataset
    splits: tuple = (None,)


def _find_named(names, subs=("",)):
    def find(root):
        root = Path(root)
        if root.is_file() and root.name in names or (root.is_file() and root.suffix in (".npz", ".h5", ".hdf5")):
            return root
        for sub in subs:
            for n in names:
                if (root / sub / n).is_file():
                    return root / sub / n
        return None
    return find


def _gt_split(split):
    if split not in (None, "all"):
        raise ValueError(f"split: ground-truth datasets have no splits (split=None), got {split!r}")


def _cls(module: str, name: str):
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def _gt_file(module: str, name: str):
    def make(found, split, options):
        _gt_split(split)
        return _cls(module, name)(found, **options)
    return make


def _gt_proc(module: str, name: str):
    def make(split, options):
        _gt_split(split)
        return _cls(module, name)(**options)
    return make


def _folder_exists(marker):
    def find(root):
        root = Path(root)
        for sub in ("", "celeba"):
            if (root / sub / marker).exists():
                return root
        return None
    return find


def _celeba(p, split, o):
    from .celeba import CelebA
    return CelebA(p, split=split or "train", **o)


def _mnist_like(name):
    def make(p, split, o):
        from .mnist import MNIST
        return MNIST(p, split=split or "train", name=name, **o)
    return make


def _mnist_find(name):
    def find(root):
        from .mnist import find_files
        try:
            find_files(root, name, "train")
        except FileNotFoundError:
            try:
                find_files(root, name, "test")
            except FileNotFoundError:
                return None
        return Path(root)
    return find


def _cifar_find(root):
    root = Path(root)
    for d in (root, root / "cifar-10-batches-py"):
        if (d / "test_batch").is_file() or (d / "data_batch_1").is_file():
            return root
    return None


def _cifar(p, split, o):
    from .cifar10 import CIFAR10
    return CIFAR10(p, split=split or "train", **o)


def _image_folder(p, split, o):
    from .image_folder import ImageFolder
    if split not in (None, "all"):
        raise ValueError(f"split: image_folder has no splits (split=None), got {split!r}")
    return ImageFolder(p, **o)


def _lsun(p, split, o):
    from .lsun import LSUN
    return LSUN(p, split=split or "train", **o)


def _lsun_find(root):
    from .lsun import holds_lmdb
    return Path(root) if holds_lmdb(root) else None


def _digits(split, o):
    from .digits import Digits
    return Digits(split=split, **o)


def _mpi3d(name):
    def make(found, split, options):
        _gt_split(split)
        return _cls("mpi3d", "MPI3D")(found, name=name, **options)
    return make


def _cars_find(root):
    from .cars3d import find_folder
    return find_folder(root)


REGISTRY: dict[str, _Entry] = {
    "dsprites": _Entry("dSprites 2D shapes, 3x6x40x32x32 factors (docs/data.md#dsprites)",
                       ("dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz", "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5"),
                       _find_named(("dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz",
                                    "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.hdf5"), ("", "dsprites", "dsprites-dataset")),
                       _gt_file("dsprites", "DSpritesFile"), _gt_proc("dsprites", "DSprites")),
    "shapes3d": _Entry("3D Shapes, 10x10x10x8x4x15 factors (docs/data.md#shapes3d)",
                       ("3dshapes.h5", "3dshapes.npz"),
                       _find_named(("3dshapes.h5", "3dshapes.npz",
                                    "look-at-object-room_floor-hueXwall-hueXobj-hueXobj-sizeXobj-shapeXview-azi.npz"),
                                   ("", "3dshapes", "shapes3d")),
                       _gt_file("shapes3d", "Shapes3DFile"), _gt_proc("shapes3d", "Shapes3D")),
    "mpi3d_toy": _Entry("MPI3D (layout inferred from N), memory-mapped (docs/data.md#mpi3d)",
                        ("mpi3d_toy.npz",),
                        _find_named(("mpi3d_toy.npz", "sim_toy_64x_ordered_without_heldout_factors.npz"), ("", "mpi3d_toy", "mpi3d")),
                        _gt_file("mpi3d", "MPI3D")),
    "mpi3d_realistic": _Entry("MPI3D realistic renders (layout inferred from N), memory-mapped (docs/data.md#mpi3d)",
                              ("mpi3d_realistic.npz",),
                              _find_named(("mpi3d_realistic.npz",), ("", "mpi3d_realistic", "mpi3d")),
                              _mpi3d("mpi3d_realistic")),
    "mpi3d_real": _Entry("MPI3D real-world images (layout inferred from N), memory-mapped (docs/data.md#mpi3d)",
                         ("mpi3d_real.npz",),
                         _find_named(("mpi3d_real.npz",), ("", "mpi3d_real", "mpi3d")),
                         _mpi3d("mpi3d_real")),
    "cars3d": _Entry("Cars3D, elevation 4 x azimuth 24 x object 183 (docs/data.md#cars3d)", ("car_*_mesh.mat (list.txt optional)",),
                     _cars_find, _gt_file("cars3d", "Cars3D")),
    "celeba": _Entry("CelebA aligned + 40 attributes (docs/data.md#celeba)",
                     ("img_align_celeba/", "list_attr_celeba.txt", "list_eval_partition.txt"),
                     _folder_exists("list_attr_celeba.txt"), _celeba, splits=("train", "valid", "test", "all")),
    "mnist": _Entry("MNIST digits, IDX files (docs/data.md#mnist-and-binarisation)",
                    ("train-images-idx3-ubyte[.gz]", "train-labels-idx1-ubyte[.gz]", "t10k-*"),
                    _mnist_find("mnist"), _mnist_like("mnist"), splits=("train", "test")),
    "fashion_mnist": _Entry("FashionMNIST, IDX files (docs/data.md#mnist-and-binarisation)",
                            ("train-images-idx3-ubyte[.gz]", "train-labels-idx1-ubyte[.gz]", "t10k-*"),
                            _mnist_find("fashion_mnist"), _mnist_like("fashion_mnist"), splits=("train", "test")),
    "cifar10": _Entry("CIFAR-10 python batches (docs/data.md#mnist-and-binarisation)", ("cifar-10-batches-py/data_batch_1..5", "test_batch"),
                      _cifar_find, _cifar, splits=("train", "test")),
    "lsun": _Entry("LSUN scenes (e.g. bedroom) in the release's LMDB layout (docs/data.md#lsun)",
                   ("<category>_<split>_lmdb/data.mdb",), _lsun_find, _lsun, splits=("train", "val")),
    "image_folder": _Entry("every image under a folder (FFHQ-style)", ("*.png/*.jpg under root",),
                           lambda r: Path(r) if Path(r).is_dir() else None, _image_folder),
    "disks": _Entry("SAMI soft disks: x, y, background (docs/data.md#disks)", (), procedural=_gt_proc("disks", "Disks")),
    "digits": _Entry("scikit-learn's bundled digits, upscaled and binarised", (), procedural=_digits,
                     splits=("train", "test", "all")),
}


def check_name(name, extra: tuple = ()) -> str:
    """``name`` when it is a dataset of :data:`REGISTRY` (or one of ``extra``, names a caller resolves
    itself); else a ValueError listing the closest names first (a typo such as ``dsprite`` was answered
    with the whole list only)."""
    import difflib

    known = [*REGISTRY, *extra]
    if isinstance(name, str) and name in known:
        return name
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6) if isinstance(name, str) else []
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    raise ValueError(f"name: unknown dataset {name!r}; {hint}known: {', '.join(known)}")


def load(name: str, root=None, source: str = "auto", split=None, *, root_flag: str = "root", source_flag: str = "source",
         **options):
    """Load a dataset by name.

    ``source``: ``"file"`` reads the original files under ``root``; ``"procedural"`` uses the embedded
    generator (dsprites, shapes3d, disks, digits); ``"auto"`` reads the files when a root is set and the
    generator otherwise. ``root`` defaults to the ``DIFFREP_DATA`` environment variable; it may be the
    folder holding the files (or a sub-folder named after the dataset) or, for single-file datasets,
    the file itself. ``split`` is dataset-specific (None for ground-truth data). ``options`` go to the
    dataset class (e.g. ``item_format``, ``keep_color``, ``binarize``, ``crop``, ``size``).

    A root is never ignored silently (docs/data.md, "Dataset roots"): a ``root`` given here that does
    not exist, or does not hold the dataset's files, is a FileNotFoundError naming the path and
    ``root_flag`` (the setting it came from, e.g. ``"--data.root"``, for the message); a root given for
    a dataset that reads no files (``source="procedural"``, disks, digits) is a ValueError. A
    ``DIFFREP_DATA`` that does not exist is an error naming it; one that exists but lacks this dataset's
    files falls back to the generator (``source="auto"``) with a UserWarning. ``source_flag``: the setting
    ``source`` came from, as :func:`diffrep.data.base.setting_text` writes it in the hints (``"--source"``
    from ``diffrep data``, ``diffrep eval`` and ``diffrep encode``: ``--source procedural``, not
    ``source='procedural'``).
    """
    if not isinstance(root_flag, str) or not root_flag or not isinstance(source_flag, str) or not source_flag:
        raise TypeError(f"root_flag and source_flag must name settings (non-empty str), got {root_flag!r}, "
                        f"{source_flag!r}")
    check_name(name)
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    entry = REGISTRY[name]
    explicit = root is not None and str(root) != ""
    if not explicit:
        root = os.environ.get("DIFFREP_DATA") or None
    # a hint says how to give a root: the flag itself, or the API's root= where root_flag describes a record
    # ("the run's data.root") rather than a setting one can pass
    root_hint = root_flag if root_flag.startswith("--") else "root"
    # a hint offers the procedural source only where a generator exists (LSUN's offered one it does not have)
    flags = {"root_flag": root_hint, "source_flag": source_flag, "generated": entry.procedural is not None}
    if explicit and (source == "procedural" or entry.from_file is None):
        why = setting_text(source_flag, "procedural") if source == "procedural" else f"{name} is generated procedurally"
        raise ValueError(f"{root_flag}={root}: {why}, so no files are read; drop {root_flag}")
    if source == "procedural" or (source == "auto" and entry.from_file is None):
        if entry.procedural is None:
            raise ValueError(f"{name} has no procedural generator; pass {setting_text(source_flag, 'file')} and "
                             f"{setting_text(root_hint)} holding {', '.join(entry.expected)}")
        return _made(name, "procedural", lambda: entry.procedural(split, options), options)
    if entry.from_file is None:
        raise ValueError(f"{name} is procedural only (no original files are read); use {setting_text(source_flag, 'procedural')}")
    if root is not None and not Path(root).exists():
        raise FileNotFoundError(f"dataset root {root} does not exist{_set_by(explicit, root_flag)}; {name} expects "
                                f"{', '.join(entry.expected)} there")
    found = entry.find(root) if root is not None else None
    if found is None:
        if source == "auto" and entry.procedural is not None and not explicit:
            if root is not None:
                warnings.warn(f"{name}: no original files under DIFFREP_DATA={root} (expected "
                              f"{', '.join(entry.expected)}); using the procedural generator", UserWarning,
                              stacklevel=2)
            return _made(name, "procedural", lambda: entry.procedural(split, options), options)
        if root is None:  # neither a root nor DIFFREP_DATA: say how to give one
            raise FileNotFoundError(f"{missing_file_error(name, entry.expected, '<no root>', **flags)} (no root was given "
                                    f"and DIFFREP_DATA is unset: set {root_flag} or DIFFREP_DATA)")
        err = missing_file_error(name, entry.expected, root, **flags)
        raise FileNotFoundError(f"{err}{_set_by(explicit, root_flag, what='root ')}")
    try:
        return _made(name, "file", lambda: entry.from_file(found, split, options), options)
    except MissingFilesError as exc:  # the reader's own check (a file the found folder lacks): the caller's terms
        raise missing_file_error(exc.dataset, exc.expected, exc.root, **flags) from None


def _set_by(explicit: bool, root_flag: str, what: str = "") -> str:
    """Where the root came from, for a message: the flag or record that set it, or DIFFREP_DATA. Nothing for
    the API's own ``root=`` argument (the caller passed it; "(set by root)" tells them nothing)."""
    if not explicit:
        return f" ({what}set by the environment variable DIFFREP_DATA)" if not what else f" ({what}set by DIFFREP_DATA)"
    return "" if root_flag == "root" else f" ({what}set by {root_flag})"


def _made(name: str, source: str, make, options: dict):
    """``make()``, with an option the dataset class does not take named (Python's TypeError names the
    class's ``__init__``, not the option the user passed to :func:`load`)."""
    try:
        return make()
    except TypeError as exc:
        m = re.search(r"unexpected keyword argument '(\w+)'", str(exc))
        if m is None or m.group(1) not in options:
            raise
        raise TypeError(f"{name} ({source}) takes no option {m.group(1)!r}; its options are in docs/data.md") from None


def available() -> dict[str, dict]:
    """Name -> {description, expected files, has_file_reader, has_generator, splits}."""
    return {k: {"description": e.description, "expected": list(e.expected), "file": e.from_file is not None,
                "procedural": e.procedural is not None, "splits": list(e.splits)} for k, e in REGISTRY.items()}


__all__ = ["load", "check_name", "available", "GroundTruthData", "ImageDataset", "ArrayGroundTruthData", "EpochBatchSampler",
           "epoch_permutation", "make_loader", "REGISTRY"]
