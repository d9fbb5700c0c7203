"""A study file (YAML) and the cells it expands to (docs/study.md, "Study files").

A study names methods (registered recipes, :mod:`diffrep.recipes`), a hyper-parameter grid per
method over dotted config paths (the overrides ``diffrep train`` accepts), datasets, seeds, the
training length and the metrics to run::

    study: dsprites_cpu
    seeds: [0, 1]
    steps: 300                          # sets train.steps of every cell (optional)
    overrides: {train.batch_size: 64}   # every cell (optional)
    datasets: [dsprites]                # optional; a name sets the recipe's dataset field
    methods:
      beta-vae:                         # the method's label in tables and folders
        recipe: vae/beta_vae-cpu
        overrides: {model.latent_dim: 6}
        grid: {model.beta: [1, 4]}
    eval:
      metrics: [mig, dci, sap]
      num_train: 2000
      num_test: 1000

:func:`load_study` reads and checks the whole file and resolves the config of every cell before
anything trains: an unknown key, recipe or config path, or a value a field refuses, is a
``StudyError`` naming where it is in the file. A cell is (method, dataset, grid point, seed); its
config is recipe defaults <- study ``overrides`` <- method ``overrides`` <- dataset overrides <- grid
point <- ``steps`` <- ``train.seed = seed``, validated by :func:`diffrep.config.apply_overrides`
(``validate_tree``). The cell's hash is the SHA-256 of its recipe name, resolved config and
evaluation settings: the runner's guard against mixing results of a changed study.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import itertools
import json
import math
import os
import re
from pathlib import Path
from typing import Any

from .. import _checks

__all__ = ["StudyError", "EvalSpec", "MethodSpec", "DatasetSpec", "Cell", "Study", "load_study", "parse_study",
           "format_value", "EVAL_DEFAULTS"]


class StudyError(ValueError):
    """A study file, folder or command that cannot be used as asked; the message says where and why."""


EVAL_DEFAULTS = {"metrics": ["mig", "dci", "sap", "modularity_explicitness", "infomec"], "num_train": 10000,
                 "num_test": 5000, "seed": 0, "batch_size": 256, "weights": "auto", "item_format": "pm1",
                 "mode": "robust", "estimator": "fast", "tad_variant": "infodiffusion", "device": "auto",
                 "calibrate": "", "calibrate_images": 1000}
_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_EVAL_CHOICES = {"weights": None, "mode": ("robust", "parity"), "estimator": ("fast", "sklearn"),
                 "tad_variant": ("infodiffusion", "disdiff", "nashae", "exact"), "device": ("auto", "cpu", "cuda"),
                 "item_format": None}  # None: the library's own list, read when checked (_parse_eval)
_TOP_KEYS = ("study", "seeds", "steps", "overrides", "datasets", "methods", "eval", "report")
_METHOD_KEYS = ("recipe", "overrides", "grid", "eval")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


@dataclasses.dataclass(frozen=True)
class EvalSpec:
    """What is measured after training (the ``diffrep eval --model`` settings, :mod:`diffrep.metrics.suite`).
    ``metrics: []`` trains only (the report then shows the training log's last values). ``calibrate``: the
    name of a model method that fits statistics ``encode`` needs (e.g. DisDiff's ``fit_code_pca``), called
    with ``calibrate_images`` images of the cell's dataset before the metrics (docs/study.md, "Evaluation");
    empty: none. ``weights``: ``auto`` (default), ``ema`` or ``model``, as the verbs' ``--weights``
    (:func:`diffrep.nn.pretrained.resolve_weights`)."""

    metrics: tuple = tuple(EVAL_DEFAULTS["metrics"])
    num_train: int = 10000
    num_test: int = 5000
    seed: int = 0
    batch_size: int = 256
    weights: str = "auto"  # auto: the EMA weights when final/ has them, else the raw ones (as --weights)
    item_format: str = "pm1"
    mode: str = "robust"
    estimator: str = "fast"
    tad_variant: str = "infodiffusion"
    device: str = "auto"
    calibrate: str = ""
    calibrate_images: int = 1000

    def to_dict(self) -> dict:
        """The settings as a mapping; without ``calibrate`` / ``calibrate_images`` when no calibration is
        asked for, so the hashes of studies written before the setting existed are unchanged."""
        d = dataclasses.asdict(self)
        d["metrics"] = list(self.metrics)
        if not self.calibrate:
            del d["calibrate"], d["calibrate_images"]
        return d


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    label: str
    overrides: dict  # dotted path -> value; {} = the recipe's own dataset
    by_name: str | None = None  # a bare dataset name: set on the recipe's dataset field per method


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    label: str
    recipe: str
    overrides: dict
    grid: dict  # dotted path -> list of values (insertion order = file order)
    eval: EvalSpec


@dataclasses.dataclass(frozen=True)
class Cell:
    """One training + evaluation: ``method`` x ``dataset`` x grid point ``params`` x ``seed``."""

    index: int
    method: str
    recipe: str
    dataset: str
    params: tuple  # ((path, value), ...) of the method's grid, in grid order
    seed: int
    overrides: tuple  # ((path, value), ...): everything applied over the recipe's defaults, in order
    config: Any = dataclasses.field(compare=False, repr=False)
    eval: EvalSpec = dataclasses.field(compare=False, repr=False, default=EvalSpec())
    hash: str = ""

    @property
    def setting(self) -> str:
        """The grid point as text (``beta=4``), ``default`` when the method has no grid."""
        return setting_name(self.params)

    @property
    def folder(self) -> str:
        """The cell's folder under the study folder: ``<method>/<dataset>/<setting>/seed<k>``."""
        return f"{self.method}/{self.dataset}/{self.setting}/seed{self.seed}"

    def describe(self) -> dict:
        return {"index": self.index, "folder": self.folder, "method": self.method, "recipe": self.recipe,
                "dataset": self.dataset, "setting": self.setting, "params": {k: v for k, v in self.params},
                "seed": self.seed, "overrides": {k: v for k, v in self.overrides}, "eval": self.eval.to_dict(),
                "hash": self.hash}


@dataclasses.dataclass(frozen=True)
class Study:
    name: str
    source: str  # the file it was read from
    methods: tuple
    datasets: tuple
    seeds: tuple
    cells: tuple
    spec: dict  # the normalised study (what study.json records)
    hash: str  # SHA-256 of the cells' folders and hashes, in order


def format_value(v) -> str:
    """A grid value as it appears in folder names and tables: ints and strings as written, floats by
    ``repr`` with a trailing ``.0`` dropped (``4.0`` -> ``4``, ``0.001`` -> ``0.001``), lists joined by ``,``."""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        if math.isfinite(v) and v == int(v) and abs(v) < 1e15:
            return str(int(v))
        return repr(v)
    if isinstance(v, (list, tuple)):
        return ",".join(format_value(x) for x in v)
    return str(v)


def short_names(paths) -> dict:
    """Each grid path by its last component, or by the full path where two last components clash."""
    paths = list(paths)
    last = [p.split(".")[-1] for p in paths]
    return {p: (s if last.count(s) == 1 else p) for p, s in zip(paths, last)}


def setting_name(params) -> str:
    if not params:
        return "default"
    names = short_names([k for k, _ in params])
    text = "_".join(f"{names[k]}={format_value(v)}" for k, v in params)
    return re.sub(r"[^A-Za-z0-9_.,=+-]", "-", text)


def hashed_config(cfg) -> dict:
    """A cell's resolved recipe config as its hash reads it: ``config_to_dict(cfg)`` without each field that
    the recipe config lists in ``fields_added`` (a field added after studies were recorded) while it holds the
    value listed there (the value those studies ran with), so their cells keep their hashes; any other value
    of the field is hashed, and changes the hash (docs/architecture.md#save-and-load-format). Only the recipe
    config's own list is read: the fields nested model configs list were in cell hashes already (dropping them
    would change those hashes)."""
    from ..config import config_to_dict

    out = config_to_dict(cfg)
    for key, before in getattr(type(cfg), "fields_added", {}).items():
        if key in out and out[key] == before:
            del out[key]
    return out


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _where(src: str, key: str) -> str:
    return f"{src}: {key}"


def _mapping(v, where: str) -> dict:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise StudyError(f"{where} must be a mapping (key: value), got {type(v).__name__}")
    return v


def _unknown_keys(d: dict, known, where: str) -> None:
    for k in d:
        if k not in known:
            close = difflib.get_close_matches(str(k), list(known), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise StudyError(f"{where}: unknown key {k!r}{hint} (known: {', '.join(known)})")


def _label(v, where: str) -> str:
    if not isinstance(v, str) or not _LABEL.match(v):
        raise StudyError(f"{where}: {v!r} is not a usable label (letters, digits, '_', '.', '+', '-'; "
                         "it names folders)")
    return v


_SEED, _STEPS = "train.seed", "train.steps"


def _norm(path: str) -> str:
    """A dotted config path as apply_overrides reads it ('-' and '_' are the same)."""
    return path.replace("-", "_")


def _overrides(v, where: str) -> dict:
    d = _mapping(v, where)
    for k in d:
        if not isinstance(k, str) or not k:
            raise StudyError(f"{where}: override paths are dotted config fields like train.lr, got {k!r}")
        if _norm(k) == _SEED:
            raise StudyError(f"{where}: {k} is set by seeds: in every cell (the last layer), so this value would be "
                             "ignored; list the seeds under seeds:")
    return dict(d)


def _parse_eval(v, base: dict, where: str) -> EvalSpec:
    from ..metrics.suite import ARRAY_METRICS

    d = _mapping(v, where)
    _unknown_keys(d, list(EVAL_DEFAULTS), where)
    merged = {**EVAL_DEFAULTS, **base, **d}  # base: a parent EvalSpec.to_dict() (may omit calibrate)
    metrics = merged["metrics"]
    if isinstance(metrics, str):
        metrics = [m.strip() for m in metrics.split(",") if m.strip()]
    if not isinstance(metrics, (list, tuple)) or not all(isinstance(m, str) for m in metrics):
        raise StudyError(f"{where}.metrics must be a list of metric names, got {metrics!r}")
    bad = [m for m in metrics if m not in ARRAY_METRICS]
    if bad:
        raise StudyError(f"{where}.metrics: unknown {bad}; choose from {list(ARRAY_METRICS)}")
    for key in ("num_train", "num_test", "batch_size", "seed", "calibrate_images"):
        val = merged[key]
        if isinstance(val, bool) or not isinstance(val, int) or val < (0 if key == "seed" else 1):
            raise StudyError(f"{where}.{key} must be an integer >= {0 if key == 'seed' else 1}, got {val!r}")
    cal = merged["calibrate"]
    if cal is None:
        cal = merged["calibrate"] = ""
    if not isinstance(cal, str) or (cal and not _IDENT.match(cal)):
        raise StudyError(f"{where}.calibrate must be the name of a model method (e.g. fit_code_pca) or empty, "
                         f"got {cal!r}")
    if "calibrate_images" in d and not cal:
        raise StudyError(f"{where}.calibrate_images is set but calibrate is not: name the model method that reads "
                         "the images (e.g. calibrate: fit_code_pca)")
    from ..data.base import ITEM_FORMATS
    from ..nn.pretrained import WEIGHTS_CHOICES  # the verbs' --weights choices

    own = {"item_format": ITEM_FORMATS, "weights": WEIGHTS_CHOICES}
    for key, choices in _EVAL_CHOICES.items():
        choices = own[key] if choices is None else choices
        if merged[key] not in choices:
            raise StudyError(f"{where}.{key} must be one of {list(choices)}, got {merged[key]!r}")
    return EvalSpec(**{**merged, "metrics": tuple(metrics)})


def _dataset_field(cfg) -> str | None:
    """The dotted path that chooses a recipe's dataset by name: ``dataset`` or ``data.dataset``."""
    if isinstance(getattr(cfg, "dataset", None), str):
        return "dataset"
    data = getattr(cfg, "data", None)
    if isinstance(getattr(data, "dataset", None), str):
        return "data.dataset"
    return None


def _recipe_dataset(cfg) -> str:
    from ..recipes.runinfo import data_settings

    name = data_settings(cfg).get("dataset")
    return str(name) if name else "data"


def parse_study(raw, source: str = "<study>") -> Study:
    """Check a study mapping (as read from YAML) and expand its cells; see the module docstring."""
    from ..config import apply_overrides
    from ..recipes import get_recipe
    from ..train import TrainConfig

    if not isinstance(raw, dict):
        raise StudyError(f"{source}: a study file is a YAML mapping (study:, methods:, seeds:, ...), "
                         f"got {type(raw).__name__}")
    _unknown_keys(raw, _TOP_KEYS, source)
    stem = Path(source).stem
    name = raw.get("study") or (stem if _LABEL.match(stem) else "study")
    _label(name, _where(source, "study"))
    seeds = raw.get("seeds", [0])
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        # a bare number reads as "this many seeds" as easily as "this seed"; it ran the one seed without a word
        many = f", or seeds: {list(range(seeds))} for {seeds} seeds" if seeds >= 2 else ""
        raise StudyError(f"{source}: seeds is a list of seeds: write seeds: [{seeds}] for seed {seeds} alone{many}")
    if (not isinstance(seeds, list) or not seeds or
            not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)):
        raise StudyError(f"{source}: seeds must be a non-empty list of integers >= 0, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise StudyError(f"{source}: seeds {seeds} repeat a seed")
    steps = raw.get("steps")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
        raise StudyError(f"{source}: steps must be an integer >= 1 (training steps of every cell), got {steps!r}")
    common = _overrides(raw.get("overrides"), _where(source, "overrides"))
    report = _mapping(raw.get("report"), _where(source, "report"))
    _unknown_keys(report, ["metrics"], _where(source, "report"))
    shown = report.get("metrics")
    if shown is not None and (not isinstance(shown, list) or not all(isinstance(x, str) for x in shown) or not shown):
        raise StudyError(f"{source}: report.metrics must be a non-empty list of metric names (scores such as "
                         f"mig, dci_disentanglement, or train.<key> from the training log), got {shown!r}")
    base_eval = _parse_eval(raw.get("eval"), dict(EVAL_DEFAULTS), _where(source, "eval")).to_dict()

    methods_raw = raw.get("methods")
    if not isinstance(methods_raw, dict) or not methods_raw:
        raise StudyError(f"{source}: methods must be a mapping of labels to {{recipe: NAME, grid: ...}}, "
                         f"got {methods_raw!r}")
    methods = []
    for label, m in methods_raw.items():
        where = _where(source, f"methods.{label}")
        _label(label, where)
        if isinstance(m, str):
            m = {"recipe": m}
        m = _mapping(m, where)
        _unknown_keys(m, _METHOD_KEYS, where)
        recipe = m.get("recipe", label)
        if not isinstance(recipe, str):
            raise StudyError(f"{where}.recipe must be a recipe name, got {recipe!r}")
        try:
            get_recipe(recipe)
        except ValueError as exc:
            raise StudyError(f"{where}.recipe: {exc}") from None
        grid = _mapping(m.get("grid"), f"{where}.grid")
        normed: dict = {}
        for path in grid:
            if not isinstance(path, str) or not path:
                raise StudyError(f"{where}.grid: grid paths are dotted config fields like model.beta, got {path!r}")
            norm = _norm(path)
            if norm in normed:
                raise StudyError(f"{where}.grid: {normed[norm]!r} and {path!r} name the same field; the second "
                                 "would overwrite the first in every cell")
            normed[norm] = path
            later = _SEED if norm == _SEED else (_STEPS if norm == _STEPS and steps is not None else None)
            if later is not None:
                by = "seeds:" if later == _SEED else "steps:"
                raise StudyError(f"{where}.grid.{path}: {by} sets {later} of every cell after the grid point, so "
                                 f"this axis would be overwritten (identical runs in differently named folders); "
                                 + ("list the seeds under seeds:" if later == _SEED else "drop steps: to grid over "
                                    "train.steps"))
        for path, values in grid.items():
            if not isinstance(values, list) or not values:
                raise StudyError(f"{where}.grid.{path} must be a non-empty list of values, got {values!r}")
            if len({format_value(v) for v in values}) != len(values):
                raise StudyError(f"{where}.grid.{path}: {values} repeats a value (as written in folder names)")
        methods.append(MethodSpec(label, recipe, _overrides(m.get("overrides"), f"{where}.overrides"),
                                  dict(grid), _parse_eval(m.get("eval"), base_eval, f"{where}.eval")))

    datasets_raw = raw.get("datasets")
    datasets: list[DatasetSpec] = []
    if datasets_raw is not None:
        if isinstance(datasets_raw, list):
            for d in datasets_raw:
                datasets.append(DatasetSpec(_label(d, _where(source, "datasets")), {}, by_name=d))
            dup = next((d for k, d in enumerate(datasets_raw) if d in datasets_raw[:k]), None)
            if dup is not None:
                raise StudyError(f"{source}: datasets lists {dup!r} twice")
        elif isinstance(datasets_raw, dict):
            for label, ov in datasets_raw.items():
                datasets.append(DatasetSpec(_label(label, _where(source, "datasets")),
                                            _overrides(ov, _where(source, f"datasets.{label}"))))
        else:
            raise StudyError(f"{source}: datasets must be a list of names or a mapping of labels to overrides")
        if not datasets:
            raise StudyError(f"{source}: datasets is empty; leave it out to use each recipe's own dataset")

    cells = []
    for m in methods:
        recipe = get_recipe(m.recipe)
        default_cfg = recipe.make_config()
        if not isinstance(getattr(default_cfg, "train", None), TrainConfig):
            raise StudyError(f"{source}: methods.{m.label}: recipe {m.recipe!r} has no 'train' field of type "
                             f"TrainConfig")
        _check_calibration(m, default_cfg, _where(source, f"methods.{m.label}"))
        if datasets:
            ds_list = datasets
        else:  # the recipe's own dataset, as the method's overrides leave it
            own = _resolve(default_cfg, [("overrides", common), (f"methods.{m.label}.overrides", m.overrides)],
                           source, apply_overrides)
            ds_list = [DatasetSpec(_recipe_dataset(own), {})]
        for ds in ds_list:
            ds_over = dict(ds.overrides)
            if ds.by_name is not None:
                field = _dataset_field(default_cfg)
                if field is None:
                    raise StudyError(f"{source}: datasets: recipe {m.recipe!r} (method {m.label}) chooses no dataset "
                                     f"by name (no 'dataset' or 'data.dataset' field); give the dataset as a mapping "
                                     f"of overrides instead, e.g. datasets: {{{ds.label}: {{data.image_size: 16}}}}")
                ds_over = {field: ds.by_name}
            points = list(itertools.product(*m.grid.values())) if m.grid else [()]
            for point in points:
                written = tuple(zip(m.grid.keys(), point))
                for seed in seeds:
                    layers = [("overrides", common), (f"methods.{m.label}.overrides", m.overrides),
                              (f"datasets.{ds.label}", ds_over), (f"methods.{m.label}.grid", dict(written))]
                    if steps is not None:
                        layers.append(("steps", {"train.steps": steps}))
                    layers.append(("seeds", {"train.seed": seed}))
                    cfg = _resolve(default_cfg, layers, source, apply_overrides)
                    _check_dataset_name(cfg, _where(source, f"datasets.{ds.label}" if ds.by_name or ds.overrides
                                                    else f"methods.{m.label}"))
                    _check_ema_weights(m, cfg, _where(source, f"methods.{m.label}"))
                    params = tuple((k, _used_value(cfg, k, v)) for k, v in written)
                    flat = tuple((k, v) for _, layer in layers for k, v in layer.items())
                    h = _hash({"recipe": m.recipe, "config": hashed_config(cfg), "eval": m.eval.to_dict()})
                    cells.append(Cell(len(cells), m.label, m.recipe, ds.label, params, seed, flat, cfg, m.eval, h))
    folders = [c.folder for c in cells]
    dup = sorted({f for f in folders if folders.count(f) > 1})
    if dup:
        raise StudyError(f"{source}: two cells share the folder {dup[0]} (two grid values print the same); "
                         "make the values distinct")
    spec = {"study": name, "seeds": list(seeds), "steps": steps, "overrides": common, "report": report,
            "datasets": [{"label": d.label, "overrides": d.overrides, "by_name": d.by_name} for d in datasets],
            "methods": [{"label": m.label, "recipe": m.recipe, "overrides": m.overrides, "grid": m.grid,
                         "eval": m.eval.to_dict()} for m in methods]}
    study_hash = _hash([[c.folder, c.hash] for c in cells])
    return Study(name, source, tuple(methods), tuple(datasets), tuple(seeds), tuple(cells), spec, study_hash)


def _check_dataset_name(cfg, where: str) -> None:
    """The cell's dataset name is one :func:`diffrep.data.load` knows (or a recipe-built one: the Shapes3D
    sub-grid, the toy shapes), checked before anything trains: the recipes' ``dataset`` fields take any
    string, and a misspelled name (``datasets: [dsprite]``) failed only when the cell built its data, after
    the study folder was written, once per cell."""
    from ..data import check_name
    from ..recipes.runinfo import SUBGRID, data_settings

    name = data_settings(cfg).get("dataset")
    if name is not None:
        try:
            check_name(name, extra=(SUBGRID, "toy_shapes"))
        except ValueError as exc:
            raise StudyError(f"{where}: {str(exc).removeprefix('name: ')}") from None


def _check_ema_weights(m: "MethodSpec", cfg, where: str) -> None:
    """``eval.weights: ema`` on a cell that keeps no EMA copy (``train.ema_decay = 0``, one trainer run) failed at
    the evaluation, after the cell trained, and changing the setting then changed the cell's hash: a second
    training. A multi-phase recipe's copy is its last phase's, whose settings the runner does not read here."""
    if not m.eval.metrics or m.eval.weights != "ema" or callable(getattr(cfg, "train_phases", None)):
        return
    if getattr(cfg.train, "ema_decay", None) == 0:
        raise StudyError(f"{where}: eval.weights is ema, but train.ema_decay is 0: training keeps no EMA copy to "
                         "evaluate; use eval.weights auto or model, or set train.ema_decay > 0")


def _model_class(cfg):
    """The model class a recipe's ``model`` section configures: the one loadable class
    (:func:`diffrep.nn.pretrained.model_registry`) whose ``config_class`` it is; None when there is no such
    section or no single class (two classes may share a config: then the runner's own check, after training, is
    the only one)."""
    from ..nn.pretrained import model_registry

    mcfg = getattr(cfg, "model", None)
    if mcfg is None or not dataclasses.is_dataclass(mcfg):
        return None
    found = {c for c in model_registry().values() if c.config_class is type(mcfg)}
    return found.pop() if len(found) == 1 else None


def _check_calibration(m: "MethodSpec", cfg, where: str) -> None:
    """Before anything trains: ``eval.calibrate`` names a method of the model, and a model whose ``encode``
    needs a calibration first (its class's ``encode_calibration``, DisDiff's ``fit_code_pca``) has one. Both
    failed only at the evaluation, after the cell trained; and adding the calibration then changes the cell's
    hash, so the cell trains again."""
    cls = _model_class(cfg)
    if cls is None or not m.eval.metrics:
        return
    if m.eval.calibrate and not callable(getattr(cls, m.eval.calibrate, None)):
        raise StudyError(f"{where}.eval.calibrate names {m.eval.calibrate}(), which {cls.__name__} does not have")
    need = getattr(cls, "encode_calibration", "")
    if need and not m.eval.calibrate:
        raise StudyError(f"{where}: {cls.__name__}.encode needs {need}() first; add eval: {{calibrate: {need}}} "
                         f"(docs/study.md, \"Calibration\")")


def _used_value(cfg, path: str, written):
    """The grid value ``written`` at ``path`` as the cell's config holds it, when that is a number, a string
    or a sequence of them: folder names and tables then show the value the cell trains with, however the
    file wrote it (``"1e-3"`` quoted, or ``1`` for a float field: 0.001, 1.0), and two spellings of one
    value share one folder (refused as a repeat) instead of training the same config twice."""
    obj = cfg
    for part in _norm(path).split("."):
        if not hasattr(obj, part):
            return written
        obj = getattr(obj, part)
    scalar = (bool, int, float, str)
    if isinstance(obj, scalar) or (isinstance(obj, (list, tuple)) and all(isinstance(x, scalar) for x in obj)):
        return list(obj) if isinstance(obj, tuple) else obj
    return written


def _resolve(cfg, layers, source: str, apply_overrides):
    """All layers' overrides applied in order in one :func:`~diffrep.config.apply_overrides` call (so
    the cross-field checks see the final values); an error names the layer that set the field."""
    from ..config import ConfigError

    items = [(k, v) for _, layer in layers for k, v in layer.items()]
    try:
        return apply_overrides(cfg, items)
    except (ConfigError, TypeError, ValueError) as exc:
        norm = _norm(getattr(exc, "field", "") or "")
        setters = [where for where, layer in layers
                   if any(_norm(k) == norm or norm.startswith(_norm(k) + ".") or _norm(k).startswith(norm + ".")
                          for k in layer)]
        where = setters[-1] if setters else ", ".join(w for w, layer in layers if layer) or "recipe defaults"
        raise StudyError(f"{source}: {where}: {exc}") from None


def load_study(path: str | os.PathLike) -> Study:
    """Read the study file ``path`` (YAML) and expand it (:func:`parse_study`). The file is read as the
    config presets are (:func:`diffrep.config.load_yaml`): floats as YAML 1.2 writes them (``1e-3`` is
    a number, where YAML 1.1 and ``yaml.safe_load`` read a string), a key given twice is an error."""
    import yaml

    from ..config import load_yaml

    p = _checks.path(path, "path")
    if p.is_dir():  # a study folder given to `run` (its argument is the file): say which verb reads a folder
        made = (p / "study.yaml").is_file() and (p / "study.json").is_file()
        raise StudyError(f"{p} is a folder; 'diffrep study run' reads a study file (YAML)"
                         + (f": this study folder's is {p / 'study.yaml'}; 'diffrep study report {p}' reports it"
                            if made else ""))
    if not p.is_file():
        raise StudyError(f"study file not found: {p}")
    try:
        raw = load_yaml(p)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise StudyError(f"{p}: not valid YAML{where}: {problem}") from None
    except UnicodeDecodeError as exc:
        raise StudyError(f"{p}: not a text file ({exc})") from None
    except ValueError as exc:  # load_yaml: not a mapping at the top
        raise StudyError(f"{p}: a study file is a YAML mapping (study:, methods:, seeds:, ...); {exc}") from None
    return parse_study(raw, str(p))
