"""The recipe registry: a recipe name (``"paramrel/celeba64"``, ``"demo/toy-ddpm"``) maps to a config
factory and a builder.

A recipe's config is a dataclass with at least a ``train`` field (a ``diffrep.train.TrainConfig``);
``build(config)`` returns ``(model, train_dataset)``. The built-in recipes are the ``RECIPES`` of the
family modules that :mod:`diffrep.recipes` lists by name; users add their own with
:func:`register_recipe`. Recipes are looked up only in this registry, never through import strings
read from a file.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from typing import Any, Callable

__all__ = ["Recipe", "register_recipe", "get_recipe", "list_recipes"]


@dataclasses.dataclass(frozen=True)
class Recipe:
    name: str
    make_config: Callable[[], Any]
    build: Callable[[Any], tuple]
    description: str = ""
    cpu_friendly: bool = False

    def __post_init__(self):
        # build(config) reads config.model, config.dataset, ...: anything but a config dataclass gave an
        # AttributeError from inside the family's builder; the check names the recipe and the argument
        raw, name = _builder(self.build), self.name

        @functools.wraps(raw)
        def build(config):
            if not dataclasses.is_dataclass(config) or isinstance(config, type) or not hasattr(config, "train"):
                raise TypeError(f"recipe {name!r}: build(config) needs the recipe's config (a dataclass with a train "
                                f"field, from make_config()), got {type(config).__name__}")
            return raw(config)

        build.builder = raw
        object.__setattr__(self, "build", build)


def _builder(build: Callable) -> Callable:
    """The family's own builder behind a recipe's checked ``build``."""
    return getattr(build, "builder", build)


_REGISTRY: dict[str, Recipe] = {}


def register_recipe(
    name: str,
    make_config: Callable[[], Any],
    build: Callable[[Any], tuple],
    description: str = "",
    *,
    cpu_friendly: bool = False,
    overwrite: bool = False,
) -> Recipe:
    """Register recipe ``name`` (``family/variant``); re-registering needs ``overwrite=True``."""
    if not isinstance(name, str) or not name or name.strip() != name or " " in name:
        raise ValueError(f"register_recipe: name must be a non-empty string without spaces, got {name!r}")
    if not callable(make_config) or not callable(build):
        raise TypeError(f"register_recipe({name!r}): make_config and build must be callables")
    if name in _REGISTRY and not overwrite:
        existing = _REGISTRY[name]
        if existing.make_config is make_config and _builder(existing.build) is _builder(build):
            return existing
        raise ValueError(f"recipe {name!r} is already registered (pass overwrite=True to replace it)")
    recipe = Recipe(name, make_config, build, description, cpu_friendly)
    _REGISTRY[name] = recipe
    return recipe


def list_recipes() -> list[Recipe]:
    """All registered recipes, sorted by name."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; an unknown name raises ValueError listing close matches."""
    if not isinstance(name, str):
        raise TypeError(f"get_recipe: name must be a recipe name (str), got {type(name).__name__}")
    if name not in _REGISTRY:
        family = sorted(k for k in _REGISTRY if k.startswith(name.rstrip("/") + "/")) if name else []
        if family:  # a family's name alone ('vae'): its recipes, not the whole registry
            raise ValueError(f"unknown recipe {name!r}; a recipe names its family and its setting, and the "
                             f"{name.rstrip('/')} recipes are: {', '.join(family)}")
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown recipe {name!r}.{hint} Known recipes: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]
