"""Contract of issue 16 (the house: one-way layers, kernel ops apart from algorithms, docs that ship,
tests that share), checked by calling the public names by the paths the issue and its closing note give.

Deeper checks that already exist are referenced, not repeated: tests/test_layers.py (lint-imports and
no import cycles), tests/methods/test_surface.py (every method against the Protocols),
tests/ops/test_explain.py (explain on every random op), tests/nn/test_gaussian.py (gaussian_kl).
"""

import importlib
import inspect
import io
import contextlib
import os
import re
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path
from typing import Annotated

import numpy as np
import pytest
import torch

import diffrep

ROOT = Path(__file__).resolve().parents[2]
PKG = Path(diffrep.__file__).resolve().parent


def _resolve(module: str, name: str):
    """``module.name``, and whether reading it raised a DeprecationWarning."""
    mod = importlib.import_module(module)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        obj = getattr(mod, name)
    return obj, any(issubclass(w.category, DeprecationWarning) for w in caught)


# ---------------------------------------------------------------- layers, enforced

ISSUE_LAYERS = [  # lowest first, as the issue lists them ("study" joined later, between recipes and cli)
    {"_native", "ops", "config"},
    {"data", "nn", "diffusion", "bfn", "metrics", "cluster", "viz"},
    {"methods"},
    {"train", "analysis"},
    {"recipes"},
    {"cli"},
]


def _importlinter() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def test_pyproject_declares_the_issues_layers_lowest_first():
    cfg = _importlinter()
    assert cfg["root_package"] == "diffrep"
    (layers,) = [c for c in cfg["contracts"] if c["type"] == "layers"]
    assert layers["containers"] == ["diffrep"] and layers["exhaustive"] is True
    rank = {name.strip(): i for i, layer in enumerate(reversed(layers["layers"])) for name in layer.split(":")}
    ranks = [{rank[m] for m in group} for group in ISSUE_LAYERS]
    for group, r in zip(ISSUE_LAYERS, ranks):
        assert len(r) == 1, f"{sorted(group)} must share one layer, got ranks {r}"
    assert [min(r) for r in ranks] == sorted(min(r) for r in ranks) and len({min(r) for r in ranks}) == len(ranks)
    # every top-level package of python/diffrep has a layer (exhaustive, so a new package must be placed)
    packages = {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages <= set(rank), packages - set(rank)


def test_train_is_generic_by_contract():
    (forbidden,) = [c for c in _importlinter()["contracts"] if c["type"] == "forbidden"]
    assert forbidden["source_modules"] == ["diffrep.train"]
    assert {"diffrep.methods", "diffrep.recipes"} <= set(forbidden["forbidden_modules"])


def test_lint_imports_passes():
    pytest.importorskip("importlinter")
    # lint-imports itself (the deep check, plus no import cycles, is tests/test_layers.py)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PKG.parent), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command as c; "
                        "sys.exit(c(args=[], standalone_mode=True))"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and "0 broken" in r.stdout, r.stdout + r.stderr


# ---------------------------------------------------------------- recipes and load_pretrained

@pytest.mark.parametrize("family", ["bfn", "paramrel", "sami", "vq", "demo"])
def test_recipes_has_one_module_per_family_listed_explicitly(family):
    import diffrep.recipes as recipes
    mod = importlib.import_module(f"diffrep.recipes.{family}")
    assert mod in recipes.FAMILIES
    names = {r.name for r in recipes.list_recipes()}
    assert mod.RECIPES and {r.name for r in mod.RECIPES} <= names
    assert all(r.name.startswith(f"{family}/") for r in mod.RECIPES)


def test_recipe_registry_names_and_no_discovery_by_string():
    from diffrep.recipes import Recipe, get_recipe, list_recipes, register_recipe
    assert all(callable(f) for f in (get_recipe, list_recipes, register_recipe)) and isinstance(Recipe, type)
    src = (PKG / "recipes" / "__init__.py").read_text()
    assert "import_module" not in src and "pkgutil" not in src and "__import__" not in src
    assert get_recipe("paramrel/digits").name == "paramrel/digits"


def test_train_list_prints_every_recipe():
    from diffrep.cli import main
    from diffrep.recipes import list_recipes
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["train", "--list"]) == 0
    listed = [line.split()[0] for line in out.getvalue().splitlines() if line.strip()]
    assert listed == sorted(listed) and set(listed) == {r.name for r in list_recipes()}


