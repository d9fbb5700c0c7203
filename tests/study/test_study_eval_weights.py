"""A study's ``eval.weights``: the choices, default and rule of every verb's ``--weights`` (docs/study.md,
"Weights"): ``auto`` reads the EMA copy of a run that kept one and the raw weights otherwise. The codes
behind each score are rebuilt here by hand from the safetensors files of ``final/`` (the factor rows
drawn as ``diffrep.recipes.encode`` draws them), so the check does not go through the runner's choice."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from diffrep.data.base import format_images
from diffrep.metrics.suite import compute
from diffrep.nn import load_pretrained
from diffrep.recipes.runinfo import dataset_from_settings, resolve_data_settings
from diffrep.study import StudyError, parse_study, run_study
from diffrep.study.spec import EVAL_DEFAULTS, EvalSpec
from study_fake import RECIPE, crash_switch_off, quiet

pytestmark = pytest.mark.usefixtures(crash_switch_off.__name__)  # imported above: pytest finds it here

EV = {"metrics": ["mig", "sap"], "num_train": 60, "num_test": 30, "seed": 5, "device": "cpu"}
EMA = {"train.ema_decay": 0.9, "train.ema_warmup": False}  # an EMA far from the last weights after 3 steps


def _codes(final, state, ev=EV):
    """The arrays ``compute`` reads: a StudyTinyAE holding ``state`` encodes the factor rows of
    ``RandomState(ev seed)`` (train rows, then test rows; one batch each), as pm1 images."""
    model = load_pretrained(final)  # the class and config; the weights are the ones given
    model.load_state_dict(state)
    ds = dataset_from_settings(resolve_data_settings(final), source="auto")
    rng = np.random.RandomState(ev["seed"])
    out = {}
    for key, n in (("", ev["num_train"]), ("_test", ev["num_test"])):
        factors = ds.sample_factors(n, rng)
        x = format_images(np.asarray(ds.sample_observations_from_factors(factors, rng)), "pm1")
        with torch.no_grad():
            out["codes" + key] = model.enc(x.reshape(n, -1)).float().numpy()  # float32, as encode_dataset keeps it
        out["factors" + key] = np.asarray(factors)
    return out


def _scores(arrays):
    return compute(dict(arrays), list(EV["metrics"])).to_json()["scores"]


def test_auto_is_the_default_and_the_choices_are_the_verbs():
    assert EVAL_DEFAULTS["weights"] == "auto" and EvalSpec().weights == "auto"
    st = parse_study({"seeds": [0], "methods": {"a": RECIPE}})
    assert st.cells[0].eval.weights == "auto" and st.cells[0].describe()["eval"]["weights"] == "auto"
    for w in ("auto", "ema", "model"):  # a cell that keeps an EMA copy: "ema" is refused on one without (below)
        st = parse_study({"seeds": [0], "methods": {"a": {"recipe": RECIPE, "overrides": EMA}}, "eval": {"weights": w}})
        assert st.cells[0].eval.weights == w
    with pytest.raises(StudyError, match=r"eval\.weights must be one of \['auto', 'ema', 'model'\], got 'best'"):
        parse_study({"methods": {"a": RECIPE}, "eval": {"weights": "best"}})
    with pytest.raises(StudyError, match=r"methods\.a\.eval\.weights must be one of \['auto', 'ema', 'model'\]"):
        parse_study({"methods": {"a": {"recipe": RECIPE, "eval": {"weights": "raw"}}}})
    # one rule: the verbs' function, not a copy of it
    import diffrep.cli._common as common
    import diffrep.nn.pretrained as pretrained

    assert common.resolve_weights is pretrained.resolve_weights
    with pytest.raises(TypeError, match="model_dir must be a path"):
        pretrained.resolve_weights(None, "auto")
    with pytest.raises(ValueError, match=r"eval\.weights must be auto, ema or model, got 'best'"):
        pretrained.resolve_weights(".", "best", flag="eval.weights")


def test_auto_reads_the_ema_weights_when_the_run_has_them_and_the_raw_ones_otherwise(tmp_path, capsys):
    st = parse_study({"seeds": [0], "steps": 3, "eval": EV, "methods": {
        "ema": {"recipe": RECIPE, "overrides": EMA},                                   # eval.weights left out: auto
        "ema-model": {"recipe": RECIPE, "overrides": EMA, "eval": {"weights": "model"}},
        "ema-ema": {"recipe": RECIPE, "overrides": EMA, "eval": {"weights": "ema"}},
        "raw": RECIPE}})                                                                # ema_decay 0: no EMA copy
    run_study(st, tmp_path, log=quiet)
    cells = {c.method: tmp_path / c.folder for c in st.cells}
    m = {k: json.loads((d / "metrics.json").read_text()) for k, d in cells.items()}

    final = cells["ema"] / "final"
    raw_state, ema_state = load_file(final / "model.safetensors"), load_file(final / "ema.safetensors")
    gap = max(float((raw_state[k] - ema_state[k]).abs().max()) for k in raw_state)
    assert gap > 1e-3  # the two sets of weights are apart, so reading the wrong one shows
    by_ema, by_raw = _codes(final, ema_state), _codes(final, raw_state)
    assert np.abs(by_ema["codes"] - by_raw["codes"]).max() > 1e-3
    want_ema, want_raw = _scores(by_ema), _scores(by_raw)
    assert want_ema != want_raw

    # the default reads the EMA copy; "ema" too; "model" the raw weights of the same run (same seed, same config)
    assert m["ema"]["meta"]["weights"] == "ema" and m["ema"]["scores"] == pytest.approx(want_ema, rel=0, abs=1e-12)
    assert m["ema-ema"]["meta"]["weights"] == "ema" and m["ema-ema"]["scores"] == pytest.approx(want_ema, rel=0, abs=1e-12)
    assert load_file(cells["ema-model"] / "final" / "model.safetensors").keys() == raw_state.keys()
    for k, v in load_file(cells["ema-model"] / "final" / "model.safetensors").items():
        torch.testing.assert_close(v, raw_state[k], rtol=0, atol=0)
    assert m["ema-model"]["meta"]["weights"] == "model"
    assert m["ema-model"]["scores"] == pytest.approx(want_raw, rel=0, abs=1e-12)

    # a run without an EMA copy: auto reads the raw weights and says so
    raw_final = cells["raw"] / "final"
    assert not (raw_final / "ema.safetensors").exists()
    assert m["raw"]["meta"]["weights"] == "model"
    assert m["raw"]["scores"] == pytest.approx(_scores(_codes(raw_final, load_file(raw_final / "model.safetensors"))),
                                               rel=0, abs=1e-12)
    assert f"diffrep study: {raw_final} has no EMA weights; using the raw weights" in capsys.readouterr().err


def test_ema_without_an_ema_copy_is_refused_when_the_file_is_read(tmp_path):
    # it failed at the evaluation, after the cell trained (and changing eval.weights then changed the hash)
    with pytest.raises(StudyError) as e:
        parse_study({"seeds": [0], "steps": 2, "eval": {**EV, "weights": "ema"}, "methods": {"raw": RECIPE}})
    assert str(e.value) == ("<study>: methods.raw: eval.weights is ema, but train.ema_decay is 0: training keeps no EMA "
                            "copy to evaluate; use eval.weights auto or model, or set train.ema_decay > 0")
    # a grid point that turns the EMA off is caught too; a method that measures nothing is not evaluated
    with pytest.raises(StudyError, match="methods.g: eval.weights is ema, but train.ema_decay is 0"):
        parse_study({"seeds": [0], "eval": {**EV, "weights": "ema"}, "methods": {"g": {
            "recipe": RECIPE, "overrides": EMA, "grid": {"train.ema_decay": [0.9, 0.0]}}}})
    parse_study({"seeds": [0], "eval": {"metrics": [], "weights": "ema"}, "methods": {"raw": RECIPE}})
    # where the file cannot tell (the copy missing all the same), the evaluation still names the setting
    st = parse_study({"seeds": [0], "steps": 2, "eval": {**EV, "weights": "ema"},
                      "methods": {"raw": {"recipe": RECIPE, "overrides": EMA}}})
    run_study(st, tmp_path, log=quiet)
    from diffrep.study.runner import _evaluate

    d = tmp_path / st.cells[0].folder
    (d / "final" / "ema.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"has no ema\.safetensors; use eval\.weights model \(or auto\)"):
        _evaluate(st.cells[0], d, quiet)


# ------------------------------------------------------------------------------------------------
# eval.calibrate fits the weights auto chose




def test_calibration_starts_from_the_weights_auto_chose(tmp_path):
    st = parse_study({"seeds": [0], "steps": 3, "methods": {"c": {
        "recipe": "test/study-centered-ae", "overrides": EMA,
        "eval": {"calibrate": "fit_center", "calibrate_images": 32}}}, "eval": {**EV, "metrics": ["sap"]}})
    run_study(st, tmp_path, log=quiet)
    d = tmp_path / st.cells[0].folder
    m = json.loads((d / "metrics.json").read_text())
    assert m["meta"]["calibrated_weights"] == "ema" and m["meta"]["weights"] == "model"  # calibrated/ holds one set
    ema_state, cal_state = load_file(d / "final" / "ema.safetensors"), load_file(d / "calibrated" / "model.safetensors")
    for k in ("enc.weight", "enc.bias", "dec.weight", "dec.bias"):
        torch.testing.assert_close(cal_state[k], ema_state[k], rtol=0, atol=0)
    assert torch.count_nonzero(cal_state["center"]) == 3  # fitted


def test_the_study_files_weights():
    """studies/all_methods_cpu.yaml keeps its record's protocol (every model's own weights; SAMI's cells keep an
    EMA copy); studies/dsprites_cpu.yaml takes the default (none of its cells keeps one)."""
    from pathlib import Path

    from diffrep.study import load_study

    root = Path(__file__).resolve().parents[2] / "studies"
    every = load_study(root / "all_methods_cpu.yaml")
    assert {c.eval.weights for c in every.cells} == {"model"}
    assert {c.method for c in every.cells if c.config.train.ema_decay > 0} == {"sami"}
    # the recipes' *_weights fields (2026-12-07) hold their pre-field value there (SAMI's by default), so no hash changed
    from diffrep.study.spec import hashed_config

    pinned = [(c.method, k) for c in every.cells for k in getattr(type(c.config), "fields_added", {})]
    assert {m for m, _ in pinned} == {"diffae", "disdiff", "encdiff-dyga", "encdiff", "multibeta", "sami"}
    assert all(k not in hashed_config(c.config) for c in every.cells for k in getattr(type(c.config), "fields_added", {}))
    vae = load_study(root / "dsprites_cpu.yaml")
    assert {c.eval.weights for c in vae.cells} == {"auto"} and all(c.config.train.ema_decay == 0 for c in vae.cells)
