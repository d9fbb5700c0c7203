"""Recipes: a paper or CPU configuration of a method, i.e. a model config combined with a
:class:`~diffrep.train.TrainConfig` and a dataset, under a name (``diffrep train --list``).

This is the only package that combines the three. The built-in families are listed here, by
module, one module each; a new family adds its module to ``FAMILIES``. Users register their own
recipes with :func:`register_recipe`.
"""

from . import bfn, demo, diffae, disdiff, encdiff, infodiffusion, multibeta, paramrel, sami, vae, vq
from . import runinfo as _runinfo
from .registry import Recipe, get_recipe, list_recipes, register_recipe

__all__ = ["Recipe", "register_recipe", "get_recipe", "list_recipes", "FAMILIES"]

FAMILIES = (bfn, demo, diffae, disdiff, encdiff, infodiffusion, multibeta, paramrel, sami, vae, vq)

for _family in FAMILIES:
    for _recipe in _family.RECIPES:
        register_recipe(_recipe.name, _recipe.make_config, _recipe.build, _recipe.description,
                        cpu_friendly=_recipe.cpu_friendly)

# datasets a family defines, chosen by name in any recipe (docs/data.md, "The Shapes3D sub-grid"); looked up
# at call time, so a replaced encdiff.Shapes3DSubgrid is what every reader gets
_runinfo.register_recipe_dataset(_runinfo.SUBGRID, lambda pool: encdiff.Shapes3DSubgrid(pool=pool))
