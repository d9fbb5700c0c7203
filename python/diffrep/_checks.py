"""Argument validators shared by every layer: one wording for one mistake.

Each raises ``ValueError`` (a wrong value) or ``TypeError`` (a wrong kind of thing) whose message
starts with the argument's name, and returns the checked value so a call can sit in an assignment.
"""

from __future__ import annotations

import math
import numbers

__all__ = ["positive_int", "non_negative_int", "finite_float", "positive_float", "non_negative_float", "probability",
           "one_of", "shape", "device", "training_step", "finite_numbers", "index", "indices", "flag", "path",
           "a_or_an"]


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def positive_int(value, name: str) -> int:
    """``value`` as an int >= 1 (bools are refused: ``True`` is not a count)."""
    if not _is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def non_negative_int(value, name: str) -> int:
    """``value`` as an int >= 0."""
    if not _is_int(value) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return int(value)


def finite_float(value, name: str) -> float:
    """``value`` as a finite float (ints accepted, bools refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def positive_float(value, name: str) -> float:
    """``value`` as a finite float > 0."""
    value = finite_float(value, name)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


def non_negative_float(value, name: str) -> float:
    """``value`` as a finite float >= 0."""
    value = finite_float(value, name)
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return value


def probability(value, name: str, *, open_low: bool = False, open_high: bool = False) -> float:
    """``value`` as a float in [0, 1] (each end excluded on request)."""
    value = finite_float(value, name)
    if value < 0 or value > 1 or (open_low and value == 0) or (open_high and value == 1):
        lo, hi = "(" if open_low else "[", ")" if open_high else "]"
        raise ValueError(f"{name} must lie in {lo}0, 1{hi}, got {value!r}")
    return value


def one_of(value, choices, name: str):
    """``value`` unchanged when it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def shape(value, name: str = "shape") -> tuple[int, ...]:
    """``value`` (an int or a sequence of ints) as a tuple of sizes >= 0."""
    dims = (value,) if _is_int(value) else value
    try:
        dims = tuple(dims)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of non-negative ints, got {value!r}") from None
    if not all(_is_int(d) and d >= 0 for d in dims):
        raise ValueError(f"{name} must be a sequence of non-negative ints, got {value!r}")
    return tuple(int(d) for d in dims)


def device(value, name: str = "device"):
    """``value`` as a ``torch.device`` that exists here (a CUDA device only where one is usable)."""
    import torch

    try:
        dev = torch.device(value)
    except (RuntimeError, TypeError):
        raise ValueError(f"{name} must be a torch device (cpu, cuda, cuda:0, ...), got {value!r}") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (dev.index is not None and dev.index >= count):
            raise ValueError(f"{name} {value!r}: no such CUDA device is usable here ({count} visible)")
    return dev


def training_step(value, name: str = "step"):
    """``value`` as a 0-based training step: None (outside training) or an int >= 0."""
    return None if value is None else non_negative_int(value, name)


def finite_numbers(values, name: str) -> list[float]:
    """``values`` (a non-empty sequence of finite reals, e.g. traversal values) as a list of floats."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) == 0:
        raise ValueError(f"{name} must be a non-empty sequence of finite numbers, got {values!r}")
    return [finite_float(v.item() if hasattr(v, "item") and getattr(v, "ndim", 1) == 0 else v, f"{name}[{i}]")
            for i, v in enumerate(values)]


def index(value, size: int, name: str) -> int:
    """``value`` as an index in [0, size) (e.g. a latent dimension)."""
    if not _is_int(value) or not 0 <= value < size:
        raise ValueError(f"{name} must be an int in [0, {size}), got {value!r}")
    return int(value)


def indices(values, size: int, name: str) -> list[int]:
    """``values`` (a non-empty sequence of ints in [0, size)) as a list."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__") or len(values) == 0:
        raise ValueError(f"{name} must be a non-empty sequence of ints in [0, {size}), got {values!r}")
    return [index(v, size, f"{name}[{i}]") for i, v in enumerate(values)]


def map_style_dataset(value, name: str = "dataset", what: str = ""):
    """``value`` when it is a map-style dataset (``__len__`` and ``__getitem__``; a str or bytes has both but
    is a path given by mistake). ``what`` is appended to the message ("of images", ...)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or not hasattr(value, "__getitem__"):
        raise TypeError(f"{name} must be a map-style dataset{' ' + what if what else ''} (with __len__ and "
                        f"__getitem__), got {type(value).__name__}")
    return value


def flag(value, name: str) -> bool:
    """``value`` as a bool (a string such as "no" would read as True)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def path(value, name: str, *, optional: bool = False):
    """``value`` (a str or os.PathLike) as a ``pathlib.Path``; None stays None when ``optional``."""
    import os
    from pathlib import Path

    if optional and value is None:
        return None
    if not isinstance(value, (str, os.PathLike)) or (isinstance(value, str) and not value):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {value!r}")
    return Path(value)


def a_or_an(name: str) -> str:
    """``name`` with its indefinite article, for the messages that name a class, a type or a recipe family:
    "an InfoDiffusion", "an int", "an encdiff/", "a ParamReL", "a UNet". "an" before A, E, I, O and before a U
    read as a vowel; a U followed by a capital (UNet, UMAP) is read "you", as are uni-/use-/usu- words. A
    leading number is read aloud: "an 8-d code", "an 11-step", "an 18x18", "an 80", "an 18,000", but "a 1-d",
    "a 110", "a 1,100"."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty str, got {name!r}")
    if name[0].isdigit():
        return f"{'an' if _number_starts_with_a_vowel(name) else 'a'} {name}"
    head = name[0].lower()
    if head in "aeio":
        return f"an {name}"
    if head == "u" and not (name[1:2].isupper() or name.lower().startswith(("uni", "use", "usu", "uti"))):
        return f"an {name}"
    return f"a {name}"


def _number_starts_with_a_vowel(text: str) -> bool:
    """Whether the number leading ``text`` (digits, with or without thousands commas) is read with a vowel
    first: its first spoken group (the digits before the first thousands separator) is eight..., eleven or
    eighteen."""
    digits = ""
    for ch in text:
        if ch.isdigit():
            digits += ch
        elif ch != "," or not digits:
            break
    digits = digits.lstrip("0") or "0"
    lead = digits[:len(digits) % 3 or 3]   # the group spoken first: "18" of 18000, "1" of 1100
    return lead.startswith("8") or lead in ("11", "18")
