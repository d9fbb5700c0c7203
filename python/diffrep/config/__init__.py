"""Dataclass configs: strict construction from dicts and YAML, dotted command-line overrides,
and the recipe registry.

Dataclasses are the single source of truth (ecosystem.md section 2.5). A config class derives
from :class:`Config`; on construction every field is type-checked against its annotation
(ints are accepted for floats, lists for tuples) and the class's optional ``validate()`` runs,
so an impossible configuration fails before any training starts, with the field named.
"""

from .core import (
    Config,
    ConfigError,
    config_from_dict,
    config_to_dict,
    dump_yaml,
    load_yaml,
    apply_overrides,
    parse_override_args,
    set_path,
)
from .recipes import Recipe, get_recipe, list_recipes, register_recipe

__all__ = [
    "Config",
    "ConfigError",
    "config_from_dict",
    "config_to_dict",
    "dump_yaml",
    "load_yaml",
    "apply_overrides",
    "parse_override_args",
    "set_path",
    "Recipe",
    "get_recipe",
    "list_recipes",
    "register_recipe",
]
