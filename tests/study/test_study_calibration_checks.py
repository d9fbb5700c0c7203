"""A study's calibration is checked when the file is read, before any cell trains (docs/study.md,
"Calibration"): a DisDiff method without ``eval.calibrate`` (its ``encode`` needs the per-unit PCA), and an
``eval.calibrate`` that names a method the model does not have. Both failed at the cell's evaluation, after its
training; adding the calibration then changed the cell's hash, so the cell trained again."""

import pytest

from diffrep.methods.disdiff import DisDiff
from diffrep.study import StudyError, parse_study
from study_fake import RECIPE

EVAL = {"metrics": ["mig"], "num_train": 50, "num_test": 20, "device": "cpu"}


def _study(method: dict, **eval_over) -> dict:
    return {"seeds": [0], "steps": 1, "methods": {"m": method}, "eval": {**EVAL, **eval_over}}


def test_disdiff_without_calibrate_is_refused_by_name():
    assert DisDiff.encode_calibration == "fit_code_pca" and callable(DisDiff.fit_code_pca)
    with pytest.raises(StudyError, match=r"methods\.m: DisDiff\.encode needs fit_code_pca\(\) first; add eval: "
                                         r"\{calibrate: fit_code_pca\}"):
        parse_study(_study({"recipe": "disdiff/shapes3d-cpu-onerun"}))
    # with it, or when nothing is measured (metrics: []), the cells are planned
    ok = parse_study(_study({"recipe": "disdiff/shapes3d-cpu-onerun", "eval": {"calibrate": "fit_code_pca"}}))
    assert ok.cells[0].eval.calibrate == "fit_code_pca"
    assert len(parse_study(_study({"recipe": "disdiff/shapes3d-cpu-onerun"}, metrics=[])).cells) == 1


def test_a_calibrate_method_the_model_lacks_is_refused_by_name():
    with pytest.raises(StudyError, match=r"methods\.m\.eval\.calibrate names fit_code_pca\(\), which DiffAE does "
                                         r"not have"):
        parse_study(_study({"recipe": "diffae/shapes3d-cpu", "eval": {"calibrate": "fit_code_pca"}}))
    with pytest.raises(StudyError, match=r"which InfoDiffusion does not have"):
        parse_study(_study({"recipe": "infodiffusion/shapes3d-cpu"}, calibrate="fit_code_pca"))
    # DiffAE and InfoDiffusion need none
    assert len(parse_study(_study({"recipe": "diffae/shapes3d-cpu"})).cells) == 1


def test_a_model_config_shared_by_two_classes_is_left_to_the_runner():
    # study_fake's StudyTinyAE and StudyCenteredAE share a config: which one the recipe builds is not known
    # before it builds, so the runner's own check (after training) stays the only one
    assert len(parse_study(_study({"recipe": RECIPE, "eval": {"calibrate": "fit_center"}})).cells) == 1
