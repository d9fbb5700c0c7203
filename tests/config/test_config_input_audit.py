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


def test_string_items_of_a_sequence_stay_strings():
    # Before: --names no,1e3 on a tuple[str, ...] field (TrainConfig.eval_metrics) raised
    # "names[0]: expected str, got bool False": items were read as YAML 1.1 bools / floats.
    assert apply_overrides(_Cfg(), ["--names", "no,1e3,on"]).names == ("no", "1e3", "on")
    assert apply_overrides(_Cfg(), ["--names", "[a, 'b c']"]).names == ("a", "b c")


def test_comma_shorthand_for_an_optional_sequence():
    # Before: --sizes 1,2 on an Optional[tuple[int, ...]] raised "expected a sequence, got '1,2'"
    # (the 1,2 shorthand worked only for non-Optional sequences).
    assert apply_overrides(_Cfg(), ["--sizes", "1,2"]).sizes == (1, 2)
    assert apply_overrides(_Cfg(), ["--sizes", "none"]).sizes is None
    with pytest.raises(ConfigError, match=r"'sizes\[0\]': expected int, got float 1.5"):
        apply_overrides(_Cfg(), ["--sizes", "1.5"])


def test_load_yaml_reads_exponent_floats(tmp_path):
    # Before: "lr: 1e-4" (no dot) loaded as the string '1e-4' (YAML 1.1), which the float field refused,
    # although --lr 1e-4 on the command line was accepted.
    from diffrep.config import dump_yaml, load_yaml

    p = tmp_path / "preset.yaml"
    p.write_text("lr: 1e-4\nnames: [1e3, x]\n", encoding="utf-8")
    data = load_yaml(p)
    assert data["lr"] == pytest.approx(1e-4) and isinstance(data["lr"], float)
    assert config_from_dict(_Cfg, {"lr": data["lr"]}).lr == pytest.approx(1e-4)
    # a string that now reads as a float is quoted on dump, so a saved config round-trips
    cfg = _Cfg(names=("1e-3", "no"))
    dump_yaml(cfg, tmp_path / "c.yaml")
    assert config_from_dict(_Cfg, load_yaml(tmp_path / "c.yaml")) == cfg


def test_load_yaml_refuses_a_duplicate_key(tmp_path):
    # Before: a key given twice kept the last value silently (the first "lr:" of a preset was ignored).
    import yaml

    from diffrep.config import load_yaml

    p = tmp_path / "dup.yaml"
    p.write_text("lr: 0.1\ntrain:\n  steps: 1\nlr: 0.2\n", encoding="utf-8")
    with pytest.raises(yaml.YAMLError, match=r"duplicate key 'lr' \(first on line 1\)"):
        load_yaml(p)
    p.write_text("train: {steps: 1, steps: 2}\n", encoding="utf-8")
    with pytest.raises(yaml.YAMLError, match="duplicate key 'steps'"):
        load_yaml(p)


def test_api_argument_types_are_named():
    # Before: flatten_dict([1]) / set_path(cfg, 3, ..) / parse_override_args(["--a", 3]) raised bare
    # AttributeErrors ('list' object has no attribute 'items', ...); apply_overrides(cfg, "--lr 1")
    # iterated the string's characters ("override '-': expected '--field.path value'"), and a pair
    # of three items "too many values to unpack".
    from diffrep.config import flatten_dict, parse_override_args, set_path

    with pytest.raises(TypeError, match="flatten_dict: d must be a dict, got list"):
        flatten_dict([1])
    with pytest.raises(TypeError, match="set_path: path must be a dotted field name"):
        set_path(_Cfg(), 3, "1")
    with pytest.raises(TypeError, match="every token must be a str, got int 3"):
        parse_override_args(["--lr", 3])
    with pytest.raises(TypeError, match="got one str"):
        apply_overrides(_Cfg(), "--lr 1")
    with pytest.raises(TypeError, match="got int"):
        apply_overrides(_Cfg(), 5)
    with pytest.raises(TypeError, match=r"\(path, value\) pair, got \('lr', 1, 2\)"):
        apply_overrides(_Cfg(), [("lr", 1, 2)])
    assert apply_overrides(_Cfg(), [("lr", 2)]).lr == 2.0
    assert flatten_dict({"a": {"b": None, "c": [1, 2]}}) == {"a.b": "none", "a.c": "[1, 2]"}


def test_literal_choices_match_by_type():
    # Before: Literal[1, 2] accepted True (True == 1) and 2.0 (stored as the float 2.0, dumped as 2.0);
    # Literal[0, 1] accepted False and 0.0.
    from diffrep.nn.unet import UNetConfig

    with pytest.raises(ConfigError, match=r"'num_outputs': must be one of \[1, 2\], got True"):
        UNetConfig(num_outputs=True)
    with pytest.raises(ConfigError, match=r"'downsample_padding': must be one of \[0, 1\], got 0.0"):
        UNetConfig(downsample_padding=0.0)
    with pytest.raises(ConfigError, match="'num_outputs'"):
        apply_overrides(UNetConfig(), ["--num_outputs", "2.0"])
    assert apply_overrides(UNetConfig(), ["--num_outputs", "2"]).num_outputs == 2


def test_float_field_given_a_huge_int():
    # Before: --lr 1000...0 (401 digits) raised a bare OverflowError ("int too large to convert to float").
    with pytest.raises(ConfigError, match=r"'lr': must be a finite number, got 10000000000000000000\.\.\."):
        apply_overrides(_Cfg(), ["--lr", "1" + "0" * 400])
    with pytest.raises(ConfigError, match="'lr': must be a finite number, got inf"):
        _Cfg(lr=float("inf"))
