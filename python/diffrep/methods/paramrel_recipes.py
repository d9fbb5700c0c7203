"""Moved to :mod:`diffrep.recipes.paramrel`; old names warn."""

from .._deprecation import moved_names

__getattr__ = moved_names(__name__, {
    "ParamReLRecipeConfig": "diffrep.recipes.paramrel:ParamReLRecipeConfig",
    "build": "diffrep.recipes.paramrel:build",
    "build_dataset": "diffrep.recipes.paramrel:build_dataset",
    "paramrel_config": "diffrep.recipes.paramrel:paramrel_config",
    "paramrel_compat": "diffrep.recipes.paramrel:paramrel_compat",
    "COMPAT_PRESETS": "diffrep.recipes.paramrel:COMPAT_PRESETS",
    "dsprites_cpu": "diffrep.recipes.paramrel:dsprites_cpu",
    "digits_cpu": "diffrep.recipes.paramrel:digits_cpu",
    "bmnist": "diffrep.recipes.paramrel:bmnist",
    "bmnist_notebook": "diffrep.recipes.paramrel:bmnist_notebook",
    "bfashionmnist": "diffrep.recipes.paramrel:bfashionmnist",
    "celeba64": "diffrep.recipes.paramrel:celeba64",
    "shapes3d64": "diffrep.recipes.paramrel:shapes3d64",
    "cifar10": "diffrep.recipes.paramrel:cifar10",
})
