"""The command line answers with a message, never a traceback (issue 23), and tells the user what it reads:
--version, train RECIPE --help (every config field, typed, with defaults), --print-config with types,
info's versions / optional packages / environment, eval --format, --weights auto, --threads."""

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from diffrep.cli import main
from diffrep.config import Config, config_to_dict
from diffrep.config.describe import annotated_yaml, describe_fields, field_docs, type_label
from diffrep.nn.pretrained import PretrainedMixin, model_registry, register_model

SRC = Path(__file__).resolve().parents[2] / "python" / "diffrep"
NO_CUDA = not torch.cuda.is_available()


@dataclasses.dataclass
class DayProbeConfig(Config):
    latent_dim: int = 2


class DayProbe(PretrainedMixin, nn.Module):
    """Codes = the mean of each image half; samples = a constant grey image."""

    config_class = DayProbeConfig

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.w = nn.Parameter(torch.ones(1))

    def encode(self, x):
        return torch.stack([x[..., :8].mean((1, 2, 3)), x[..., 8:].mean((1, 2, 3))], 1) * self.w

    def sample(self, n, *, generator=None):
        return torch.zeros(n, 1, 4, 4) * self.w


if "DayProbe" not in model_registry():
    register_model(DayProbe)


def _err(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    from diffrep import __version__

    assert capsys.readouterr().out.strip() == f"diffrep {__version__}"


def test_malformed_yaml_config_names_the_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  steps: [1\n")
    assert main(["train", "demo/toy-ddpm", "--config", str(bad), "--print-config"]) == 2
    err = _err(capsys)
    assert f"--config {bad}: not valid YAML at line 3" in err
    bad.write_bytes(b"\xff\xfe\x00binary")
    assert main(["train", "demo/toy-ddpm", "--config", str(bad), "--print-config"]) == 2
    assert "not a text (UTF-8) file" in _err(capsys)
    assert main(["train", "demo/toy-ddpm", "--config", str(tmp_path / "none.yaml"), "--print-config"]) == 2
    assert "none.yaml" in _err(capsys)


def test_eval_codes_that_are_not_an_npz(tmp_path, capsys):
    good = tmp_path / "good.npz"
    np.savez(good, codes=np.random.randn(60, 2), factors=np.random.randint(0, 2, (60, 2)))
    cases = {"text.npz": b"not an archive\n", "trunc.npz": good.read_bytes()[:200]}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    np.save(tmp_path / "one.npy", np.zeros(3))
    for name, match in (("text.npz", "not an .npz archive"), ("trunc.npz", "truncated"),
                        ("one.npy", "single .npy array"), ("missing.npz", "no such file")):
        assert main(["eval", "--codes", str(tmp_path / name), "--metrics", "mig"]) == 2, name
        err = _err(capsys)
        assert f"--codes {tmp_path / name}" in err and match in err, (name, err)


def test_eval_too_few_samples_warns_with_the_numbers_and_formats(tmp_path, capsys):
    rs = np.random.RandomState(0)
    f = rs.randint(0, 3, (45, 2))
    np.savez(tmp_path / "c.npz", codes=f + 0.01 * rs.randn(45, 2), factors=f)
    out = tmp_path / "new" / "deeper" / "r.json"  # the folder does not exist: created
    assert main(["eval", "--codes", str(tmp_path / "c.npz"), "--metrics", "mig,sap", "--format", "csv",
                 "--out", str(out)]) == 0
    captured = capsys.readouterr()
    # 45 rows, 3 values: MIG needs 100 x 3 = 300; SAP 10 x 3 = 30 rows in the smaller split (30 train, 15 test:
    # disentanglement_lib's ceil(N p) with p = 2/3 exactly, docs/metrics.md)
    assert "mig: 45 rows, fewer than the 300" in captured.err
    assert "sap: 15 rows in the smaller split (30 train, 15 test), fewer than the 30" in captured.err
    rows = dict(line.split(",") for line in captured.out.strip().splitlines()[1:])
    res = json.loads(out.read_text())
    assert float(rows["mig"]) == res["scores"]["mig"] and float(rows["sap"]) == res["scores"]["sap"]
    assert any("too few samples: mig" in f for f in res["meta"]["flags"])
    assert main(["eval", "--codes", str(tmp_path / "c.npz"), "--metrics", "mig", "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("| score | value |") and f"| mig | {res['scores']['mig']:.4g} |" in md
    assert main(["eval", "--codes", str(tmp_path / "c.npz"), "--metrics", "mig", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["scores"]["mig"] == res["scores"]["mig"]


def test_eval_out_folder_problem_fails_before_computing(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    np.savez(tmp_path / "c.npz", codes=np.zeros((3, 1)), factors=np.zeros((3, 1), int))
    assert main(["eval", "--codes", str(tmp_path / "c.npz"), "--out", str(tmp_path / "file" / "r.json")]) == 2
    captured = capsys.readouterr()
    assert "cannot create its folder" in captured.err and captured.out == ""  # nothing computed or printed


def test_result_renders_in_a_notebook():
    from diffrep.metrics.results import Result

    r = Result({"mig": 0.25, "sap": float("nan")}, "mig", "robust", flags=["few rows"])
    md = r._repr_markdown_()
    assert "| mig | 0.25 |" in md and "| sap | nan |" in md and "- few rows" in md
    assert r.to_csv() == "score,value\nmig,0.25\nsap,\n"


@pytest.mark.parametrize("flag", ["--batch", "--steps"])
def test_demo_zero_sizes(flag, capsys):
    assert main(["demo", flag, "0"]) == 2
    assert f"{flag} must be >= 1, got 0" in _err(capsys)


@pytest.mark.skipif(not NO_CUDA, reason="needs a machine without a usable GPU")
def test_device_cuda_without_a_gpu_is_a_message(tmp_path, capsys):
    DayProbe(DayProbeConfig()).save_pretrained(tmp_path / "m")
    assert main(["sample", str(tmp_path / "m"), "--device", "cuda", "--out", str(tmp_path / "s.png")]) == 2
    assert "--device cuda: no CUDA device is usable here" in _err(capsys)
    assert main(["eval", "--model", str(tmp_path / "m"), "--dataset", "disks", "--device", "cuda"]) == 2
    assert "--device cuda: no CUDA device" in _err(capsys)
    assert main(["train", "demo/toy-ddpm", "--out", str(tmp_path / "r"), "--train.device", "cuda",
                 "--train.steps", "1"]) == 2
    assert "train.device=cuda: no CUDA device is usable here" in _err(capsys)
    assert main(["quickstart", "--device", "cuda", "--out", str(tmp_path / "q")]) == 2
    assert "--device cuda: no CUDA device" in _err(capsys)
    assert not (tmp_path / "q").exists() and not (tmp_path / "s.png").exists()


def test_sample_weights_auto_falls_back_with_a_message_and_creates_the_folder(tmp_path, capsys):
    DayProbe(DayProbeConfig()).save_pretrained(tmp_path / "m")
    png = tmp_path / "a" / "b" / "s.png"
    assert main(["sample", str(tmp_path / "m"), "--n", "4", "--out", str(png)]) == 0
    err = _err(capsys)
    assert "has no EMA weights; using the raw weights" in err and "(model weights)" in err
    from PIL import Image

    assert Image.open(png).size == (2 * 4 * 32 + 2 * 3 * 32,) * 2  # 4 px images upscaled 32x to 128 px, 2 x 2 grid
    assert main(["sample", str(tmp_path / "m"), "--weights", "ema", "--out", str(png), "--overwrite"]) == 2
    assert "has no ema.safetensors; use --weights model" in _err(capsys)
    assert main(["sample", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in _err(capsys)


def test_encode_names_itself_in_the_weights_note(tmp_path, capsys):
    # diffrep encode shares eval's loader; its note said "diffrep eval: ... has no EMA weights"
    DayProbe(DayProbeConfig()).save_pretrained(tmp_path / "m")
    out = tmp_path / "codes.npz"
    assert main(["encode", str(tmp_path / "m"), "--dataset", "dsprites", "--num-train", "8", "--num-test", "4",
                 "--out", str(out)]) == 0
    err = _err(capsys)
    assert f"diffrep encode: {tmp_path / 'm'} has no EMA weights; using the raw weights" in err
    assert "diffrep eval" not in err
    with np.load(out) as f:
        assert f["codes"].shape == (8, 2) and f["codes_test"].shape == (4, 2)


def test_threads_flag(tmp_path, capsys):
    DayProbe(DayProbeConfig()).save_pretrained(tmp_path / "m")
    before = torch.get_num_threads()
    try:
        assert main(["sample", str(tmp_path / "m"), "--threads", "1", "--n", "1", "--out", str(tmp_path / "s.png")]) == 0
        assert torch.get_num_threads() == 1
        assert main(["sample", str(tmp_path / "m"), "--threads", "-1", "--out", str(tmp_path / "s.png")]) == 2
        assert "--threads must be an integer >= 0" in _err(capsys)
    finally:
        torch.set_num_threads(before)


def test_train_help_lists_every_field_of_every_recipe(capsys):
    from diffrep.cli.train import recipe_help
    from diffrep.recipes import list_recipes

    for r in list_recipes():
        text = recipe_help(r.name)
        for path, label, value, doc in describe_fields(r.make_config()):
            assert f"  --{path}  ({label}; default " in text, (r.name, path)
    assert main(["train", "demo/toy-ddpm", "--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: diffrep train" in out
    assert "--train.steps  (int >= 1; default " in out and "optimiser steps of the whole run" in out
    assert re.search(r"--train\.lr_schedule  \(\{constant, cosine\}; default constant\)", out)


def test_every_train_config_field_has_a_description():
    from diffrep.train import TrainConfig

    docs = field_docs(TrainConfig)
    assert [k for k, v in docs.items() if not v] == []


def test_print_config_has_types_and_loads_back(tmp_path, capsys):
    from diffrep.recipes import get_recipe

    assert main(["train", "demo/toy-ddpm", "--train.lr", "0.01", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "  lr: 0.01  # float > 0: peak AdamW learning rate" in out
    assert "  betas: [0.9, 0.999]  # tuple[float >= 0, < 1, float >= 0, < 1]" in out
    cfg = get_recipe("demo/toy-ddpm").make_config()
    assert yaml.safe_load(annotated_yaml(cfg)) == config_to_dict(cfg)


def test_describe_reads_metadata_comments_and_attribute_docstrings():
    from typing import Annotated, Literal, Optional

    from diffrep.config import Ge, Lt

    @dataclasses.dataclass
    class C(Config):
        """``c`` is named here. Another sentence."""

        a: Annotated[int, Ge(1)] = 1  # from a comment
        b: Literal["x", "y"] = "x"
        """From an attribute docstring. Not this."""
        c: Optional[float] = None
        d: Annotated[float, Ge(0), Lt(1)] = dataclasses.field(default=0.5, metadata={"doc": "from metadata"})

    assert field_docs(C) == {"a": "from a comment", "b": "From an attribute docstring.",
                             "c": "``c`` is named here.", "d": "from metadata"}
    hints = {f: t for f, t in C.__annotations__.items()}
    assert type_label(eval(hints["a"]) if isinstance(hints["a"], str) else hints["a"]) == "int >= 1"
    assert [r[1] for r in describe_fields(C())] == ["int >= 1", "{x, y}", "float | null", "float >= 0, < 1"]


def test_info_lists_versions_optional_packages_and_every_env_var_read(capsys):
    from diffrep.cli.info import ENV_VARS

    assert main(["info", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["libraries"]) == {"numpy", "scipy", "scikit-learn"}
    assert report["libraries"]["numpy"] == np.__version__
    assert report["optional"]["tqdm"]["found"] in (True, False) and "tensorboard" in report["optional"]
    listed = {name for name, _ in ENV_VARS}
    read = set()
    for f in SRC.rglob("*.py"):
        text = f.read_text(encoding="utf-8")
        read |= set(re.findall(r"environ(?:\.get|\.setdefault)?[\[(]\s*\"([A-Z_]+)\"", text))
        read |= set(re.findall(r"_ENV\s*=\s*\"(DIFFREP_[A-Z_]+)\"", text))
        read |= set(re.findall(r"_env_int\(\"([A-Z_]+)\"", text))
    assert read and read <= listed, sorted(read - listed)
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    assert "environment variables diffrep reads:" in text and "DIFFREP_DATA" in text and "scikit-learn" in text


def test_report_to_a_missing_package_is_refused_before_anything_is_written(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    assert main(["train", "demo/toy-ddpm", "--out", str(tmp_path / "r"), "--report-to", "wandb"]) == 2
    assert "needs the 'wandb' package (pip install wandb)" in _err(capsys)
    assert not (tmp_path / "r").exists()
    assert main(["train", "demo/toy-ddpm", "--report-to", "mlflow"]) == 2
    assert "--report-to: unknown ['mlflow']" in _err(capsys)


@pytest.mark.parametrize("argv, prog, extra", [
    (["encdiff", "sample", "M", "--model", "x"], "diffrep encdiff sample", "--model x"),
    (["paramrel", "eval", "M", "--out", "y.png"], "diffrep paramrel eval", "--out y.png"),  # eval writes --json only
    (["train", "--list", "--zzz"], "diffrep train", "--zzz"),
    (["--bogus"], "diffrep", "--bogus"),
])
def test_an_unknown_flag_is_reported_by_the_verb_it_was_given_to(argv, prog, extra, capsys):
    """argparse leaves unrecognised arguments to the top-level parser, whose usage line names no verb;
    the message and usage come from the deepest verb chosen."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"{prog}: error: unrecognized arguments: {extra}" in err
    assert f"usage: {prog} " in err


TRAIN_FLAGS = "--config, --out, --resume, --overwrite, --print-config, --threads, --report-to, --resume-inexact"


@pytest.mark.parametrize("argv, nearest", [
    (["--no-such-flag"], None),  # close to nothing
    (["--outt", "runs/x"], "--out"),  # one of train's own flags, mistyped
    (["--print_config"], "--print-config"),  # the flag with the field's underscore
    (["--stepz", "3"], "--train.steps"),  # a field's own name without its section
])
def test_an_unknown_flag_after_a_recipe_names_both_kinds_and_the_nearest(argv, nearest, tmp_path, monkeypatch,
                                                                         capsys):
    # after the recipe, 'diffrep train' reads its own flags and --section.field overrides: the refusal said only
    # "unknown field for DemoConfig", as if the flag had to be a config field
    monkeypatch.chdir(tmp_path)
    assert main(["train", "demo/toy-ddpm", *argv]) == 2
    err = capsys.readouterr().err
    flag = argv[0][2:]
    hint = f"; did you mean {nearest}?" if nearest else ""
    assert err == (f"diffrep train: error: config field '{flag}': unknown field for DemoConfig (known: model, data, "
                   f"train), and --{flag} is not a flag of 'diffrep train' either ({TRAIN_FLAGS}; see 'diffrep train "
                   f"--help', and 'diffrep train demo/toy-ddpm --help' for the fields){hint}\n")
    assert list(tmp_path.iterdir()) == []  # refused before the run folder is made


def test_the_same_refusal_from_a_method_group_names_the_group_verb(tmp_path, monkeypatch, capsys):
    # 'diffrep multibeta train' ran a second main(), whose errors began "diffrep train:" while the group's usage
    # errors begin "diffrep multibeta train:"
    monkeypatch.chdir(tmp_path)
    assert main(["multibeta", "train", "multibeta/dsprites-cpu", "--outt", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("diffrep multibeta train: error: config field 'outt': unknown field for ")
    assert err.rstrip().endswith("for the fields); did you mean --out?")
    assert list(tmp_path.iterdir()) == []


def test_yaml_values_read_alike_from_files_options_and_print_config():
    """``--option KEY=VALUE`` reads values as config files do (YAML 1.2 floats: ``1e-3`` is a number,
    where ``yaml.safe_load`` gives the string "1e-3"), and every recipe's annotated config reads back
    through the same loader."""
    from diffrep.cli._common import parse_options
    from diffrep.config import parse_yaml
    from diffrep.recipes import list_recipes

    assert yaml.safe_load("1e-3") == "1e-3"  # the YAML 1.1 reading this guards against
    assert parse_options(["sigma=1e-3", "size=64", "name=abc", "flag=true"]) == {
        "sigma": 0.001, "size": 64, "name": "abc", "flag": True}
    with pytest.raises(ValueError, match="--option must be KEY=VALUE"):
        parse_options(["sigma"])
    with pytest.raises(Exception, match="duplicate key 'a'"):
        parse_yaml("{a: 1, a: 2}")
    with pytest.raises(TypeError, match="text must be a str"):
        parse_yaml(3)
    for recipe in list_recipes():
        cfg = recipe.make_config()
        assert parse_yaml(annotated_yaml(cfg)) == config_to_dict(cfg), recipe.name


def test_a_folder_without_weights_gets_one_message_not_the_ema_note_first(tmp_path, capsys):
    # the note "has no EMA weights; using the raw weights" came before "weights file not found" (2026-12-08)
    from diffrep.nn.pretrained import resolve_weights

    (tmp_path / "config.json").write_text("{}")
    assert resolve_weights(tmp_path, "auto", "diffrep eval") == "model"
    assert capsys.readouterr().err == ""
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert resolve_weights(tmp_path, "auto", "diffrep eval") == "model"
    assert capsys.readouterr().err == f"diffrep eval: {tmp_path} has no EMA weights; using the raw weights\n"
