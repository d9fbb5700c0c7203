"""Input sweep of the original-format readers (tests/bad_inputs.py): DSpritesFile, Shapes3DFile (h5 and npz),
MPI3D, Cars3D, CelebA, CIFAR10, MNIST/FashionMNIST, LSUN, ImageFolder, the npzfile/IDX/pickle helpers,
and ``diffrep.data.load(name, root=..., source=..., split=..., **options)`` for every name with a file
reader, each called once validly on a tiny fixture written in the original format
(tests/reader_fixtures.py), then with one argument at a time replaced by a bad value: split names,
sizes, crops, colour/channel options, factor_sizes overrides, binarisation modes, index ranges, files
where folders are wanted and the reverse, missing files. A bad value must give a ValueError or
TypeError naming the option, or a FileNotFoundError naming the path. The ground-truth interface is
swept on each loaded ground-truth fixture."""

from __future__ import annotations

import tempfile
from itertools import islice  # rows_per_chunk=0 yielded empty chunks forever: bounded here
from pathlib import Path

import numpy as np
import pytest
from bad_inputs import Case, sweep_tests
from PIL import Image
from reader_fixtures import (DSPRITES_NPZ, stamp, write_car, write_celeba, write_cifar10, write_dsprites,
                             write_lsun, write_mnist, write_shapes3d)

import diffrep.data as D
from diffrep.data import cars3d as C3
from diffrep.data import celeba as CA
from diffrep.data import cifar10 as CF
from diffrep.data import dsprites as DS
from diffrep.data import image_folder as IF
from diffrep.data import lsun as LS
from diffrep.data import mnist as MN
from diffrep.data import mpi3d as MP
from diffrep.data import npzfile as NZ
from diffrep.data import shapes3d as S3

_TMP = tempfile.TemporaryDirectory(prefix="diffrep-sweep-readers-")  # removed when the session ends
TMP = Path(_TMP.name)
MISSING = TMP / "absent"  # never created: a path that does not exist
MPI_SIZES = (1, 1, 1, 1, 2, 2, 3)
LSUN_IDS = [f"{k:040x}" for k in (3, 1, 2)]


def _build():
    """Write every fixture once (module import; a few ms each)."""
    (TMP / "dsprites").mkdir()
    write_dsprites(TMP / "dsprites" / DSPRITES_NPZ, (1, 3, 1, 2, 1, 2))
    for sub, h5 in (("shapes3d_h5", True), ("shapes3d_npz", False)):
        (TMP / sub).mkdir()
        write_shapes3d(TMP / sub, h5=h5)
    (TMP / "mpi3d").mkdir()
    np.savez(TMP / "mpi3d" / "mpi3d_toy.npz", images=stamp(int(np.prod(MPI_SIZES)), 2, 2))
    cars = TMP / "cars3d" / "cars"
    cars.mkdir(parents=True)
    for k, name in enumerate(("car_a_mesh", "car_b_mesh")):
        write_car(cars / f"{name}.mat", 10 * (k + 1))
    (cars / "list.txt").write_text("car_a_mesh\ncar_b_mesh\n")
    write_celeba(TMP / "celeba")
    write_mnist(TMP / "mnist")
    fashion = TMP / "fashion" / "FashionMNIST" / "raw"
    fashion.mkdir(parents=True)
    for p in (TMP / "mnist").glob("*ubyte*"):
        (fashion / p.name).write_bytes(p.read_bytes())
    write_cifar10(TMP / "cifar10")
    write_lsun(TMP / "lsun" / "bedroom_train_lmdb",
               {key: np.full((12, 16, 3), 40 * k, np.uint8) for k, key in enumerate(LSUN_IDS)})
    folder = TMP / "images"
    (folder / "a").mkdir(parents=True)
    for k, rel in enumerate(("a/0.png", "a/1.png", "b.png")):
        Image.fromarray(np.full((8, 6, 3), 30 * k, np.uint8)).save(folder / rel)
    (TMP / "plain.txt").write_text("not an archive\n")
    (TMP / "a_folder").mkdir()


_build()
DSPRITES = TMP / "dsprites" / DSPRITES_NPZ
SHAPES_H5, SHAPES_NPZ = TMP / "shapes3d_h5" / "3dshapes.h5", TMP / "shapes3d_npz" / "3dshapes.npz"
MPI = TMP / "mpi3d" / "mpi3d_toy.npz"
PLAIN = TMP / "plain.txt"

