"""Regressions from a newcomer's walk through every verb of the command line (2026-12-07): each mistake is a
one-paragraph message naming the problem and a non-zero exit, before anything is written; a folder or file that
holds an earlier result is refused or replaced whole, never mixed into."""

import argparse
import json

import numpy as np
import pytest

from diffrep.cli import main


def _err(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


# -- train: --resume PATH, repeated and valueless overrides ----------------------------------------------

@pytest.mark.parametrize("given", ["lastest", "{tmp}/run/checkpoints/step-00000005"])
def test_resume_from_a_path_that_does_not_exist_is_named(capsys, tmp_path, given):
    # was "--resume lastest is a checkpoint of another run folder" (into a folder holding a run) or, into a
    # new folder, a message only after the folder was created
    given = given.format(tmp=tmp_path)
    assert main(["train", "demo/toy-ddpm", "--out", str(tmp_path / "run"), "--resume", given]) == 2
    err = _err(capsys)
    assert f"--resume {given}: does not exist; give 'latest'" in err
    assert "another run folder" not in err
    assert not (tmp_path / "run").exists()


def test_resume_from_a_file_is_named(tmp_path):
    from diffrep.train.rundir import check_run_dir

    (tmp_path / "ckpt.pt").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"--resume .*ckpt.pt: is not a folder; give 'latest'"):
        check_run_dir(tmp_path / "run", resume=tmp_path / "ckpt.pt")


@pytest.mark.parametrize("overrides, text, line", [
    (["--train.steps", "5", "--train.steps", "500"],
     "config field 'train.steps' is given twice, as '5' and then as '500'; the last one, '500', is used", "steps: 500"),
    (["--train.log-every", "5", "--train.log_every=6"],
     "config field 'train.log_every' is given twice, as '5' and then as '6'; the last one, '6', is used", "log_every: 6"),
    (["--train.tensorboard", "false", "--report-to", "tensorboard"],
     "config field 'train.tensorboard' is given twice, as 'false' and then as 'true' (--report-to sets it); the "
     "last one, 'true', is used", "tensorboard: true"),
])
def test_a_field_given_two_values_is_said(capsys, overrides, text, line):
    # the last value won silently: a run of 500 steps from a command line that also says 5 (the last one still
    # wins: a wrapper script's defaults followed by the user's own values)
    assert main(["train", "demo/toy-ddpm", *overrides, "--print-config"]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert text in captured.err
    assert f"\n  {line}  #" in captured.out


def test_a_group_train_verb_says_its_own_name_in_the_warning(capsys):
    # it said "diffrep train:" under "diffrep multibeta train"
    assert main(["multibeta", "train", "multibeta/dsprites-cpu", "--train.steps", "5", "--train.steps", "6",
                 "--print-config"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("diffrep multibeta train: config field 'train.steps' is given twice, as '5' and then "
                          "as '6'"), err


def test_a_field_repeated_with_the_same_value_says_nothing(capsys):
    assert main(["train", "demo/toy-ddpm", "--train.steps", "7", "--train.steps=7", "--print-config"]) == 0
    captured = capsys.readouterr()
    assert "\n  steps: 7  #" in captured.out and captured.err == ""


@pytest.mark.parametrize("overrides, text", [
    (["--train.steps", "--out", "{out}"], "--train.steps is given no value; it is a field of type int, so give "
                                          "--train.steps VALUE"),
    (["--train.lr"], "--train.lr is given no value; it is a field of type float"),
    (["--train"], "--train is given no value; it is a config section"),
])
def test_a_valueless_field_that_is_not_a_bool_is_named(capsys, tmp_path, overrides, text):
    # was "config field 'train.steps': expected int, got bool True" (a bare flag reads as true)
    out = tmp_path / "run"
    assert main(["train", "demo/toy-ddpm", *[o.format(out=out) for o in overrides]]) == 2
    assert text in _err(capsys)
    assert not out.exists()


def test_a_valueless_bool_field_means_true(capsys):
    assert main(["train", "demo/toy-ddpm", "--train.deterministic", "--print-config"]) == 0
    assert "\n  deterministic: true  #" in capsys.readouterr().out


@pytest.mark.parametrize("group", ["bfn", "paramrel", "multibeta", "encdiff"])
def test_family_train_without_a_recipe_names_only_the_recipe(capsys, group):
    # argparse listed "the following arguments are required: recipe, overrides" (overrides are optional)
    with pytest.raises(SystemExit) as exc:
        main([group, "train"])
    assert exc.value.code == 2
    assert _err(capsys).rstrip().endswith(f"diffrep {group} train: error: the following arguments are required: recipe")


# -- data preview --------------------------------------------------------------------------------------

def test_data_preview_refuses_a_name_that_is_not_png(capsys, tmp_path):
    # the grid was written as PNG bytes under any name (grid.jpg, grid.txt)
    for name in ("grid.jpg", "grid.txt"):
        assert main(["data", "preview", "dsprites", "--out", str(tmp_path / name)]) == 2
        assert f"--out {tmp_path / name}: give a file name ending in .png" in _err(capsys)
    assert list(tmp_path.iterdir()) == []


# -- aggregate -----------------------------------------------------------------------------------------

def _result(path, mig):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"scores": {"mig": mig}}))