def test_load_pretrained_uses_the_class_table_without_recipes(tmp_path):
    from diffrep.nn.pretrained import MODEL_CLASSES, model_class
    for name, path in MODEL_CLASSES.items():
        module, _, attr = path.partition(":")
        assert attr == name and module.startswith("diffrep."), (name, path)
    assert model_class("ToyDDPM").__module__ == "diffrep.methods.toy_ddpm"
    from diffrep.methods.toy_ddpm import ToyDDPM, ToyDDPMConfig
    torch.manual_seed(0)
    m = ToyDDPM(ToyDDPMConfig())
    m.save_pretrained(tmp_path / "m")
    # a fresh interpreter: loading must not need (or import) the recipes, train, analysis or cli
    code = ("import sys, torch; from diffrep.nn.pretrained import load_pretrained; "
            f"m = load_pretrained({str(tmp_path / 'm')!r}); "
            "print(type(m).__name__, float(sum(p.double().sum() for p in m.parameters()))); "
            "print(sorted(k for k in sys.modules if k.split('.')[:2] in (['diffrep','recipes'], ['diffrep','train'], "
            "['diffrep','analysis'], ['diffrep','cli'])))")
    env = {**os.environ, "PYTHONPATH": str(PKG.parent), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.strip().splitlines()
    cls, total = first.split()
    assert cls == "ToyDDPM"
    assert float(total) == pytest.approx(float(sum(p.detach().double().sum() for p in m.parameters())), rel=1e-12)
    assert second == "[]"


# ---------------------------------------------------------------- ops: kernel-backed only; bfn/ and cluster/

def test_ops_holds_kernel_backed_modules_with_twins():
    from diffrep.ops import _dispatch
    public = {p.stem for p in (PKG / "ops").glob("*.py") if not p.stem.startswith("_")}
    assert public == set(_dispatch.OP_MODULES)
    twins = {p.stem for p in (PKG / "ops" / "reference").glob("*.py") if not p.stem.startswith("_")}
    assert public - {"bfn_losses", "random"} <= twins and "philox" in twins  # bfn_losses' twin: reference.bfn
    for mod in _dispatch.OP_MODULES:
        importlib.import_module(f"diffrep.ops.{mod}")
    registered = {op.split(".")[0] for op in _dispatch._CHOOSERS}
    assert {"bfn", "guidance", "hddc", "knn", "metrics", "mmd", "random"} <= registered


MOVED_OUT_OF_OPS = [  # (old module, old name, new module, new name): BFN maths with no kernel moved to bfn/
    *[("diffrep.ops.bfn", n, "diffrep.bfn.schedules", n)
      for n in ("gamma", "continuous_precision", "continuous_alpha", "discrete_beta", "discrete_alpha")],
    *[("diffrep.ops.bfn", n, "diffrep.bfn.conversions", n) for n in ("noise_pred_to_data_pred", "output_normal_params")],
    ("diffrep.ops.bfn", "discretized_log_prob", "diffrep.bfn.distributions", "discretised_log_prob"),
    ("diffrep.ops.bfn", "continuous_time_loss", "diffrep.bfn.loss_terms", "continuous_time_loss"),
    ("diffrep.ops.bfn", "continuous_discrete_time_loss", "diffrep.bfn.loss_terms", "continuous_discrete_time_loss"),
    ("diffrep.ops.bfn", "discretized_discrete_time_loss", "diffrep.bfn.loss_terms", "discretised_discrete_time_loss"),
]


@pytest.mark.parametrize("old_mod,old,new_mod,new", MOVED_OUT_OF_OPS)
def test_bfn_maths_without_a_kernel_left_ops(old_mod, old, new_mod, new):
    assert old not in vars(importlib.import_module(old_mod))  # not defined in ops any more
    obj, warned = _resolve(old_mod, old)
    assert warned and obj is getattr(importlib.import_module(new_mod), new)


def test_bfn_schedules_have_the_closed_forms():
    from diffrep.bfn.schedules import continuous_precision, gamma
    t = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64)
    s1 = 0.02
    assert torch.allclose(gamma(t, s1).double(), 1 - s1 ** (2 * t), rtol=1e-12)
    assert torch.allclose(continuous_precision(t, s1).double(), s1 ** (-2 * t), rtol=1e-12)


