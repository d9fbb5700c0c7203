"""Input sweep of diffrep.data (tests/bad_inputs.py): load(), the dataset constructors that need no files,
the ground-truth interface (index math, sampling, batched access) and the samplers/loaders, each called
once validly on tiny data, then with one argument at a time replaced by a bad value. A bad value must
give a ValueError or TypeError naming the argument; an index out of range is Python's IndexError
(the sequence protocol a DataLoader relies on), naming the index."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from bad_inputs import Case, sweep_tests

import diffrep.data as D
from diffrep.data import ArrayGroundTruthData
from diffrep.data import binarize as B
from diffrep.data import disks as K
from diffrep.data import sampling as S


def _images(n=12):
    return (np.random.default_rng(0).random((n, 4, 4, 1)) * 255).astype(np.uint8)


def _ds():
    return ArrayGroundTruthData(_images(), ("a", "b"), (4, 3))


def _method(name, **kw):
    def make():
        return getattr(_ds(), name), {k: (v() if callable(v) else v) for k, v in kw.items()}
    return make


_TMP = tempfile.TemporaryDirectory(prefix="diffrep-sweep-data-")  # removed when the session ends


def _folder():
    from PIL import Image

    d = Path(_TMP.name) / "folder"
    if not d.exists():
        d.mkdir()
        for i in range(3):
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(d / f"{i}.png")
    return d


def _image_folder():
    from diffrep.data.image_folder import ImageFolder

    return ImageFolder, dict(root=_folder(), size=4, mode="RGB", crop="center", item_format="pm1", num_images=2,
                             start=1)


# sample_* take rng = a numpy Generator/RandomState, an int seed, None (fresh entropy) or a torch.Generator
# (docs/data.md#groundtruthdata-interface): None is no bad value there
INDEX = (IndexError,)
CASES = [
    Case("load", lambda: (D.load, dict(name="disks", source="procedural", split=None, size=8, bins=(2, 2, 2),
                                       x_range=(3.0, 5.0), y_range=(3.0, 5.0), radius=1.5, transition=1.0)),
         skip=("split:None",)),
    Case("ArrayGroundTruthData", lambda: (ArrayGroundTruthData, dict(
        images=_images(), factor_names=("a", "b"), factor_sizes=(4, 3), factor_values=[np.arange(4.0), np.arange(3.0)],
        item_format="pm1", name="array")), skip=("factor_values:None",), accepted=("name:unknown",)),
    Case("check_factors", _method("check_factors", factors=lambda: np.array([[0, 1], [3, 2]])),
         accepted=("factors:ndim-1", "factors:batch-1", "factors:empty")),  # one row (F,) is documented
    Case("factors_to_index", _method("factors_to_index", factors=lambda: np.array([[0, 1], [3, 2]])),
         accepted=("factors:ndim-1", "factors:batch-1", "factors:empty")),
    Case("index_to_factors", _method("index_to_factors", indices=lambda: np.array([0, 11])),
         accepted=("indices:ndim+1", "indices:ndim-1", "indices:empty", "indices:batch-1")),
    Case("factor_classes_to_values", _method("factor_classes_to_values", factors=lambda: np.array([[0, 1], [3, 2]])),
         accepted=("factors:ndim-1", "factors:batch-1", "factors:empty")),
    Case("sample_factors", _method("sample_factors", n=3, rng=0), skip=("rng:None",), accepted=("n:zero",),
         check=lambda f: f.shape[1] == 2 or pytest.fail(f"shape {f.shape}")),
    Case("sample_observations_from_factors", _method("sample_observations_from_factors",
                                                     factors=lambda: np.array([[0, 1], [3, 2]]), rng=0),
         skip=("rng:None",), accepted=("factors:ndim-1", "factors:batch-1", "factors:empty")),
    Case("sample", _method("sample", n=3, rng=0), skip=("rng:None",), accepted=("n:zero",)),
    Case("sample_observations", _method("sample_observations", n=3, rng=0), skip=("rng:None",), accepted=("n:zero",)),
    Case("images", _method("images", indices=lambda: np.array([0, 5])), errors=INDEX, names={"indices": ("index",)},
         accepted=("indices:ndim+1", "indices:ndim-1", "indices:empty", "indices:batch-1")),
    Case("observations", _method("observations", indices=lambda: np.array([0, 5])), errors=INDEX,
         names={"indices": ("index",)}, accepted=("indices:ndim+1", "indices:ndim-1", "indices:empty", "indices:batch-1")),
    Case("targets", _method("targets", indices=lambda: np.array([0, 5])), errors=INDEX, names={"indices": ("index",)},
         accepted=("indices:ndim+1", "indices:ndim-1", "indices:empty", "indices:batch-1")),
    Case("get_batch", _method("get_batch", indices=lambda: np.array([0, 5])), errors=INDEX,
         names={"indices": ("index",)}, accepted=("indices:ndim+1", "indices:ndim-1", "indices:empty", "indices:batch-1")),
    # epoch 0, start 0, seed 0 and an empty permutation are valid
    Case("EpochBatchSampler", lambda: (S.EpochBatchSampler, dict(n=10, batch_size=3, seed=0, shuffle=True,
                                                                 drop_last=False, epoch=1, start=1, rank=0,
                                                                 world_size=1)), accepted=("epoch:zero", "start:zero")),
    Case("epoch_permutation", lambda: (S.epoch_permutation, dict(n=5, seed=1, epoch=2)), accepted=("*:zero",)),
    Case("make_loader", lambda: (S.make_loader, dict(dataset=_ds(), batch_size=4, seed=0, epoch=0, shuffle=True,
                                                     drop_last=False, num_workers=0, start_batch=1)),
         accepted=("start_batch:zero",)),
    # worker_id=None: the current DataLoader worker's id (documented)
    Case("worker_generator", lambda: (S.worker_generator, dict(seed=1, epoch=2, worker_id=1)),
         skip=("worker_id:None",), accepted=("*:zero",)),
    Case("Disks", lambda: (K.Disks, dict(jitter=False, seed=0, item_format="pm1", cache_size=16, size=8,
                                         bins=(2, 2, 2), x_range=(3.0, 5.0), y_range=(3.0, 5.0), radius=1.5,
                                         transition=1.0)), accepted=("cache_size:zero",)),  # 0: no cache
    Case("Disks.sample_continuous", lambda: (K.Disks(size=8, bins=(2, 2, 2), x_range=(3.0, 5.0), y_range=(3.0, 5.0),
                                                     radius=1.5, transition=1.0).sample_continuous,
                                             dict(num=3, rng=0)), skip=("rng:None",), accepted=("num:zero",)),
    Case("render_disks", lambda: (K.render_disks, dict(x=np.array([4.0, 5.0]), y=np.array([4.0, 4.5]),
                                                       background=np.array([0.2, 0.3]),
                                                       cfg=K.DisksConfig(size=8, radius=1.5, transition=1.0))),
         skip=("cfg:None",), accepted=("*:int_dtype",)),
    Case("DisksTensorDataset", lambda: (K.DisksTensorDataset, dict(num_images=4, size=8, seed=0))),
    Case("disks_geometry", lambda: (K.disks_geometry, dict(size=16))),
    # split=None is every image and binarize=None no binarisation (documented)
    Case("Digits", lambda: (D.load, dict(name="digits", size=8, split="test", binarize="static", seed=0,
                                         item_format="01")), skip=("split:None", "binarize:None")),
    Case("binarize", lambda: (B.binarize, dict(images=_images(3), indices=np.arange(3), mode="static", seed=1,
                                               epoch=1)), accepted=("epoch:zero", "seed:zero")),
    Case("Pooled", lambda: (__import__("diffrep.data.pooled", fromlist=["Pooled"]).Pooled,
                            dict(base=_ds(), factor=2, mode="max"))),
    # size=None keeps the native size, num_images=None takes all, start=0 the first (documented)
    Case("ImageFolder", _image_folder, errors=(FileNotFoundError,), names={"root": ("x",)},
         skip=("num_images:None", "size:None"), accepted=("start:zero",)),
]



def _toy_shapes():
    from diffrep.data.toy_shapes import ToyShapes, ToyShapesConfig

    return ToyShapes, dict(config=ToyShapesConfig(num_images=4, image_size=8, seed=0))


# the procedural generators (their constructors only: rendering all of dSprites is not a unit test)
CASES += [
    Case("DSprites", lambda: (D.load, dict(name="dsprites", source="procedural", keep_color=False, item_format="01",
                                           cache=False)), skip=("source:None",)),
    Case("Shapes3D", lambda: (D.load, dict(name="shapes3d", source="procedural", item_format="01", cache_size=4)),
         accepted=("cache_size:zero",)),  # 0: no cache
    Case("ToyShapes", _toy_shapes, skip=("config:None",)),
    Case("Disks(config)", lambda: (K.Disks, dict(config=K.DisksConfig(size=8, radius=1.5, transition=1.0,
                                                                      bins=(2, 2, 2)))), skip=("config:None",)),
    Case("Pooled.sample_factors", lambda: (__import__("diffrep.data.pooled", fromlist=["Pooled"]).Pooled(
        _ds(), 2).sample_factors, dict(n=3, rng=0)), skip=("rng:None",), accepted=("n:zero",)),
]


test_valid_call, test_bad_input = sweep_tests(CASES)