# a path argument's bad values: a missing path, a file where a folder is wanted (or the reverse)
NOPE = [("missing", MISSING)]
FILE_NOT_FOLDER = NOPE + [("file", PLAIN)]
FOLDER_NOT_FILE = NOPE + [("folder", TMP / "a_folder")]
PATH_WORDS = ("absent", "plain.txt", "a_folder", "x")  # the message names the path it was given
FNF = (FileNotFoundError,)


def _load(name, root, split=None, source="file", **options):
    def make():
        return D.load, dict(name=name, root=root, source=source, split=split, **options)
    return make


# load(): for each name with a file reader, split/source/root and the reader's own options, through the registry
LOADS = [
    Case("load:dsprites", _load("dsprites", TMP / "dsprites", keep_color=True, item_format="01", read_metadata=True),
         skip=("split:None",), extra={"root": FILE_NOT_FOLDER}, errors=FNF, names={"root": PATH_WORDS}),
    Case("load:dsprites(file root)", _load("dsprites", DSPRITES, source="auto", keep_color=False),
         perturb=("source", "keep_color"), extra={"source": [("empty", "")]}),
    Case("load:shapes3d(h5)", _load("shapes3d", TMP / "shapes3d_h5", item_format="uint8", in_memory=True),
         skip=("split:None",), extra={"root": FILE_NOT_FOLDER}, errors=FNF, names={"root": PATH_WORDS}),
    Case("load:shapes3d(npz)", _load("shapes3d", SHAPES_NPZ, in_memory=False), perturb=("split", "in_memory"),
         skip=("split:None",)),
    Case("load:mpi3d_toy", _load("mpi3d_toy", TMP / "mpi3d", factor_sizes=MPI_SIZES, in_memory=False),
         skip=("split:None",), extra={"root": FILE_NOT_FOLDER, "factor_sizes": [
             ("product", (1, 1, 1, 1, 2, 2, 2)), ("six", (1, 1, 1, 2, 2, 3)), ("zero", (0, 1, 1, 1, 2, 2, 3)),
             ("float", (1.0, 1, 1, 1, 2, 2, 3)), ("bool", (True, 1, 1, 1, 2, 2, 3)), ("int", 12), ("str", "1112223")]},
         errors=FNF, names={"root": PATH_WORDS}),
    Case("load:mpi3d_realistic", _load("mpi3d_realistic", MPI, factor_sizes=MPI_SIZES), perturb=("split",),
         skip=("split:None",)),
    Case("load:cars3d", _load("cars3d", TMP / "cars3d", size=4, item_format="hwc01"), skip=("split:None",),
         extra={"root": FILE_NOT_FOLDER, "size": [("big_float", 64.0)]}, errors=FNF, names={"root": PATH_WORDS}),
    Case("load:celeba", _load("celeba", TMP / "celeba", split="valid", crop="center", size=8, num_images=1),
         skip=("num_images:None", "split:None"), accepted=("crop:int",), extra={
             "root": FILE_NOT_FOLDER, "split": [("val", "val"), ("upper", "TRAIN")],
             "crop": [("zero", 0), ("too_big", 179), ("float", 148.0), ("bool", True), ("tuple", (148, 148))],
             "num_images": [("too_many", 2)]},
         errors=FNF, names={"root": PATH_WORDS}),
    Case("load:celeba(int crop)", _load("celeba", TMP / "celeba", split="all", crop=148, size=4),
         perturb=("crop", "size"), extra={"crop": [("negative", -5), ("np_float", np.float64(148.0))]}),
    Case("load:mnist", _load("mnist", TMP / "mnist", split="test", binarize="dynamic", seed=3, item_format="01"),
         skip=("binarize:None", "split:None"), accepted=("seed:zero",), extra={
             "root": FILE_NOT_FOLDER, "split": [("valid", "valid"), ("all", "all")],
             "binarize": [("true", True), ("upper", "Static"), ("float", 0.5)],
             "seed": [("np_float", np.float32(1.0))]},
         errors=FNF, names={"root": PATH_WORDS}),
    Case("load:fashion_mnist", _load("fashion_mnist", TMP / "fashion", split="train", binarize="threshold"),
         skip=("binarize:None", "split:None"), extra={"root": FILE_NOT_FOLDER, "split": [("t10k", "t10k")]}, errors=FNF,
         names={"root": PATH_WORDS}),
    Case("load:cifar10", _load("cifar10", TMP / "cifar10", split="test", item_format="uint8"), skip=("split:None",), extra={
        "root": FILE_NOT_FOLDER, "split": [("valid", "valid"), ("all", "all")]}, errors=FNF,
         names={"root": PATH_WORDS}),
    Case("load:lsun", _load("lsun", TMP / "lsun", split="train", category="bedroom", size=8, crop="none",
                            resample="bilinear", num_images=2, start=1), skip=("num_images:None", "size:None", "split:None"),
         accepted=("start:zero",), extra={
             "root": FILE_NOT_FOLDER, "split": [("test", "test"), ("val_absent", "val")],
             "category": [("upper", "Bedroom"), ("other", "church_outdoor"), ("path", "../bedroom")],
             "start": [("too_far", 3)], "num_images": [("too_many", 3)], "crop": [("diffae", "diffae")],
             "resample": [("lanczos", "lanczos")]},
         errors=FNF, names={"root": PATH_WORDS}),
    Case("load:image_folder", _load("image_folder", TMP / "images", size=4, mode="L", crop="none", num_images=2,
                                    start=1), skip=("num_images:None", "size:None", "split:None"),
         accepted=("start:zero",), extra={
             "root": FILE_NOT_FOLDER, "split": [("train", "train")], "mode": [("rgba", "RGBA"), ("lower", "rgb")],
             "start": [("too_far", 3)], "num_images": [("too_many", 3)]},
         errors=FNF, names={"root": PATH_WORDS}),
]


