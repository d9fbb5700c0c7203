"""The recipe registry: lookups, the built-in recipes `diffrep train --list` shows, and the old
homes of every name that moved into or out of the recipes (deprecated aliases that still work)."""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import diffrep
import diffrep.recipes
from diffrep.recipes import get_recipe, list_recipes, register_recipe
from diffrep.recipes.demo import DemoConfig

# name -> cpu_friendly, as `diffrep train --list` printed them before the recipes moved
BUILTIN = {
    "bfn/cifar10-discretised": False, "bfn/digits": True, "bfn/mnist-discrete": False, "demo/toy-ddpm": True,
    "paramrel/bfashionmnist": False, "paramrel/bmnist": False, "paramrel/bmnist-notebook": False,
    "paramrel/celeba64": False, "paramrel/cifar10": False, "paramrel/digits": True, "paramrel/dsprites": True,
    "paramrel/shapes3d64": False, "sami/celeba64": False, "sami/celebahq256-frozen": False, "sami/disks": False,
    "sami/disks-cpu": True, "sami/disks-cpu-frozen": True, "sami/disks-cpu-frozen-d8": True, "vq/celeba64": False,
    "vq/toy-cpu": True,
    "multibeta/dsprites-cpu": True, "multibeta/shapes3d-cpu": True, "multibeta/cars3d": False, "multibeta/shapes3d": False, "multibeta/mpi3d": False,
    "multibeta/celeba64": False, "multibeta/celebahq256": False, "multibeta/ffhq256": False,
    "multibeta/lsun-bedrooms256": False,
    "paramrel/celeba64-delta": False, "paramrel/shapes3d64-delta": False, "paramrel/cifar10-delta": False,
    "vq/shapes3d64": False, "vq/mpi3d-toy64": False, "vq/cars3d64": False,
    "encdiff/shapes3d-cpu": True, "encdiff/shapes3d-cpu-baseline": True, "encdiff/shapes3d": False,
    "encdiff/mpi3d-toy": False, "encdiff/cars3d": False, "encdiff/celeba64": False, "encdiff/mpi3d-toy-baseline": False,
    "encdiff/mpi3d-toy-dyga": False, "encdiff/mpi3d-toy-sd": False, "encdiff/mpi3d-toy-fsq": False,
    "encdiff/mpi3d-toy-bd": False, "encdiff/mpi3d-toy-disdis": False,
    "diffae/celeba64": False, "diffae/celebahq128": False, "diffae/ffhq128": False, "diffae/shapes3d-cpu": True,
    "diffae/shapes3d64": False,
    "infodiffusion/celeba64": False, "infodiffusion/dsprites64": False, "infodiffusion/shapes3d-cpu": True,
    "disdiff/cars3d": False, "disdiff/celeba64": False, "disdiff/mpi3d-toy": False, "disdiff/shapes3d": False,
    "disdiff/shapes3d-cpu": True, "disdiff/shapes3d-cpu-pretrain": True,
    "disdiff/shapes3d-cpu-onerun": True, "disdiff/shapes3d-dyga": False,
}
_VAE_METHODS = ("ae", "vae", "beta-vae", "annealed-vae", "beta-tcvae", "factor-vae", "info-vae", "dip-vae-i",
                "dip-vae-ii", "fsq-ae")
BUILTIN.update({f"vae/{m}-{d}": False for m in _VAE_METHODS for d in ("dsprites", "shapes3d", "mpi3d-toy", "cars3d")})
BUILTIN.update({f"vae/{m}-cpu": True for m in _VAE_METHODS})


def test_recipe_registry():
    names = [r.name for r in list_recipes()]
    assert "demo/toy-ddpm" in names
    r = get_recipe("demo/toy-ddpm")
    assert isinstance(r.make_config(), DemoConfig) and r.cpu_friendly
    with pytest.raises(ValueError, match="Did you mean: demo/toy-ddpm"):
        get_recipe("demo/toy-ddmp")
    with pytest.raises(ValueError, match="already registered"):
        register_recipe("demo/toy-ddpm", DemoConfig, lambda c: None)
    with pytest.raises(ValueError, match="name"):
        register_recipe("bad name", DemoConfig, lambda c: None)


def test_builtin_recipes_come_from_the_listed_families():
    library = {r.name: r.cpu_friendly for r in list_recipes() if r.build.__module__.startswith("diffrep.")}
    assert library == BUILTIN
    listed = {r.name for family in diffrep.recipes.FAMILIES for r in family.RECIPES}
    assert listed == set(BUILTIN)
    for family in diffrep.recipes.FAMILIES:
        for r in family.RECIPES:
            assert r.name.startswith(family.__name__.rsplit(".", 1)[1] + "/")
            assert get_recipe(r.name).make_config is r.make_config and r.build.__module__ == family.__name__
            cfg = r.make_config()
            assert hasattr(cfg, "train") and hasattr(cfg, "model")


