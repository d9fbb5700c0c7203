"""Describe config dataclasses to a reader: every field's type (with its bounds), default and a one-line
description (docs/architecture.md#configuration-and-command-line).

The description of a field is, in order: ``dataclasses.field(metadata={"doc": ...})``; the comment on
the field's line in the class source (``steps: int = 10  # optimiser steps``); a string literal right
after the field (an attribute docstring); the first sentence of the class docstring naming the field
as ````name````. So the dataclasses stay the single source: ``diffrep train RECIPE --help`` and
``--print-config`` read them, nothing is written twice.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import re
import textwrap
import tokenize
import types
import typing
from typing import Annotated, Any, Literal, Union

import yaml

from .bounds import Bound

__all__ = ["field_docs", "type_label", "describe_fields", "annotated_yaml"]

_DOCS: dict[type, dict[str, str]] = {}


# abbreviations after which a period ends no sentence: a description cut there read "(a saved folder, e.g."
_ABBREVIATIONS = ("e.g.", "i.e.", "cf.", "vs.", "Eq.", "Eqs.", "Fig.", "Figs.", "Alg.", "Sec.", "Tab.", "App.")


def _sentences(text: str) -> list[str]:
    """``text`` split after each ``.`` or ``;`` that ends a sentence (not one of ``_ABBREVIATIONS``)."""
    out: list[str] = []
    for piece in re.split(r"(?<=[.;])\s+", " ".join(text.split())):
        if out and out[-1].endswith(_ABBREVIATIONS):
            out[-1] += " " + piece
        else:
            out.append(piece)
    return out


def _first_sentence(text: str) -> str:
    return (_sentences(text) or [""])[0]


def _source_docs(cls: type) -> dict[str, str]:
    """Trailing comments and attribute docstrings of the fields declared in ``cls``'s own body."""
    try:
        src = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    try:
        tree = ast.parse(src)
    except SyntaxError:
        return {}
    comments: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(src).readline):
            if tok.type == tokenize.COMMENT:
                comments[tok.start[0]] = tok.string.lstrip("#").strip()
    except (tokenize.TokenError, IndentationError):
        pass
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    out: dict[str, str] = {}
    for i, node in enumerate(body):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        name = node.target.id
        found = [comments[ln] for ln in range(node.lineno, (node.end_lineno or node.lineno) + 1) if ln in comments]
        if found and not found[0].startswith(("noqa", "type:")):
            out[name] = found[0]
            continue
        nxt = body[i + 1] if i + 1 < len(body) else None
        if (isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant) and isinstance(nxt.value.value, str)):
            out[name] = _first_sentence(nxt.value.value)
    return out


def field_docs(cls: type) -> dict[str, str]:
    """One-line description of each field of dataclass ``cls`` ("" where none is written)."""
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"field_docs: cls must be a dataclass type, got {cls!r}")
    if cls in _DOCS:  # the cache is the process's: the caller gets a copy, so an edit of it changes no later --help
        return dict(_DOCS[cls])
    src: dict[str, str] = {}
    for base in reversed(cls.__mro__):  # a subclass's own comment wins over its base's
        if dataclasses.is_dataclass(base):
            src.update(_source_docs(base))
    doc = inspect.getdoc(cls) or ""
    sentences = _sentences(doc)
    out = {}
    for f in dataclasses.fields(cls):
        text = f.metadata.get("doc") if f.metadata else None
        if not text:
            text = src.get(f.name)
        if not text:
            text = next((s for s in sentences if f"``{f.name}``" in s), "")
        out[f.name] = " ".join(str(text).split())
    _DOCS[cls] = out
    return dict(out)


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(v)


def type_label(tp: Any) -> str:
    """``Annotated[int, Ge(1)]`` -> ``int >= 1``; ``Literal["a", "b"]`` -> ``{a, b}``; ``tuple[int, ...]``."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        base, *extras = typing.get_args(tp)
        bounds = [f"{b.symbol} {_num(b.value)}" for b in extras if isinstance(b, Bound)]
        return type_label(base) + (" " + ", ".join(bounds) if bounds else "")
    args = typing.get_args(tp)
    if origin is Literal:
        return "{" + ", ".join(str(a) for a in args) + "}"
    if origin is Union or origin is types.UnionType:
        arms = [type_label(a) for a in args if a is not type(None)]
        return " | ".join(arms) + (" | null" if type(None) in args else "")
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"tuple[{type_label(args[0])}, ...]"
        return "tuple[" + ", ".join(type_label(a) for a in args) + "]"
    if origin is list:
        return f"list[{type_label(args[0])}]" if args else "list"
    if origin is dict:
        return "mapping"
    if tp is Any:
        return "any"
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _flow(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6)
    return " ".join(ln for ln in text.splitlines() if ln.strip() != "...").strip()


def describe_fields(cfg: Any, prefix: str = "") -> list[tuple[str, str, Any, str]]:
    """``(dotted path, type label, current value, description)`` for every leaf field of config ``cfg``
    (an instance: its values are the defaults a recipe sets), nested sections flattened."""
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"describe_fields: cfg must be a dataclass instance, got {type(cfg).__name__}")
    if not isinstance(prefix, str):
        raise TypeError(f"describe_fields: prefix must be a str, got {type(prefix).__name__}")
    from .core import _hints  # typing.get_type_hints, once per class (it evaluates every annotation anew)

    hints = _hints(type(cfg))
    docs = field_docs(type(cfg))
    rows = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        path = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            rows += describe_fields(value, path + ".")
        else:
            rows.append((path, type_label(hints.get(f.name, Any)), value, docs.get(f.name, "")))
    return rows


def annotated_yaml(cfg: Any) -> str:
    """The config as YAML with each leaf's type and description as a trailing comment; loads back
    (:func:`~diffrep.config.load_yaml`) to :func:`~diffrep.config.config_to_dict` of ``cfg``."""
    from .core import _hints, config_to_dict

    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"annotated_yaml: cfg must be a dataclass instance, got {type(cfg).__name__}")
    lines: list[str] = []

    def walk(obj: Any, indent: int) -> None:
        hints = _hints(type(obj))
        docs = field_docs(type(obj))
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            pad = "  " * indent
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                doc = docs.get(f.name, "")
                lines.append(f"{pad}{f.name}:" + (f"  # {doc}" if doc else ""))
                walk(value, indent + 1)
                continue
            comment = type_label(hints.get(f.name, Any))
            if docs.get(f.name):
                comment += ": " + docs[f.name]
            lines.append(f"{pad}{f.name}: {_flow(config_to_dict(value))}  # {comment}")

    walk(cfg, 0)
    return "\n".join(lines) + "\n"