def _ctor(cls, **kw):
    def make():
        return cls, dict(kw)
    return make


# the reader classes called directly (the path argument first)
READERS = [
    Case("DSpritesFile", _ctor(DS.DSpritesFile, path=DSPRITES, keep_color=False, item_format="pm1", read_metadata=False),
         extra={"path": FOLDER_NOT_FILE + [("not_npz", PLAIN)]}, errors=FNF, names={"path": PATH_WORDS}),
    Case("Shapes3DFile(h5)", _ctor(S3.Shapes3DFile, path=SHAPES_H5, item_format="01", in_memory=False),
         extra={"path": FOLDER_NOT_FILE + [("not_h5", PLAIN)]}, errors=FNF, names={"path": PATH_WORDS}),
    Case("Shapes3DFile(npz)", _ctor(S3.Shapes3DFile, path=SHAPES_NPZ, item_format="hwc01", in_memory=True),
         perturb=("path",), extra={"path": [("other_npz", DSPRITES)]}, errors=FNF, names={"path": PATH_WORDS + (DSPRITES_NPZ,)}),
    Case("MPI3D", _ctor(MP.MPI3D, path=MPI, item_format="pm1", factor_sizes=MPI_SIZES, in_memory=True,
                        name="mpi3d_real"), skip=("factor_sizes:None",),
         extra={"path": FOLDER_NOT_FILE + [("not_npz", PLAIN), ("no_images_key", DSPRITES)],
                "factor_sizes": [("array", np.array([1, 1, 1, 1, 2, 2, 3])), ("negative", (-1, -1, 1, 1, 2, 2, 3))]},
         accepted=("factor_sizes:array", "name:unknown"), errors=FNF, names={"path": PATH_WORDS + (DSPRITES_NPZ,)}),
    Case("Cars3D", _ctor(C3.Cars3D, root=TMP / "cars3d", size=4, item_format="pm1"),
         extra={"root": FILE_NOT_FOLDER}, errors=FNF, names={"root": PATH_WORDS}),
    Case("CelebA", _ctor(CA.CelebA, root=TMP / "celeba", split="train", crop="diffae", size=4, item_format="01",
                         num_images=1), skip=("num_images:None",), accepted=("crop:int",),
         extra={"root": FILE_NOT_FOLDER}, errors=FNF, names={"root": PATH_WORDS}),
    Case("CIFAR10", _ctor(CF.CIFAR10, root=TMP / "cifar10", split="train", item_format="pm1"),
         extra={"root": FILE_NOT_FOLDER}, errors=FNF, names={"root": PATH_WORDS}),
    Case("MNIST", _ctor(MN.MNIST, root=TMP / "mnist", split="train", name="mnist", binarize="nonzero", seed=1,
                        item_format="pm1"), skip=("binarize:None",), accepted=("seed:zero",),
         extra={"root": FILE_NOT_FOLDER, "name": [("fashion_only", "FashionMNIST")]}, errors=FNF,
         names={"root": PATH_WORDS}),
    Case("LSUN", _ctor(LS.LSUN, root=TMP / "lsun" / "bedroom_train_lmdb", category="bedroom", split="train", size=4,
                       crop="center", resample="bicubic", item_format="pm1", num_images=1, start=2),
         skip=("num_images:None", "size:None"), accepted=("start:zero",),
         extra={"root": FILE_NOT_FOLDER, "split": [("val", "val")], "category": [("kitchen", "kitchen")]},
         errors=FNF, names={"root": PATH_WORDS}),
    Case("ImageFolder(L)", _ctor(IF.ImageFolder, root=TMP / "images", size=3, mode="L", crop="center",
                                 item_format="uint8", num_images=None, start=0),
         perturb=("root", "mode", "size"), skip=("size:None",), extra={"root": FILE_NOT_FOLDER}, errors=FNF,
         names={"root": PATH_WORDS}),
]