def test_kernel_output_ops_live_in_bfn_losses_and_reexport_unchanged():
    import diffrep.ops.bfn as ob
    import diffrep.ops.bfn_losses as ol
    for n in ("discretised_probs", "discretised_continuous_time_loss", "discrete_continuous_time_loss"):
        obj, warned = _resolve("diffrep.ops.bfn", n)
        assert obj is getattr(ol, n) and not warned
    assert ob.discretised_probs.__module__ == "diffrep.ops.bfn_losses"


def test_hddc_algorithm_lives_in_cluster_with_thin_reexports():
    import diffrep.cluster as cluster
    import diffrep.cluster.hddc as ch
    for n in ("fit", "HDDCResult", "SPLIT_RULES"):
        obj, warned = _resolve("diffrep.ops.hddc", n)
        assert obj is getattr(ch, n) and getattr(cluster, n) is obj and not warned
    assert ch.fit.__module__ == "diffrep.cluster.hddc"
    # the native E-step / M-step / density ops stay in ops.hddc
    from diffrep.ops.hddc import Engine, params, prepare
    assert isinstance(Engine, type) and callable(params) and callable(prepare)


def test_align_moved_to_dyga_and_warns_from_its_old_homes():
    from diffrep.methods.dyga import align
    assert list(inspect.signature(align).parameters)[:4] == ["mixture", "features", "lam", "tau"]
    for mod in ("diffrep.cluster", "diffrep.ops.hddc"):
        obj, warned = _resolve(mod, "align")
        assert obj is align and warned


def test_dead_hddc_twin_code_is_gone_and_shared_pieces_moved():
    ref = importlib.import_module("diffrep.ops.reference.hddc")
    for n in ("em", "deactivate_small"):
        with pytest.raises(AttributeError):
            getattr(ref, n)
    for n, home in (("kmeans_labels", "kmeans"), ("nearest_centre", "kmeans"), ("bic", "em"),
                    ("n_free_params", "em"), ("MIN_COUNT", "em")):
        obj, warned = _resolve("diffrep.ops.reference.hddc", n)
        assert warned and obj is getattr(importlib.import_module(f"diffrep.cluster.{home}"), n)


# ---------------------------------------------------------------- moved public names keep working

