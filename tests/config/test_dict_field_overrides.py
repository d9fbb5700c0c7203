"""``--FIELD.KEY VALUE`` sets one key of a dict-valued config field (``--dataset_options.size 32``), keeping the
others; it was refused with "is not a config section", and the only way, the whole dict, dropped the recipe's
other keys (``split: train``). Keys are the consumer's to check (diffrep.data.load names an unknown option)."""

from __future__ import annotations

import dataclasses
from typing import Optional

import pytest

from diffrep.config import Config, ConfigError, apply_overrides, set_path
from diffrep.recipes import get_recipe


@dataclasses.dataclass
class _Sub(Config):
    opts: dict = dataclasses.field(default_factory=lambda: {"a": 1})


@dataclasses.dataclass
class _Cfg(Config):
    steps: int = 1
    options: dict = dataclasses.field(default_factory=lambda: {"split": "train", "size": 64})
    maybe: Optional[dict] = None
    sub: _Sub = dataclasses.field(default_factory=_Sub)


def test_one_key_of_a_dict_field_is_set_and_the_others_kept():
    cfg = apply_overrides(_Cfg(), ["--options.size", "32", "--options.binarize=dynamic", "--sub.opts.b", "[1, 2]"])
    assert cfg.options == {"split": "train", "size": 32, "binarize": "dynamic"}
    assert cfg.sub.opts == {"a": 1, "b": [1, 2]}  # in a section; values read as YAML as config files are
    assert _Cfg().options == {"split": "train", "size": 64}  # the original is not changed
    assert set_path(_Cfg(), "maybe.k", "1e-3").maybe == {"k": 0.001}  # an Optional dict that was null
    assert apply_overrides(_Cfg(), {"options.size": 16}).options["size"] == 16  # non-string values (study overrides)


def test_the_whole_dict_still_replaces_it_and_flags_apply_in_order():
    assert apply_overrides(_Cfg(), ["--options", "{size: 8}"]).options == {"size": 8}
    assert apply_overrides(_Cfg(), ["--options", "{size: 8}", "--options.split", "test"]).options == \
        {"size": 8, "split": "test"}


def test_a_deeper_path_in_a_dict_field_says_how_to_set_it():
    with pytest.raises(ConfigError, match=r"'options': is a dict field: set one key with --options.KEY VALUE "
                                          r"or the whole dict with --options '\{KEY: VALUE, \.\.\.\}', got the "
                                          r"deeper path 'options.a.b'"):
        apply_overrides(_Cfg(), ["--options.a.b", "1"])
    with pytest.raises(ConfigError, match=r"'steps': is not a config section, cannot set 'x'"):  # as before
        apply_overrides(_Cfg(), ["--steps.x", "1"])
    with pytest.raises(ConfigError, match="did you mean 'options'"):
        apply_overrides(_Cfg(), ["--optoins.size", "1"])


def test_a_recipes_dataset_options_take_one_key():
    cfg = get_recipe("infodiffusion/celeba64").make_config()
    assert cfg.dataset_options == {"split": "train", "size": 64}
    out = apply_overrides(cfg, ["--dataset_options.size", "32"])
    assert out.dataset_options == {"split": "train", "size": 32}


def test_recipe_help_says_how_to_set_a_key_of_a_dict_field():
    from diffrep.cli.train import recipe_help

    text = " ".join(recipe_help("infodiffusion/celeba64").split())
    assert "one key: --dataset_options.KEY VALUE (the other keys kept)" in text