def _fn(f, **kw):
    def make():
        return f, {k: (v() if callable(v) and not isinstance(v, type) else v) for k, v in kw.items()}
    return make


def _png_bytes():
    import io

    buf = io.BytesIO()
    Image.new("RGB", (6, 4), (10, 20, 30)).save(buf, format="PNG")
    return buf.getvalue()


PNG = _png_bytes()


def _celeba_image():
    return IF.open_image(TMP / "celeba" / "img_align_celeba" / "000001.jpg")


# the readers' module-level helpers (file formats, finders, crops)
HELPERS = [
    Case("npzfile.member_keys", _fn(NZ.member_keys, path=DSPRITES), extra={"path": FOLDER_NOT_FILE + [("text", PLAIN)]},
         errors=FNF, names={"path": PATH_WORDS}),
    Case("npzfile.member_header", _fn(NZ.member_header, path=DSPRITES, key="imgs"),
         extra={"path": FOLDER_NOT_FILE + [("text", PLAIN)]}, errors=FNF, names={"path": PATH_WORDS, "key": ("bogus",)}),
    Case("npzfile.member_memmap", _fn(NZ.member_memmap, path=MPI, key="images"),
         extra={"path": FOLDER_NOT_FILE + [("text", PLAIN)]}, errors=FNF, names={"path": PATH_WORDS, "key": ("bogus",)}),
    Case("npzfile.iter_member_rows", _fn(lambda **kw: list(islice(NZ.iter_member_rows(**kw), 64)), path=DSPRITES, key="imgs",
                                         rows_per_chunk=2),
         extra={"path": FOLDER_NOT_FILE + [("text", PLAIN)]}, errors=FNF, names={"path": PATH_WORDS, "key": ("bogus",)}),
    Case("npzfile.load_member", _fn(NZ.load_member, path=DSPRITES, key="latents_classes", allow_pickle=False),
         extra={"path": FOLDER_NOT_FILE + [("text", PLAIN)], "key": [("pickled", "metadata")]}, errors=FNF,
         names={"path": PATH_WORDS, "key": ("metadata", "bogus")}),
    Case("mnist.read_idx", _fn(MN.read_idx, path=TMP / "mnist" / "t10k-images-idx3-ubyte", mmap=True),
         extra={"path": FOLDER_NOT_FILE + [("text", PLAIN)]}, errors=FNF, names={"path": PATH_WORDS}),
    Case("mnist.find_files", _fn(MN.find_files, root=TMP / "mnist", name="mnist", split="test"),
         extra={"root": FILE_NOT_FOLDER}, errors=FNF, names={"root": PATH_WORDS}),
    Case("mnist.bfn_validation_split", _fn(MN.bfn_validation_split, n=20, val_frac=0.1, seed=5),
         extra={"val_frac": [("one", 1.0), ("zero", 0.0)], "n": [("tiny", 1)]}, accepted=("seed:zero",)),
    Case("cifar10.read_batch", _fn(CF.read_batch, path=TMP / "cifar10" / "cifar-10-batches-py" / "test_batch"),
         extra={"path": FOLDER_NOT_FILE + [("text", PLAIN)]}, errors=FNF, names={"path": PATH_WORDS}),
    Case("celeba.read_attributes", _fn(CA.read_attributes, path=TMP / "celeba" / "list_attr_celeba.txt"),
         extra={"path": FOLDER_NOT_FILE + [("partition_file", TMP / "celeba" / "list_eval_partition.txt")]},
         errors=FNF, names={"path": PATH_WORDS + ("list_eval_partition.txt",)}),
    Case("celeba.read_partition", _fn(CA.read_partition, path=TMP / "celeba" / "list_eval_partition.txt"),
         extra={"path": FOLDER_NOT_FILE + [("attr_file", TMP / "celeba" / "list_attr_celeba.txt")]},
         errors=FNF, names={"path": PATH_WORDS + ("list_attr_celeba.txt",)}),
    Case("celeba.crop_image", _fn(CA.crop_image, im=_celeba_image, crop="diffae", size=8),
         extra={"crop": [("zero", 0), ("too_big", 179), ("float", 148.5)], "im": [("array", np.zeros((4, 4, 3)))]},
         accepted=("crop:int",)),  # 3: a centre crop 3 x 3
    Case("cars3d.find_folder", _fn(C3.find_folder, root=TMP / "cars3d"),
         accepted=("root:str",), check=None, names={"root": PATH_WORDS}),
    Case("cars3d.car_names", _fn(C3.car_names, folder=TMP / "cars3d" / "cars"), extra={"folder": FILE_NOT_FOLDER},
         errors=FNF, names={"folder": PATH_WORDS}),
    Case("dsprites.find_file", _fn(DS.find_file, root=TMP / "dsprites"), accepted=("root:str",)),
    Case("shapes3d.find_file", _fn(S3.find_file, root=TMP / "shapes3d_h5"), accepted=("root:str",)),
    Case("shapes3d.classes_from_labels", _fn(S3.classes_from_labels, labels=lambda: np.tile(np.arange(6.0), (4, 1)),
                                             path="x.h5"), perturb=("labels",),
         accepted=("labels:int_dtype", "labels:empty", "labels:batch-1")),  # any N rows of real values
    Case("mpi3d.infer_layout", _fn(MP.infer_layout, n=460800), extra={"n": [("odd", 1000)]}),
    Case("lsun.find_lmdb", _fn(LS.find_lmdb, root=TMP / "lsun", category="bedroom", split="train"),
         accepted=("root:str", "category:unknown")),  # a valid name without files: None, as documented
    Case("lsun.holds_lmdb", _fn(LS.holds_lmdb, root=TMP / "lsun"), accepted=("root:str",)),
    Case("lsun.center_square", _fn(LS.center_square, im=lambda: Image.new("RGB", (6, 4))),
         extra={"im": [("array", np.zeros((4, 6, 3), np.uint8))]}),
    Case("image_folder.open_image", _fn(IF.open_image, path=TMP / "images" / "b.png", mode="RGB"),
         extra={"path": FOLDER_NOT_FILE + [("text", PLAIN)], "mode": [("cmyk_typo", "CMKY")]},
         errors=FNF, names={"path": PATH_WORDS}),
    Case("image_folder.resize_center_crop", _fn(IF.resize_center_crop, im=lambda: Image.new("RGB", (6, 4)), size=3),
         extra={"im": [("array", np.zeros((4, 6, 3), np.uint8))]}),
    Case("image_folder.check_num_images", _fn(IF.check_num_images, num_images=2), skip=("num_images:None",)),
    Case("image_folder.to_array", _fn(IF.to_array, im=lambda: Image.new("L", (3, 2))),
         extra={"im": [("array", np.zeros((2, 3), np.uint8))]}, accepted=("im:array",)),
]


