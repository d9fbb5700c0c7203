"""A run.json written before 2026-12-07 by a sub-grid family (EncDiff, DiffAE, InfoDiffusion, DisDiff) on
a 64 px dataset records ``pool: 4`` its recipe never applied (``pool`` pools the Shapes3D sub-grid only);
the generic model verbs (``diffrep encode`` / ``eval --model``, through ``resolve_data_settings``) then
shrank the images to 16 px. Such a record is read as pool 1, with one stderr note saying why."""

from __future__ import annotations

import json

import pytest

from diffrep.recipes.runinfo import dataset_from_settings, resolve_data_settings


def _old_run(tmp_path, recipe, dataset, pool):
    """A run folder as ``diffrep train`` wrote it before 2026-12-07: run.json beside final/."""
    run = tmp_path / "run"
    (run / "final").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({
        "recipe": recipe, "data": {"dataset": dataset, "options": {}, "pool": pool, "root": None},
        "diffrep_version": "0.1.0"}), encoding="utf-8")
    return run / "final"


@pytest.mark.parametrize("recipe, dataset", [("encdiff/shapes3d", "shapes3d"), ("diffae/celeba64", "celeba"),
                                             ("disdiff/cars3d", "cars3d"), ("infodiffusion/celeba64", "celeba"),
                                             ("disdiff/mpi3d-toy", "mpi3d_toy")])
def test_an_old_sub_grid_family_record_on_a_64px_dataset_reads_pool_1(tmp_path, capsys, recipe, dataset):
    s = resolve_data_settings(_old_run(tmp_path, recipe, dataset, 4))
    assert s["pool"] == 1 and s["dataset"] == dataset
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("note: ")
    assert f"records pool 4 for {dataset}" in err[0] and f"recipe {recipe} pools only shapes3d_subgrid" in err[0]


def test_the_images_are_read_at_64px_not_16(tmp_path, capsys):
    s = resolve_data_settings(_old_run(tmp_path, "encdiff/shapes3d", "shapes3d", 4))
    assert tuple(dataset_from_settings(s)[0][0].shape) == (3, 64, 64)   # was 64 // 4 = 16 px


def test_a_pool_given_on_the_command_line_wins_without_a_note(tmp_path, capsys):
    assert resolve_data_settings(_old_run(tmp_path, "encdiff/shapes3d", "shapes3d", 4), pool=2)["pool"] == 2
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("recipe, dataset, pool", [
    ("encdiff/shapes3d-cpu", "shapes3d_subgrid", 4),   # the sub-grid: the pool its recipe applied
    ("paramrel/dsprites", "dsprites", 2),              # a family that pools any dataset
    ("my/own-recipe", "shapes3d", 4),                  # not registered here: its record stands
    ("encdiff/shapes3d", "shapes3d", 1),               # a record written since 2026-12-07
])
def test_records_whose_pool_was_applied_are_kept(tmp_path, capsys, recipe, dataset, pool):
    assert resolve_data_settings(_old_run(tmp_path, recipe, dataset, pool))["pool"] == pool
    assert capsys.readouterr().err == ""


def test_another_dataset_on_the_command_line_is_unpooled_without_a_note(tmp_path, capsys):
    s = resolve_data_settings(_old_run(tmp_path, "encdiff/shapes3d", "shapes3d", 4), "dsprites")
    assert s["pool"] == 1 and capsys.readouterr().err == ""