# old module, old name -> new module, new name
MOVED = [
    *[("diffrep.config", n, "diffrep.recipes.registry", n)
      for n in ("Recipe", "get_recipe", "list_recipes", "register_recipe")],
    *[("diffrep.config.recipes", n, "diffrep.recipes.registry", n)
      for n in ("Recipe", "get_recipe", "list_recipes", "register_recipe")],
    ("diffrep.bfn.model", "BFNRecipeConfig", "diffrep.recipes.bfn", "BFNRecipeConfig"),
    *[("diffrep.methods.paramrel_recipes", n, "diffrep.recipes.paramrel", n)
      for n in ("ParamReLRecipeConfig", "build", "build_dataset", "paramrel_config", "paramrel_compat",
                "COMPAT_PRESETS", "dsprites_cpu", "digits_cpu", "bmnist", "bmnist_notebook", "bfashionmnist",
                "celeba64", "shapes3d64", "cifar10")],
    *[("diffrep.methods.sami_recipes", n, "diffrep.recipes.sami", n)
      for n in ("SAMIDataConfig", "SAMIRecipeConfig", "build_dataset", "build", "disks_config", "celeba64_config",
                "celebahq256_frozen_config", "disks_cpu_config", "disks_cpu_frozen_config",
                "disks_cpu_frozen_d8_config")],
    ("diffrep.methods.sami_recipes", "DisksTensorDataset", "diffrep.data.disks", "DisksTensorDataset"),
    ("diffrep.methods.sami_recipes", "disks_geometry", "diffrep.data.disks", "disks_geometry"),
    *[("diffrep.train.vq_recipes", n, "diffrep.recipes.vq", n) for n in ("VQRecipeConfig", "build", "toy_cpu", "celeba64")],
    ("diffrep.train.demo", "DemoConfig", "diffrep.recipes.demo", "DemoConfig"),
    ("diffrep.train.demo", "ToyShapes", "diffrep.data.toy_shapes", "ToyShapes"),
    ("diffrep.train.demo", "ToyShapesConfig", "diffrep.data.toy_shapes", "ToyShapesConfig"),
    ("diffrep.train.demo", "ToyDDPM", "diffrep.methods.toy_ddpm", "ToyDDPM"),
    ("diffrep.train.demo", "ToyDDPMConfig", "diffrep.methods.toy_ddpm", "ToyDDPMConfig"),
    ("diffrep.methods.paramrel_data", "Pooled", "diffrep.data.pooled", "Pooled"),
    ("diffrep.methods.disks_bayes", "disks_bayes_eps_mse", "diffrep.analysis.disks_bayes", "disks_bayes_eps_mse"),
    *[("diffrep.methods.sami_analyses", n, f"diffrep.analysis.{m}", n) for m, names in {
        "variability": ("variability", "variability_reduction"),
        "posterior_geometry": ("posterior_variance_spectrum", "perturb_low_variance_axes", "global_axes"),
        "representation": ("latent_straightness", "attribute_metrics", "factor_metrics"),
        "guidance": ("guidance_magnitude",),
        "disks_probes": ("posterior_mean_monotonicity", "disk_centres", "disk_position_transfer"),
        "encoding": ("encode_batched",), "sami_fid": ("fid",)}.items() for n in names],
    ("diffrep.methods.sami_analyses", "frechet_distance", "diffrep.metrics.generation", "frechet_distance_from_features"),
    ("diffrep.methods.sami_analyses", "load_feature_extractor", "diffrep.metrics.generation", "load_feature_extractor"),
]


@pytest.mark.parametrize("old_module, old_name, new_module, new_name", MOVED,
                         ids=[f"{m}.{n}" for m, n, _, _ in MOVED])
def test_moved_names_still_work_and_warn(old_module, old_name, new_module, new_name):
    new = getattr(importlib.import_module(new_module), new_name)
    old = importlib.import_module(old_module)
    with pytest.warns(DeprecationWarning, match=f"{new_module}.{new_name}"):
        assert getattr(old, old_name) is new
    with pytest.raises(AttributeError):
        getattr(old, old_name + "_no_such_name")


def test_the_library_uses_no_deprecated_name():
    """Every module of diffrep imports, and every recipe builds its config, with deprecation warnings
    as errors: the library's own code reads only new homes (the aliases are for users)."""
    code = """
import importlib, pkgutil, warnings
warnings.simplefilter("error", DeprecationWarning)
import diffrep
for info in pkgutil.walk_packages(diffrep.__path__, "diffrep."):
    if not info.name.endswith("__main__"):
        importlib.import_module(info.name)
from diffrep.recipes import list_recipes
for r in list_recipes():
    r.make_config()
print("ok")
"""
    parent = str(Path(diffrep.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (parent, os.environ.get("PYTHONPATH")) if p)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr
