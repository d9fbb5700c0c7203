"""Regressions from the newcomer / robustness audit of the command line (2026-12-07): every mistake is a
one-line message naming the flag or field and a non-zero exit, never a traceback or a silently wrong run."""

import math

import pytest

import diffrep.cli.info
from diffrep.cli import main
from diffrep.config import ConfigError
from diffrep.train.config import TrainConfig


def _err(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_config_float_fields_refuse_non_finite(value):
    # lr: inf passed the Gt(0) bound and trained to a NaN loss; eps (no bound) took nan
    with pytest.raises(ConfigError, match=r"'lr': must be a finite number"):
        TrainConfig(lr=value)
    with pytest.raises(ConfigError, match=r"'eps': must be a finite number"):
        TrainConfig(eps=value)


def test_train_override_inf_is_a_message(capsys, tmp_path):
    assert main(["train", "demo/toy-ddpm", "--train.lr", "inf", "--out", str(tmp_path / "run")]) == 2
    assert "config field 'train.lr': must be a finite number, got inf" in _err(capsys)
    assert not (tmp_path / "run").exists()


def test_diverged_training_is_a_message_not_a_traceback(capsys, monkeypatch):
    def diverge(args):
        raise FloatingPointError("non-finite loss nan at step 2: the run diverged")

    monkeypatch.setattr(diffrep.cli.info, "run", diverge)
    assert main(["info"]) == 1
    assert _err(capsys).strip() == "diffrep info: error: non-finite loss nan at step 2: the run diverged"
