"""Input sweep of the training, recipe and study surface (docs/architecture.md#inputs): the Trainer constructor
and ``train``, EMA, the schedule, checkpoints, the batch sampler, the metric log, run folders, the recipe registry
(a recipe's ``build`` and its config overrides) and the study loader, each called once with valid arguments and
then with one argument at a time replaced by a bad value.

A bad call passes when it raises ValueError/TypeError (ConfigError, StudyError, RunFolderError are ValueErrors)
whose message names the argument; it fails on any other exception and on a bad value silently accepted.
"""

from __future__ import annotations

import math
import re

import pytest
import torch

from diffrep import train as T
from diffrep.recipes import get_recipe, list_recipes, register_recipe
from diffrep.study import StudyError, aggregate, load_study, parse_study, partition, shard_from_env

from helpers import TinyLinear

NAN = float("nan")
MISSING = "/nonexistent/diffrep-sweep"


@pytest.fixture(autouse=True)
def _registry_restored(monkeypatch):
    """The recipes these tests register ('sweep/same', 'sweep/tiny' and the sweep's other names) go into a copy
    of the registry, dropped after each test: they stayed registered for every later test of the same worker
    (a recipe listing, 'diffrep train --list' and the every-recipe checks saw them)."""
    from diffrep.recipes import registry

    original = registry._REGISTRY
    before = dict(original)
    monkeypatch.setattr(registry, "_REGISTRY", dict(original))  # register_recipe reads the module's name
    yield
    assert original == before, "a test changed the real recipe registry"