def _gt(name, path, **options):
    def ds():
        return D.load(name, root=path, source="file", **options)
    return ds


GT = {"dsprites": _gt("dsprites", DSPRITES), "shapes3d(h5)": _gt("shapes3d", SHAPES_H5),
      "shapes3d(npz)": _gt("shapes3d", SHAPES_NPZ), "mpi3d": _gt("mpi3d_toy", MPI, factor_sizes=MPI_SIZES),
      "cars3d": _gt("cars3d", TMP / "cars3d", size=4)}


def _gt_method(ds, method, **kw):
    def make():
        return getattr(ds(), method), {k: (v() if callable(v) else v) for k, v in kw.items()}
    return make


def _two_rows(ds):
    return lambda: np.array([[0] * ds().num_factors, [s - 1 for s in ds().factor_sizes]])


ROWS_OK = ("factors:ndim-1", "factors:batch-1", "factors:empty")  # one row (F,) and n = 0 are documented
IDX_OK = ("indices:ndim+1", "indices:ndim-1", "indices:empty", "indices:batch-1")
INTERFACE = []
for _name, _ds in GT.items():
    INTERFACE += [
        Case(f"{_name}.factors_to_index", _gt_method(_ds, "factors_to_index", factors=_two_rows(_ds)), accepted=ROWS_OK,
             extra={"factors": [("past_end", np.array([_ds().factor_sizes])), ("width+1", np.zeros((1, 8), int))]},
             names={"factors": ("factor",)}),
        Case(f"{_name}.index_to_factors", _gt_method(_ds, "index_to_factors", indices=lambda: np.array([0, 1])),
             accepted=IDX_OK, extra={"indices": [("past_end", np.array([10**6])), ("np_float", np.array([0.0]))]},
             names={"indices": ("index",)}),
        Case(f"{_name}.factor_classes_to_values", _gt_method(_ds, "factor_classes_to_values", factors=_two_rows(_ds)),
             accepted=ROWS_OK),
        Case(f"{_name}.sample_factors", _gt_method(_ds, "sample_factors", n=3, rng=0), skip=("rng:None",),
             accepted=("n:zero",)),
        Case(f"{_name}.sample_observations_from_factors", _gt_method(_ds, "sample_observations_from_factors",
                                                                     factors=_two_rows(_ds), rng=0),
             skip=("rng:None",), accepted=ROWS_OK),
        Case(f"{_name}.sample", _gt_method(_ds, "sample", n=2, rng=1), skip=("rng:None",),
             accepted=("n:zero", "rng:zero")),
        Case(f"{_name}.images", _gt_method(_ds, "images", indices=lambda: np.array([0, 1])), errors=(IndexError,),
             names={"indices": ("index",)}, accepted=IDX_OK,
             extra={"indices": [("past_end", np.array([10**6])), ("before_start", np.array([-10**6]))]}),
        Case(f"{_name}.get_batch", _gt_method(_ds, "get_batch", indices=lambda: np.array([1, 0])),
             errors=(IndexError,), names={"indices": ("index",)}, accepted=IDX_OK),
        Case(f"{_name}.__getitem__", _gt_method(_ds, "__getitem__", index=1), errors=(IndexError,),
             accepted=("index:zero", "index:negative"), extra={"index": [("past_end", 10**6)]}),
    ]