MOVED = [  # (old module, old name, new module, new name, warns)
    *[("diffrep.config", n, "diffrep.recipes", n, True)
      for n in ("Recipe", "get_recipe", "list_recipes", "register_recipe")],
    *[("diffrep.config.recipes", n, "diffrep.recipes", n, True)
      for n in ("Recipe", "get_recipe", "list_recipes", "register_recipe")],
    *[("diffrep.methods.paramrel_recipes", n, "diffrep.recipes.paramrel", n, True)
      for n in ("ParamReLRecipeConfig", "build", "build_dataset", "paramrel_config", "paramrel_compat",
                "COMPAT_PRESETS", "dsprites_cpu", "digits_cpu", "celeba64", "shapes3d64", "cifar10")],
    *[("diffrep.methods.sami_recipes", n, "diffrep.recipes.sami", n, True)
      for n in ("SAMIDataConfig", "SAMIRecipeConfig", "build_dataset", "build", "disks_config", "celeba64_config")],
    *[("diffrep.methods.sami_recipes", n, "diffrep.data.disks", n, True) for n in ("DisksTensorDataset", "disks_geometry")],
    *[("diffrep.train.vq_recipes", n, "diffrep.recipes.vq", n, True) for n in ("VQRecipeConfig", "build", "toy_cpu")],
    ("diffrep.bfn.model", "BFNRecipeConfig", "diffrep.recipes.bfn", "BFNRecipeConfig", True),
    ("diffrep.train.demo", "DemoConfig", "diffrep.recipes.demo", "DemoConfig", True),
    ("diffrep.train.demo", "ToyShapes", "diffrep.data.toy_shapes", "ToyShapes", True),
    ("diffrep.train.demo", "ToyDDPM", "diffrep.methods.toy_ddpm", "ToyDDPM", True),
    ("diffrep.methods.paramrel_data", "Pooled", "diffrep.data.pooled", "Pooled", True),
    ("diffrep.methods.disks_bayes", "disks_bayes_eps_mse", "diffrep.analysis.disks_bayes", "disks_bayes_eps_mse", True),
    *[("diffrep.methods.sami_analyses", n, f"diffrep.analysis.{home}", n, True) for n, home in (
        ("variability", "variability"), ("variability_reduction", "variability"),
        ("posterior_variance_spectrum", "posterior_geometry"), ("perturb_low_variance_axes", "posterior_geometry"),
        ("global_axes", "posterior_geometry"), ("latent_straightness", "representation"),
        ("attribute_metrics", "representation"), ("factor_metrics", "representation"),
        ("guidance_magnitude", "guidance"), ("posterior_mean_monotonicity", "disks_probes"),
        ("disk_centres", "disks_probes"), ("disk_position_transfer", "disks_probes"),
        ("encode_batched", "encoding"), ("fid", "sami_fid"))],
    ("diffrep.methods.sami_analyses", "frechet_distance", "diffrep.metrics.generation",
     "frechet_distance_from_features", True),
    ("diffrep.methods.sami_analyses", "load_feature_extractor", "diffrep.metrics.generation",
     "load_feature_extractor", True),
    # moved within a layer: re-exported, no warning
    *[("diffrep.methods.sami", n, f"diffrep.methods.{home}", n, False) for n, home in (
        ("SAMIConvNet", "sami_nets"), ("SAMIConvNetConfig", "sami_nets"), ("log_posterior", "sami_guidance"),
        ("expected_log_posterior", "sami_guidance"), ("SAMIConfig", "sami_config"))],
    *[("diffrep.train.data", n, "diffrep.data.sampling", n, False)
      for n in ("EpochBatchSampler", "epoch_permutation", "seeded_generator")],
    ("diffrep.train", "EpochBatchSampler", "diffrep.data.sampling", "EpochBatchSampler", False),
    ("diffrep.bfn.model", "batch_images", "diffrep.nn.images", "batch_images", False),
    # one spelling, "discretised": the old names are deprecated aliases
    *[("diffrep.ops.bfn", f"discretized_{n}", "diffrep.ops.bfn", f"discretised_{n}", True)
      for n in ("probs", "continuous_time_loss")],
    *[("diffrep.ops.reference.bfn", f"discretized_{n}", "diffrep.ops.reference.bfn", f"discretised_{n}", True)
      for n in ("probs", "mean", "continuous_time_loss")],
    ("diffrep.ops.reference.bfn", "discretized_log_prob", "diffrep.bfn.distributions", "discretised_log_prob", True),
    *[("diffrep.bfn.distributions", f"Discretized{n}", "diffrep.bfn.distributions", f"Discretised{n}", True)
      for n in ("NormalOutput", "NormalDist")],
    ("diffrep.bfn", "DiscretizedNormalOutput", "diffrep.bfn.distributions", "DiscretisedNormalOutput", True),
    ("diffrep.bfn.loss_terms", "discretized_discrete_time_loss", "diffrep.bfn.loss_terms",
     "discretised_discrete_time_loss", True),
    ("diffrep.metrics.mig", "discretized_mi", "diffrep.metrics.mig", "discretised_mi", True),
]


@pytest.mark.parametrize("old_mod,old,new_mod,new,warns", MOVED, ids=[f"{m[0]}.{m[1]}" for m in MOVED])
def test_every_moved_public_name_still_works(old_mod, old, new_mod, new, warns):
    obj, warned = _resolve(old_mod, old)
    assert obj is getattr(importlib.import_module(new_mod), new)
    assert warned == warns


def test_old_hddc_result_align_method_warns_and_delegates():
    from diffrep.cluster.hddc import HDDCResult
    src = inspect.getsource(HDDCResult.align)
    assert "DeprecationWarning" in src and "diffrep.methods.dyga" in src


# ---------------------------------------------------------------- analysis/ and metrics/generation

def test_frechet_distance_takes_statistics_and_matches_the_closed_form():
    from diffrep.metrics.generation import frechet_distance, frechet_distance_from_features
    assert list(inspect.signature(frechet_distance).parameters) == ["mu1", "sigma1", "mu2", "sigma2"]
    # diagonal covariances commute: d^2 = |mu1 - mu2|^2 + sum(s1 + s2 - 2 sqrt(s1 s2))
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([0.5, 1.0, 1.0])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([2.0, 1.0, 0.25])
    want = ((mu1 - mu2) ** 2).sum() + (s1 + s2 - 2 * np.sqrt(s1 * s2)).sum()
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(want, rel=1e-9)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 3)), rng.normal(1.0, 2.0, size=(150, 3))
    by_hand = frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert frechet_distance_from_features(a, b) == pytest.approx(by_hand, rel=1e-12)


