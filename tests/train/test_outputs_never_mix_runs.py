"""Outputs never mix with an earlier run's (docs/architecture.md, "Run folders"): a model saved over another is
replaced as a whole, a resume from an older checkpoint drops what the abandoned run wrote after it, a multi-phase
run checks its phase folders before writing its record, --overwrite clears the model verbs' outputs of the earlier
model, and the validation scripts keep an existing record unless told to replace it."""

from __future__ import annotations

import json

import pytest
import torch

from diffrep.cli import main

from helpers import load_script


def _toy(seed: int):
    from diffrep.diffusion import NoiseScheduleConfig
    from diffrep.methods.toy_ddpm import ToyDDPM, ToyDDPMConfig
    from diffrep.nn import UNetConfig

    torch.manual_seed(seed)
    unet = UNetConfig(image_size=8, in_channels=1, out_channels=1, model_channels=8, channel_mult=(1,),
                      num_res_blocks=1, attention_resolutions=(), middle_attention=False, num_groups=4)
    return ToyDDPM(ToyDDPMConfig(unet=unet, schedule=NoiseScheduleConfig(num_timesteps=4), sample_steps=2))


def _same(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# -- save_pretrained over an earlier model --------------------------------------------------------------

def test_saving_without_ema_removes_the_earlier_models_ema_copy(tmp_path):
    # the earlier model's ema.safetensors stayed, and --weights auto (the default of every verb) loaded it
    from diffrep.nn import load_pretrained
    from diffrep.nn.pretrained import resolve_weights

    a, b = _toy(0), _toy(1)
    a.save_pretrained(tmp_path, ema_state=a.state_dict())
    b.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    assert resolve_weights(tmp_path, "auto", "test") == "model"
    assert _same(load_pretrained(tmp_path, weights="model"), b)


def test_a_save_that_fails_leaves_the_earlier_model_whole(tmp_path, monkeypatch):
    # the new config.json was written first and the weights after it: a failure left new config + old weights
    import diffrep.nn.pretrained as P
    from diffrep.nn import load_pretrained

    a = _toy(0)
    a.save_pretrained(tmp_path, ema_state=a.state_dict())
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real = P._save_safetensors

    def failing(state, path, metadata=None):
        if "ema" in path.name:
            raise OSError("disk full")
        real(state, path, metadata)

    monkeypatch.setattr(P, "_save_safetensors", failing)
    with pytest.raises(OSError, match="disk full"):
        _toy(1).save_pretrained(tmp_path, ema_state=a.state_dict())
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temporary file left either
    assert _same(load_pretrained(tmp_path, weights="model"), a)


def test_config_yaml_and_run_json_are_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    # written in place: a config.yaml cut at a line is valid YAML with fewer fields, and the resume check reads a
    # field only one side has as another diffrep version's, not as a change
    import diffrep.config.core as core
    import diffrep.recipes.runinfo as runinfo
    from diffrep.config import dump_yaml
    from diffrep.recipes import get_recipe
    from diffrep.recipes.runinfo import write_run_info

    cfg = get_recipe("demo/toy-ddpm").make_config()
    dump_yaml(cfg, tmp_path / "config.yaml")
    write_run_info(tmp_path, "demo/toy-ddpm", cfg)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def stopped(src, dst):  # the process stops before the new file takes the old one's name
        raise KeyboardInterrupt

    for module in (core, runinfo):
        monkeypatch.setattr(module.os, "replace", stopped)
    cfg.train.steps = 7
    with pytest.raises(KeyboardInterrupt):
        dump_yaml(cfg, tmp_path / "config.yaml")
    with pytest.raises(KeyboardInterrupt):
        write_run_info(tmp_path, "other/recipe", cfg)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temporary file left either


# -- diffrep train --resume from an older checkpoint ------------------------------------------------------

TOY = ["--train.batch_size", "4", "--train.log_every", "1", "--train.ckpt_every", "1", "--train.keep_checkpoints", "5",
       "--model.unet.model_channels", "8", "--model.unet.channel_mult", "1", "--model.unet.attention_resolutions", "[]",
       "--model.unet.num_groups", "4", "--data.image_size", "8", "--data.num_images", "16",
       "--model.unet.image_size", "8"]


def test_resume_from_an_older_checkpoint_drops_the_later_ones_and_final(tmp_path, capsys):
    # the abandoned run's step-3/step-4 stayed: a later '--resume latest' continued the abandoned run, and
    # its final/ looked like the continuation's result while the continuation was still running
    run = tmp_path / "run"
    assert main(["train", "demo/toy-ddpm", "--out", str(run), "--train.steps", "4", *TOY]) == 0
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [f"step-0000000{i}" for i in (1, 2, 3, 4)]
    capsys.readouterr()
    from diffrep.cli.train import resolve_config
    from diffrep.train import Trainer

    recipe, cfg = resolve_config("demo/toy-ddpm", None, ["--train.steps", "6", *TOY])
    model, data = recipe.build(cfg)
    seen = {}

    def stop_after_first_step(trainer, step, metrics):  # a kill of the continuation after its first step
        seen["files"] = sorted(p.name for p in (run / "checkpoints").iterdir())
        seen["final"] = (run / "final" / "config.json").exists()
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        Trainer(model, data, cfg.train, run, callbacks=[stop_after_first_step]).train(
            resume=str(run / "checkpoints" / "step-00000002"))
    assert seen == {"files": ["step-00000001", "step-00000002"], "final": False}
    assert "removed the checkpoints after step 2 (step-00000003, step-00000004) and final/" in capsys.readouterr().err
    # the abandoned run's lines 3 and 4 dropped; 3 is the continuation's own record (logged before the callback)
    assert [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_tensorboard_hides_the_killed_runs_events_after_the_checkpoint(tmp_path):
    # metrics.jsonl dropped the killed run's tail on resume, TensorBoard showed it beside the continuation's
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from diffrep.train.loggers import MetricLogger

    first = MetricLogger(tmp_path, tensorboard=True)
    for step in (1, 2, 3, 4):
        first.log(step, {"loss": float(step)})
    first.close()
    again = MetricLogger(tmp_path, tensorboard=True, resume_step=2)  # resumed from the step-2 checkpoint
    again.log(3, {"loss": 30.0})
    again.close()
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [(1, 1.0), (2, 2.0), (3, 30.0)]
    assert [json.loads(ln)["step"] for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


def test_the_library_trainer_refuses_a_resume_with_another_train_config(tmp_path):
    # Trainer.train(resume=...) with another lr or seed continued the run without a word (diffrep train compared
    # its config.yaml first; a script or notebook calling the trainer compared nothing)
    from diffrep.cli.train import resolve_config
    from diffrep.train import Trainer

    run = tmp_path / "run"
    recipe, cfg = resolve_config("demo/toy-ddpm", None, ["--train.steps", "2", *TOY])
    model, data = recipe.build(cfg)
    Trainer(model, data, cfg.train, run).train()
    _, other = resolve_config("demo/toy-ddpm", None, ["--train.steps", "3", "--train.lr", "0.5", "--train.seed", "4", *TOY])
    with pytest.raises(ValueError, match=r"resume: the train config differs from checkpoint .*step-00000002's in "
                                         r"lr \(0\.002 -> 0\.5\), seed \(0 -> 4\); a resumed run keeps its config"):
        Trainer(model, data, other.train, run).train(resume="latest")
    assert [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    _, longer = resolve_config("demo/toy-ddpm", None, ["--train.steps", "3", "--train.log_every", "3", *TOY])
    Trainer(model, data, longer.train, run).train(resume="latest")  # steps and logging may change
    assert [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


# -- multi-phase runs: the phase folders ------------------------------------------------------------------

MB = ["--train.steps", "2", "--train_latent.steps", "2", "--train_subset", "64", "--auto_beta", "false"]


def test_a_fresh_multiphase_run_into_a_killed_ones_folder_is_refused_before_its_record(tmp_path, capsys):
    # a run killed in phase 1 left only phase1/: the top folder's check passed, config.yaml and run.json were
    # rewritten with the new config, and only then did phase 1 refuse: the earlier run's record was gone
    out = tmp_path / "mb"
    (out / "phase1").mkdir(parents=True)
    (out / "phase1" / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n')
    (out / "config.yaml").write_text("earlier: run\n")
    assert main(["train", "multibeta/dsprites-cpu", "--out", str(out), *MB]) == 2
    err = capsys.readouterr().err
    assert (f"run folder {out} already holds a multi-phase run (phase1/metrics.jsonl); training into it would mix the "
            "two runs. Continue it with --resume latest, replace it with --overwrite") in err
    assert (out / "config.yaml").read_text() == "earlier: run\n" and not (out / "run.json").exists()


def test_overwrite_clears_every_phase_folder_and_keeps_other_files(tmp_path):
    # --overwrite of a phases [1] run over a [1, 2] run with auto_beta left phase2/ and phase1/information.json
    from diffrep.recipes.multibeta import prepare_phase_folders
    from diffrep.train.rundir import RunFolderError

    out = tmp_path / "mb"
    for phase in ("phase1", "phase2"):
        (out / phase / "final").mkdir(parents=True)
        (out / phase / "metrics.jsonl").write_text('{"step": 2, "loss": 1.0}\n')
        (out / phase / "final" / "config.json").write_text('{"_diffrep_version": "0"}')
        (out / phase / "run.json").write_text("{}")
    (out / "phase1" / "information.json").write_text("{}")
    (out / "phase2" / "notes.txt").write_text("mine")
    assert prepare_phase_folders(out, resume="latest") == []  # a resume is checked against config.yaml instead
    with pytest.raises(RunFolderError, match="already holds a multi-phase run"):
        prepare_phase_folders(out)
    removed = prepare_phase_folders(out, overwrite=True)
    assert sorted(removed) == sorted(["phase1/metrics.jsonl", "phase1/final/config.json", "phase1/information.json",
                                      "phase1/run.json", "phase2/metrics.jsonl", "phase2/final/config.json",
                                      "phase2/run.json"])
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == ["phase2", "phase2/notes.txt"]
    assert prepare_phase_folders(out) == []


# -- the validation scripts' records ----------------------------------------------------------------------

@pytest.mark.parametrize("script,argv,flag", [
    ("validate_vae", ["--out", "{record}"], "--out"),
    ("validate_sami", ["--json", "{record}"], "--json"),
    ("validate_multibeta", ["--out", "{record}", "--run-dir", "{tmp}/run"], "--out"),
    ("diagnose_multibeta_phase2", ["--load-dir", "{tmp}/none", "--out", "{record}"], "--out"),
])
def test_an_existing_record_is_kept_by_every_validation_script(script, argv, flag, tmp_path, monkeypatch, capsys):
    # validate_vae's default --out and validate_sami's default --json are committed records the method pages cite
    monkeypatch.chdir(tmp_path)
    record = tmp_path / "record.json"
    record.write_text('{"kept": true}')
    with pytest.raises(SystemExit) as exc:
        load_script(script).main([a.format(record=record, tmp=tmp_path) for a in argv])
    assert exc.value.code == 2
    assert f"error: {flag} {record} exists (an earlier record); choose another {flag} or add --overwrite" in \
        capsys.readouterr().err
    assert record.read_text() == '{"kept": true}' and sorted(tmp_path.iterdir()) == [record]


@pytest.mark.parametrize("script,argv,held,text", [
    ("validate_multibeta", ["--out", "{tmp}/new.json", "--save-dir", "{tmp}/saved"], "saved/validation_state.json",
     "--save-dir {tmp}/saved holds an earlier run's models (validation_state.json); choose another --save-dir or add "
     "--overwrite"),
    ("validate_diffusion_baselines", ["--out", "{tmp}/new.json", "--save-dir", "{tmp}/saved"], "saved/pretrain/config.json",
     "--save-dir {tmp}/saved holds an earlier run's pretrain/; choose another --save-dir or add --overwrite"),
    ("validate_diffusion_baselines", ["--out", "{tmp}/new.json", "--partial-out", "{tmp}/saved/p.json"], "saved/p.json",
     "--partial-out {tmp}/saved/p.json exists (an earlier record); choose another --partial-out or add --overwrite"),
])
def test_an_earlier_runs_saved_models_are_kept(script, argv, held, text, tmp_path, monkeypatch, capsys):
    # a run stopped between its two saves left the new model beside the earlier run's other one (and its
    # validation_state.json), and --load-dir / --load-model then evaluated the pair as one run's
    monkeypatch.chdir(tmp_path)
    (tmp_path / held).parent.mkdir(parents=True)
    (tmp_path / held).write_text("{}")
    with pytest.raises(SystemExit) as exc:
        load_script(script).main([a.format(tmp=tmp_path) for a in argv])
    assert exc.value.code == 2 and f"error: {text.format(tmp=tmp_path)}" in capsys.readouterr().err
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == [held]


# -- --overwrite and the model verbs' default outputs -------------------------------------------------------

def _verb_defaults() -> list[str]:
    """The default output names of the model verbs, read from the command line's own definitions."""
    import argparse

    from diffrep.cli import build_parser
    from diffrep.cli.paramrel import TASKS
    from diffrep.cli.sami import ANALYSIS_FILES, INCOMPLETE_MARKER

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    verbs = next(a for a in sub.choices["multibeta"]._actions if isinstance(a, argparse._SubParsersAction))
    multibeta = {p.get_default("out_default") for p in verbs.choices.values()} - {None}
    return sorted(multibeta | {"samples.png"} | {f"{t}.png" for t in TASKS}) + [
        "images/sami-prior-seed0.png", "images/sami-cond-seed12.png", "images/samples/sample-seed3.png",
        *(f"analysis/{n}" for n in (*ANALYSIS_FILES, INCOMPLETE_MARKER))]


def test_overwrite_clears_the_verbs_outputs_of_the_earlier_model(tmp_path):
    # 'diffrep multibeta decode RUN' wrote RUN/decoded.png, 'diffrep sample RUN/final' RUN/final/images/samples/..:
    # after --overwrite they stayed beside the new run's model, showing the earlier one's images
    from diffrep.train.rundir import clear_run

    run = tmp_path / "run"
    (run / "final").mkdir(parents=True)
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n')
    (run / "final" / "config.json").write_text('{"_diffrep_version": "0"}')
    names = _verb_defaults()
    assert "decoded.png" in names and "codes.npz" in names and "attributes-encoding.png" in names
    for base in (run, run / "final"):
        for name in names + ["analysis/notes.txt", "mine.png"]:
            (base / name).parent.mkdir(parents=True, exist_ok=True)
            (base / name).write_text("earlier")
    removed = clear_run(run)
    assert sorted(removed) == sorted([*names, *(f"final/{n}" for n in names), "metrics.jsonl", "final/config.json"])
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()) == [
        "analysis/notes.txt", "final/analysis/notes.txt", "final/mine.png", "mine.png"]


# -- diffrep quickstart --resume of a finished run ----------------------------------------------------------

@pytest.mark.slow
def test_quickstart_resume_clears_the_earlier_ends_results(tmp_path, monkeypatch, capsys):
    # a finished 2-step quickstart resumed to 3 kept its samples.png, figures and metrics.json (steps 2) while the
    # continuation ran: killed before its figures, the folder showed the earlier end's results as the run's
    import diffrep.cli.quickstart as Q

    out = tmp_path / "qs"
    qs = ["quickstart", "--recipe", "paramrel/digits", "--sample-steps", "1", "--eval", "none", "--out", str(out)]
    assert main([*qs, "--steps", "2"]) == 0
    assert json.loads((out / "metrics.json").read_text())["steps"] == 2
    capsys.readouterr()

    def killed(*args, **kwargs):
        raise RuntimeError("killed")

    monkeypatch.setattr(Q, "write_figures", killed)
    with pytest.raises(RuntimeError, match="killed"):
        main([*qs, "--steps", "3", "--resume"])
    assert "--resume: removed the earlier end's reconstructions.png, samples.png, traversals.png" in \
        capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == ["quickstart.json"]


# -- diffrep aggregate: runs stopped part-way ---------------------------------------------------------------

def test_aggregate_refuses_a_run_stopped_partway_and_records_of_unequal_length(tmp_path, capsys):
    # a killed seed's loss at step 3 was averaged with the finished seeds' at step 4, without a word
    def run(name, steps_logged, planned=4):
        d = tmp_path / name
        d.mkdir()
        (d / "config.yaml").write_text(f"train:\n  steps: {planned}\n")
        (d / "metrics.jsonl").write_text("".join(json.dumps({"step": s, "loss": float(s)}) + "\n" for s in steps_logged))
        return str(d)

    done, done2, killed = run("a", [2, 4]), run("b", [2, 4]), run("c", [2, 3])
    assert main(["aggregate", done, killed]) == 2
    assert (f"error: {killed}: its training record ends at step 3 of train.steps=4 ({tmp_path / 'c' / 'config.yaml'}): "
            "a run stopped part-way; resume it (diffrep train ... --resume latest) or leave it out") in capsys.readouterr().err
    shorter = run("d", [2, 3], planned=3)  # finished, but at another length than the others
    assert main(["aggregate", done, shorter]) == 2
    assert (f"error: {done} and {shorter} differ in their last logged step (4 vs 3): aggregate takes runs of one "
            "configuration trained to the same step") in capsys.readouterr().err
    assert main(["aggregate", done, done2, "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "loss,4.0,0.0,2,0,4.0,4.0"
