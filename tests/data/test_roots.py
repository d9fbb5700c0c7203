"""Dataset roots are never ignored (issue 17 item 16): a root that does not exist, or does not hold the
files, is an error naming the path and the setting; every recipe family takes --data.root."""

import dataclasses

import numpy as np
import pytest

import diffrep.data as D
from diffrep.cli import main
from diffrep.config import ConfigError, apply_overrides
from diffrep.recipes import (bfn, diffae, disdiff, encdiff, get_recipe, infodiffusion, list_recipes, multibeta, paramrel,
                             sami, vae, vq)


@pytest.fixture(autouse=True)
def _no_env_root(monkeypatch):
    monkeypatch.delenv("DIFFREP_DATA", raising=False)


def test_an_explicit_root_that_does_not_exist_is_an_error_naming_it(tmp_path):
    missing = tmp_path / "no_such_folder"
    with pytest.raises(FileNotFoundError, match=rf"dataset root {missing} does not exist; dsprites expects"):
        D.load("dsprites", root=missing)  # before: silently the procedural generator
    with pytest.raises(FileNotFoundError, match=r"does not exist \(set by --data.root\)"):
        D.load("shapes3d", root=missing, root_flag="--data.root")


def test_an_explicit_root_without_the_files_is_an_error_not_a_switch_to_procedural(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"dsprites.*{tmp_path}.*--data.root"):
        D.load("dsprites", root=tmp_path, root_flag="--data.root")
    with pytest.raises(ValueError, match="generated procedurally.*drop --data.root"):
        D.load("digits", root=tmp_path, root_flag="--data.root")
    with pytest.raises(ValueError, match="source='procedural'"):
        D.load("dsprites", root=tmp_path, source="procedural")


def test_the_environment_root(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFREP_DATA", str(tmp_path / "gone"))
    with pytest.raises(FileNotFoundError, match="DIFFREP_DATA"):
        D.load("dsprites")
    monkeypatch.setenv("DIFFREP_DATA", str(tmp_path))  # a shared data folder without dSprites: said, then procedural
    with pytest.warns(UserWarning, match="no original files under DIFFREP_DATA"):
        assert D.load("dsprites").source == "procedural"
    labels = np.stack(np.unravel_index(np.arange(16), (2, 2, 2, 2, 1, 1)), 1).astype(float)
    np.savez(tmp_path / "3dshapes.npz", images=np.zeros((16, 4, 4, 3), np.uint8), labels=labels)
    assert D.load("shapes3d").factor_sizes == (2, 2, 2, 2, 1, 1)  # found there: the file


def _dataset_builder(cfg):
    if isinstance(cfg, paramrel.ParamReLRecipeConfig):
        return lambda: paramrel.build_dataset(cfg)
    if isinstance(cfg, bfn.BFNRecipeConfig):
        return lambda: bfn.build_dataset(cfg)
    if isinstance(cfg, vq.VQRecipeConfig):
        return lambda: vq.build_dataset(cfg)
    if isinstance(cfg, sami.SAMIRecipeConfig):
        return lambda: sami.build_dataset(cfg.data)
    if isinstance(cfg, multibeta.MultiBetaRecipeConfig):
        return lambda: multibeta.build_dataset(cfg)
    if isinstance(cfg, vae._DataFields):
        return lambda: vae.build_dataset(cfg)
    if isinstance(cfg, (encdiff.EncDiffRecipeConfig, diffae.DiffAERecipeConfig, infodiffusion.InfoDiffusionRecipeConfig,
                        disdiff.DisDiffRecipeConfig)):
        return lambda: encdiff.build_dataset(cfg)
    return None


def test_every_recipe_that_reads_files_takes_data_root(tmp_path):
    missing = str(tmp_path / "nowhere")
    checked = 0
    for recipe in list_recipes():
        cfg = recipe.make_config()
        if recipe.name.startswith("demo/"):
            continue  # procedural toy shapes, no data.root
        if not type(cfg).__module__.startswith("diffrep.recipes."):
            continue  # a recipe another test registered (tests/study), not a built-in one
        try:
            cfg = apply_overrides(cfg, ["--data.root", missing])
        except ConfigError as exc:  # procedural data: the root is refused, naming the field
            assert "data.root" in str(exc) and "procedurally" in str(exc), (recipe.name, exc)
            continue
        assert cfg.data.root == missing, recipe.name
        build = _dataset_builder(cfg)
        with pytest.raises((FileNotFoundError, ValueError)) as err:
            build()
        assert missing in str(err.value) and "--data.root" in str(err.value), (recipe.name, str(err.value))
        checked += 1
    assert checked >= 8


def test_train_cli_names_the_missing_root_and_the_flag(tmp_path, capsys):
    out = tmp_path / "run"
    missing = tmp_path / "dsprites_files"
    assert main(["train", "paramrel/dsprites", "--out", str(out), "--data.root", str(missing),
                 "--train.steps", "1", "--train.device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "--data.root" in err and "does not exist" in err and "Traceback" not in err


def test_a_root_given_twice_is_an_error(tmp_path):
    cfg = dataclasses.replace(paramrel.dsprites_cpu(), dataset_options={"root": str(tmp_path)})
    cfg = apply_overrides(cfg, ["--data.root", str(tmp_path)])
    with pytest.raises(ValueError, match="set twice"):
        paramrel.build_dataset(cfg)
    assert get_recipe("paramrel/dsprites")


def test_the_hints_name_the_setting_the_source_came_from(tmp_path):
    # the API's own wording, unchanged: Python arguments
    with pytest.raises(FileNotFoundError) as e:
        D.load("dsprites", root=tmp_path)
    assert "pass root= the folder holding them (or source='procedural' where a generator exists)" in str(e.value)
    with pytest.raises(ValueError, match=r"disks is procedural only \(no original files are read\); use "
                                         r"source='procedural'$"):
        D.load("disks", source="file")
    with pytest.raises(ValueError, match=r"celeba has no procedural generator; pass source='file' and root= holding"):
        D.load("celeba", source="procedural")
    # a command line's flags (diffrep data/eval/encode: --source; the model verbs: --option source=...)
    with pytest.raises(FileNotFoundError) as e:
        D.load("dsprites", root=tmp_path, root_flag="--root", source_flag="--source")
    assert "pass --root the folder holding them (or --source procedural where a generator exists)" in str(e.value)
    with pytest.raises(ValueError, match=r"use --option source=procedural$"):
        D.load("disks", source="file", source_flag="--option source=")
    with pytest.raises(ValueError, match=r"pass --source file and --root holding"):
        D.load("celeba", source="procedural", root_flag="--root", source_flag="--source")
    with pytest.raises(ValueError, match=rf"--root={tmp_path}: --source procedural, so no files are read; drop --root"):
        D.load("dsprites", root=tmp_path, source="procedural", root_flag="--root", source_flag="--source")
    # a root_flag describing a record, not a setting one can pass: the hint falls back to the API's root=
    with pytest.raises(FileNotFoundError, match=r"pass root= the folder .*\(root set by the run's data.root\)"):
        D.load("dsprites", root=tmp_path, root_flag="the run's data.root")
    with pytest.raises(TypeError, match="source_flag must name"):
        D.load("dsprites", source_flag="")


def test_setting_text():
    from diffrep.data.base import setting_text

    assert setting_text("source", "procedural") == "source='procedural'" and setting_text("root") == "root="
    assert setting_text("--source", "procedural") == "--source procedural" and setting_text("--root") == "--root"
    assert setting_text("--option source=", "file") == "--option source=file"
