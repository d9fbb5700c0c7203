"""run.json of the sub-grid families (EncDiff, DiffAE, InfoDiffusion, DisDiff) records the pooling their
``build_dataset`` applied: ``pool`` average-pools the Shapes3D sub-grid only, so a paper recipe on Shapes3D,
Cars3D or CelebA at 64 px recorded pool 4 it never applied, and ``diffrep encode`` / ``eval --model`` then
max-pooled the images to 16 px for a 64 px model. The families that pool any dataset keep their pool."""

from __future__ import annotations

import dataclasses

import pytest

from diffrep.recipes import get_recipe
from diffrep.recipes.runinfo import SUBGRID, data_settings


@pytest.mark.parametrize("name", ["encdiff/shapes3d", "encdiff/celeba64", "diffae/celeba64", "disdiff/cars3d",
                                  "infodiffusion/celeba64"])
def test_a_sub_grid_family_on_another_dataset_records_no_pooling(name):
    cfg = get_recipe(name).make_config()
    assert cfg.dataset != SUBGRID and cfg.pool == 4      # the field's default, unused for this dataset
    assert data_settings(cfg)["pool"] == 1
    assert "pool_dataset" not in {f.name for f in dataclasses.fields(cfg)}   # not a config field


@pytest.mark.parametrize("name, pool", [("encdiff/shapes3d-cpu", 4), ("diffae/shapes3d-cpu", 4),
                                        ("infodiffusion/shapes3d-cpu", 4), ("disdiff/shapes3d-cpu", 4)])
def test_the_sub_grid_keeps_its_pooling(name, pool):
    cfg = get_recipe(name).make_config()
    assert cfg.dataset == SUBGRID and data_settings(cfg)["pool"] == cfg.pool == pool


def test_families_that_pool_any_dataset_keep_their_pool():
    cfg = get_recipe("paramrel/dsprites").make_config()
    assert cfg.pool == 2 and data_settings(cfg)["pool"] == 2
