"""What a run was trained on: ``run.json`` (recipe name + data settings) and the dataset it rebuilds.

``diffrep train`` writes ``run.json`` into the run folder and into ``final/``; the model verbs
(``diffrep eval --model``, ``diffrep paramrel reconstruct|traverse|...|eval``) read it from the
model folder, or from the run folder above a ``final/`` or ``checkpoints/step-*`` folder, so a model
trained on dSprites max-pooled to 32 x 32 is shown 32 x 32 images without ``--pool 2`` being
repeated (docs/data.md, "Dataset roots and saved data settings").

The data settings: ``dataset`` (a :func:`diffrep.data.load` name, or ``toy_shapes``), ``options``
(keyword arguments of ``load``), ``pool`` (the max-pool factor, :class:`diffrep.data.pooled.Pooled`)
and ``root`` (the dataset root the run read, None for ``$DIFFREP_DATA`` or procedural data).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Literal

from ..config import Config
from .._files import write_text_atomic
from ..nn.pretrained import WEIGHTS_CHOICES

__all__ = ["RUN_INFO_NAME", "DataRoot", "load_named", "subgrid_by_name", "SUBGRID", "SUBGRID_SIZES", "RECIPE_DATASETS",
           "register_recipe_dataset", "data_settings", "write_run_info", "find_run_info", "dataset_from_settings",
           "resolve_data_settings", "check_model_folder", "STAGE_WEIGHTS", "stage_weights"]

RUN_INFO_NAME = "run.json"


@dataclasses.dataclass
class DataRoot(Config):
    """The ``data`` section of the recipes whose dataset is chosen by name (``dataset`` +
    ``dataset_options``): ``root`` = the folder holding the dataset's original files (``--data.root
    PATH``); empty = ``$DIFFREP_DATA``, else the procedural generator where one exists. A root given
    here that does not exist, or does not hold the files, is an error naming it."""

    root: str = ""  # folder of the dataset's original files; empty: $DIFFREP_DATA, else the procedural generator


SUBGRID = "shapes3d_subgrid"
SUBGRID_SIZES = (64, 32, 16, 8)

#: Ground-truth datasets that a recipe family defines (not :mod:`diffrep.data`), by name: a factory
#: ``(pool) -> dataset``. :mod:`diffrep.recipes` fills it (``shapes3d_subgrid``: the sub-grid of
#: :mod:`diffrep.recipes.encdiff`), so this module imports no recipe family.
RECIPE_DATASETS: dict = {}


def register_recipe_dataset(name: str, factory) -> None:
    """Make ``factory(pool)`` the dataset ``name`` of :func:`load_named` / :func:`dataset_from_settings`."""
    if not isinstance(name, str) or not name or not callable(factory):
        raise TypeError("register_recipe_dataset(name, factory): a dataset name and a callable factory(pool)")
    RECIPE_DATASETS[name] = factory


def _recipe_dataset(name: str, pool: int):
    if name not in RECIPE_DATASETS:
        raise ValueError(f"dataset {name!r} is defined by a recipe family that is not registered (import diffrep.recipes)")
    return RECIPE_DATASETS[name](pool)


def subgrid_by_name(options: dict, who: str = "dataset_options"):
    """The procedural Shapes3D sub-grid (:class:`diffrep.recipes.encdiff.Shapes3DSubgrid`, registered in
    :data:`RECIPE_DATASETS`) as a dataset
    chosen by name: ``options`` = ``{"size": S}``, the 64 px renders average-pooled to S x S (S in
    64, 32, 16, 8). What a recipe whose dataset is a :func:`diffrep.data.load` name (the VAE family,
    multi-beta, ParamReL) trains on when ``dataset: shapes3d_subgrid`` (docs/data.md, "The Shapes3D
    sub-grid"); the recipes built on the sub-grid (DiffAE, InfoDiffusion, DisDiff, EncDiff) choose the
    pooling with their ``pool`` field instead."""
    if options is not None and not isinstance(options, dict):
        raise TypeError(f"{SUBGRID}: {who} must be a mapping such as {{size: 32}}, got {type(options).__name__}")
    options = dict(options or {})
    unknown = sorted(set(options) - {"size"})
    if unknown:
        raise ValueError(f"{SUBGRID}: unknown {who} {unknown}; the only option is size (the image size, one of "
                         f"{list(SUBGRID_SIZES)})")
    if "size" not in options:
        raise ValueError(f"{SUBGRID} chosen by name needs {who}.size, the image size (one of {list(SUBGRID_SIZES)}: "
                         "the 64 px renders average-pooled), e.g. {size: 32}")
    size = options["size"]
    if isinstance(size, bool) or not isinstance(size, int) or size not in SUBGRID_SIZES:
        raise ValueError(f"{SUBGRID}: {who}.size must be one of {list(SUBGRID_SIZES)}, got {size!r}")
    return _recipe_dataset(SUBGRID, 64 // size)


def load_named(dataset: str, options: dict, data_root: DataRoot | None):
    """``diffrep.data.load(dataset, **options)`` with the root of ``data_root`` (``--data.root``); a
    ``root`` in ``options`` as well is an error (one setting, one place). ``"shapes3d_subgrid"``: the
    procedural Shapes3D sub-grid at ``options["size"]`` (:func:`subgrid_by_name`; no root)."""
    from .. import data

    options = dict(options or {})
    if dataset == SUBGRID:
        root = (data_root.root if data_root is not None else "") or options.get("root")
        if root:
            raise ValueError(f"data.root={root!r}: the Shapes3D sub-grid is drawn procedurally, no files are read")
        return subgrid_by_name(options)
    root = (data_root.root if data_root is not None else "") or None
    flag = "--data.root"
    if "root" in options:
        if root is not None:
            raise ValueError(f"the dataset root is set twice: data.root={root} and dataset_options.root="
                             f"{options['root']}; keep --data.root")
        root, flag = options.pop("root"), "--dataset_options.root"
    return data.load(dataset, root=root, root_flag=flag, **options)


def data_settings(cfg) -> dict:
    """The data settings of a recipe config (any family)."""
    data = getattr(cfg, "data", None)
    root = getattr(data, "root", "") or None
    if isinstance(getattr(cfg, "dataset", None), str):  # paramrel, bfn, vq: dataset by name
        options = dict(getattr(cfg, "dataset_options", {}) or {})
        if cfg.dataset == "toy_shapes" and hasattr(cfg, "toy"):
            options = dataclasses.asdict(cfg.toy)
        root = root or options.pop("root", None)
        pool = int(getattr(cfg, "pool", 1))
        # the sub-grid families (EncDiff, DiffAE, InfoDiffusion, DisDiff) pool the sub-grid only: their paper
        # recipes recorded pool 4 for Shapes3D or CelebA read at 64 px, and the model verbs then showed the
        # model 16 px images
        if getattr(type(cfg), "pool_dataset", cfg.dataset) != cfg.dataset:
            pool = 1
        return {"dataset": cfg.dataset, "options": options, "pool": pool, "root": root}
    if data is not None and hasattr(data, "dataset"):  # sami: a data section
        options = {"disks": {"num_images": data.num_images, "size": data.size, "seed": data.seed},
                   "celeba": {"split": data.split, "size": data.size},
                   "image_folder": {"size": data.size},
                   SUBGRID: {"size": data.size}}.get(data.dataset, {})
        return {"dataset": data.dataset, "options": options, "pool": 1, "root": root}
    if data is not None and dataclasses.is_dataclass(data):  # demo: procedural toy shapes
        return {"dataset": "toy_shapes", "options": dataclasses.asdict(data), "pool": 1, "root": None}
    return {"dataset": None, "options": {}, "pool": 1, "root": None}


def write_run_info(folder: str | os.PathLike, recipe_name: str, cfg) -> Path:
    """Write ``run.json`` (recipe name, data settings, diffrep version) into ``folder``."""
    from .. import __version__

    path = Path(folder) / RUN_INFO_NAME
    info = {"recipe": recipe_name, "data": data_settings(cfg), "diffrep_version": __version__}
    return write_text_atomic(path, json.dumps(info, indent=1, default=str))  # never a half-written run.json


def find_run_info(model_dir: str | os.PathLike) -> dict | None:
    """The ``run.json`` of a model folder: in it, or in the run folder above ``final/`` or
    ``checkpoints/step-*``; None when there is none (a model saved outside ``diffrep train``)."""
    d = Path(model_dir)
    candidates = [d]
    if d.name == "final":
        candidates.append(d.parent)
    if d.parent.name == "checkpoints":
        candidates.append(d.parent.parent)
    for c in candidates:
        p = c / RUN_INFO_NAME
        if p.is_file():
            try:
                info = json.loads(p.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise ValueError(f"{p} cannot be read: {exc}") from None
            if not isinstance(info, dict) or not isinstance(info.get("data"), dict):
                raise ValueError(f"{p} has no 'data' settings")
            return info
    return None


def resolve_data_settings(model_dir, dataset: str | None = None, *, pool: int | None = None,
                          options: dict | None = None, root: str | None = None, fallback: dict | None = None) -> dict:
    """The data settings a model verb uses, one rule for every verb (``diffrep eval --model``, ``encode``,
    ``encdiff``, ``multibeta``, ``paramrel``, ``study``): the run's saved ones (``run.json`` of
    ``model_dir``, :func:`find_run_info`) with the command line's ``dataset`` / ``pool`` / ``options`` /
    ``root`` over them, each given value winning over the record. The record describes the data read when
    ``dataset`` is None or names the run's own dataset (its options, root and pool, an old record's pool
    read as :func:`_recorded_pool` says); another ``dataset`` drops them (they describe another dataset).

    ``fallback``: the settings a verb assumes where the record says nothing of the dataset read (no
    ``run.json``, or another ``dataset`` than the run's that is the fallback's own), e.g. ``diffrep encdiff``'s
    CPU-recipe sub-grid at pool 4; without one, a folder whose run records no dataset needs ``dataset``.
    ``root_flag`` names where the root came from, for the data loader's messages."""
    if pool is not None and (isinstance(pool, bool) or not isinstance(pool, int) or pool < 1):
        raise ValueError(f"--pool must be an int >= 1, got {pool!r}")  # 0 read unpooled, "2" compared as text
    if options is not None and not isinstance(options, dict):
        raise TypeError(f"options must be a mapping of dataset options, got {type(options).__name__}")
    info = find_run_info(model_dir) if model_dir is not None else None
    recorded = info["data"] if info and info["data"].get("dataset") is not None else None
    if recorded is not None and dataset in (None, recorded["dataset"]):
        saved = dict(recorded)
        if pool is None:
            saved["pool"] = _recorded_pool(info, model_dir)
    elif fallback is not None and dataset in (None, fallback["dataset"]):
        saved = dict(fallback)
    elif dataset is not None:
        saved = {"dataset": dataset, "options": {}, "pool": 1, "root": None}
    elif info is not None:  # a run.json whose recipe names no dataset (it was read as "no run.json")
        raise ValueError(f"{model_dir}: its run's run.json records no dataset (recipe {info.get('recipe')}); "
                         "pass --dataset NAME")
    else:
        raise ValueError(f"{model_dir}: no run.json records the dataset it was trained on (a model saved outside "
                         "'diffrep train'); pass --dataset NAME")
    recorded_root = root is None and saved.get("root") is not None
    # a missing dataset with no root at all said "set the run's data.root or DIFFREP_DATA": a verb sets --root
    return {"dataset": saved["dataset"], "options": {**(saved.get("options") or {}), **(options or {})},
            "pool": int(pool if pool is not None else saved.get("pool", 1) or 1),
            "root": saved.get("root") if recorded_root else root, "from_run": info is not None,
            "root_flag": "the run's data.root" if recorded_root else "--root"}