def test_analysis_and_data_hold_what_left_methods():
    for mod in ("disks_bayes", "disks_probes", "variability", "posterior_geometry", "representation", "guidance",
                "encoding", "sami_fid"):
        importlib.import_module(f"diffrep.analysis.{mod}")
    from diffrep.data.disks import DisksTensorDataset
    from diffrep.data.pooled import Pooled
    assert issubclass(DisksTensorDataset, torch.utils.data.Dataset) and isinstance(Pooled, type)
    # methods/ holds models and objectives: no module defining a torch Dataset or an analysis lives there
    for p in (PKG / "methods").rglob("*.py"):
        src = p.read_text()
        assert not re.search(r"^class \w+\((torch\.utils\.data\.)?Dataset\)", src, re.M), p


# ---------------------------------------------------------------- one common method surface

def test_protocols_in_methods_base_and_the_loss_signature():
    from diffrep.methods.base import GenerativeModel, Method, RepresentationModel, TrainableModel
    from diffrep.nn.pretrained import MODEL_CLASSES, model_class
    for proto in (TrainableModel, GenerativeModel, RepresentationModel, Method):
        assert getattr(proto, "_is_protocol", False)
    params = inspect.signature(TrainableModel.loss).parameters
    assert list(params)[:4] == ["self", "batch", "step", "generator"]
    assert params["step"].kind is params["step"].KEYWORD_ONLY and params["generator"].default is None
    # every diffrep model: loss(batch, *, step, generator=None); sample(n, ...) where it samples
    # (the full check against each Protocol is tests/methods/test_surface.py)
    models = [model_class(name) for name in MODEL_CLASSES if hasattr(model_class(name), "loss")]  # not bare nets
    assert {"ParamReL", "SAMI", "BFN"} <= {c.__name__ for c in models}
    for cls in models:
        name = cls.__name__
        p = inspect.signature(cls.loss).parameters
        assert list(p)[1] == "batch" and p["step"].kind is p["step"].KEYWORD_ONLY, name
        assert p["generator"].kind is p["generator"].KEYWORD_ONLY and p["generator"].default is None, name
        if hasattr(cls, "sample"):
            assert list(inspect.signature(cls.sample).parameters)[1] == "n", name
        assert callable(cls.save_pretrained) and callable(cls.from_pretrained), name


def test_loss_returns_a_dict_with_key_loss():
    from diffrep.methods.toy_ddpm import ToyDDPM, ToyDDPMConfig
    torch.manual_seed(0)
    m = ToyDDPM(ToyDDPMConfig())
    u = m.config.unet
    x = torch.rand(2, u.in_channels, u.image_size, u.image_size) * 2 - 1
    out = m.loss(x, step=0, generator=torch.Generator().manual_seed(0))
    assert isinstance(out, dict) and out["loss"].dim() == 0 and out["loss"].requires_grad


class _StepRecorder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(2, 1))
        self.steps = []

    def loss(self, batch, *, step, generator=None):
        self.steps.append(step)
        return {"loss": (batch[0] @ self.w).pow(2).mean()}


def test_the_trainer_always_passes_step(tmp_path):
    from torch.utils.data import TensorDataset
    from diffrep.train import TrainConfig, Trainer
    m = _StepRecorder()
    cfg = TrainConfig(steps=3, batch_size=2, lr=1e-2, ema_decay=0.0, log_every=1, ckpt_every=0, device="cpu", seed=0)
    Trainer(m, TensorDataset(torch.randn(8, 2)), cfg, tmp_path / "run").train()
    assert m.steps == [0, 1, 2]


