"""Strict dataclass configs (docs/architecture.md#configuration-and-command-line): typed fields, YAML presets, ``--a.b value`` overrides.

No dependency beyond PyYAML: the override grammar is small (dotted field path, YAML-typed value) and
every failure names the field. Chosen over jsonargparse/tyro to keep the CLI dependency-free.
"""

from __future__ import annotations

import contextvars
import dataclasses
import difflib
import math
import os
import re
import types
import typing
from typing import Annotated, Any, Iterable, Literal, Union

import yaml

from .bounds import Bound, Ge, Gt, Le, Lt
from .errors import ConfigError
from .._files import write_text_atomic

__all__ = [
    "Config",
    "flatten_dict",
    "differing_fields",
    "Bound",
    "Ge",
    "Gt",
    "Le",
    "Lt",
    "ConfigError",
    "config_from_dict",
    "config_to_dict",
    "with_fields_added",
    "dump_yaml",
    "load_yaml",
    "parse_yaml",
    "apply_overrides",
    "parse_override_args",
    "set_path",
    "validate_tree",
]


_HINTS: dict[type, dict[str, Any]] = {}

# While set, Config.__post_init__ checks each field's type and bounds but skips the cross-field
# validate(): apply_overrides sets it, applies every override, then validates the tree once.
_DEFER: contextvars.ContextVar[bool] = contextvars.ContextVar("diffrep_config_defer_validate", default=False)


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls, include_extras=True)
    return _HINTS[cls]


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, field: str) -> Any:
    """Check ``value`` against annotation ``tp``; return it converted (int->float, list->tuple)."""
    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    if origin is Annotated:
        base, *extras = typing.get_args(tp)
        value = _coerce(value, base, field)
        for bound in extras:
            if isinstance(bound, Bound):
                bound.check(value, field)
        return value
    args = typing.get_args(tp)
    if origin is Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        errors = []
        for arm in args:
            if arm is type(None):
                continue
            try:
                return _coerce(value, arm, field)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:  # Optional[X]: X's own error (and item name, x[1]) says more than "expected Optional"
            raise errors[0] from None
        raise ConfigError(field, f"expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        # by type as well as value: True == 1 and 2.0 == 2, but a bool or a float is not the int choice
        if not any(value == a and type(value) is type(a) for a in args):
            raise ConfigError(field, f"must be one of {list(args)}, got {value!r}")
        return value
    if tp is bool or tp is str:  # taken as they are: no 0/1 for a bool, no number for a str
        if not isinstance(value, tp):
            raise ConfigError(field, f"expected {tp.__name__}, got {type(value).__name__} {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(field, f"expected int, got {type(value).__name__} {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(field, f"expected float, got {type(value).__name__} {value!r}")
        try:
            as_float = float(value)
        except OverflowError:  # an int beyond the float range (10**400)
            as_float = math.inf
        if not math.isfinite(as_float):  # no config field means anything by nan or inf (lr: inf trains to NaN)
            text = repr(value)
            raise ConfigError(field, f"must be a finite number, got {text if len(text) <= 24 else text[:20] + '...'}")
        return as_float
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(field, f"expected a sequence ({_type_name(tp)}), got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{field}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise ConfigError(field, f"expected {len(args)} items, got {len(value)}")
        return tuple(_coerce(v, a, f"{field}[{i}]") for i, (v, a) in enumerate(zip(value, args))) if args else tuple(value)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(field, f"expected a list, got {value!r}")
        return [_coerce(v, args[0], f"{field}[{i}]") for i, v in enumerate(value)] if args else list(value)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(field, f"expected a mapping, got {value!r}")
        return dict(value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if isinstance(value, dict):
            return config_from_dict(tp, value, _field=field)
        raise ConfigError(field, f"expected {tp.__name__} or a mapping, got {value!r}")
    if isinstance(tp, type):
        if not isinstance(value, tp):
            raise ConfigError(field, f"expected {tp.__name__}, got {type(value).__name__}")
        return value
    return value


@dataclasses.dataclass
class Config:
    """Base class of every diffrep config dataclass.

    ``__post_init__`` type-checks and converts every field, then calls ``validate()``, which
    subclasses override to reject impossible combinations (raising :class:`ConfigError`).
    """

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in dataclasses.fields(self):
            if not f.init:
                continue
            value = getattr(self, f.name)
            try:
                object.__setattr__(self, f.name, _coerce(value, hints[f.name], f.name))
            except ConfigError as exc:
                if exc.field.startswith(f.name):
                    raise
                raise exc.prefixed(f.name) from None
        if not _DEFER.get():
            self.validate()

    #: fields added after models of this class were first saved, with the value that reproduces those
    #: models: :meth:`~diffrep.nn.pretrained.PretrainedMixin.from_pretrained` uses it where a saved
    #: config.json lacks the field (a config.json written by this version holds every field). Not
    #: annotated, so that it is no dataclass field (not even a ClassVar entry of __dataclass_fields__).
    fields_added = types.MappingProxyType({})

    def validate(self) -> None:
        """Reject impossible combinations; override in subclasses."""

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict):
        return config_from_dict(cls, data)


def config_from_dict(cls: type, data: dict, *, _field: str = "", ignore_private: bool = False):
    """Build dataclass ``cls`` from ``data``; unknown keys raise :class:`ConfigError` naming them.

    ``ignore_private`` skips keys starting with ``_`` (metadata such as ``_class_name``).
    """
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"config_from_dict: cls must be a dataclass type, got {cls!r}")
    if not isinstance(data, dict):
        raise ConfigError(_field, f"{'' if _field else 'data: '}expected a mapping for {cls.__name__}, got "
                              f"{type(data).__name__}")
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    hints = _hints(cls)
    kwargs = {}
    for key, value in data.items():
        if ignore_private and isinstance(key, str) and key.startswith("_"):
            continue
        full = f"{_field}.{key}" if _field else str(key)
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(full, f"unknown field for {cls.__name__}{hint} (known: {', '.join(names)})")
        kwargs[key] = _coerce(value, hints[key], full)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise (exc.prefixed(_field) if _field else exc) from None


def with_fields_added(cls: type, data: dict) -> dict:
    """``data`` (a saved config.json's fields for ``cls``) with each absent field that ``cls`` or a
    nested config lists in ``fields_added`` set to the value older files were written with
    (docs/architecture.md#save-and-load-format). ``data`` that is not a mapping is returned as it is, for
    :func:`config_from_dict` to refuse by name."""
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"with_fields_added: cls must be a dataclass type, got {cls!r}")
    if not isinstance(data, dict):
        return data
    out = dict(data)
    for key, value in getattr(cls, "fields_added", {}).items():
        out.setdefault(key, value)
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if not isinstance(out.get(f.name), dict):
            continue
        tp = _optional_section(_strip_annotated(hints.get(f.name)))  # a nested config, or Optional[config]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            out[f.name] = with_fields_added(tp, out[f.name])
    return out


def config_to_dict(cfg: Any) -> Any:
    """Plain JSON/YAML-able structure of a (nested) config: dicts, lists, scalars."""
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        return {f.name: config_to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [config_to_dict(v) for v in cfg]
    if isinstance(cfg, dict):
        return {str(k): config_to_dict(v) for k, v in cfg.items()}
    if cfg is None or isinstance(cfg, (bool, int, float, str)):
        return cfg
    raise TypeError(f"cfg: config value {cfg!r} of type {type(cfg).__name__} is not JSON-serialisable")


# YAML 1.2 floats: PyYAML (YAML 1.1) reads ``lr: 1e-4`` (no dot) as the string "1e-4", which a float
# field then refuses although ``--lr 1e-4`` is accepted on the command line.
_FLOAT_RE = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X)


class _Loader(yaml.SafeLoader):
    """Safe loader with YAML 1.2 floats that refuses a key given twice in one mapping (PyYAML keeps the
    last silently, so a preset's second ``lr:`` would hide the first without a word)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"duplicate key {key!r} (first on line {seen[key]})", key_node.start_mark)
                seen[key] = line
            except TypeError:  # unhashable key: the base class reports it
                continue
        return super().construct_mapping(node, deep=deep)


class _Dumper(yaml.SafeDumper):
    """Quotes strings that :class:`_Loader` would read as floats ("1e-3"), so dump/load round-trips."""


for _cls in (_Loader, _Dumper):
    _cls.yaml_implicit_resolvers = {k: list(v) for k, v in _cls.yaml_implicit_resolvers.items()}
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-+0123456789."))


def load_yaml(path: str | os.PathLike) -> dict:
    """Read a YAML mapping (a preset or a saved run config). Floats follow YAML 1.2 (``1e-4`` is a
    number); a key repeated in one mapping is an error naming it and its lines. A file that cannot be
    read is the OSError of ``open`` (it names the path; the CLI prints it); text that is not YAML is
    PyYAML's YAMLError with its line (``diffrep.cli.train.read_config_file`` words it for ``--config``)."""
    _path(path)
    with open(path, encoding="utf-8") as fh:
        data = yaml.load(fh, Loader=_Loader)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a YAML mapping at top level, got {type(data).__name__}")
    return data


def parse_yaml(text: str) -> Any:
    """One YAML value read as :func:`load_yaml` reads files (``1e-3`` is a number, a key repeated in a
    mapping is an error): command-line ``KEY=VALUE`` options and saved configs read back alike."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return yaml.load(text, Loader=_Loader)


def flatten_dict(d: dict, prefix: str = "") -> dict:
    """Nested config dict -> ``{"a.b": scalar}`` (sequences as strings, None as "none"): hyper-parameter
    tables, and the field-by-field comparison of a resumed run's config."""
    if not isinstance(d, dict):
        raise TypeError(f"flatten_dict: d must be a dict, got {type(d).__name__}")
    if not isinstance(prefix, str):
        raise TypeError(f"flatten_dict: prefix must be a str, got {type(prefix).__name__}")
    out: dict = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten_dict(v, key + "."))
        elif isinstance(v, (bool, int, float, str)):
            out[key] = v
        elif v is None:
            out[key] = "none"
        else:
            out[key] = str(v)
    return out


def differing_fields(given: Any, wanted: Any) -> list[tuple[str, Any, Any]]:
    """``(field, value in given, value in wanted)`` for each :func:`flatten_dict` leaf where two configs
    (config instances, or dicts of them and plain values) differ, sorted by field; a field that only one side
    has pairs with None. A saved part that does not fit the model loading it names these fields rather than
    "the config differs" (or torch's size mismatches)."""
    for name, value in (("given", given), ("wanted", wanted)):
        if not (isinstance(value, dict) or (dataclasses.is_dataclass(value) and not isinstance(value, type))):
            raise TypeError(f"differing_fields: {name} must be a config instance or a dict, got {type(value).__name__}")
    a, b = flatten_dict(config_to_dict(given)), flatten_dict(config_to_dict(wanted))
    return [(k, a.get(k), b.get(k)) for k in sorted({*a, *b}) if a.get(k) != b.get(k)]


def _path(path) -> None:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")


def dump_yaml(cfg: Any, path: str | os.PathLike) -> None:
    """Write config ``cfg`` (a dataclass instance) to ``path`` as YAML (an unwritable path: open's OSError).

    Written to a temporary file and renamed over ``path``: a YAML file cut at a line is still valid YAML with
    fewer fields, and a run's config.yaml cut so read as its config (the resume check takes a field only one
    side has for another diffrep version's, not a change)."""
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"dump_yaml: cfg must be a config (dataclass instance), got {type(cfg).__name__}")
    _path(path)
    write_text_atomic(path, yaml.dump(config_to_dict(cfg), Dumper=_Dumper, sort_keys=False))


