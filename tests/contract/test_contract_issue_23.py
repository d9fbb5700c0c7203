"""Contract of issue 23 (the researcher's day): the CLI verbs and flags it names, the trainer features
(gradient accumulation, fp16 + GradScaler, periodic evaluation, loggers, banner / resume line), the codes
workflow (``diffrep encode`` -> ``eval --codes``), ``eval --format``, ``_repr_markdown_``, ``aggregate``,
the ``--weights`` convention, figures, messages, ``info``, the diffusers import and the README examples.

Deeper value tests live beside the code: tests/train/test_cli_messages.py (every message),
tests/train/test_trainer_features.py (accumulation, fp16 resume bit-exact, banner, inexact resume,
TensorBoard / W&B), tests/train/test_encode_aggregate.py, tests/viz/test_figures.py and
tests/nn/test_diffusers_unet.py (the import against a functional forward of diffusers' definition)."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import math
import re
import typing
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from diffrep.cli import build_parser, main
from diffrep.config import Config
from diffrep.nn.pretrained import PretrainedMixin, model_registry, register_model

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------------------
# a tiny model the model verbs can load: codes = the mean of each image half


@dataclasses.dataclass
class Issue23ProbeConfig(Config):
    latent_dim: int = 2


class Issue23Probe(PretrainedMixin, nn.Module):
    config_class = Issue23ProbeConfig

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.w = nn.Parameter(torch.ones(1))

    def encode(self, x):
        h = x.shape[-1] // 2
        return torch.stack([x[..., :h].mean((1, 2, 3)), x[..., h:].mean((1, 2, 3))], 1) * self.w

    def sample(self, n, *, generator=None):
        return torch.zeros(n, 1, 4, 4) * self.w


if "Issue23Probe" not in model_registry():
    register_model(Issue23Probe)


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def _subparser(path: tuple[str, ...]) -> argparse.ArgumentParser:
    p = build_parser()
    for name in path:
        sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
        p = sub.choices[name]
    return p


def _option(path: tuple[str, ...], flag: str) -> argparse.Action:
    p = _subparser(path)
    found = [a for a in p._actions if flag in a.option_strings]
    assert found, f"diffrep {' '.join(path)} has no {flag}"
    return found[0]


# ------------------------------------------------------------------------------------------------
# CLI verbs and flags


@pytest.mark.parametrize("path,flag", [
    (("train",), "--threads"), (("train",), "--report-to"), (("train",), "--resume-inexact"),
    (("train",), "--print-config"), (("train",), "--config"), (("train",), "--resume"),
    (("sample",), "--threads"), (("eval",), "--threads"), (("eval",), "--format"), (("eval",), "--codes"),
    (("encode",), "--dataset"), (("encode",), "--out"), (("aggregate",), "--format"), (("info",), "--json"),
    (("demo",), "--batch"), (("demo",), "--steps"),
])
def test_named_flags_exist(path, flag):
    _option(path, flag)


def test_version_flag(capsys):
    from diffrep import __version__

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"diffrep {__version__}"


def test_eval_and_aggregate_formats_and_positional_runs():
    assert {"md", "csv", "json"} <= set(_option(("eval",), "--format").choices)
    assert {"md", "csv", "json"} <= set(_option(("aggregate",), "--format").choices)
    runs = next(a for a in _subparser(("aggregate",))._actions if a.dest == "runs")
    assert runs.nargs == "+"  # diffrep aggregate RUN...
    model = next(a for a in _subparser(("encode",))._actions if a.dest == "model")
    assert not model.option_strings  # diffrep encode MODEL ...


def test_threads_default_is_quickstarts():
    from diffrep.cli._common import DEFAULT_THREADS

    quick = _option(("quickstart",), "--threads").default
    assert DEFAULT_THREADS == quick == 1
    assert _option(("sample",), "--threads").default == quick and _option(("eval",), "--threads").default == quick
    # train parses None and applies DEFAULT_THREADS (so a resumed run's own --threads is not overridden)
    assert _option(("train",), "--threads").default is None


MODEL_VERBS = [("sample",), ("eval",), ("encode",), ("bfn", "sample")] + \
    [("paramrel", v) for v in ("sample", "reconstruct", "traverse", "time-varying", "interpolate", "eval")] + \
    [("sami", v) for v in ("sample", "analyze")] + \
    [("multibeta", v) for v in ("encode", "decode", "denoise", "sweep", "traverse", "edit", "sample", "curve", "eval")] + \
    [("encdiff", v) for v in ("encode", "sample", "interchange", "attention", "anchors", "eval")]


@pytest.mark.parametrize("path", MODEL_VERBS, ids=[" ".join(p) for p in MODEL_VERBS])
def test_one_weights_convention_across_model_verbs(path):
    """One --weights (EMA when present, else the raw weights with a message) across sample/eval/method verbs
    (regression: multibeta and encdiff verbs took --weights model|ema, default model)."""
    w = _option(path, "--weights")
    assert tuple(w.choices) == ("auto", "ema", "model") and w.default == "auto"


def test_weights_auto_falls_back_with_a_message_and_model_verbs_take_run_folders(tmp_path, capsys):
    from diffrep.cli._common import resolve_model_dir, resolve_weights

    Issue23Probe(Issue23ProbeConfig()).save_pretrained(tmp_path / "run" / "final")
    assert resolve_model_dir(tmp_path / "run") == tmp_path / "run" / "final"
    assert resolve_weights(tmp_path / "run" / "final", "auto", "verb") == "model"
    assert "has no EMA weights; using the raw weights" in _err(capsys)
    Issue23Probe(Issue23ProbeConfig()).save_pretrained(tmp_path / "e", ema_state={"w": torch.full((1,), 2.0)})
    assert resolve_weights(tmp_path / "e", "auto") == "ema"
    with pytest.raises(FileNotFoundError, match="no ema.safetensors"):
        resolve_weights(tmp_path / "run" / "final", "ema")


# ------------------------------------------------------------------------------------------------
# trainer


def test_train_config_fields_of_the_issue():
    from diffrep.train import TrainConfig

    hints = typing.get_type_hints(TrainConfig, include_extras=True)
    c = TrainConfig()
    assert c.grad_accum_steps == 1
    assert {"fp16", "bf16"} <= set(typing.get_args(hints["mixed_precision"]))
    assert (c.tensorboard, c.wandb, c.wandb_mode) == (False, False, "offline")  # JSONL stays the default record
    assert c.eval_every == 0 and c.eval_metrics == ("fast",)
    with pytest.raises(ValueError, match="grad_accum_steps"):
        TrainConfig(batch_size=8, grad_accum_steps=3)


class _MLP(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
        self.sizes = []

    def loss(self, batch, *, step, generator=None):
        x, y = batch
        self.sizes.append(len(x))
        return {"loss": (self.net(x).float().squeeze(1) - y).pow(2).mean()}


def _tc(steps, **kw):
    from diffrep.train import TrainConfig

    return TrainConfig(**{**dict(steps=steps, batch_size=8, lr=1e-2, ema_decay=0.0, log_every=1, ckpt_every=0,
                                 device="cpu", seed=0, grad_clip=0.0), **kw})


def _data():
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    return TensorDataset(x, x.sum(1).sin())


def _flat(m):
    return torch.cat([p.detach().flatten() for p in m.parameters()])


def test_accumulation_equals_the_full_batch_and_resume_names_its_step(tmp_path, capsys):
    from diffrep.train import Trainer

    full, acc = _MLP(), _MLP()
    # AdamW is invariant to the gradient's scale but for eps: a large eps makes a summed (not averaged) gradient show
    Trainer(full, _data(), _tc(2, eps=1.0), tmp_path / "a").train()
    Trainer(acc, _data(), _tc(2, eps=1.0, grad_accum_steps=2), tmp_path / "b").train()
    assert full.sizes == [8, 8] and acc.sizes == [4] * 4  # 2 micro-batches of 4 per optimiser step of 8
    assert torch.allclose(_flat(full), _flat(acc), atol=1e-6, rtol=0)
    err = capsys.readouterr().err
    assert "parameters" in err and "dtype float32" in err and str(tmp_path / "a") in err  # the start banner
    Trainer(_MLP(), _data(), _tc(2, ckpt_every=2, mixed_precision="fp16"), tmp_path / "c").train()
    Trainer(_MLP(), _data(), _tc(3, ckpt_every=2, mixed_precision="fp16"), tmp_path / "c").train(resume="latest")
    assert "resuming from step 2 of 3" in capsys.readouterr().err
    sig = inspect.signature(Trainer.train)
    assert "resume_inexact" in sig.parameters and sig.parameters["resume_inexact"].default is False


def test_periodic_evaluation_callback_every_n_steps():
    from diffrep.train.evaluation import METRIC_PRESETS, PeriodicEvaluation

    assert {"fast", "fid"} <= set(METRIC_PRESETS)
    model = nn.Linear(2, 1)
    seen = []

    def metric(m):
        seen.append(m.training)
        torch.rand(3)  # uses the global stream: the callback must restore it
        return {"score": 0.5}

    trainer = type("T", (), {"model": model, "ema": None, "rank": 0, "config": _tc(5)})()
    ev = PeriodicEvaluation(2, {"mine": metric})
    state = torch.get_rng_state()
    assert ev(trainer, 1, {}) is None
    assert ev(trainer, 2, {}) == {"eval/mine/score": 0.5}
    assert ev(trainer, 5, {}) == {"eval/mine/score": 0.5}  # and at the last step
    assert seen == [False, False] and model.training and torch.equal(torch.get_rng_state(), state)


def test_report_to_wandb_without_the_package_names_it(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    assert main(["train", "demo/toy-ddpm", "--out", str(tmp_path / "r"), "--report-to", "wandb"]) == 2
    assert "'wandb' package" in _err(capsys) and not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------------------------
# help, print-config


def test_train_recipe_help_lists_fields_with_type_default_and_description(capsys):
    from diffrep.config.describe import describe_fields
    from diffrep.recipes import get_recipe

    assert main(["train", "demo/toy-ddpm", "--help"]) == 0
    out = capsys.readouterr().out
    for path, label, value, doc in describe_fields(get_recipe("demo/toy-ddpm").make_config()):
        assert f"  --{path}  ({label}; default " in out, path
    assert "optimiser steps of the whole run" in out  # train.steps' one-line description
    assert main(["train", "demo/toy-ddpm", "--print-config"]) == 0
    assert re.search(r"^  steps: \d+  # int >= 1", capsys.readouterr().out, re.M)


# ------------------------------------------------------------------------------------------------
# codes workflow, formats, aggregation


def test_encode_writes_what_eval_codes_reads_and_formats(tmp_path, capsys):
    Issue23Probe(Issue23ProbeConfig()).save_pretrained(tmp_path / "m")
    codes = tmp_path / "new" / "codes.npz"  # the folder does not exist: created before computing
    assert main(["encode", str(tmp_path / "m"), "--dataset", "disks", "--source", "procedural", "--num-train", "60",
                 "--num-test", "30", "--device", "cpu", "--out", str(codes)]) == 0
    z = np.load(codes)
    assert {"codes", "factors", "codes_test", "factors_test"} <= set(z.files)
    assert z["codes"].shape == (60, 2) and z["factors"].shape[0] == 60 and z["codes_test"].shape == (30, 2)
    capsys.readouterr()
    assert main(["eval", "--codes", str(codes), "--metrics", "mig", "--format", "json"]) == 0
    res = json.loads(capsys.readouterr().out)
    from diffrep.metrics import mig

    assert res["scores"]["mig"] == pytest.approx(float(mig(z["codes"], z["factors"], mode="robust")["mig"]))
    assert main(["eval", "--codes", str(codes), "--metrics", "mig", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "score,value" and float(dict([lines[1].split(",")])["mig"]) == res["scores"]["mig"]
    assert main(["eval", "--codes", str(codes), "--metrics", "mig", "--format", "md"]) == 0
    assert capsys.readouterr().out.startswith("| score | value |")


def test_results_render_in_a_notebook():
    from diffrep.metrics.results import Result

    md = Result({"mig": 0.25}, "mig", "robust")._repr_markdown_()
    assert "| mig | 0.25 |" in md


def test_aggregate_is_mean_and_sample_std_over_runs(tmp_path, capsys):
    from diffrep.cli.aggregate import aggregate, read_scores

    vals = [0.2, 0.4, 0.9]
    for i, v in enumerate(vals):
        (tmp_path / f"r{i}.json").write_text(json.dumps({"scores": {"mig": v}, "meta": {}}))
    s = aggregate([read_scores(tmp_path / f"r{i}.json") for i in range(3)])
    mean = sum(vals) / 3
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / 2)  # n - 1: the sample standard deviation
    assert s["mig"]["mean"] == pytest.approx(mean) and s["mig"]["std"] == pytest.approx(std)
    assert main(["aggregate", *[str(tmp_path / f"r{i}.json") for i in range(3)], "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["mig"]["std"] == pytest.approx(std)


# ------------------------------------------------------------------------------------------------
# figures


def test_viz_returns_pil_images_and_figures_without_switching_the_backend():
    pytest.importorskip("matplotlib")
    import matplotlib
    from matplotlib.figure import Figure
    from PIL import Image

    from diffrep.viz import grid_image, labelled_grid_figure, labelled_rows_image, training_curves

    before = matplotlib.get_backend()
    img = grid_image(torch.rand(4, 1, 4, 4), nrow=2, padding=0)
    assert isinstance(img, Image.Image) and img.size == (8 * 32, 8 * 32)  # 4 px images upscaled to >= 128 px
    assert isinstance(labelled_rows_image(torch.rand(2, 3, 1, 4, 4), row_labels=["a", "b"]), Image.Image)
    fig = labelled_grid_figure([torch.rand(3, 1, 4, 4)], row_labels=["factor 0"], xlabel="value", ylabel="factor")
    assert isinstance(fig, Figure)
    curves = training_curves([{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.0}])
    assert isinstance(curves, Figure) and curves.axes[0].get_xlabel()
    assert matplotlib.get_backend() == before


# ------------------------------------------------------------------------------------------------
# messages instead of tracebacks


def test_malformed_yaml_config_is_a_message(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  steps: [1\n")
    assert main(["train", "demo/toy-ddpm", "--config", str(bad), "--print-config"]) == 2
    assert "not valid YAML" in _err(capsys)


def test_eval_codes_not_an_npz_or_truncated_is_a_message(tmp_path, capsys):
    good = tmp_path / "good.npz"
    np.savez(good, codes=np.zeros((20, 2)), factors=np.zeros((20, 2), int))
    (tmp_path / "text.npz").write_text("plain text\n")
    (tmp_path / "cut.npz").write_bytes(good.read_bytes()[:150])
    for name in ("text.npz", "cut.npz"):
        assert main(["eval", "--codes", str(tmp_path / name), "--metrics", "mig"]) == 2
        assert f"--codes {tmp_path / name}" in _err(capsys)


@pytest.mark.parametrize("flag", ["--batch", "--steps"])
def test_demo_zero_is_a_message(flag, capsys):
    assert main(["demo", flag, "0"]) == 2
    assert f"{flag} must be >= 1, got 0" in _err(capsys)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a usable GPU")
def test_device_cuda_without_a_gpu_is_a_message_not_a_corrupt_file(tmp_path, capsys):
    Issue23Probe(Issue23ProbeConfig()).save_pretrained(tmp_path / "m")
    assert main(["sample", str(tmp_path / "m"), "--device", "cuda", "--out", str(tmp_path / "s.png")]) == 2
    err = _err(capsys)
    assert "--device cuda" in err and "safetensors" not in err


def test_eval_on_too_few_samples_warns_with_the_number(tmp_path, capsys):
    rs = np.random.RandomState(0)
    f = rs.randint(0, 3, (45, 2))
    np.savez(tmp_path / "c.npz", codes=f + 0.01 * rs.randn(45, 2), factors=f)
    assert main(["eval", "--codes", str(tmp_path / "c.npz"), "--metrics", "mig"]) == 0
    assert "mig: 45 rows, fewer than the 300" in capsys.readouterr().err  # 100 rows per factor value x 3 values


# ------------------------------------------------------------------------------------------------
# info, progress, diffusers import, README


def test_info_lists_libraries_optional_packages_and_environment(capsys):
    assert main(["info", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["libraries"]) == {"numpy", "scipy", "scikit-learn"}
    assert report["libraries"]["numpy"] == np.__version__
    assert {"tqdm", "tensorboard", "wandb"} <= set(report["optional"])
    assert {"DIFFREP_DATA", "DIFFREP_BACKEND", "DIFFREP_FID_WEIGHTS", "DIFFREP_LPIPS_WEIGHTS"} <= set(report["environment"])


def test_tqdm_is_a_declared_dependency_and_bars_are_tqdm_auto(monkeypatch):
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(re.match(r"tqdm\b", d) for d in deps)
    from tqdm.auto import tqdm

    from diffrep._progress import progress

    monkeypatch.setenv("DIFFREP_PROGRESS", "1")
    bar = progress([1, 2], desc="x")
    assert isinstance(bar, tqdm) and list(bar) == [1, 2]


def test_diffusers_unet2dmodel_folder_imports(tmp_path):
    import importlib.util

    from safetensors.torch import save_file

    from diffrep.nn import load_pretrained
    from diffrep.nn.diffusers_unet import load_diffusers_unet
    from diffrep.nn.unet import UNet

    # the fixture writer of tests/nn/test_diffusers_unet.py: diffusers' tensor names, no diffusers needed
    spec = importlib.util.spec_from_file_location("_issue23_diffusers_fixture", ROOT / "tests" / "nn" / "test_diffusers_unet.py")
    fixture = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixture)
    BASE, diffusers_state = fixture.BASE, fixture.diffusers_state
    sig = inspect.signature(load_diffusers_unet)
    assert list(sig.parameters)[0] == "folder" and sig.parameters["map_location"].kind is inspect.Parameter.KEYWORD_ONLY
    cfg = {**BASE, "_diffusers_version": "0.31.0"}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    save_file(diffusers_state(cfg), str(tmp_path / "diffusion_pytorch_model.safetensors"))
    unet = load_diffusers_unet(tmp_path)
    assert isinstance(unet, UNet)
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([3, 700])
    with torch.no_grad():
        out = unet(x, t)
        assert out.shape == (2, 2, 8, 8)
        assert torch.equal(load_pretrained(tmp_path)(x, t), out)  # load_pretrained reads the folder directly


def test_readme_has_a_python_example_per_method():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    joined = "\n".join(blocks)
    for recipe in ("paramrel/", "sami/", "bfn/", "multibeta/", "encdiff/", "vae/", "diffae/", "infodiffusion/",
                   "disdiff/"):
        assert recipe in joined, recipe
    for cmd in ("diffrep encode MODEL --dataset NAME --out codes.npz", "diffrep aggregate RUN"):
        assert cmd in text