@pytest.mark.parametrize("kind", ["DDPMSampler", "DDIMSampler"])
def test_samplers_do_not_force_no_grad(kind):
    from diffrep.diffusion import samplers
    from diffrep.diffusion.schedules import NoiseSchedule
    sampler = getattr(samplers, kind)(NoiseSchedule(num_timesteps=10))
    w = torch.tensor(0.1, requires_grad=True)
    x = sampler.sample(lambda x_t, t: w * x_t, (2, 3), num_steps=4 if kind == "DDIMSampler" else None,
                       generator=torch.Generator().manual_seed(0))
    assert x.requires_grad
    x.sum().backward()
    assert w.grad is not None and torch.isfinite(w.grad)
    with torch.no_grad():  # a caller that wants no graph says so
        assert not sampler.sample(lambda x_t, t: w * x_t, (2, 3), num_steps=4 if kind == "DDIMSampler" else None).requires_grad


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_sami_guided_chain_reuses_the_samplers_and_keeps_no_step_buffer(sampler, monkeypatch):
    from diffrep.diffusion import samplers
    from helpers import tiny_sami
    m = tiny_sami()
    assert not any(k.endswith("train_step") for k in m.state_dict())  # the trainer passes step: no buffer
    m.load_state_dict({**m.state_dict(), "train_step": torch.tensor(5)})  # old weights still load
    calls = []
    real = samplers._Sampler.sample

    def spy(self, *a, **k):
        calls.append(type(self).__name__)
        return real(self, *a, **k)

    monkeypatch.setattr(samplers._Sampler, "sample", spy)
    m.sample(1, sampler=sampler, generator=torch.Generator().manual_seed(0))
    assert calls == [{"ddpm": "DDPMSampler", "ddim": "DDIMSampler"}[sampler]]


# ---------------------------------------------------------------- native boundary

FAMILIES = ("bfn", "guidance", "hddc", "knn", "metrics", "mmd", "random")


def test_each_kernel_family_has_one_table_and_its_own_bindings():
    assert {p.name for p in (ROOT / "csrc").iterdir() if p.is_dir()} == {*FAMILIES, "common"}
    for f in FAMILIES:
        ops_h = (ROOT / "csrc" / f / f"{f}_ops.h").read_text()
        assert re.search(rf"#define DIFFREP_{f.upper()}_OPS\(", ops_h), f  # the X-macro declaration table
        assert (ROOT / "csrc" / f / f"{f}_bindings.h").exists(), f
    assert (ROOT / "csrc" / "common" / "ops_table.h").exists()


def test_one_error_enum_one_grid_stride_one_hddc_cost():
    text = {p: p.read_text() for p in (ROOT / "csrc").rglob("*") if p.suffix in (".h", ".cuh", ".cpp", ".cu")}
    enums = [p for p, s in text.items() for _ in re.finditer(r"enum\s+(class\s+)?ErrorFlag\b", s)]
    assert enums == [ROOT / "csrc" / "common" / "errors.h"]
    grid = [p for p, s in text.items() for _ in re.finditer(r"#define\s+GRID_STRIDE\b", s)]
    assert len(grid) == 1 and grid[0].parent.name == "common"
    assert re.search(r"DIFFREP_HD\s+void\s+estep_cost\(", text[ROOT / "csrc" / "hddc" / "hddc_math.h"])
    for backend in ("hddc_cpu.cpp", "hddc_cuda.cu"):
        assert re.search(r"\bestep_cost\s*[<(]", text[ROOT / "csrc" / "hddc" / backend]), backend


def test_native_bindings_are_keyword_only():
    from diffrep import _native
    if not _native.cpu_available():
        pytest.skip("the native CPU module is not built")
    cpu = importlib.import_module("diffrep._cpu")
    fns = [n for n in dir(cpu) if not n.startswith("_") and callable(getattr(cpu, n))]
    keyword = [n for n in fns if not n.endswith("_addr")]
    assert keyword
    for n in keyword:  # (a binding without arguments, cpu_isa_level, has none to pass by position)
        assert (getattr(cpu, n).__doc__ or "").startswith((f"{n}(*, ", f"{n}() -> ")), n
    # the one documented exception (a later issue's per-call overhead work; docs/kernels/bfn.md#performance,
    # csrc/common/bind_ptr.h): the BFN ops' address bindings, generated from the same declaration table,
    # versioned by a leading ABI number and called only by diffrep/ops/_bfn_fast.py
    for n in set(fns) - set(keyword):
        assert n[:-len("_addr")] in keyword and getattr(cpu, n).__doc__.startswith(f"{n}(abi: int, "), n
    users = [p.name for p in (PKG / "ops").glob("*.py") if re.search(r"_addr\b", p.read_text())]
    assert users == ["_bfn_fast.py"]
    with pytest.raises(TypeError):
        cpu.normal_fill(1, 2, 3)