def _leaf_type(cls: type, parts: list[str], field: str) -> Any:
    tp: Any = cls
    for i, part in enumerate(parts):
        tp = _optional_section(tp)
        if not (isinstance(tp, type) and dataclasses.is_dataclass(tp)):
            raise ConfigError(".".join(parts[:i]), f"is not a config section, cannot set '{part}'")
        names = [f.name for f in dataclasses.fields(tp) if f.init]
        if part not in names:
            close = difflib.get_close_matches(part, names, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(field, f"unknown field for {tp.__name__}{hint} (known: {', '.join(names)})")
        tp = _strip_annotated(_hints(tp)[part])
    return tp


def _dict_field_index(cls: type, parts: list[str]) -> int | None:
    """The index of the part naming a dict-valued field when more parts follow it (``dataset_options.size``: 0),
    else None (an unknown name or a non-section is :func:`_leaf_type`'s to name)."""
    tp: Any = cls
    for i, part in enumerate(parts[:-1]):
        tp = _optional_section(tp)
        if not (isinstance(tp, type) and dataclasses.is_dataclass(tp)):
            return None
        hints = _hints(tp)
        if part not in hints or part not in {f.name for f in dataclasses.fields(tp) if f.init}:
            return None
        tp = _strip_annotated(hints[part])
        arms = [a for a in typing.get_args(tp) if a is not type(None)] \
            if typing.get_origin(tp) in (Union, types.UnionType) else [tp]
        if len(arms) == 1 and (arms[0] is dict or typing.get_origin(arms[0]) is dict):
            return i
    return None


def _optional_section(tp: Any) -> Any:
    """``Optional[SomeConfig]`` -> ``SomeConfig`` (a section that may be switched off with null); else ``tp``."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        arms = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(arms) == 1 and isinstance(arms[0], type) and dataclasses.is_dataclass(arms[0]):
            return arms[0]
    return tp


def _parse_raw(raw: Any, tp: Any) -> Any:
    """Turn a command-line string into a value for annotation ``tp``."""
    if not isinstance(raw, str):
        return raw
    tp = _strip_annotated(tp)
    args = typing.get_args(tp)
    if tp is str or (typing.get_origin(tp) is Literal and all(isinstance(a, str) for a in args)):
        return raw
    if typing.get_origin(tp) in (Union, types.UnionType) and str in args and raw.lower() not in ("null", "none"):
        return raw
    if raw.lower() in ("none", "null", "~"):
        return None
    seq = _sequence_arm(tp)
    if seq is not None:
        text = raw if raw.strip().startswith("[") else "[" + raw + "]"  # allow --x 1,2,2
        try:
            items = yaml.load(text, Loader=yaml.BaseLoader)  # every item a string: typed one by one below
        except yaml.YAMLError:
            return raw  # _coerce names the field: "expected a sequence"
        if not isinstance(items, list):
            return raw
        return _parse_items(items, seq)
    value = yaml.safe_load(raw)
    if isinstance(value, str):  # YAML 1.1 reads 1e-4 as a string
        try:
            value = float(value)
        except ValueError:
            pass
    return value


def _sequence_arm(tp: Any) -> Any:
    """The tuple/list annotation of ``tp`` (also inside ``Optional[...]``), or None."""
    if typing.get_origin(tp) in (tuple, list):
        return tp
    if typing.get_origin(tp) in (Union, types.UnionType):
        arms = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(arms) == 1 and typing.get_origin(arms[0]) in (tuple, list):
            return arms[0]
    return None


def _parse_items(items: list, seq: Any) -> list:
    """Type each (string) item of a command-line sequence by its own annotation, so ``--names no,1e3``
    gives ``("no", "1e3")`` for ``tuple[str, ...]`` and ``(0.001, 2.0)`` for ``tuple[float, float]``."""
    args = typing.get_args(seq)
    if len(args) == 2 and args[1] is Ellipsis:
        types_ = [args[0]] * len(items)
    elif args and typing.get_origin(seq) is tuple and len(args) == len(items):
        types_ = list(args)
    elif args and typing.get_origin(seq) is list:
        types_ = [args[0]] * len(items)
    else:
        types_ = [Any] * len(items)  # a length mismatch is reported by _coerce
    out = []
    for item, et in zip(items, types_):
        inner = _sequence_arm(_strip_annotated(et))
        if isinstance(item, list) and inner is not None:
            out.append(_parse_items(item, inner))
        elif isinstance(item, str):
            out.append(_parse_raw(item, et))
        else:
            out.append(item)
    return out


def _strip_annotated(tp: Any) -> Any:
    """``Annotated[X, ...]`` -> ``X``, also inside ``Optional[...]``."""
    if typing.get_origin(tp) is Annotated:
        return typing.get_args(tp)[0]
    if typing.get_origin(tp) in (Union, types.UnionType):
        return Union[tuple(_strip_annotated(a) for a in typing.get_args(tp))]
    return tp


def set_path(cfg: Any, path: str, raw: Any) -> Any:
    """Return a copy of ``cfg`` with dotted field ``path`` set (strings parsed as YAML by type)."""
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"set_path: cfg must be a dataclass instance, got {type(cfg).__name__}")
    if not isinstance(path, str):
        raise TypeError(f"set_path: path must be a dotted field name (str), got {type(path).__name__} {path!r}")
    parts = [p for p in path.replace("-", "_").split(".")]
    if not path or any(not p for p in parts):
        raise ConfigError(path, f"empty field name in override (path {path!r})")
    k = _dict_field_index(type(cfg), parts)
    if k is not None:  # ``dataset_options.size``: one key of a dict field, merged into the dict it holds
        field = ".".join(parts[:k + 1])
        if k != len(parts) - 2:
            raise ConfigError(field, f"is a dict field: set one key with --{field}.KEY VALUE or the whole dict with "
                                     f"--{field} '{{KEY: VALUE, ...}}', got the deeper path {path!r}")
        held = cfg
        for part in parts[:k + 1]:
            held = getattr(held, part, None)
        key = path.split(".")[k + 1]  # the key as given: only field names read '-' as '_'
        value = parse_yaml(raw) if isinstance(raw, str) else raw
        return set_path(cfg, field, {**(held if isinstance(held, dict) else {}), key: value})
    tp = _leaf_type(type(cfg), parts, path)
    value = _coerce(_parse_raw(raw, tp), tp, path)

    def rebuild(obj: Any, i: int) -> Any:
        if i == len(parts) - 1:
            new = value
        else:
            sub = getattr(obj, parts[i])
            if sub is None:  # an Optional section that is off: nothing to set a field on
                name = ".".join(parts[:i + 1])
                raise ConfigError(name, f"is null (switched off), cannot set '{parts[i + 1]}'; "
                                        f"set the whole section first, e.g. --{name} '{{{parts[i + 1]}: ...}}'")
            new = rebuild(sub, i + 1)
        try:
            return dataclasses.replace(obj, **{parts[i]: new})
        except ConfigError as exc:
            prefix = ".".join(parts[:i])
            raise (exc.prefixed(prefix) if prefix else exc) from None

    return rebuild(cfg, 0)


def parse_override_args(tokens: Iterable[str]) -> list[tuple[str, str]]:
    """``["--a.b", "1", "--c=x", "--flag"]`` -> ``[("a.b", "1"), ("c", "x"), ("flag", "true")]``."""
    if isinstance(tokens, str):
        raise TypeError("parse_override_args: tokens must be a list of strings (e.g. shlex.split(text)), got one str")
    if not isinstance(tokens, Iterable):
        raise TypeError(f"parse_override_args: tokens must be a list of strings, got {type(tokens).__name__}")
    tokens = list(tokens)
    for tok in tokens:
        if not isinstance(tok, str):
            raise TypeError(f"parse_override_args: every token must be a str, got {type(tok).__name__} {tok!r}")
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not isinstance(tok, str) or not tok.startswith("--") or len(tok) <= 2:
            raise ValueError(f"override {tok!r}: expected '--field.path value' or '--field.path=value'")
        key = tok[2:]
        if "=" in key:
            key, raw = key.split("=", 1)
            i += 1
        elif i + 1 < len(tokens) and not (tokens[i + 1].startswith("--") and len(tokens[i + 1]) > 2):
            raw = tokens[i + 1]
            i += 2
        else:
            raw = "true"
            i += 1
        out.append((key, raw))
    return out


def validate_tree(cfg: Any, _prefix: str = "") -> Any:
    """Run ``validate()`` on every nested config of ``cfg``, innermost first; a :class:`ConfigError`
    names the full dotted field. Returns ``cfg``."""
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"validate_tree: cfg must be a dataclass instance, got {type(cfg).__name__}")
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            validate_tree(value, f"{_prefix}.{f.name}" if _prefix else f.name)
    if isinstance(cfg, Config):
        try:
            cfg.validate()
        except ConfigError as exc:
            raise (exc.prefixed(_prefix) if _prefix else exc) from None
    return cfg


def apply_overrides(cfg: Any, overrides: dict | Iterable[tuple[str, Any]] | Iterable[str]) -> Any:
    """Apply overrides given as ``{"a.b": v}``, ``[("a.b", v)]`` or raw ``["--a.b", "v"]`` tokens.

    Each value is type- and bound-checked as it is set (the error names its field); the cross-field
    rules (``validate()`` of every nested config) run once, after all overrides, so the order of the
    flags never matters (``--model.bfn.data continuous --model.unet.num_outputs 1`` and the reverse
    both work)."""
    if isinstance(overrides, str):
        raise TypeError("apply_overrides: overrides must be a dict, (path, value) pairs or a list of tokens "
                        "(e.g. shlex.split(text)), got one str")
    if isinstance(overrides, dict):
        items = list(overrides.items())
    elif not isinstance(overrides, Iterable):
        raise TypeError(f"apply_overrides: overrides must be a dict, (path, value) pairs or a list of tokens, "
                        f"got {type(overrides).__name__}")
    else:
        overrides = list(overrides)
        items = parse_override_args(overrides) if overrides and isinstance(overrides[0], str) else overrides
        for item in items:
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                raise TypeError(f"apply_overrides: each override must be a (path, value) pair, got {item!r}")
    token = _DEFER.set(True)
    try:
        for key, raw in items:
            cfg = set_path(cfg, key, raw)
    finally:
        _DEFER.reset(token)
    return validate_tree(cfg)
