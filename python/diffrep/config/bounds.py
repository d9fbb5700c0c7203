"""Bounds declared on config fields: ``steps: Annotated[int, Ge(1)] = 1000``.

:class:`~diffrep.config.Config` enforces them on construction and after every override, with the
same message for the same mistake (``config field 'steps': must be >= 1, got 0``). Cross-field
rules (one weight must not flip another term's sign, ...) stay in ``validate()``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import operator

from .errors import ConfigError

__all__ = ["Bound", "Ge", "Gt", "Le", "Lt"]


@dataclasses.dataclass(frozen=True)
class Bound:
    value: float
    symbol = "?"
    compare = staticmethod(lambda a, b: True)

    def __post_init__(self) -> None:
        value = self.value
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ValueError(f"{type(self).__name__}: value (the bound) must be a finite number, got {value!r}")

    def check(self, value, field: str) -> None:
        if not isinstance(field, str):
            raise TypeError(f"field must be the field's name (a str), got {type(field).__name__}")
        if value is None:
            return
        items = value if isinstance(value, (tuple, list)) else (value,)
        for item in items:
            if isinstance(item, bool) or not isinstance(item, numbers.Real):  # a comparison would raise or mislead
                raise ConfigError(field, f"must be a number {self.symbol} {self.value}, got {value!r}")
            if isinstance(item, float) and math.isnan(item) or not self.compare(item, self.value):
                raise ConfigError(field, f"must be {self.symbol} {self.value}, got {value!r}")


class Ge(Bound):
    """value >= bound (applied to each item of a tuple)."""
    symbol, compare = ">=", staticmethod(operator.ge)


class Gt(Bound):
    """value > bound."""
    symbol, compare = ">", staticmethod(operator.gt)


class Le(Bound):
    """value <= bound."""
    symbol, compare = "<=", staticmethod(operator.le)


class Lt(Bound):
    """value < bound."""
    symbol, compare = "<", staticmethod(operator.lt)
