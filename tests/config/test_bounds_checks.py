"""Bounds declared on config fields, the shared validators and the deprecated-alias shim."""

from __future__ import annotations

import dataclasses
import sys
import types
import warnings
from typing import Annotated, Optional

import pytest

from diffrep import _checks
from diffrep._deprecation import moved_names
from diffrep.config import Config, ConfigError, Ge, Gt, Le, Lt, apply_overrides, config_from_dict


@dataclasses.dataclass
class Bounded(Config):
    steps: Annotated[int, Ge(1)] = 5
    lr: Annotated[float, Gt(0)] = 1e-3
    p: Optional[Annotated[float, Ge(0), Le(1)]] = None
    dims: tuple[Annotated[int, Ge(1)], ...] = (1, 2)
    frac: Annotated[float, Ge(0), Lt(1)] = 0.5


@pytest.mark.parametrize("bad, field, text", [
    (dict(steps=0), "steps", "must be >= 1, got 0"),
    (dict(lr=0.0), "lr", "must be > 0, got 0.0"),
    (dict(lr=float("nan")), "lr", "must be a finite number"),
    (dict(p=1.5), "p", "must be <= 1, got 1.5"),
    (dict(dims=(2, 0)), "dims[1]", "must be >= 1, got 0"),
    (dict(frac=1.0), "frac", "must be < 1"),
])
def test_bounds_reject_with_the_field_named(bad, field, text):
    with pytest.raises(ConfigError) as err:
        Bounded(**bad)
    assert err.value.field == field and text in str(err.value)


def test_bounds_hold_for_overrides_and_dicts_and_accept_edges():
    cfg = Bounded(steps=1, p=1.0, frac=0.0)
    assert apply_overrides(cfg, ["--steps", "3", "--p", "0.25"]) == Bounded(steps=3, p=0.25, frac=0.0)
    assert apply_overrides(cfg, ["--p", "none"]).p is None
    with pytest.raises(ConfigError, match="'steps': must be >= 1"):
        apply_overrides(cfg, ["--steps", "0"])
    with pytest.raises(ConfigError, match="'lr': must be > 0"):
        config_from_dict(Bounded, {"lr": -1})


def test_shared_validators():
    assert _checks.positive_int(3, "n") == 3
    for bad in (0, -1, True, 2.0, "3"):
        with pytest.raises(ValueError, match="^n must be a positive int"):
            _checks.positive_int(bad, "n")
    assert _checks.non_negative_int(0, "k") == 0
    with pytest.raises(ValueError, match="^k must be a non-negative int"):
        _checks.non_negative_int(-1, "k")
    with pytest.raises(ValueError, match="^x must be a finite number"):
        _checks.finite_float(float("inf"), "x")
    with pytest.raises(ValueError, match=r"^s must be > 0"):
        _checks.positive_float(0, "s")
    assert _checks.probability(1, "p") == 1.0
    with pytest.raises(ValueError, match=r"^p must lie in \(0, 1\]"):
        _checks.probability(0.0, "p", open_low=True)
    with pytest.raises(ValueError, match=r"^mode must be one of \['a', 'b'\]"):
        _checks.one_of("c", ("a", "b"), "mode")


def test_moved_names_warns_and_resolves_lazily():
    old = types.ModuleType("diffrep_test_old")
    old.__getattr__ = moved_names("diffrep_test_old", {"sqrt_alias": "math:sqrt", "pi": "math"})
    sys.modules["diffrep_test_old"] = old
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            from diffrep_test_old import sqrt_alias
            assert sqrt_alias(9.0) == 3.0 and old.pi > 3.14
        assert [w.category for w in seen] == [DeprecationWarning, DeprecationWarning]
        assert "moved to math.sqrt" in str(seen[0].message)
        with pytest.raises(AttributeError, match="has no attribute 'nope'"):
            old.nope
    finally:
        del sys.modules["diffrep_test_old"]


def test_shared_validators_at_their_boundaries():
    # every edge value accepted, every value just past it refused, with the interval named exactly
    assert _checks.positive_int(1, "n") == 1
    assert _checks.positive_float(1e-300, "s") == 1e-300 and _checks.positive_float(0.5, "s") == 0.5
    with pytest.raises(ValueError, match=r"^s must be a finite number"):
        _checks.positive_float(float("nan"), "s")
    for bad in (True, float("nan"), "1.0"):
        with pytest.raises(ValueError, match="^x must be a finite number"):
            _checks.finite_float(bad, "x")
    assert _checks.finite_float(-2, "x") == -2.0
    assert _checks.probability(0, "p") == 0.0 and _checks.probability(0.5, "p", open_low=True, open_high=True) == 0.5
    assert _checks.probability(0.0, "p", open_high=True) == 0.0 and _checks.probability(1.0, "p", open_low=True) == 1.0
    for bad, kw, interval in ((-1e-9, {}, r"\[0, 1\]"), (1 + 1e-9, {}, r"\[0, 1\]"), (1.5, {}, r"\[0, 1\]"),
                              (1.0, {"open_high": True}, r"\[0, 1\)"), (0.0, {"open_low": True}, r"\(0, 1\]"),
                              (1.0, {"open_low": True, "open_high": True}, r"\(0, 1\)")):
        with pytest.raises(ValueError, match=rf"^p must lie in {interval}, got"):
            _checks.probability(bad, "p", **kw)
    with pytest.raises(ValueError, match="^p must be a finite number"):
        _checks.probability(float("inf"), "p")


def test_a_bound_on_a_whole_tuple_applies_to_each_item():
    @dataclasses.dataclass
    class Widths(Config):
        mult: Annotated[tuple[int, ...], Ge(1)] = (1, 2)

    assert Widths(mult=(1, 4)).mult == (1, 4)
    with pytest.raises(ConfigError, match=r"'mult': must be >= 1, got \(2, 0\)"):
        Widths(mult=(2, 0))
