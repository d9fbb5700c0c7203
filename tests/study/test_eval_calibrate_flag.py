"""``diffrep eval --model RUN --calibrate METHOD`` and ``diffrep encode ... --calibrate METHOD``: what a study's
``eval.calibrate`` does, from the command line (docs/study.md, "Calibration"). A DisDiff run trained with
``diffrep train`` could not be evaluated: its ``encode`` needs the per-unit PCA, which only a study fitted. The
scores equal the study's on the same trained model; the codes equal the model calibrated by hand on the images
of RandomState(seed + 1), then encoded on the rows of RandomState(seed)."""

import json

import numpy as np
import pytest
import torch

from diffrep.cli import main
from diffrep.nn import load_pretrained
from diffrep.study import parse_study, run_study
from study_fake import crash_switch_off, quiet

pytestmark = pytest.mark.usefixtures(crash_switch_off.__name__)

EVAL = ["--metrics", "mig", "--num-train", "100", "--num-test", "50", "--seed", "3", "--device", "cpu"]


@pytest.fixture(scope="module")
def cell(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    st = parse_study({"seeds": [0], "steps": 2, "methods": {"c": {"recipe": "test/study-centered-ae",
                                                                   "eval": {"calibrate": "fit_center",
                                                                            "calibrate_images": 64}}},
                      "eval": {"metrics": ["mig"], "num_train": 100, "num_test": 50, "seed": 3, "device": "cpu"}})
    run_study(st, root, log=quiet)
    return root / st.cells[0].folder


def test_eval_calibrate_equals_the_study_and_a_calibration_by_hand(cell, tmp_path):
    from diffrep.data.base import format_images
    from diffrep.recipes.runinfo import dataset_from_settings, resolve_data_settings

    out = tmp_path / "eval.json"
    assert main(["eval", "--model", str(cell), *EVAL, "--calibrate", "fit_center", "--calibrate-images", "64",
                 "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    study = json.loads((cell / "metrics.json").read_text())
    assert got["scores"] == pytest.approx(study["scores"], rel=0, abs=1e-12)
    assert got["meta"]["calibrate"] == "fit_center" and got["meta"]["calibrate_images"] == 64
    # the codes: the trained model's centre refitted by hand on 64 images of RandomState(3 + 1)
    codes = tmp_path / "codes.npz"
    assert main(["encode", str(cell), "--num-train", "100", "--num-test", "50", "--seed", "3", "--device", "cpu",
                 "--calibrate", "fit_center", "--calibrate-images", "64", "--out", str(codes)]) == 0
    final = load_pretrained(cell / "final")
    ds = dataset_from_settings(resolve_data_settings(cell / "final"), source="auto")
    rng = np.random.RandomState(4)
    x = format_images(np.asarray(ds.sample_observations_from_factors(ds.sample_factors(64, rng), rng)), "pm1")
    rng = np.random.RandomState(3)
    f = ds.sample_factors(100, rng)
    rows = format_images(np.asarray(ds.sample_observations_from_factors(f, rng)), "pm1")
    with torch.no_grad():
        centre = final.enc(x.reshape(64, -1)).mean(0)
        want = (final.enc(rows.reshape(100, -1)) - centre).numpy()
    arrays = np.load(codes)
    np.testing.assert_array_equal(arrays["factors"], f)
    np.testing.assert_allclose(arrays["codes"], want, rtol=0, atol=1e-6)
    assert json.loads(str(arrays["meta"]))["calibrate"] == "fit_center"


@pytest.mark.parametrize("argv, text", [
    (["--calibrate", "fit_code_pca"], "calibrate 'fit_code_pca': StudyCenteredAE has no such method"),
    (["--calibrate", "_private"], "calibrate '_private': StudyCenteredAE has no such method"),
    (["--calibrate-images", "5"], "--calibrate-images applies with --calibrate METHOD"),
    (["--calibrate", "fit_center", "--calibrate-images", "0"], "--calibrate-images must be an int >= 1, got 0"),
])
def test_calibrate_flag_errors(cell, argv, text, capsys):
    for verb in (["eval", "--model", str(cell), *EVAL], ["encode", str(cell), "--out", "unused.npz"]):
        assert main([*verb, *argv]) == 2
        err = capsys.readouterr().err
        assert text in err and "Traceback" not in err, err


def test_calibrate_is_refused_with_codes(cell, tmp_path, capsys):
    np.savez(tmp_path / "c.npz", codes=np.zeros((10, 2)), factors=np.zeros((10, 1), dtype=int))
    assert main(["eval", "--codes", str(tmp_path / "c.npz"), "--calibrate", "fit_center"]) == 2
    assert "--calibrate applies to --model only" in capsys.readouterr().err


def test_calibrate_model_refuses_bad_arguments_by_name():
    from diffrep.recipes.encode import calibrate_model

    class _NoFactors:
        def __len__(self):
            return 4

    model = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="calibrate_images must be"):
        calibrate_model(model, _NoFactors(), "forward", 0, 0, "pm1")
    with pytest.raises(ValueError, match="calibrate_model: ds must be a ground-truth dataset .*_NoFactors"):
        calibrate_model(model, _NoFactors(), "forward", 8, 0, "pm1")
