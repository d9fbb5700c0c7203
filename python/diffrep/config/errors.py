"""The one error a config raises: :class:`ConfigError`, naming the field."""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A configuration value is unknown, of the wrong type or impossible; ``field`` names it."""

    def __init__(self, field: str, message: str):
        for name, v in (("field", field), ("message", message)):
            if not isinstance(v, str):
                raise TypeError(f"ConfigError: {name} must be a str, got {type(v).__name__}")
        self.field = field
        self.message = message
        super().__init__(f"config field '{field}': {message}" if field else message)

    def prefixed(self, prefix: str) -> "ConfigError":
        return ConfigError(f"{prefix}.{self.field}" if self.field else prefix, self.message)
