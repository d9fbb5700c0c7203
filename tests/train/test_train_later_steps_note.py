"""``diffrep train RECIPE --train.steps N`` names the steps it does not set: a smoke test of a multi-phase
recipe (multibeta/...) trained phase 2 for the recipe's ``train_latent.steps`` (3000 on CPU, 200k for a
paper recipe), and one of the one-run DisDiff recipe stopped inside its ``model.pretrain_steps`` and never
disentangled. One stderr note, printed before anything is built or trained."""

from __future__ import annotations

import pytest

from diffrep.cli import main
from diffrep.cli.train import later_steps_note, resolve_config
from diffrep.recipes import get_recipe

MB = "multibeta/shapes3d-cpu"
ADV = ["--phases", "[1,2,3]", "--model.adv_disc_weight", "0.1"]  # phase 3 needs a discriminator weight


def _note(name, overrides, config_file=None):
    return later_steps_note(resolve_config(name, None, overrides)[1], overrides, config_file)


def test_multibeta_train_steps_alone_names_phase_2():
    latent = get_recipe(MB).make_config().train_latent.steps
    assert latent == 3000
    assert _note(MB, ["--train.steps", "2"]) == ("note: --train.steps sets phase 1 only; phase 2 trains "
                                                 "train_latent.steps=3000 (add --train_latent.steps N)")


def test_multibeta_with_phase_3_names_both_and_then_the_one_left():
    adv = get_recipe(MB).make_config().train_adv.steps
    assert _note(MB, ["--train.steps", "2", *ADV]) == (
        f"note: --train.steps sets phase 1 only; phase 2 trains train_latent.steps=3000 and phase 3 trains "
        f"train_adv.steps={adv} (add --train_latent.steps N --train_adv.steps N)")
    assert _note(MB, ["--train.steps", "2", "--train_latent.steps", "2", *ADV]) == (
        f"note: --train.steps sets phase 1 only; phase 3 trains train_adv.steps={adv} (add --train_adv.steps N)")


@pytest.mark.parametrize("overrides, config_file", [
    (["--train.steps", "2", "--train_latent.steps", "2"], None),
    (["--train.steps=2", "--train-latent.steps=2"], None),           # set_path reads dashes as underscores
    (["--train.steps", "2"], {"train_latent": {"steps": 2}}),          # the --config file sets it
    (["--train_latent.steps", "2"], None),                             # train.steps not given: the recipe's own
    ([], None),
])
def test_no_note_when_the_later_steps_are_set_or_train_steps_is_not(overrides, config_file):
    assert _note(MB, overrides, config_file) is None


def test_phase_3_alone_not_listed_is_not_named():
    assert "train_adv" not in _note(MB, ["--train.steps", "2"])       # phases (1, 2): phase 3 does not run


def test_disdiff_one_run_inside_its_pretraining_is_named():
    pre = get_recipe("disdiff/shapes3d-cpu-onerun").make_config().model.pretrain_steps
    assert pre == 1500
    assert _note("disdiff/shapes3d-cpu-onerun", ["--train.steps", "2"]) == (
        "note: --train.steps=2 ends the run within its first model.pretrain_steps=1500 steps, which pre-train "
        "eps_theta: it never disentangles (add --model.pretrain_steps N, N < train.steps)")
    assert _note("disdiff/shapes3d-cpu-onerun", ["--train.steps", "1500"]) is not None   # steps 0..1499 all pre-train
    assert _note("disdiff/shapes3d-cpu-onerun", ["--train.steps", "1501"]) is None       # step 1500 disentangles
    assert _note("disdiff/shapes3d-cpu-onerun", ["--train.steps", "2", "--model.pretrain_steps", "1"]) is None


@pytest.mark.parametrize("name", ["demo/toy-ddpm", "disdiff/shapes3d-cpu", "disdiff/shapes3d-cpu-pretrain",
                                  "diffae/shapes3d-cpu", "encdiff/shapes3d-cpu"])
def test_single_phase_recipes_get_no_note(name):
    assert _note(name, ["--train.steps", "2"]) is None


def test_not_a_recipe_config_is_named():
    with pytest.raises(TypeError, match="later_steps_note: cfg must be a recipe config"):
        later_steps_note(object(), ["--train.steps", "2"])


def test_the_cli_prints_the_note_before_anything_is_built(tmp_path, capsys):
    out = tmp_path / "study"
    out.mkdir()
    (out / "study.json").write_text("{}")        # refused as --out after the note, before the model is built
    assert main(["train", MB, "--out", str(out), "--train.steps", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("note: --train.steps sets phase 1 only") == 1
    assert err.index("note: --train.steps") < err.index("holds a study")


# -- train.steps given in the --config file: the same smoke test written in a file got no note ---------------

def _note_from_file(name, file, overrides=()):
    """The note of ``diffrep train NAME --config FILE [overrides]``: the config resolved as the CLI does."""
    from diffrep.config import apply_overrides, config_from_dict, config_to_dict

    cfg = get_recipe(name).make_config()
    d = config_to_dict(cfg)
    for section, fields in file.items():
        d[section] = {**d[section], **fields} if isinstance(fields, dict) else fields
    cfg = config_from_dict(type(cfg), d)
    if overrides:
        cfg = apply_overrides(cfg, list(overrides))
    return later_steps_note(cfg, list(overrides), file)


def test_train_steps_in_the_config_file_names_the_later_phases():
    assert _note_from_file(MB, {"train": {"steps": 2}}) == (
        "note: train.steps in the --config file sets phase 1 only; phase 2 trains train_latent.steps=3000 "
        "(add --train_latent.steps N)")
    assert _note_from_file(MB, {"train": {"steps": 2}, "train_latent": {"steps": 2}}) is None
    assert _note_from_file(MB, {"train": {"steps": 2}}, ["--train_latent.steps", "2"]) is None
    assert _note_from_file(MB, {"train": {"lr": 1e-3}}) is None                     # steps not set: the recipe's


def test_the_command_lines_train_steps_is_the_one_named_over_the_files():
    assert _note_from_file(MB, {"train": {"steps": 7}}, ["--train.steps", "2"]).startswith(
        "note: --train.steps sets phase 1 only")


def test_disdiff_pretraining_named_from_the_config_file():
    assert _note_from_file("disdiff/shapes3d-cpu-onerun", {"train": {"steps": 2}}) == (
        "note: train.steps=2 in the --config file ends the run within its first model.pretrain_steps=1500 steps, "
        "which pre-train eps_theta: it never disentangles (add --model.pretrain_steps N, N < train.steps)")
    assert _note_from_file("disdiff/shapes3d-cpu-onerun", {"train": {"steps": 2}, "model": {"pretrain_steps": 1}}) is None


def test_a_config_file_that_is_not_a_mapping_is_named():
    cfg = get_recipe(MB).make_config()
    with pytest.raises(TypeError, match="later_steps_note: config_file must be the --config file's mapping"):
        later_steps_note(cfg, [], ["train"])


def test_the_cli_prints_the_note_for_a_config_file_too(tmp_path, capsys):
    out = tmp_path / "study"
    out.mkdir()
    (out / "study.json").write_text("{}")
    cfg = tmp_path / "smoke.yaml"
    cfg.write_text("train:\n  steps: 2\n", encoding="utf-8")
    assert main(["train", MB, "--out", str(out), "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.count("note: train.steps in the --config file sets phase 1 only") == 1
    assert err.index("note: train.steps") < err.index("holds a study")