def test_explain_draws_no_random_numbers():
    from diffrep.ops import explain
    x, t = torch.rand(3, 4), torch.rand(3)
    g = torch.Generator().manual_seed(3)
    state, gstate = torch.get_rng_state(), g.get_state()
    choice = explain("bfn.continuous_flow", x, t, 1e-3, g)
    assert torch.equal(torch.get_rng_state(), state) and torch.equal(g.get_state(), gstate)
    assert choice.backend in ("cpu", "reference")
    mu, sig = torch.zeros(2, 3), torch.ones(2, 3)
    with pytest.warns(DeprecationWarning, match="discretised"):
        old = explain("bfn.discretized_probs", mu, sig, 16)
    assert str(old) == str(explain("bfn.discretised_probs", mu, sig, 16))


# ---------------------------------------------------------------- one of each

def test_one_epoch_sampler():
    from diffrep.data.sampling import EpochBatchSampler
    import diffrep.data
    import diffrep.train
    assert diffrep.data.EpochBatchSampler is EpochBatchSampler is diffrep.train.EpochBatchSampler
    defs = [p for p in PKG.rglob("*.py") if re.search(r"^class EpochBatchSampler\b", p.read_text(), re.M)]
    assert defs == [PKG / "data" / "sampling.py"]


def test_one_gaussian_kl_with_reduction():
    from diffrep.nn import gaussian_kl
    sig = inspect.signature(gaussian_kl)
    assert list(sig.parameters) == ["mu", "logvar", "reduction"]
    assert sig.parameters["reduction"].kind is sig.parameters["reduction"].KEYWORD_ONLY
    mu = torch.tensor([[0.5, -1.0], [0.0, 2.0]], dtype=torch.float64)
    lv = torch.tensor([[0.0, 1.0], [-1.0, 0.5]], dtype=torch.float64)
    per_dim = 0.5 * (mu ** 2 + torch.exp(lv) - lv - 1)  # KL(N(mu, e^lv) || N(0, 1)) per dimension
    assert torch.allclose(gaussian_kl(mu, lv, reduction="none"), per_dim)
    assert torch.allclose(gaussian_kl(mu, lv, reduction="sum"), per_dim.sum(-1))
    assert torch.allclose(gaussian_kl(mu, lv, reduction="mean"), per_dim.mean())
    # the old names keep their old reductions: SAMI's per dimension, ParamReL's summed (deprecated)
    from diffrep.methods import sami
    assert torch.allclose(sami.gaussian_kl(mu, lv), per_dim)
    from diffrep.methods import paramrel_nets
    with pytest.warns(DeprecationWarning):
        assert torch.allclose(paramrel_nets.gaussian_kl(mu, lv), per_dim.sum(-1))
    defs = sorted(str(p.relative_to(PKG)) for p in PKG.rglob("*.py") if re.search(r"^def gaussian_kl\b", p.read_text(), re.M))
    assert defs == ["methods/paramrel_nets.py", "nn/gaussian.py"]  # the one, and the deprecated wrapper above


def test_shared_validators_and_config_bounds_on_fields():
    import dataclasses
    from diffrep import _checks
    from diffrep.config import Config, ConfigError, Ge, Gt, apply_overrides
    assert _checks.positive_int(3, "n") == 3
    with pytest.raises(ValueError, match="n"):
        _checks.positive_int(0, "n")

    @dataclasses.dataclass
    class C(Config):
        steps: Annotated[int, Ge(1)] = 1000
        rate: Annotated[float, Gt(0)] = 0.5

    assert C(steps=1).steps == 1
    with pytest.raises(ConfigError, match=r"'steps'.*>= 1, got 0"):
        C(steps=0)
    with pytest.raises(ConfigError, match=r"'rate'.*> 0"):
        C(rate=0.0)
    with pytest.raises(ConfigError, match=r"'steps'.*>= 1"):
        apply_overrides(C(), {"steps": 0})  # and after every override
    with pytest.raises(ConfigError, match=r"'steps'.*>= 1"):
        C.from_dict({"steps": 0})


