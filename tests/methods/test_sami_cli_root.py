"""``diffrep sami sample|analyze --root``: the dataset's files read from another folder than the run's
``data.root`` (its config.yaml data section), as every model verb's ``--root`` wins over the run's record
(docs/data.md). SAMI had no such flag: data moved since training could only be reached by editing the run's
config.yaml, and the loader's message named ``--data.root``, a flag of ``diffrep train`` only."""

from __future__ import annotations

import pytest
import torch

from diffrep.cli import main

from helpers import tiny_sami


@pytest.fixture
def model(tmp_path):
    """A tiny 1 x 8 x 8 SAMI saved with a config.yaml whose data section reads dSprites from a folder that has
    since moved."""
    d = tmp_path / "m"
    tiny_sami(dtype=torch.float32, sampler="ddim").save_pretrained(d)
    moved = tmp_path / "moved"
    (d / "config.yaml").write_text(f"data:\n  dataset: dsprites\n  root: {moved}\n", encoding="utf-8")
    return d, moved


def _guided(d, tmp_path, *flags):
    return main(["sami", "sample", str(d), "--mode", "cond", "--n", "1", "--guides", "1",
                 "--out", str(tmp_path / "g.png"), *flags])


def test_the_runs_root_is_named_as_the_runs_and_root_wins_over_it(tmp_path, capsys, model):
    d, moved = model
    assert _guided(d, tmp_path) == 2
    err = capsys.readouterr().err
    assert f"dataset root {moved} does not exist (set by the run's data.root)" in err and "Traceback" not in err
    other = tmp_path / "elsewhere"
    assert _guided(d, tmp_path, "--root", str(other)) == 2
    assert f"dataset root {other} does not exist (set by --root)" in capsys.readouterr().err
    assert main(["sami", "analyze", str(d), "--what", "spectrum", "--root", str(other),
                 "--out", str(tmp_path / "an")]) == 2
    assert f"dataset root {other} does not exist (set by --root)" in capsys.readouterr().err
    assert not (tmp_path / "g.png").exists()


def test_root_for_procedural_data_or_a_verb_reading_none_is_refused(tmp_path, capsys, model):
    d, _ = model
    (d / "config.yaml").write_text("data:\n  dataset: disks\n  size: 8\n  num_images: 16\n", encoding="utf-8")
    assert _guided(d, tmp_path, "--root", str(tmp_path)) == 2
    assert (f"--root {tmp_path}: the run's disks is drawn procedurally, no files are read; drop --root"
            in capsys.readouterr().err)
    assert main(["sami", "sample", str(d), "--mode", "prior", "--n", "1", "--root", str(tmp_path),
                 "--out", str(tmp_path / "p.png")]) == 2
    assert "--root applies to --mode cond (its guides are dataset images); --mode prior reads no data" in (
        capsys.readouterr().err)
    assert _guided(d, tmp_path) == 0 and (tmp_path / "g.png").is_file()   # without --root: the run's disks


def test_build_eval_dataset_names_its_root_flag():
    from diffrep.recipes.sami import SAMIDataConfig, build_eval_dataset

    cfg = SAMIDataConfig("image_folder", size=8)
    with pytest.raises(ValueError, match=r"^--root must name the image folder"):
        build_eval_dataset(cfg, 4, root_flag="--root")
    with pytest.raises(TypeError, match="root_flag must name a setting"):
        build_eval_dataset(cfg, 4, root_flag="")