class _Pairs(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return (torch.full((2,), float(i)),)


def _cfg(**kw):
    return T.TrainConfig(**{**dict(steps=1, batch_size=2, device="cpu", log_every=1, ckpt_every=0, sample_every=0,
                                   eval_every=0, ema_decay=0.5), **kw})


RAISE, EITHER = "raise", "either"
BAD = {
    "count": [("none", None), ("str", "2"), ("float", 2.5), ("bool", True), ("zero", 0), ("negative", -1)],
    "count0": [("none", None), ("str", "2"), ("float", 2.5), ("bool", True), ("negative", -1)],  # >= 0
    "step": [("none", None), ("str", "1"), ("float", 1.5), ("negative", -1)],
    "flag": [("none", None), ("str", "no"), ("int", 2)],
    "unit": [("none", None), ("str", "x"), ("nan", NAN), ("negative", -0.5), ("one", 1.0), ("inf", math.inf)],
    "module": [("none", None), ("str", "x"), ("dict", {})],
    "path": [("none", None), ("int", 3)],
    "missing_path": [("missing", "/nonexistent/diffrep-sweep")],  # MISSING
    "name": [("none", None), ("int", 3), ("unknown", "no-such/recipe")],
    "config": [("none", None), ("str", "x"), ("dict", {}), ("int", 3)],
    "callable": [("none", None), ("str", "x"), ("int", 3)],
    "range": [("none", None), ("str", "ab"), ("reversed", (1.0, -1.0)), ("nan", (NAN, 1.0)), ("three", (0.0, 1.0, 2.0))],
    "opt_str": [("int", 3), ("list", ["a"])],
    "metrics_dict": [("none", None), ("list", [1.0]), ("str", "x")],
    "rows": [("none", None), ("str", "x"), ("dict", {"a": 1})],
    "names": [("none", None), ("str", "mig"), ("int", 3)],
    "study": [("none", None), ("str", "x"), ("list", [1]), ("empty", {})],
}

SURFACE = []


def case(name, fn, args, kinds, names=None, accepts=()):
    """``fn(tmp_path)`` the callable, ``args(tmp_path)`` its valid keyword arguments, ``kinds`` the kind of each
    argument swept, ``names`` other words a message may use, ``accepts`` the "argument-label" cases the docs accept."""
    SURFACE.append((name, fn, args, kinds, names or {}, set(accepts)))


# -- TrainConfig, Trainer, EMA, schedules ------------------------------------------------------------
case("TrainConfig", lambda p: T.TrainConfig, lambda p: dict(steps=2, batch_size=2, lr=1e-3, ema_decay=0.9),
     dict(steps="count", batch_size="count", lr="unit", ema_decay="unit"),
     accepts=("lr-one",))  # lr = 1 is a (large) learning rate, not a probability
case("Trainer", lambda p: T.Trainer,
     lambda p: dict(model=TinyLinear(), dataset=_Pairs(), config=_cfg(), run_dir=p / "run", collate_fn=None,
                    callbacks=[], sample_value_range=(-1.0, 1.0), name="x"),
     dict(model="module", dataset="config", config="config", run_dir="path", collate_fn="opt_str",
          callbacks="opt_str", sample_value_range="range", name="opt_str"))
case("Trainer.train", lambda p: T.Trainer(TinyLinear(), _Pairs(), _cfg(), p / "run").train,
     lambda p: dict(resume=None, overwrite=False, profile=False, resume_inexact=False),
     dict(resume="opt_str", overwrite="flag", profile="flag", resume_inexact="flag"), accepts=("overwrite-none",
                                                                                            "profile-none",
                                                                                            "resume_inexact-none"))
case("EMA", lambda p: T.EMA, lambda p: dict(model=TinyLinear(), decay=0.9, warmup=True, update_after_step=0),
     dict(model="module", decay="unit", warmup="flag", update_after_step="count0"))
case("EMA.update", lambda p: T.EMA(TinyLinear(), 0.9).update, lambda p: dict(model=TinyLinear(), step=1),
     dict(model="module", step="step"))
case("EMA.copy_to", lambda p: T.EMA(TinyLinear(), 0.9).copy_to, lambda p: dict(model=TinyLinear()), dict(model="module"))
case("EMA.load_state_dict", lambda p: T.EMA(TinyLinear(), 0.9).load_state_dict,
     lambda p: dict(state=T.EMA(TinyLinear(), 0.9).state_dict()), dict(state="config"))
case("lr_at", lambda p: T.lr_at, lambda p: dict(cfg=_cfg(warmup_steps=2), step=1), dict(cfg="config", step="step"))
case("seed_everything", lambda p: T.seed_everything, lambda p: dict(seed=0, rank=0, deterministic=False),
     dict(seed="count0", rank="count0", deterministic="flag"))
case("epoch_permutation", lambda p: T.epoch_permutation, lambda p: dict(n=5, seed=0, epoch=0),
     dict(n="count", seed="count0", epoch="count0"), accepts=("n-zero",))  # the empty permutation
case("EpochBatchSampler", lambda p: T.EpochBatchSampler,
     lambda p: dict(n=6, batch_size=2, seed=0, shuffle=True, drop_last=False, epoch=0, start=0, rank=0, world_size=1),
     dict(n="count", batch_size="count", seed="count0", shuffle="flag", drop_last="flag", epoch="count0",
          start="count0", rank="count0", world_size="count"),
     names={"n": ["examples"], "start": ["start_batch"]})  # "dataset has 0 examples"; start is the start batch

# -- checkpoints, logs, run folders ----------------------------------------------------------------
case("save_checkpoint", lambda p: T.save_checkpoint, lambda p: dict(root=p / "ck", step=1, model=TinyLinear(), keep=2),
     dict(root="path", step="step", model="module", keep="count"))
case("load_checkpoint", lambda p: T.load_checkpoint,
     lambda p: dict(path=T.save_checkpoint(p / "ck", 1, TinyLinear()), model=TinyLinear()),
     dict(path=("path", "missing_path"), model="module"))
case("list_checkpoints", lambda p: T.list_checkpoints, lambda p: dict(root=p), dict(root="path"))
case("resolve_checkpoint", lambda p: T.resolve_checkpoint,
     lambda p: dict(spec=str(T.save_checkpoint(p / "ck", 1, TinyLinear())), root=p / "ck"),
     dict(spec=("path", "missing_path"), root="path"))
case("verify_checkpoint", lambda p: T.verify_checkpoint,
     lambda p: dict(path=T.save_checkpoint(p / "ck", 1, TinyLinear())), dict(path=("path", "missing_path")))
case("MetricLogger", lambda p: T.MetricLogger, lambda p: dict(run_dir=p, tensorboard=False), dict(run_dir="path"))
case("MetricLogger.log", lambda p: T.MetricLogger(p).log, lambda p: dict(step=1, metrics={"loss": 0.5}),
     dict(step="step", metrics="metrics_dict"))
case("read_metrics", lambda p: T.read_metrics, lambda p: dict(path=_logged(p)), dict(path=("path", "missing_path")))
case("check_run_dir", lambda p: T.check_run_dir, lambda p: dict(run_dir=p / "r", resume=None, overwrite=False),
     dict(run_dir="path", overwrite="flag"), accepts=("overwrite-none",))
case("run_contents", lambda p: T.run_contents, lambda p: dict(run_dir=p), dict(run_dir="path"))
case("looks_like_run", lambda p: T.looks_like_run, lambda p: dict(run_dir=p), dict(run_dir="path"))
case("clear_run", lambda p: T.clear_run, lambda p: dict(run_dir=p / "r"), dict(run_dir="path"))


def _logged(p):
    log = T.MetricLogger(p / "log")
    log.log(1, {"loss": 0.5})
    log.close()
    return p / "log" / "metrics.jsonl"


# -- recipes ---------------------------------------------------------------------------------------
case("get_recipe", lambda p: get_recipe, lambda p: dict(name="demo/toy-ddpm"), dict(name="name"),
     names={"name": ["recipe"]})  # "unknown recipe 'no-such/recipe'"
case("register_recipe", lambda p: register_recipe,
     lambda p: dict(name="sweep/tiny", make_config=_cfg, build=lambda c: (TinyLinear(), _Pairs()), overwrite=True),
     dict(name="name", make_config="callable", build="callable"), accepts=("name-unknown",))

# -- study -------------------------------------------------------------------------------------------
case("partition", lambda p: partition, lambda p: dict(n_cells=5, rank=0, world=2),
     dict(n_cells="count0", rank="count0", world="count"))
case("shard_from_env", lambda p: shard_from_env, lambda p: dict(rank=0, world=1, env={}),
     dict(rank="count0", world="count"), accepts=("rank-none", "world-none"))  # None: read the environment
_ROW = dict(method="a", dataset="d", setting="s", params={}, seed=0, values={"mig": 0.5})
case("aggregate", lambda p: aggregate, lambda p: dict(rows=[_ROW], metrics=["mig"]),
     dict(rows="rows", metrics="names"))


def cases():
    out = []
    for name, fn, args, kinds, names, accepts in SURFACE:
        for arg, kind in kinds.items():
            for k in (kind,) if isinstance(kind, str) else kind:
                for label, value in BAD[k]:
                    if f"{arg}-{label}" not in accepts:
                        out.append(pytest.param(name, fn, args, arg, value, names, id=f"{name}-{arg}-{label}"))
    return out


@pytest.mark.parametrize("name, fn, args, arg, value, names", cases())
def test_train_input_sweep(tmp_path, name, fn, args, arg, value, names):
    kw = args(tmp_path)
    call = fn(tmp_path)
    kw[arg] = value
    missing = isinstance(value, str) and value == MISSING
    try:
        call(**kw)
    except (ValueError, TypeError, *((FileNotFoundError,) if missing else ())) as err:
        # a missing file is a FileNotFoundError (or a ValueError) that names the path it looked for
        wanted = [MISSING] if missing else [arg] + list(names.get(arg, ()))
        assert any(re.search(rf"(?<![\w.]){re.escape(w)}(?![\w])", str(err)) for w in wanted), \
            f"{type(err).__name__} does not name {wanted}: {err}"
        return
    pytest.fail(f"{name}: {arg} = {value!r} accepted silently")


# -- recipes: build with something other than the recipe's config; bad overrides of every recipe's config ----
@pytest.mark.parametrize("bad", [None, "x", 3, {}], ids=["none", "str", "int", "dict"])
def test_every_recipe_build_refuses_what_is_not_its_config(bad):
    for recipe in list_recipes():
        with pytest.raises(TypeError, match=rf"^recipe '{re.escape(recipe.name)}': build\(config\) needs the recipe's config"):
            recipe.build(bad)


@pytest.mark.parametrize("path, value, field", [("train.steps", "x", "train.steps"), ("train.lr", "nan", "train.lr"),
                                                ("train.batch_size", 0, "train.batch_size"),
                                                ("train.lr", None, "train.lr"), ("no.such_field", 1, "no")],
                         ids=["steps-str", "lr-nan", "batch-zero", "lr-none", "unknown"])
def test_every_recipe_config_refuses_bad_overrides_by_field(path, value, field):
    from diffrep.config import ConfigError, apply_overrides

    for recipe in list_recipes():
        with pytest.raises(ConfigError, match=re.escape(field)):
            apply_overrides(recipe.make_config(), {path: value})


def test_register_recipe_keeps_one_recipe_per_builder():
    # the checked build wraps the builder; registering the same pair again is still a no-op, not a conflict
    def build(c):
        return TinyLinear(), _Pairs()

    first = register_recipe("sweep/same", _cfg_recipe, build)
    assert register_recipe("sweep/same", _cfg_recipe, build) is first
    with pytest.raises(ValueError, match="already registered"):
        register_recipe("sweep/same", _cfg_recipe, lambda c: build(c))
    model, data = get_recipe("sweep/same").build(_cfg_recipe())
    assert isinstance(model, TinyLinear) and len(data) == 4


def _cfg_recipe():
    import dataclasses

    @dataclasses.dataclass
    class _RecipeConfig:
        train: T.TrainConfig = dataclasses.field(default_factory=_cfg)

    return _RecipeConfig()


# -- study files that cannot be used ------------------------------------------------------------------
_STUDY = {"study": "s", "seeds": [0], "steps": 1, "methods": {"m": {"recipe": "demo/toy-ddpm"}}, "eval": {"metrics": []}}
_BAD_STUDIES = {
    "empty": (b"", "methods must be a mapping"),  # an empty file reads as an empty mapping
    "not_yaml": (b"study: [unclosed", "not valid YAML"),
    "a_list": (b"- 1\n- 2\n", "a study file is a YAML mapping"),
    "binary": (b"\xff\xfe\x00\x81", "not a text file"),
    "unknown_key": ({"bogus": 1}, "unknown key 'bogus'"),
    "seeds_str": ({"seeds": "abc"}, "seeds must be a non-empty list of integers"),
    "seeds_negative": ({"seeds": [-1]}, "seeds must be a non-empty list of integers"),
    "seeds_bool": ({"seeds": [True]}, "seeds must be a non-empty list of integers"),
    "steps_zero": ({"steps": 0}, "steps must be an integer >= 1"),
    "steps_float": ({"steps": 1.5}, "steps must be an integer >= 1"),
    "methods_list": ({"methods": []}, "methods must be a mapping"),
    "recipe_unknown": ({"methods": {"m": {"recipe": "nope/x"}}}, "methods.m.recipe: unknown recipe 'nope/x'"),
    "recipe_int": ({"methods": {"m": {"recipe": 3}}}, "methods.m.recipe must be a recipe name"),
    "grid_not_list": ({"methods": {"m": {"recipe": "demo/toy-ddpm", "grid": {"train.lr": "x"}}}},
                      "methods.m.grid.train.lr must be a non-empty list"),
    "grid_unknown_field": ({"methods": {"m": {"recipe": "demo/toy-ddpm", "grid": {"nope.field": [1]}}}},
                           "unknown field"),
    "override_out_of_range": ({"methods": {"m": {"recipe": "demo/toy-ddpm", "overrides": {"train.lr": -1}}}},
                              "'train.lr': must be > 0"),
    "eval_unknown_metric": ({"eval": {"metrics": ["nope"]}}, "eval.metrics: unknown"),
    "eval_num_train_zero": ({"eval": {"num_train": 0}}, "eval.num_train must be an integer >= 1"),
}


@pytest.mark.parametrize("label", list(_BAD_STUDIES))
def test_bad_study_files_are_refused_by_file_and_key(tmp_path, label):
    import yaml

    content, message = _BAD_STUDIES[label]
    path = tmp_path / f"{label}.yaml"
    path.write_bytes(content if isinstance(content, bytes) else yaml.safe_dump({**_STUDY, **content}).encode())
    with pytest.raises(StudyError, match=re.escape(str(path)) + ".*" + re.escape(message)):
        load_study(path)


def test_study_loader_refuses_missing_files_and_non_mappings(tmp_path):
    assert len(parse_study(_STUDY).cells) == 1  # the skeleton of the bad files above is a valid study
    with pytest.raises(StudyError, match="study file not found"):
        load_study(tmp_path / "missing.yaml")
    with pytest.raises(StudyError, match="is a folder; 'diffrep study run' reads a study file"):
        load_study(tmp_path)  # a folder
    for raw in (None, 3, "x", [1]):
        with pytest.raises(StudyError, match="a study file is a YAML mapping"):
            parse_study(raw)
    with pytest.raises(TypeError, match="path"):
        load_study(None)
