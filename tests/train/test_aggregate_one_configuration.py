"""``diffrep aggregate`` takes the seeds of one configuration: runs whose files record different recipes,
datasets or metric variants are refused with both runs named (``diffrep aggregate runs/*`` averaged a
beta-VAE's loss with a DDPM's), and a study folder points at ``diffrep study report``."""

import json

import pytest

from diffrep.cli import main
from diffrep.cli.aggregate import check_same_configuration, run_identity


def _run(folder, recipe, loss):
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"recipe": recipe, "data": {"dataset": "dsprites"}}))
    (folder / "metrics.jsonl").write_text(json.dumps({"step": 2, "loss": loss}) + "\n")
    return folder


def _result(path, mig, variant="disentanglement_lib-histogram/robust", dataset=None):
    meta = {"parts": [{"metric": "mig", "variant": variant}]}
    if dataset is not None:
        meta["dataset"] = dataset
    path.write_text(json.dumps({"scores": {"mig": mig}, "meta": meta}))
    return path


def test_runs_of_two_recipes_are_refused(tmp_path, capsys):
    a = _run(tmp_path / "a", "vae/beta-vae-cpu", 3.0)
    b = _run(tmp_path / "b", "demo/toy-ddpm", 1.0)
    c = _run(tmp_path / "c", "vae/beta-vae-cpu", 5.0)
    assert run_identity(a) == {"recipe": "vae/beta-vae-cpu"}
    assert main(["aggregate", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert (f"diffrep aggregate: error: {a} and {b} differ in recipe ('vae/beta-vae-cpu' vs 'demo/toy-ddpm'); "
            "aggregate takes runs of one configuration (its seeds): aggregate each apart") in err
    assert main(["aggregate", str(a), str(c), "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "loss,4.0,1.4142135623730951,2,0,3.0,5.0"


def test_results_of_two_variants_or_datasets_are_refused(tmp_path, capsys):
    robust = _result(tmp_path / "r.json", 0.1)
    parity = _result(tmp_path / "p.json", 0.3, variant="disentanglement_lib-histogram/parity")
    assert main(["aggregate", str(robust), str(parity)]) == 2
    assert ("differ in mig variant ('disentanglement_lib-histogram/robust' vs "
            "'disentanglement_lib-histogram/parity')") in capsys.readouterr().err
    d1 = _result(tmp_path / "d1.json", 0.1, dataset="dsprites")
    d2 = _result(tmp_path / "d2.json", 0.2, dataset="shapes3d")
    with pytest.raises(ValueError, match=r"differ in dataset \('dsprites' vs 'shapes3d'\)"):
        check_same_configuration([d1, d2], [run_identity(d1), run_identity(d2)])
    # a run that does not record a key is not compared on it
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({"scores": {"mig": 0.5}}))
    assert run_identity(bare) == {}
    assert main(["aggregate", str(robust), str(bare), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["mig"]["mean"] == pytest.approx(0.3)


def test_a_study_cell_and_a_quickstart_record_their_recipe(tmp_path):
    cell = tmp_path / "cell.json"
    cell.write_text(json.dumps({"scores": {"mig": 0.1}, "meta": {"dataset": "dsprites"},
                                "cell": {"recipe": "vae/beta-vae-cpu"}}))
    qs = tmp_path / "qs"
    qs.mkdir()
    (qs / "metrics.json").write_text(json.dumps({"recipe": "paramrel/dsprites", "metrics": {
        "scores": {"mig": 0.2}, "meta": {"parts": [{"metric": "mig", "variant": "v"}]}}}))
    assert run_identity(cell) == {"recipe": "vae/beta-vae-cpu", "dataset": "dsprites"}
    assert run_identity(qs) == {"recipe": "paramrel/dsprites", "mig variant": "v"}
    with pytest.raises(ValueError, match="differ in recipe"):
        check_same_configuration([cell, qs], [run_identity(cell), run_identity(qs)])


def test_a_study_folder_points_at_the_study_report(tmp_path, capsys):
    (tmp_path / "study.json").write_text("{}")
    assert main(["aggregate", str(tmp_path)]) == 2
    assert (f"{tmp_path} is a study folder; 'diffrep study report {tmp_path}' gives mean +- std over the seeds of "
            "each of its cells") in capsys.readouterr().err