def _recorded_pool(info: dict, model_dir) -> int:
    """The pool of a run's ``run.json``, read as 1 where the recipe never applied it: before 2026-12-07 the
    sub-grid families (EncDiff, DiffAE, InfoDiffusion, DisDiff: a config class naming ``pool_dataset``)
    recorded their ``pool`` field (4) for any dataset, though it pools the sub-grid only, and the model verbs
    then showed a model of 64 px Shapes3D, Cars3D, MPI3D or CelebA 16 px images (said on stderr)."""
    from .registry import get_recipe

    data = info["data"]
    pool = int(data.get("pool", 1) or 1)
    name = info.get("recipe")
    if pool == 1 or not isinstance(name, str):
        return pool
    try:
        pooled = getattr(type(get_recipe(name).make_config()), "pool_dataset", None)
    except ValueError:  # a recipe not registered in this process (a user's, or renamed since): its record stands
        return pool
    if pooled is None or data.get("dataset") == pooled:
        return pool
    print(f"note: {model_dir}: its run.json records pool {pool} for {data.get('dataset')}, but recipe {name} pools "
          f"only {pooled} (a record written before 2026-12-07); reading the images unpooled (pool 1); --pool N "
          f"sets it", file=sys.stderr)
    return 1


def dataset_from_settings(settings: dict, **extra):
    """The dataset described by ``settings`` (see :func:`data_settings`), ``extra`` options over its own;
    ``settings["source_flag"]`` (default ``"source"``), where a verb sets it, is how the loader's hints name
    the dataset's source (:func:`diffrep.data.load`, e.g. ``--source`` or ``--option source=``)."""
    from .. import data
    from ..data.pooled import Pooled

    name, options = settings["dataset"], {**(settings.get("options") or {}), **extra}
    pool = int(settings.get("pool", 1) or 1)
    if name == SUBGRID:  # procedural: no root; "size" = chosen by name, else the sub-grid recipes' pool
        if settings.get("root"):  # diffrep encdiff ignored --root here without a word
            flag = settings.get("root_flag", "root")
            raise ValueError(f"{flag}={settings['root']}: {SUBGRID} is drawn procedurally, no files are read; "
                             f"drop {flag}")
        if options.pop("source", "auto") == "file":
            raise ValueError(f"{SUBGRID} is drawn procedurally: no files are read (source 'file')")
        if "size" not in options:
            if options:
                # the options come from the run's record and the verb's --option: "in the run's data settings"
                # blamed the record for a mistyped --option
                raise ValueError(f"{SUBGRID}: unknown options {sorted(options)} (the run's data settings with any "
                                 f"--option over them); the only option is size (one of {list(SUBGRID_SIZES)})")
            return _recipe_dataset(SUBGRID, pool)
        ds = subgrid_by_name(options, "options")
        return Pooled(ds, pool) if pool > 1 else ds
    if name == "toy_shapes":
        from ..data.toy_shapes import ToyShapes, ToyShapesConfig

        options.pop("item_format", None)
        ds = ToyShapes(ToyShapesConfig(**options))
    elif name == "disks" and "num_images" in options:  # SAMI's training set of disks
        from ..data.disks import DisksTensorDataset

        ds = DisksTensorDataset(options["num_images"], options["size"], options["seed"])
    else:
        ds = data.load(name, root=settings.get("root"), root_flag=settings.get("root_flag", "--root"),
                       source_flag=settings.get("source_flag", "source"), **options)
    return Pooled(ds, pool) if pool > 1 else ds