# the plain image datasets' item access and per-reader verbs
IMAGE_DS = {"celeba": lambda: D.load("celeba", root=TMP / "celeba", split="all", size=4),
            "mnist": lambda: D.load("mnist", root=TMP / "mnist", binarize="static"),
            "cifar10": lambda: D.load("cifar10", root=TMP / "cifar10", split="test"),
            "lsun": lambda: D.load("lsun", root=TMP / "lsun", size=4),
            "image_folder": lambda: D.load("image_folder", root=TMP / "images", size=4)}
for _name, _ds in IMAGE_DS.items():
    INTERFACE += [
        Case(f"{_name}.targets", _gt_method(_ds, "targets", indices=lambda: np.array([0, 1])), errors=(IndexError,),
             names={"indices": ("index",)}, accepted=IDX_OK),
        Case(f"{_name}.get_batch", _gt_method(_ds, "get_batch", indices=lambda: np.array([1, 0])),
             errors=(IndexError,), names={"indices": ("index",)}, accepted=IDX_OK,
             extra={"indices": [("past_end", np.array([10**6]))]}),
        Case(f"{_name}.__getitem__", _gt_method(_ds, "__getitem__", index=1), errors=(IndexError,),
             accepted=("index:zero", "index:negative"), extra={"index": [("past_end", 10**6)]}),
    ]
INTERFACE += [
    Case("mnist.set_epoch", _gt_method(IMAGE_DS["mnist"], "set_epoch", epoch=2), accepted=("epoch:zero",)),
    Case("lsun.key", _gt_method(IMAGE_DS["lsun"], "key", index=1), errors=(IndexError,),
         accepted=("index:zero", "index:negative"), extra={"index": [("past_end", 3)]}),
    Case("lsun.decode", _gt_method(IMAGE_DS["lsun"], "decode", data=PNG, key=b"k1"),
         extra={"data": [("junk", b"not an image")]}, accepted=("key:str",), names={"data": ("record",)}),
    Case("lsun.transform", _gt_method(IMAGE_DS["lsun"], "transform", im=lambda: Image.new("RGB", (6, 4))),
         extra={"im": [("array", np.zeros((4, 6, 3), np.uint8))]}),
]

CASES = LOADS + READERS + HELPERS + INTERFACE


@pytest.fixture(autouse=True)
def _no_env_root(monkeypatch):
    monkeypatch.delenv("DIFFREP_DATA", raising=False)


test_valid_call, test_bad_input = sweep_tests(CASES)
