"""Moved to :mod:`diffrep.recipes.vq`; old names warn."""

from .._deprecation import moved_names

__getattr__ = moved_names(__name__, {
    "VQRecipeConfig": "diffrep.recipes.vq:VQRecipeConfig",
    "build": "diffrep.recipes.vq:build",
    "toy_cpu": "diffrep.recipes.vq:toy_cpu",
    "celeba64": "diffrep.recipes.vq:celeba64",
})
