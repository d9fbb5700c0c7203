"""Input audit of diffrep.config (apply_overrides / set_path / load_yaml / flatten_dict): each test
pins a defect that was found and fixed; the comment says what happened before."""

from __future__ import annotations

import dataclasses
from typing import Optional

import pytest

from diffrep.config import Config, ConfigError, apply_overrides, config_from_dict


@dataclasses.dataclass
class _Sub(Config):
    k: int = 1


@dataclasses.dataclass
class _Cfg(Config):
    lr: float = 1e-3
    on: Optional[_Sub] = dataclasses.field(default_factory=_Sub)
    off: Optional[_Sub] = None
    names: tuple[str, ...] = ("a",)
    sizes: Optional[tuple[int, ...]] = None


def test_override_inside_optional_section():
    # Before: --on.k 3 raised "config field 'on': is not a config section" although 'on' is one
    # (EncDiffConfig.first_stage is Optional[VQAutoencoderConfig], so no first-stage field could be set).
    cfg = apply_overrides(_Cfg(), ["--on.k", "3"])
    assert cfg.on == _Sub(k=3)


def test_override_inside_switched_off_section_names_it():
    with pytest.raises(ConfigError, match=r"'off'.*null.*cannot set 'k'"):
        apply_overrides(_Cfg(), ["--off.k", "3"])
    cfg = apply_overrides(_Cfg(), ["--off", "{k: 4}"])  # the whole section can be switched on
    assert cfg.off == _Sub(k=4)
    with pytest.raises(ConfigError, match="unknown field for _Sub"):
        apply_overrides(_Cfg(), ["--on.kk", "3"])
    assert config_from_dict(_Cfg, {"on": None}).on is None
