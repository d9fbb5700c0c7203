"""Dataclass configs: strict construction from dicts and YAML, dotted command-line overrides,
and the recipe registry.

Dataclasses are the single source of truth (ecosystem.md section 2.5). A config class derives
from :class:`Config`; on construction every field is type-checked against its annotation
(ints are accepted for floats, lists for tuples) and the class's optional ``validate()`` runs,
so an impossible configuration fails before any training starts, with the field named.
"""

from . import core
from .core import *  # noqa: F401,F403  (the names core.__all__ lists)
from .recipes import Recipe, get_recipe, list_recipes, register_recipe

__all__ = [*core.__all__, "Recipe", "get_recipe", "list_recipes", "register_recipe"]
