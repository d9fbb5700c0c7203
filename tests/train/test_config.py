import dataclasses

import pytest

from diffrep.config import (Config, ConfigError, apply_overrides, config_from_dict, config_to_dict, dump_yaml, load_yaml,
                            parse_override_args)
from diffrep.recipes.demo import DemoConfig
from diffrep.train import TrainConfig


def test_unknown_field_is_named_with_suggestion():
    with pytest.raises(ConfigError) as ei:
        config_from_dict(DemoConfig, {"train": {"stpes": 3}})
    assert ei.value.field == "train.stpes" and "did you mean 'steps'" in str(ei.value)
    with pytest.raises(ConfigError, match="model.unet.chanel_mult"):
        apply_overrides(DemoConfig(), ["--model.unet.chanel_mult", "1,2"])


@pytest.mark.parametrize("path,value,match", [
    ("train.steps", "ten", "expected int"),
    ("train.steps", "2.5", "expected int"),
    ("train.ema_warmup", "3", "expected bool"),
    ("train.lr_schedule", "linear", "must be one of"),
    ("train.betas", "0.9", "expected 2 items"),
    ("train.lr", "-1", "must be > 0"),
    ("train.seed", "-1", "must be >= 0"),
    ("train.seed", str(2**64), f"must be < {2**63}"),  # was torch's "Overflow when unpacking long long"
])
def test_wrong_types_and_values_name_the_field(path, value, match):
    with pytest.raises(ConfigError, match=match) as ei:
        apply_overrides(DemoConfig(), {path: value})
    assert ei.value.field.startswith(path)


def test_impossible_shapes_fail_before_training():
    with pytest.raises(ConfigError) as ei:
        apply_overrides(DemoConfig(), ["--model.unet.attention_resolutions", "32"])
    assert ei.value.field == "model.unet.attention_resolutions" and "does not exist" in str(ei.value)
    with pytest.raises(ConfigError, match="data.image_size"):
        apply_overrides(DemoConfig(), ["--data.image_size", "32"])


def test_overrides_parse_by_type():
    cfg = apply_overrides(DemoConfig(), ["--train.lr=1e-4", "--train.steps", "7", "--model.unet.channel_mult", "1,2",
                                         "--train.compile", "--train.betas", "[0.5, 0.9]"])
    assert cfg.train.lr == 1e-4 and isinstance(cfg.train.lr, float)
    assert cfg.train.steps == 7 and cfg.model.unet.channel_mult == (1, 2) and cfg.train.compile is True
    assert cfg.train.betas == (0.5, 0.9)
    assert DemoConfig().train.steps == 300  # defaults untouched
    assert parse_override_args(["--a.b", "1", "--c=x", "--flag"]) == [("a.b", "1"), ("c", "x"), ("flag", "true")]
    with pytest.raises(ValueError, match="expected '--field.path"):
        parse_override_args(["steps", "3"])


def test_yaml_round_trip(tmp_path):
    cfg = apply_overrides(DemoConfig(), {"train.steps": 11, "model.unet.attention_resolutions": [8]})
    dump_yaml(cfg, tmp_path / "c.yaml")
    back = config_from_dict(DemoConfig, load_yaml(tmp_path / "c.yaml"))
    assert back == cfg and config_to_dict(back)["model"]["unet"]["channel_mult"] == [1, 2]
    (tmp_path / "bad.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="mapping"):
        load_yaml(tmp_path / "bad.yaml")


def test_config_subclass_validation_runs_on_direct_construction():
    @dataclasses.dataclass
    class C(Config):
        n: int = 1

        def validate(self):
            if self.n > 3:
                raise ConfigError("n", "too big")

    assert C(n=2).n == 2
    with pytest.raises(ConfigError, match="'n': too big"):
        C(n=4)
    with pytest.raises(ConfigError, match="expected int"):
        C(n="2")
    with pytest.raises(ConfigError, match="batch_size"):
        TrainConfig(batch_size=0)