def test_aggregate_refuses_one_run_named_twice(capsys, tmp_path):
    # the same run counted twice: n = 2 and a standard deviation of 0 for one seed
    _result(tmp_path / "a" / "metrics.json", 0.25)
    for pair in ([tmp_path / "a", tmp_path / "a" / "metrics.json"], [tmp_path / "a", tmp_path / "a" / ".." / "a"]):
        assert main(["aggregate", *map(str, pair)]) == 2
        err = _err(capsys)
        assert f"{pair[1]} and {pair[0]} are the same run (both read {(tmp_path / 'a' / 'metrics.json').resolve()})" in err


def test_aggregate_of_two_runs(capsys, tmp_path):
    _result(tmp_path / "a" / "metrics.json", 0.25)
    _result(tmp_path / "b" / "metrics.json", 0.75)
    assert main(["aggregate", str(tmp_path / "a"), str(tmp_path / "b"), "--format", "json"]) == 0
    mig = json.loads(capsys.readouterr().out)["mig"]
    # mean 0.5; sample std sqrt(((0.25 - 0.5)^2 + (0.75 - 0.5)^2) / 1) = sqrt(0.125)
    assert mig["n"] == 2 and mig["mean"] == 0.5 and abs(mig["std"] - 0.125 ** 0.5) < 1e-12


# -- quickstart: resume, overwrite ---------------------------------------------------------------------

QS = ["quickstart", "--recipe", "paramrel/digits", "--steps", "3", "--sample-steps", "1", "--eval", "none"]


def _qs_folder(tmp_path, record=None, step=2):
    out = tmp_path / "qs"
    ckpt = out / "run" / "checkpoints" / f"step-{step:08d}"
    ckpt.mkdir(parents=True)
    (ckpt / "manifest.json").write_text("{}")  # complete as list_checkpoints sees it (the checks read no further)
    (out / "run" / "metrics.jsonl").write_text(f'{{"step": {step}, "loss": 1.0}}\n')
    if record is not None:
        (out / "quickstart.json").write_text(json.dumps(record))
    return out


def _listing(out):
    return sorted(str(p.relative_to(out)) for p in out.rglob("*"))


@pytest.mark.parametrize("record, extra, text", [
    (None, ["--resume"], "--resume: {out} has no quickstart.json (the --recipe and --seed of the quickstart run"),
    ({"recipe": "paramrel/dsprites", "seed": 0}, ["--resume"],
     "--resume: the run in {out} was started with --recipe paramrel/dsprites, not paramrel/digits; resume it with "
     "--recipe paramrel/dsprites, or start a new one with --overwrite"),
    ({"recipe": "paramrel/digits", "seed": 0}, ["--resume", "--seed", "4"],
     "--resume: the run in {out} was started with --seed 0, not 4"),
    ({"recipe": "paramrel/digits", "seed": 0}, ["--resume", "--overwrite"],
     "--resume continues the quickstart run in --out, --overwrite deletes it: give one of them"),
])
def test_quickstart_resume_refusals_touch_nothing(capsys, tmp_path, record, extra, text):
    out = _qs_folder(tmp_path, record)
    before = _listing(out)
    assert main([*QS, "--out", str(out), *extra]) == 2
    assert text.format(out=out) in _err(capsys)
    assert _listing(out) == before


