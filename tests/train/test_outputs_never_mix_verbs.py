"""Outputs never mix (docs/architecture.md#outputs-never-mix): every verb that writes a file refuses an existing
one unless ``--overwrite``, before any work; ``multibeta denoise --png`` is checked with the rest; a resumed run logs
to a new W&B run and names the earlier ones. A study updated to a smaller grid: tests/study/test_outputs_never_mix_reports.py."""

from __future__ import annotations

import json
import os
import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image

from diffrep.cli import main
from diffrep.cli._common import output_path, prepare_output

EARLIER = b"an earlier output"


# -- the rule itself ---------------------------------------------------------------------------------------

def test_prepare_output_refuses_an_existing_file_unless_overwrite(tmp_path):
    f = tmp_path / "a.png"
    f.write_bytes(EARLIER)
    with pytest.raises(ValueError, match=r"^--png .*a\.png exists \(an earlier output\); choose another --png or add "
                                         r"--overwrite to replace it$"):
        prepare_output(f, "--png", overwrite=False)
    assert f.read_bytes() == EARLIER
    assert prepare_output(f, "--png", overwrite=True) == f and f.read_bytes() == EARLIER  # replaced by the writer
    new = tmp_path / "new" / "deeper" / "b.png"
    # checked, not made: a command refused afterwards for one of its inputs must leave nothing behind
    assert prepare_output(new, overwrite=False) == new and not (tmp_path / "new").exists()
    assert output_path(new) == new and new.parent.is_dir() and not new.exists()  # the writer makes it
    with pytest.raises(ValueError, match="is a folder; give a file path"):
        prepare_output(tmp_path, overwrite=True)
    with pytest.raises(TypeError, match="overwrite must be a bool, got str"):
        prepare_output(new, overwrite="yes")
    assert prepare_output(None, overwrite=False) is None
    with pytest.raises(ValueError, match=r"^--out .*a\.png exists \(an earlier output\); choose another --out"):
        prepare_output(f, overwrite=False)  # the flag named by default
    with pytest.raises(ValueError, match=r"^--out .*a\.txt: give a file name ending in \.png or \.jpg$"):
        prepare_output(tmp_path / "a.txt", suffixes=(".png", ".jpg"), overwrite=True)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match=r"^--png .*afile/x\.png: cannot create its folder \(File exists\)$"):
        prepare_output(tmp_path / "afile" / "x.png", "--png", overwrite=False)
    with pytest.raises(ValueError, match=r"^--png .*afile/a/b/x\.png: cannot create its folder \(Not a directory\)$"):
        prepare_output(tmp_path / "afile" / "a" / "b" / "x.png", "--png", overwrite=False)  # a file further up


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="permissions do not bind root")
def test_prepare_output_refuses_an_unwritable_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(ValueError, match="not writable"):
            prepare_output(ro / "x.png", overwrite=False)
        with pytest.raises(ValueError, match=r"sub/x\.png: not writable \(check the permissions of .*/ro\)$"):
            prepare_output(ro / "sub" / "x.png", overwrite=False)  # the folder the new one would be made in
    finally:
        ro.chmod(0o700)


# -- every verb, its default output (and the explicit ones), before any work --------------------------------

