"""Dataclass configs: strict construction from dicts and YAML, dotted command-line overrides.

Dataclasses are the single source of truth (docs/architecture.md#configuration-and-command-line). A config class derives
from :class:`Config`; on construction every field is type-checked against its annotation
(ints are accepted for floats, lists for tuples) and the class's optional ``validate()`` runs,
so an impossible configuration fails before any training starts, with the field named.
The recipe registry moved to :mod:`diffrep.recipes`.
"""

from .. import _deprecation
from . import core
from .core import *  # noqa: F401,F403  (the names core.__all__ lists)

__all__ = [*core.__all__]

__getattr__ = _deprecation.moved_names(__name__, {
    "Recipe": "diffrep.recipes.registry:Recipe",
    "get_recipe": "diffrep.recipes.registry:get_recipe",
    "list_recipes": "diffrep.recipes.registry:list_recipes",
    "register_recipe": "diffrep.recipes.registry:register_recipe",
})