def test_quickstart_resume_past_steps_is_named(capsys, tmp_path):
    out = _qs_folder(tmp_path, {"recipe": "paramrel/digits", "seed": 0}, step=5)
    assert main([*QS, "--out", str(out), "--resume"]) == 2
    assert f"--resume: the run in {out} is at step 5, past --steps 3; pass --steps N with N >= 5" in _err(capsys)


def test_quickstart_refusal_offers_resume_only_when_it_can_work(capsys, tmp_path):
    out = _qs_folder(tmp_path, {"recipe": "paramrel/digits", "seed": 0})
    assert main([*QS, "--out", str(out)]) == 2
    assert "already holds a quickstart run; continue it with --resume, replace it with --overwrite" in _err(capsys)


def test_quickstart_overwrite_clears_only_the_earlier_outputs(tmp_path):
    # --overwrite cleared run/ only: the earlier figures, metrics.json and model/ stayed beside the new run
    # until (unless) the new run rewrote them
    from diffrep.cli.quickstart import clear_outputs

    out = tmp_path / "qs"
    (out / "model").mkdir(parents=True)
    for name in ("samples.png", "metrics.json", "quickstart.json", "notes.txt", "model/config.json",
                 "model/model.safetensors", "model/mine.txt"):
        (out / name).write_text("x")
    removed = clear_outputs(out)
    assert sorted(removed) == ["metrics.json", "model/config.json", "model/model.safetensors", "quickstart.json",
                               "samples.png"]
    assert _listing(out) == ["model", "model/mine.txt", "notes.txt"]  # what diffrep did not write stays


def test_quickstart_resume_command_repeats_the_settings():
    from diffrep.cli.quickstart import resume_command

    args = argparse.Namespace(out="runs/q s", recipe="paramrel/digits", seed=3, steps=40, sample_steps=None,
                              device="auto", eval="none")
    assert resume_command(args) == ("diffrep quickstart --out 'runs/q s' --resume --recipe paramrel/digits --seed 3 "
                                    "--steps 40 --eval none")