def check_model_folder(path: str, field: str) -> str:
    """``path`` when it is a ``save_pretrained`` folder (config.json), the folder a recipe's path field
    (``--autoencoder_path``, ``--pretrained_path``, ...) loads; a run folder is refused with its
    ``final/`` named (the verbs would read its newest checkpoint instead: which one is the user's choice;
    docs/architecture.md#run-folders)."""
    p = Path(path)
    if (p / "config.json").is_file():
        return path
    if (p / "final" / "config.json").is_file():
        raise ValueError(f"--{field} {path} is a run folder; give the model folder it saved: --{field} {p / 'final'} "
                         "(or one of its checkpoints/step-* folders)")
    what = "does not exist" if not p.exists() else "is not a folder" if not p.is_dir() else "holds no config.json"
    raise FileNotFoundError(f"--{field} {path} {what}: give a model folder written by save_pretrained (a run's final/)")


# the choices of a recipe's ``*_weights`` field: the verbs' --weights choices
STAGE_WEIGHTS = Literal[WEIGHTS_CHOICES]


def stage_weights(path: str, weights: str, field: str, weights_field: str, *, classes: tuple[str, ...] | None = None,
                  hint: str = "") -> tuple[str, str]:
    """(folder, ``"ema"`` or ``"model"``): the model folder that a recipe's path field ``field`` names
    (:func:`check_model_folder`) and the weights to read from it, chosen by the recipe's ``weights_field``
    (value ``weights``) as the verbs' ``--weights`` (:func:`diffrep.nn.pretrained.resolve_weights`): ``auto``
    reads the EMA copy when the earlier stage kept one (what the papers' later stages read), ``ema`` insists
    on it (refused, naming ``weights_field``, when the folder has none), ``model`` reads the raw weights
    (docs/architecture.md#configuration-and-command-line; the papers' choices in docs/methods/*.md).
    ``classes``: the model classes (config.json ``_class_name``) the stage reads; another is refused with
    ``hint`` before the weights are chosen (``auto`` first said which weights it would read, then the
    loading failed on the class)."""
    from ..nn.pretrained import PretrainedMixin, resolve_weights

    for name, text in (("field", field), ("weights_field", weights_field)):
        if not isinstance(text, str) or not text:
            raise TypeError(f"stage_weights: {name} must be a field name (a non-empty str), got {text!r}")
    folder = check_model_folder(path, field)
    if classes is not None:
        name = PretrainedMixin.read_config(folder)[0]
        if name not in classes:
            raise ValueError(f"--{field} {path} holds {'an' if name[:1] in 'AEIOU' else 'a'} {name}; {hint}")
    return folder, resolve_weights(folder, weights, f"diffrep train ({field})", flag=f"--{weights_field}")
