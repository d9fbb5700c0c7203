"""Every field of every registered recipe's config tree has a one-line description
(``diffrep train RECIPE --help``, docs/architecture.md#configuration-and-command-line), including the
sections a recipe leaves unset (``Optional[SomeConfig] = None``), whose fields a user can still set."""

from __future__ import annotations

import dataclasses
import typing

from diffrep.config.describe import describe_fields, field_docs
from diffrep.recipes import list_recipes


def _config_types(tp) -> list[type]:
    """The dataclass types inside a field annotation (``Annotated``/``Optional`` unwrapped)."""
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return [tp]
    return [t for a in typing.get_args(tp) for t in _config_types(a)]


def _undocumented(cls: type, where: str, seen: set) -> list[str]:
    if cls in seen:
        return []
    seen.add(cls)
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls, include_extras=True)
    out = []
    for f in dataclasses.fields(cls):
        if not docs.get(f.name, "").strip():
            out.append(f"{where}{f.name} ({cls.__module__}.{cls.__qualname__})")
        for sub in _config_types(hints.get(f.name)):
            out += _undocumented(sub, f"{where}{f.name}.", seen)
    return out


def test_every_field_of_every_recipe_config_has_a_description():
    recipes = list_recipes()
    assert len(recipes) > 10
    missing, seen = [], set()
    for r in recipes:
        cfg = r.make_config()
        if not type(cfg).__module__.startswith("diffrep."):
            continue  # a recipe another test registered (tests/study), not a built-in one
        missing += [f"{r.name}: {p}" for p, _, _, doc in describe_fields(cfg) if not doc.strip()]
        missing += [f"{r.name}: {m}" for m in _undocumented(type(cfg), "", seen)]
    assert missing == []


def test_unset_optional_sections_are_walked_too():
    """DisDiff's ``dyga`` defaults to None; its DyGAConfig fields are still checked (and described)."""
    from diffrep.methods.disdiff import DisDiffConfig
    from diffrep.methods.dyga import DyGAConfig

    assert DisDiffConfig().dyga is None
    assert DyGAConfig in _config_types(typing.get_type_hints(DisDiffConfig, include_extras=True)["dyga"])
    assert field_docs(DyGAConfig)["tol"].startswith("EM stops when the log-likelihood")


def test_help_shows_a_nested_model_field_description():
    from diffrep.cli.train import recipe_help

    text = recipe_help("paramrel/dsprites-cpu") if any(r.name == "paramrel/dsprites-cpu" for r in list_recipes()) \
        else recipe_help(next(r.name for r in list_recipes() if r.name.startswith("paramrel/")))
    assert "--model.lambda_agg" in text and "lambda of the MMD weight" in text


def test_an_edited_field_docs_result_changes_no_later_description():
    """field_docs caches per class for the process: a caller editing the dict it got changes neither the next
    call nor the descriptions ``--help`` prints (another test's or another run's in the same process)."""
    from diffrep.methods.dyga import DyGAConfig

    field_docs(DyGAConfig)["tol"] = "edited"
    assert field_docs(DyGAConfig)["tol"].startswith("EM stops when the log-likelihood")
    described = {path: doc for path, _, _, doc in describe_fields(DyGAConfig())}
    assert described["tol"].startswith("EM stops when the log-likelihood")
