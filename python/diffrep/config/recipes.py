"""Moved to :mod:`diffrep.recipes` (the registry: :mod:`diffrep.recipes.registry`); old names warn."""

from .._deprecation import moved_names

__getattr__ = moved_names(__name__, {
    "Recipe": "diffrep.recipes.registry:Recipe",
    "register_recipe": "diffrep.recipes.registry:register_recipe",
    "get_recipe": "diffrep.recipes.registry:get_recipe",
    "list_recipes": "diffrep.recipes.registry:list_recipes",
})