def _fake_model(folder):
    """A folder that resolves as a model folder (config.json) but holds no loadable model: a verb that reached
    the loading would fail with another message than the output's."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text("{}")
    return folder


# (argv after the model folder's place, the output the verb would write, relative to the model folder or, with
# "cwd:", to the current folder)
VERBS = [
    (["multibeta", "encode", "{m}"], "codes.npz"),
    (["multibeta", "decode", "{m}", "--codes", "c.npz"], "decoded.png"),
    (["multibeta", "denoise", "{m}", "--codes", "c.npz"], "denoised.npz"),
    (["multibeta", "sweep", "{m}"], "sweep.png"),
    (["multibeta", "traverse", "{m}"], "traverse.png"),
    (["multibeta", "edit", "{m}", "--direction", "0"], "edit.png"),
    (["multibeta", "sample", "{m}"], "samples.png"),
    (["multibeta", "curve", "{m}", "--json", "{tmp}/curve.json"], "cwd:curve.json"),
    (["multibeta", "eval", "{m}", "--json", "{tmp}/eval.json"], "cwd:eval.json"),
    (["multibeta", "denoise", "{m}", "--codes", "c.npz", "--out", "{tmp}/d.npz", "--png", "{tmp}/d.png"], "cwd:d.png"),
    (["paramrel", "sample", "{m}"], "samples.png"),
    *[(["paramrel", t, "{m}"], f"{t}.png") for t in ("reconstruct", "traverse", "time-varying", "interpolate",
                                                     "attributes-encoding")],
    (["paramrel", "eval", "{m}", "--json", "{tmp}/p.json"], "cwd:p.json"),
    *[(["encdiff", v, "{m}"], f"cwd:encdiff_{v}.{ext}") for v, ext in (
        ("encode", "npz"), ("sample", "png"), ("interchange", "png"), ("attention", "png"), ("anchors", "png"),
        ("eval", "json"))],
    *[([fam, v, "{m}"], f"cwd:{fam}_{v}.png") for fam, verbs in (
        ("diffae", ("reconstruct", "swap", "traverse", "interpolate")), ("infodiffusion", ("reconstruct",)),
        ("disdiff", ("swap",))) for v in verbs],
    (["diffae", "manipulate", "{m}", "--factor", "0"], "cwd:diffae_manipulate.png"),
    (["sami", "sample", "{m}"], "images/sami-cond-seed0.png"),
    (["sami", "sample", "{m}", "--mode", "prior", "--seed", "3"], "images/sami-prior-seed3.png"),
    (["sami", "analyze", "{m}"], "analysis/analysis.json"),
    (["sample", "{m}"], "images/samples/sample-seed0.png"),
    (["bfn", "sample", "{m}", "--seed", "2"], "images/samples/sample-seed2.png"),
    (["encode", "{m}", "--out", "{tmp}/codes.npz"], "cwd:codes.npz"),
    (["eval", "--model", "{m}", "--out", "{tmp}/r.json"], "cwd:r.json"),
    (["data", "preview", "dsprites", "--out", "{tmp}/grid.png"], "cwd:grid.png"),
]


@pytest.mark.parametrize("argv,output", VERBS, ids=[" ".join(a[:2]) + ":" + o for a, o in VERBS])
def test_every_verb_refuses_an_existing_output_before_any_work(argv, output, tmp_path, monkeypatch, capsys):
    model = _fake_model(tmp_path / "model")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.npz").write_bytes(b"")  # --codes exists: a missing input is refused first (test_cli_every_verb.py)
    target = tmp_path / output[4:] if output.startswith("cwd:") else model / output
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(EARLIER)
    args = [a.format(m=model, tmp=tmp_path) for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and ("exists (an earlier output)" in err or "holds an earlier analysis" in err), err
    assert "--overwrite" in err and str(target.relative_to(tmp_path)) in err.replace(str(tmp_path) + os.sep, ""), err
    assert target.read_bytes() == EARLIER
    # with --overwrite the output check passes and the verb goes on to the (unloadable) model or data
    capsys.readouterr()
    main(args + ["--overwrite"])
    assert "exists" not in capsys.readouterr().err


def test_aggregate_refuses_an_existing_out(tmp_path, capsys):
    run = tmp_path / "r.json"
    run.write_text(json.dumps({"scores": {"mig": 0.5}}))
    out = tmp_path / "summary.json"
    out.write_bytes(EARLIER)
    assert main(["aggregate", str(run), "--out", str(out)]) == 2
    assert "exists (an earlier output)" in capsys.readouterr().err and out.read_bytes() == EARLIER
    assert main(["aggregate", str(run), "--out", str(out), "--overwrite"]) == 0
    assert json.loads(out.read_text())["mig"]["mean"] == 0.5


def test_multibeta_curve_and_eval_take_no_out(tmp_path, capsys):
    # they wrote nothing to --out (only --json), yet accepted it
    model = _fake_model(tmp_path / "model")
    for verb in ("curve", "eval"):
        with pytest.raises(SystemExit) as exc:
            main(["multibeta", verb, str(model), "--out", str(tmp_path / "x.json")])
        assert exc.value.code == 2 and "unrecognized arguments: --out" in capsys.readouterr().err


# -- a real model: the refusal keeps the earlier grid, --overwrite writes what a fresh run writes -------------

@pytest.fixture(scope="module")
def multibeta_model(tmp_path_factory):
    from helpers import tiny_multibeta_phase2

    folder = tmp_path_factory.mktemp("mb") / "model"
    tiny_multibeta_phase2().save_pretrained(folder)
    return folder


def test_multibeta_sample_default_output_is_kept_and_replaced_only_with_overwrite(multibeta_model, tmp_path, capsys):
    default = multibeta_model / "samples.png"
    default.unlink(missing_ok=True)
    assert main(["multibeta", "sample", str(multibeta_model), "--n", "2", "--seed", "1", "--device", "cpu"]) == 0
    first = np.asarray(Image.open(default))
    # another seed into the same default name: refused, the first grid stays
    assert main(["multibeta", "sample", str(multibeta_model), "--n", "2", "--seed", "2", "--device", "cpu"]) == 2
    assert "samples.png exists" in capsys.readouterr().err
    assert np.array_equal(np.asarray(Image.open(default)), first)
    assert main(["multibeta", "sample", str(multibeta_model), "--n", "2", "--seed", "2", "--device", "cpu",
                 "--overwrite"]) == 0
    fresh = tmp_path / "fresh.png"
    assert main(["multibeta", "sample", str(multibeta_model), "--n", "2", "--seed", "2", "--device", "cpu",
                 "--out", str(fresh)]) == 0
    assert np.array_equal(np.asarray(Image.open(default)), np.asarray(Image.open(fresh)))
    assert not np.array_equal(np.asarray(Image.open(default)), first)


def test_multibeta_denoise_png_is_checked_before_the_chain(multibeta_model, tmp_path, capsys, monkeypatch):
    from diffrep.methods.multibeta import MultiBeta

    codes = tmp_path / "c.npz"
    np.savez(codes, codes=np.zeros((2, 3), np.float32), beta=np.float64(0.5))
    ran = []
    real = MultiBeta.denoise
    monkeypatch.setattr(MultiBeta, "denoise", lambda self, *a, **k: ran.append(1) or real(self, *a, **k))
    png = tmp_path / "d.png"
    png.write_bytes(EARLIER)
    base = ["multibeta", "denoise", str(multibeta_model), "--codes", str(codes), "--device", "cpu",
            "--out", str(tmp_path / "d.npz")]
    assert main(base + ["--png", str(png)]) == 2
    assert "--png" in capsys.readouterr().err and png.read_bytes() == EARLIER
    assert main(base + ["--png", str(tmp_path)]) == 2  # a folder
    assert "is a folder" in capsys.readouterr().err
    assert ran == [] and not (tmp_path / "d.npz").exists()  # neither the chain ran nor --out was written
    assert main(base + ["--png", str(tmp_path / "new" / "d.png")]) == 0  # its folder is made
    assert ran == [1] and (tmp_path / "new" / "d.png").is_file()


# -- W&B on resume ---------------------------------------------------------------------------------------

def _fake_wandb(calls):
    return types.SimpleNamespace(init=lambda **kw: calls.append(("init", kw)),
                                 log=lambda d, step: calls.append(("log", step)),
                                 finish=lambda: calls.append(("finish",)))


def test_a_resume_logs_to_a_new_wandb_run_and_names_the_earlier_one(tmp_path, monkeypatch, capsys):
    from diffrep.train.loggers import WANDB_RUNS, MetricLogger

    calls = []
    monkeypatch.setitem(sys.modules, "wandb", _fake_wandb(calls))
    monkeypatch.setenv("WANDB_RUN_ID", "someone")  # resume="allow" continued this run: steps <= its last were lost
    first = MetricLogger(tmp_path, wandb=True, run_name="r", hparams={"lr": 0.1})
    for step in (1, 2, 3, 4):
        first.log(step, {"loss": 1.0 / step})
    first.close()
    again = MetricLogger(tmp_path, wandb=True, run_name="r", hparams={"lr": 0.1}, resume_step=2)
    again.log(3, {"loss": 0.5})
    again.close()
    inits = [kw for c, kw in (c[:2] for c in calls if c[0] == "init")]
    assert [kw["resume"] for kw in inits] == ["never", "never"]
    assert [(kw["project"], kw["mode"], kw["dir"]) for kw in inits] == [("diffrep", "offline", str(tmp_path))] * 2
    assert inits[0]["id"] != inits[1]["id"] and "someone" not in (inits[0]["id"], inits[1]["id"])
    assert len(inits[0]["id"]) == 8 and inits[0]["id"].isalnum() and inits[0]["id"].islower()
    assert inits[0]["name"] == "r" and inits[1]["name"] == "r-from-step-2"
    assert inits[0]["config"] == {"lr": 0.1} and inits[1]["config"] == {"lr": 0.1, "resumed_from_step": 2}
    runs = tmp_path / "wandb" / WANDB_RUNS
    record = [json.loads(x) for x in runs.read_text().splitlines()]
    assert record == [{"id": inits[0]["id"], "name": "r", "first_step": 0},
                      {"id": inits[1]["id"], "name": "r-from-step-2", "first_step": 3}]
    err = capsys.readouterr().err
    assert f"logging to a new W&B run {inits[1]['id']} (r-from-step-2)" in err
    assert f"the earlier W&B runs of this folder ({inits[0]['id']}) keep what they logged, including any steps " \
           f"after 2 that this resume abandons (metrics.jsonl and TensorBoard dropped them; {runs} lists each W&B " \
           "run's first step)" in err
    # the JSONL record dropped the tail, as the message says
    assert [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    # a third process, after a line damaged by hand: both earlier runs are named and kept in the list
    runs.write_text(runs.read_text().replace("\n", "\n{damaged\n", 1))
    MetricLogger(tmp_path, wandb=True, run_name="r", resume_step=3).close()
    third = [kw for c, kw in (c[:2] for c in calls if c[0] == "init")][2]["id"]
    assert f"({inits[0]['id']}, {inits[1]['id']}) keep what they logged" in capsys.readouterr().err
    assert [json.loads(x)["id"] for x in runs.read_text().splitlines()] == [inits[0]["id"], inits[1]["id"], third]


def test_a_resume_with_no_listed_wandb_run_says_so(tmp_path, monkeypatch, capsys):
    # a run trained without W&B, resumed with it: no earlier W&B run is known
    from diffrep.train.loggers import MetricLogger

    monkeypatch.setitem(sys.modules, "wandb", _fake_wandb([]))
    MetricLogger(tmp_path, wandb=True, run_name="r", resume_step=5).close()
    assert "so an earlier W&B run of this folder (none is listed) keeps what it logged, including any steps after 5" \
        in capsys.readouterr().err


def test_overwrite_clears_the_wandb_run_list(tmp_path, monkeypatch):
    from diffrep.train.loggers import WANDB_RUNS, MetricLogger
    from diffrep.train.rundir import clear_run

    monkeypatch.setitem(sys.modules, "wandb", _fake_wandb([]))
    logger = MetricLogger(tmp_path, wandb=True)
    logger.log(1, {"loss": torch.tensor(1.0).item()})
    logger.close()
    assert f"wandb/{WANDB_RUNS}" in clear_run(tmp_path) and not (tmp_path / "wandb").exists()
