"""``diffrep eval --model DIR --dataset NAME``: a saved model's codes on a procedural dataset."""

import dataclasses
import json

import pytest
import torch
from torch import nn

from diffrep.cli import main
from diffrep.config import Config
from diffrep.nn.pretrained import PretrainedMixin, model_registry, register_model


@dataclasses.dataclass
class PixelProbeConfig(Config):
    latent_dim: int = 4


class PixelProbe(PretrainedMixin, nn.Module):
    """Codes = a fixed linear map of 4x4-pooled pixels (enough for MIG/SAP to see the factors)."""

    config_class = PixelProbeConfig

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.proj = nn.Linear(64, config.latent_dim)

    def encode(self, x):
        return self.proj(nn.functional.adaptive_avg_pool2d(x, 8).mean(dim=1).flatten(1))


if "PixelProbe" not in model_registry():
    register_model(PixelProbe)


def test_eval_model_on_dataset(tmp_path, capsys):
    torch.manual_seed(0)
    PixelProbe(PixelProbeConfig()).save_pretrained(tmp_path / "m")
    out = tmp_path / "r.json"
    rc = main(["eval", "--model", str(tmp_path / "m"), "--dataset", "disks", "--source", "procedural",
               "--num-train", "300", "--num-test", "200", "--metrics", "mig,sap", "--device", "cpu",
               "--out", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert 0.0 <= res["scores"]["mig"] <= 1.0 and 0.0 <= res["scores"]["sap"] <= 1.0
    meta = res["meta"]
    assert meta["model"].endswith("m") and meta["dataset"] == "disks" and meta["num_train"] == 300
    assert "mig" in capsys.readouterr().out


def test_eval_model_needs_dataset(tmp_path, capsys):
    assert main(["eval", "--model", str(tmp_path)]) == 2
    assert "--dataset" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # --codes and --model are exclusive
        main(["eval", "--model", str(tmp_path), "--codes", "x.npz"])


@pytest.mark.parametrize("argv", [["eval", "--model", "m"], ["encode", "m", "--out", "x.npz"]])
def test_item_format_is_checked_at_parsing_naming_the_flag(argv, capsys):
    # the API's check said "item_format must be one of ...", a name the command line does not have
    with pytest.raises(SystemExit) as e:
        main([*argv, "--item-format", "chw"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "argument --item-format: invalid choice: 'chw' (choose from 'pm1', '01', 'uint8', 'hwc01')" in err
    assert "item_format" not in err


def test_the_data_hints_name_the_verbs_source_flag(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("DIFFREP_DATA", raising=False)
    PixelProbe(PixelProbeConfig()).save_pretrained(tmp_path / "m")
    m = str(tmp_path / "m")
    assert main(["eval", "--model", m, "--dataset", "disks", "--source", "file", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "disks is procedural only (no original files are read); use --source procedural" in err
    assert "source='procedural'" not in err
    (tmp_path / "empty").mkdir()
    assert main(["encode", m, "--dataset", "dsprites", "--root", str(tmp_path / "empty"), "--out",
                 str(tmp_path / "c.npz"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert ("pass --root the folder holding them (or --source procedural where a generator exists) "
            "(root set by --root)") in err
    assert "source='procedural'" not in err and "root=" not in err
