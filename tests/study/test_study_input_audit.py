"""Regression tests of the study-spec input audit (2026-12-07): study files that were accepted but expanded
to cells that silently ignored a setting or duplicated runs. Each test names what happened before the fix."""

import pytest

from diffrep.study import StudyError, parse_study
from study_fake import RECIPE, study_dict


def _method(**m):
    return {"ae": {"recipe": RECIPE, **m}}


def test_grid_over_train_seed_refused():
    # before: the seeds layer (applied last) overwrote every grid value, so the cells "seed=5" and "seed=6"
    # were identical runs (train.seed 0 and 1 in both) in differently named folders
    with pytest.raises(StudyError, match=r"grid.train.seed: seeds: sets train.seed"):
        parse_study(study_dict(methods=_method(grid={"train.seed": [5, 6]})))


def test_train_seed_in_an_overrides_layer_refused():
    # before: overrides: {train.seed: 9} was accepted and ignored (every cell got the seeds: value)
    with pytest.raises(StudyError, match=r"overrides: train.seed is set by seeds:"):
        parse_study(study_dict(overrides={"train.seed": 9}))
    with pytest.raises(StudyError, match=r"methods.ae.overrides: train.seed is set by seeds:"):
        parse_study(study_dict(methods=_method(overrides={"train.seed": 9})))


def test_grid_over_train_steps_with_steps_set_refused():
    # before: steps: (applied after the grid) overwrote the axis: cells "steps=5" and "steps=6" both trained 3
    with pytest.raises(StudyError, match=r"grid.train.steps: steps: sets train.steps"):
        parse_study(study_dict(steps=3, methods=_method(grid={"train.steps": [5, 6]})))
    st = parse_study(study_dict(steps=None, methods=_method(grid={"train.steps": [5, 6]})))
    assert sorted({c.config.train.steps for c in st.cells}) == [5, 6]  # without steps: the grid applies


def test_grid_paths_naming_one_field_twice_refused():
    # before: model.latent_dim and model.latent-dim were two axes of one field; the second overwrote the first,
    # so half the cells were duplicates under different folder names
    with pytest.raises(StudyError, match="name the same field"):
        parse_study(study_dict(methods=_method(grid={"model.latent_dim": [2, 3], "model.latent-dim": [4, 5]})))


def test_grid_path_that_is_not_a_string_refused():
    # before: AttributeError: 'int' object has no attribute 'replace'
    with pytest.raises(StudyError, match="grid paths are dotted config fields"):
        parse_study(study_dict(methods=_method(grid={5: [1, 2]})))


def test_dataset_listed_twice_is_named():
    # before: the error blamed grid values ("two cells share the folder ... two grid values print the same")
    with pytest.raises(StudyError, match="datasets lists 'dsprites' twice"):
        parse_study(study_dict(datasets=["dsprites", "dsprites"]))


def test_slurm_array_step_is_checked():
    # before: SLURM_ARRAY_TASK_STEP="x" raised a bare int() ValueError and "0" a ZeroDivisionError; a task id
    # off the MIN + k * STEP lattice was floored onto a neighbour's rank (task 4 of 0,3,6 ran rank 1's cells)
    from diffrep.study.runner import shard_from_env

    base = {"SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_COUNT": "3"}
    assert shard_from_env(None, None, env={**base, "SLURM_ARRAY_TASK_ID": "6", "SLURM_ARRAY_TASK_STEP": "3"}) == (2, 3)
    with pytest.raises(StudyError, match="not integers"):
        shard_from_env(None, None, env={**base, "SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_STEP": "x"})
    for task, step in (("0", "0"), ("4", "3"), ("9", "3")):
        with pytest.raises(StudyError, match="is not one of MIN"):
            shard_from_env(None, None, env={**base, "SLURM_ARRAY_TASK_ID": task, "SLURM_ARRAY_TASK_STEP": step})


def test_report_names_the_study_file_when_its_report_metrics_are_unknown(tmp_path):
    # before: "--metrics: ['dci'] not in the results" although no --metrics was passed (the names came from
    # the study file's report.metrics)
    import json

    from diffrep.study import write_report
    from diffrep.study.runner import _record_study

    st = parse_study(study_dict(seeds=[0], eval={"metrics": ["mig"]}, report={"metrics": ["dci"]}), "s.yaml")
    _record_study(st, tmp_path)
    for c in st.cells:
        (tmp_path / c.folder).mkdir(parents=True)
        (tmp_path / c.folder / "metrics.json").write_text(json.dumps({"scores": {"mig": 0.5}, "train": {}}))
        (tmp_path / c.folder / "done.json").write_text(json.dumps({"hash": c.hash}))
    with pytest.raises(StudyError, match=r"report.metrics \(s.yaml\): \['dci'\] not in the results; known: mig"):
        write_report(tmp_path, plots=False)
    with pytest.raises(StudyError, match=r"^--metrics: \['sap'\]"):
        write_report(tmp_path, metrics=["sap"], plots=False)