@pytest.mark.slow
def test_quickstart_resumes_its_own_run(capsys, tmp_path):
    out = tmp_path / "qs"
    assert main([*QS[:4], "2", *QS[5:], "--out", str(out)]) == 0
    assert json.loads((out / "quickstart.json").read_text()) == {"recipe": "paramrel/digits", "seed": 0}
    capsys.readouterr()
    assert main([*QS, "--out", str(out), "--resume"]) == 0  # 2 -> 3
    assert "resuming from step 2 of 3" in _err(capsys)
    steps = [json.loads(line)["step"] for line in (out / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 3]  # the recipe logs every 50 steps and at the end: step 2 of the first run, then 3
    assert (out / "model" / "model.safetensors").is_file() and (out / "samples.png").is_file()


# -- train RECIPE --help / --print-config: field descriptions --------------------------------------------

def test_a_description_is_not_cut_at_an_abbreviation():
    # the description of a field read from its class docstring stopped at "e.g." or "Eq.": "``vae_from`` (a saved
    # MultiBeta folder, e.g."
    import dataclasses

    from diffrep.config import Config
    from diffrep.config.describe import field_docs

    @dataclasses.dataclass
    class Probe(Config):
        """``scale``: the width, e.g. 2 or 3. ``offset``: added after the flow (Eq. 7) and clipped. ``other``."""

        scale: int = 2
        offset: float = 0.0
        other: int = 1

    docs = field_docs(Probe)
    assert docs["scale"] == "``scale``: the width, e.g. 2 or 3."
    assert docs["offset"] == "``offset``: added after the flow (Eq. 7) and clipped."


def test_no_recipe_field_description_ends_at_an_abbreviation():
    from diffrep.config.describe import _ABBREVIATIONS, describe_fields
    from diffrep.recipes import list_recipes

    cut = sorted({(r.name, path, doc[-40:]) for r in list_recipes() for path, _, _, doc in describe_fields(r.make_config())
                  if doc.endswith(_ABBREVIATIONS)})
    assert not cut, cut


def test_multibeta_phase_fields_and_data_root_say_what_they_are(capsys):
    # pool, train and train_latent showed the class docstring's first sentence (about the whole recipe); data.root
    # the DataRoot docstring's sentence about "the data section of the recipes ..."
    assert main(["train", "multibeta/dsprites-cpu", "--print-config"]) == 0
    out = capsys.readouterr().out
    for line in ("pool: 2  # int >= 1: max-pool factor of the dataset's images",
                 "train:  # phase 1: the multi-beta VAE (Algorithm 1)",
                 "train_latent:  # phase 2: the latent denoiser (Eq. 19)",
                 "  root: ''  # str: folder of the dataset's original files; empty: $DIFFREP_DATA, else the procedural"):
        assert "\n" + line in out, line


def test_a_recipe_that_cannot_build_leaves_no_run_folder(capsys, tmp_path):
    # config.yaml and run.json were written before the build, leaving a folder of a run that never started
    out = tmp_path / "run"
    assert main(["train", "disdiff/shapes3d-cpu", "--train.steps", "1", "--out", str(out)]) == 2
    assert "pass the pre-training run's final folder with --pretrained_path DIR" in _err(capsys)
    assert not out.exists()


def test_sami_train_flags_before_the_recipe_say_where_they_go(capsys):
    # was "unrecognized arguments: --out" under "usage: diffrep sami train [-h] [recipe]"
    with pytest.raises(SystemExit) as exc:
        main(["sami", "train", "--out", "somewhere", "--train.steps", "3"])
    assert exc.value.code == 2
    err = _err(capsys)
    assert "usage: diffrep sami train [RECIPE] [--out DIR] [--section.field VALUE ...]" in err
    assert err.rstrip().endswith("diffrep sami train: error: unrecognized arguments: --out; the flags and overrides "
                                 "follow the recipe: diffrep sami train sami/disks-cpu --out DIR --train.steps N")


# -- eval --codes --------------------------------------------------------------------------------------

@pytest.mark.parametrize("arrays, text", [
    (dict(codes=np.zeros((10, 3)), factors=np.zeros((9, 2), int)),
     "--codes: {f}: 'codes' has 10 rows but 'factors' has 9; row i of each is one example"),
    (dict(codes=np.where(np.eye(10, 3) > 0, np.nan, 0.0), factors=np.zeros((10, 2), int)),
     "--codes: {f}: 'codes' holds NaN or inf in 3 of its 10 rows"),
])
def test_eval_codes_that_cannot_be_scored_are_named_before_any_warning(capsys, tmp_path, arrays, text):
    # the too-few-samples warnings came first, about rows the error then disowned
    f = tmp_path / "c.npz"
    np.savez(f, **arrays)
    assert main(["eval", "--codes", str(f)]) == 2
    err = _err(capsys)
    assert err == f"diffrep eval: error: {text.format(f=f)}\n"


@pytest.mark.parametrize("argv", [["encode", "{m}", "--out", "{tmp}/c.npz"], ["eval", "--model", "{m}"]])
def test_a_dataset_without_factors_that_the_user_did_not_name_is_called_the_runs(capsys, tmp_path, argv):
    # was "--dataset digits: has no ground-truth factors" when no --dataset was given (the run's, from run.json)
    from diffrep.diffusion import NoiseScheduleConfig
    from diffrep.methods.toy_ddpm import ToyDDPM, ToyDDPMConfig
    from diffrep.nn import UNetConfig

    unet = UNetConfig(image_size=8, in_channels=1, out_channels=1, model_channels=8, channel_mult=(1,),
                      num_res_blocks=1, attention_resolutions=(), middle_attention=False, num_groups=4)
    m = tmp_path / "m"
    ToyDDPM(ToyDDPMConfig(unet=unet, schedule=NoiseScheduleConfig(num_timesteps=4), sample_steps=2)).save_pretrained(m)
    (m / "run.json").write_text(json.dumps({"recipe": "paramrel/digits", "data": {
        "dataset": "digits", "options": {"size": 8, "split": "train"}, "pool": 1, "root": None}}))
    assert main([a.format(m=m, tmp=tmp_path) for a in argv]) == 2
    assert _err(capsys).rstrip().endswith(
        "error: the run's dataset digits: has no ground-truth factors; pass --dataset NAME of one that has (dsprites, "
        "shapes3d, mpi3d_toy, cars3d, ...)")
    assert not (tmp_path / "c.npz").exists()


# -- sami analyze --out ----------------------------------------------------------------------------------

def test_sami_analyze_clears_only_an_earlier_analysis(tmp_path):
    # a second analysis (another --what) left the first one's figures beside an analysis.json that did not list them
    from diffrep.cli.sami import clear_earlier_analysis

    out = tmp_path / "analysis"
    out.mkdir()
    for name in ("spectrum.png", "perturb_axes.png", "perturb_pair.png", "notes.txt"):
        (out / name).write_text("x")
    assert clear_earlier_analysis(out) == []  # no analysis.json: not an analysis folder, nothing is touched
    (out / "analysis.json").write_text("{}")
    assert clear_earlier_analysis(out) == ["analysis.json", "spectrum.png", "perturb_axes.png", "perturb_pair.png"]
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_study_report_clears_only_an_earlier_report(tmp_path):
    # a report of other metrics (or --no-plots) left the earlier box plots beside the new tables
    from diffrep.study.report import clear_earlier_report

    dest = tmp_path / "report"
    dest.mkdir()
    names = ("box_mig.png", "box_mig.svg", "curve_vae_beta.png", "table.csv", "cells.csv", "mine.png", "box_notes.txt")
    for name in names:
        (dest / name).write_text("x")
    assert clear_earlier_report(dest) == []  # no report.md: not a report folder
    (dest / "report.md").write_text("x")
    assert clear_earlier_report(dest) == ["box_mig.png", "box_mig.svg", "cells.csv", "curve_vae_beta.png", "report.md",
                                          "table.csv"]
    assert sorted(p.name for p in dest.iterdir()) == ["box_notes.txt", "mine.png"]


@pytest.mark.parametrize("files, text", [
    (["quickstart.json"], "holds a 'diffrep quickstart' run (its run/ and model/); a training run there would mix"),
    (["model/config.json", "run/metrics.jsonl"], "holds a 'diffrep quickstart' run (its run/ and model/)"),
    (["study.json"], "holds a study (its study.json); a training run there would mix with its cells"),
])
@pytest.mark.parametrize("extra", [[], ["--overwrite"], ["--resume", "latest"]])
def test_train_refuses_a_quickstart_or_study_folder(capsys, tmp_path, files, text, extra):
    # the run's checkpoints/, final/ and metrics.jsonl went in beside the quickstart's figures or the study's cells
    out = tmp_path / "f"
    for name in files:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text('{"step": 2, "loss": 1.0}\n')
    before = _listing(out)
    assert main(["train", "demo/toy-ddpm", "--train.steps", "1", "--out", str(out), *extra]) == 2
    assert f"{out} {text}" in _err(capsys)
    assert _listing(out) == before


def test_quickstart_refuses_a_study_folder(capsys, tmp_path):
    (tmp_path / "study.json").write_text("{}")
    for extra in ([], ["--overwrite"], ["--resume"]):
        assert main([*QS, "--out", str(tmp_path), *extra]) == 2
        assert f"{tmp_path} holds a study (its study.json), not a quickstart folder" in _err(capsys)
    assert _listing(tmp_path) == ["study.json"]