def test_one_spelling_in_config_values():
    from diffrep.bfn import BFNDataConfig
    from diffrep.config import ConfigError
    assert BFNDataConfig(data="discretised").data == "discretised"
    with pytest.raises((ConfigError, ValueError, TypeError)):
        BFNDataConfig(data="discretized")


# ---------------------------------------------------------------- docs that ship

def _doc_anchors(page: Path) -> set[str]:
    out = set()
    for line in page.read_text().splitlines():
        m = re.match(r"#+\s+(.*?)\s*(\{#([\w-]+)\})?\s*$", line)
        if m:
            out.add(m.group(3) or re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-"))
    return out


def test_docs_have_a_page_per_method_kernel_family_metrics_and_data():
    docs = ROOT / "docs"
    for page in ("methods/paramrel.md", "methods/sami.md", "metrics.md", "data.md", "architecture.md",
                 *[f"kernels/{f}.md" for f in FAMILIES]):
        assert (docs / page).is_file() and len((docs / page).read_text()) > 500, page
    # the ParamReL and SAMI pages state the equations, the errata and the open choices
    for page in ("methods/paramrel.md", "methods/sami.md"):
        text = (docs / page).read_text().lower()
        assert "eq." in text and ("erratum" in text or "errata" in text or "correction" in text), page


SOURCE_DIRS = ("python", "csrc", "benches", "scripts")


def _sources():
    for d in SOURCE_DIRS:
        for p in (ROOT / d).rglob("*"):
            if p.is_file() and p.suffix in (".py", ".h", ".cuh", ".cpp", ".cu", ".sh", ".md"):
                yield p


def test_code_cites_no_file_outside_the_repository():
    bad = [str(p.relative_to(ROOT)) for p in _sources()
           if re.search(r"shared/reference|\.\./shared", p.read_text(errors="ignore"))]
    assert bad == []


def test_every_docs_citation_in_the_code_resolves():
    pages = {str(p.relative_to(ROOT)): _doc_anchors(p) for p in (ROOT / "docs").rglob("*.md")}
    missing = []
    for p in [*_sources(), ROOT / "README.md"]:
        for m in re.finditer(r"\bdocs/([\w/.-]+?\.md)(#[\w-]+)?", p.read_text(errors="ignore")):
            page, anchor = "docs/" + m.group(1), m.group(2)
            if page not in pages or (anchor and anchor[1:] not in pages[page]):
                missing.append(f"{p.relative_to(ROOT)}: {m.group(0)}")
    assert missing == []


def test_links_between_the_docs_pages_resolve():
    missing = []
    for page in [*(ROOT / "docs").rglob("*.md"), ROOT / "README.md"]:
        for m in re.finditer(r"\]\(([^)\s]+?)\)", page.read_text()):
            target, _, anchor = m.group(1).partition("#")
            if target.startswith(("http:", "https:", "mailto:")):
                continue
            dest = (page.parent / target).resolve() if target else page
            if not dest.exists() or (anchor and dest.suffix == ".md" and anchor not in _doc_anchors(dest)):
                missing.append(f"{page.relative_to(ROOT)}: {m.group(1)}")
    assert missing == []


# ---------------------------------------------------------------- tests that share; sizes

def test_one_conftest_with_the_shared_helpers():
    tests = ROOT / "tests"
    assert sorted(str(p.relative_to(tests)) for p in tests.rglob("conftest.py")) == ["conftest.py"]
    assert not list(tests.rglob("__init__.py"))  # tests/ has no packages
    names = [p.name for p in tests.rglob("test_*.py")]
    assert len(names) == len(set(names))
    conftest = (tests / "conftest.py").read_text()
    m = re.search(r'@pytest\.fixture\(scope="session"\)\s*\ndef trained_paramrel\(.*?(?=\n@|\Z)', conftest, re.S)
    assert m and "Trainer(" in m.group(0)  # trained once per session through the Trainer
    helpers = (tests / "helpers.py").read_text()
    for name in ("def tiny_paramrel", "def tiny_sami", "def tiny_bfn", "def native_and_twin", "SEED ="):
        assert name in helpers, name


def test_no_module_exceeds_about_600_lines():
    sizes = {str(p.relative_to(PKG)): len(p.read_text().splitlines()) for p in PKG.rglob("*.py")}
    over = {k: v for k, v in sizes.items() if v > 600}
    assert not over, over
