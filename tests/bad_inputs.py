"""The input sweep (every public function validates its inputs, docs/architecture.md): one valid
call per public callable, then one argument at a time replaced by a bad value of a kind chosen from the
valid value's type (None, a str, NaN/inf, a wrong dtype, one dimension more or less, an empty or shorter
batch, ...).

A perturbed call passes when it raises ValueError or TypeError (or a subclass such as ConfigError)
whose message names the argument, or when the case lists the perturbation as accepted on purpose and
the call returns. Anything else (AttributeError, IndexError, a torch-internal RuntimeError, an assert,
a ZeroDivisionError, or an unlisted silent return) fails.

Import as ``from bad_inputs import ...`` (``tests/`` is on ``sys.path``, see ``tests/helpers.py``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

MISSING = object()


def _swap_last(shape):
    return shape[:-1] + (shape[-1] + 1,)


def bad_values(valid) -> list[tuple[str, Any]]:
    """(label, value) pairs of bad replacements for the valid value ``valid``."""
    if isinstance(valid, torch.Tensor):
        out = [("None", None), ("str", "x")]
        if valid.is_floating_point():
            nan, inf = valid.clone(), valid.clone()
            if valid.numel():
                nan.view(-1)[0], inf.view(-1)[0] = float("nan"), float("inf")
                out += [("nan", nan), ("inf", inf)]
            out += [("int_dtype", valid.round().long()), ("complex", valid.to(torch.complex64))]
        else:
            out += [("float_dtype", valid.double() + 0.5)]
        out += [("ndim+1", valid.unsqueeze(0))]
        if valid.dim() >= 1:
            out += [("ndim-1", valid.reshape(-1)[:1].reshape(()) if valid.dim() == 1 else valid[0]),
                    ("empty", valid[:0])]
        if valid.dim() >= 1 and valid.shape[0] >= 2:
            out += [("batch-1", valid[:-1])]
        return out
    if isinstance(valid, np.ndarray):
        return [(label, v.numpy() if isinstance(v, torch.Tensor) else v)
                for label, v in bad_values(torch.from_numpy(valid)) if label != "complex"]
    if isinstance(valid, bool):
        return [("None", None), ("str", "no"), ("int", 2)]
    if isinstance(valid, int):
        return [("None", None), ("str", "x"), ("float", 1.5), ("bool", True), ("negative", -1), ("zero", 0)]
    if isinstance(valid, float):
        return [("None", None), ("str", "x"), ("nan", math.nan), ("inf", math.inf), ("negative", -1.0)]
    if isinstance(valid, str):
        return [("None", None), ("int", 3), ("unknown", "bogus")]
    if isinstance(valid, torch.device):
        return [("bad_device", "tpu"), ("absent_cuda", f"cuda:{torch.cuda.device_count()}")]
    return [("None", None), ("str", "x")]


@dataclass
class Case:
    """One callable's valid call. ``make()`` returns (fn, kwargs): a fresh object per call, so a bad value
    cannot leak from one perturbation into the next. ``perturb``: the argument names to sweep (default
    all); ``skip``: names or "name:label" rows left out (the value is a documented default, e.g. None);
    ``extra``: name -> additional (label, value) pairs; ``accepted``: "name:label" (or "*:label")
    perturbations that work on purpose (documented conversions); ``names``: name -> words the message
    may use instead of the argument's name; ``check``: validates a result; ``errors``: further
    exception types that count as a named refusal (e.g. FileNotFoundError for a path)."""

    name: str
    make: Callable[[], tuple[Callable, dict]]
    perturb: tuple[str, ...] | None = None
    skip: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)
    accepted: tuple[str, ...] = ()
    names: dict = field(default_factory=dict)
    check: Callable | None = None
    errors: tuple = ()

    def accepts(self, arg: str, label: str) -> bool:
        return f"{arg}:{label}" in self.accepted or f"*:{label}" in self.accepted


def _same(a, b) -> bool:
    """Whether a "bad" value is the valid one itself (-1 where the valid call passes -1)."""
    return type(a) is type(b) and isinstance(a, (int, float, str)) and a == b


def expand(cases: list[Case]):
    """(case, argument, label, value) rows for pytest.mark.parametrize, with ids case:argument:label."""
    rows, ids = [], []
    for case in cases:
        fn, kwargs = case.make()
        for arg in case.perturb or tuple(kwargs):
            if arg in case.skip:
                continue
            for label, value in bad_values(kwargs[arg]) + list(case.extra.get(arg, ())):
                if f"{arg}:{label}" in case.skip or _same(value, kwargs[arg]):
                    continue
                rows.append((case, arg, label))
                ids.append(f"{case.name}:{arg}:{label}")
    return rows, ids


def value_for(case: Case, arg: str, label: str, kwargs: dict):
    for lab, value in bad_values(kwargs[arg]) + list(case.extra.get(arg, ())):
        if lab == label:
            return value
    raise KeyError(label)


def run_case(case: Case, arg: str, label: str):
    """Call ``case`` with ``arg`` replaced by the bad value ``label``; assert the sweep's rule."""
    fn, kwargs = case.make()
    kwargs = dict(kwargs)
    kwargs[arg] = value_for(case, arg, label, kwargs)
    words = (arg,) + tuple(case.names.get(arg, ()))
    try:
        result = fn(**kwargs)
    except (ValueError, TypeError) + tuple(case.errors) as e:
        msg = str(e)
        assert any(re.search(rf"(?<!\w){re.escape(w)}(?!\w)", msg) for w in words), (
            f"{case.name}({arg}={label}): message names none of {words}: {msg!r}")
        return None
    assert case.accepts(arg, label), f"{case.name}({arg}={label}) returned {type(result).__name__} silently"
    if case.check is not None:
        case.check(result)
    return result


def valid_call(case: Case):
    fn, kwargs = case.make()
    result = fn(**kwargs)
    if case.check is not None:
        case.check(result)
    return result


def sweep_tests(cases: list[Case]):
    """The two tests of a sweep file, ``test_valid_call, test_bad_input = sweep_tests(CASES)``: one valid
    call per case, and one row per (case, argument, bad value)."""
    import pytest

    rows, ids = expand(cases)

    @pytest.mark.parametrize("case", cases, ids=[c.name for c in cases])
    def test_valid_call(case):
        valid_call(case)

    @pytest.mark.parametrize("case, arg, label", rows, ids=ids)
    def test_bad_input(case, arg, label):
        run_case(case, arg, label)

    return test_valid_call, test_bad_input
