"""What a newcomer meets when a study folder's records are damaged or the study file is ambiguous: every
case is a StudyError (the CLI: a message and exit 2) naming the file and the entry, never an AttributeError
or KeyError from deep inside the runner or the report (docs/study.md, "Running" and "Study files")."""

import json

import pytest
import yaml

from diffrep.cli import main
from diffrep.data import check_name, load
from diffrep.study import StudyError, cell_state, parse_study, run_study
from diffrep.study.report import collect
from study_fake import RECIPE, crash_switch_off, quiet, study_dict

pytestmark = pytest.mark.usefixtures(crash_switch_off.__name__)


def _one_cell(**over):
    return parse_study(study_dict(seeds=[0], methods={"ae": {"recipe": RECIPE}}, **over))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished one-cell study folder (3 training steps, no metrics) and its study."""
    out = tmp_path_factory.mktemp("finished")
    st = _one_cell()
    assert run_study(st, out, log=quiet) == {"ran": 1, "skipped": 0, "failed": 0}
    return out, st


def _copy(finished, tmp_path):
    import shutil

    out, st = finished
    shutil.copytree(out, tmp_path / "s")
    return tmp_path / "s", st, st.cells[0]


@pytest.mark.parametrize("name", ["done.json", "cell.json"])
@pytest.mark.parametrize("content,kind", [("[]", "list"), ('"x"', "str"), ("3", "int")])
def test_a_cell_record_that_is_not_an_object_is_named(finished, tmp_path, name, content, kind):
    out, st, cell = _copy(finished, tmp_path)
    (out / cell.folder / name).write_text(content)
    with pytest.raises(StudyError) as e:
        cell_state(cell, out)
    assert str(e.value) == (f"{out / cell.folder / name} holds a JSON {kind}, not the object the study writes "
                            "there; move the cell folder away to run it again")
    with pytest.raises(StudyError, match="holds a JSON"):
        run_study(st, out, log=quiet)


def test_the_report_names_a_damaged_done_or_metrics_file(finished, tmp_path):
    out, st, cell = _copy(finished, tmp_path)
    d = out / cell.folder
    (d / "done.json").write_text("[]")
    with pytest.raises(StudyError, match=r"done.json holds a JSON list"):
        collect(out)
    (d / "done.json").write_text(json.dumps({"hash": cell.hash}))
    (d / "metrics.json").write_text("[1, 2]")
    with pytest.raises(StudyError, match=r"metrics.json holds a JSON list"):
        collect(out)
    (d / "metrics.json").write_text(json.dumps({"scores": [0.5], "train": {}}))
    with pytest.raises(StudyError) as e:
        collect(out)
    assert str(e.value).startswith(f"{d / 'metrics.json'}: 'scores' must be an object of named values, got list")
    # an intact record is read as before: the training log's last values
    (d / "metrics.json").write_text(json.dumps({"scores": {"mig": 0.25}, "train": {"step": 3, "loss": 2.0}}))
    _, rows, missing = collect(out)
    assert missing == [] and rows[0]["values"] == {"mig": 0.25, "train.loss": 2.0}


@pytest.mark.parametrize("content,expected", [
    ("[]", "study.json holds a JSON list, not the object the study writes there"),
    ('{"hash": "h", "cells": 5}', "study.json lists no cells"),
    ('{"hash": "h", "cells": []}', "study.json lists no cells"),
    ('{"hash": "h", "cells": [1]}', "study.json: cells[0] is an int, not a cell record"),
    ('{"cells": [{"folder": "x", "hash": "h", "method": "m", "dataset": "d", "setting": "s"}]}',
     "study.json: cells[0] lacks ['seed'] (a cell record has ['folder', 'hash', 'method', 'dataset', 'setting', "
     "'seed'])"),
    ('{"cells": [{"folder": "x", "hash": 3, "method": "m", "dataset": "d", "setting": "s", "seed": true}]}',
     "study.json: cells[0] lacks ['hash', 'seed']"),
])
def test_a_damaged_study_json_is_named_by_run_and_report(finished, tmp_path, capsys, content, expected):
    out, st, _ = _copy(finished, tmp_path)
    (out / "study.json").write_text(content)
    for call in (lambda: run_study(st, out, log=quiet), lambda: collect(out)):
        with pytest.raises(StudyError) as e:
            call()
        assert expected in str(e.value) and str(e.value).endswith("this study folder's record is damaged: use "
                                                                   "another --out")
    assert main(["study", "report", str(out), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_dry_run_says_when_the_run_would_stop(finished, tmp_path, capsys):
    out, _, cell = _copy(finished, tmp_path)
    grown = study_dict(seeds=[0, 1], methods={"ae": {"recipe": RECIPE}})
    f = tmp_path / "grown.yaml"
    f.write_text(yaml.safe_dump(grown, sort_keys=False))
    # the listing showed the old cell done and the new one new, and exit 0; the run then refused the folder
    assert main(["study", "run", str(f), "--out", str(out), "--dry-run"]) == 2
    cap = capsys.readouterr()
    assert f"{cell.folder}" in cap.out and "done" in cap.out and "seed1" in cap.out
    assert cap.err.startswith(f"diffrep study run would stop with these flags: {out} holds results of another "
                              "version of this study (1 cells added)")
    assert main(["study", "run", str(f), "--out", str(out), "--dry-run", "--update"]) == 0
    assert capsys.readouterr().err == ""
    # nothing was written by the dry runs
    assert json.loads((out / "study.json").read_text())["hash"] == _one_cell().hash


def test_a_misspelled_dataset_name_is_refused_when_the_file_is_read():
    with pytest.raises(StudyError) as e:
        parse_study(study_dict(datasets=["dsprite"]))
    assert "<study>: datasets.dsprite: unknown dataset 'dsprite'; did you mean 'dsprites'? known: dsprites," in \
        str(e.value)
    with pytest.raises(StudyError, match=r"<study>: datasets.d1: unknown dataset 'shapes_3d'; did you mean 'shapes3d'"):
        parse_study(study_dict(datasets={"d1": {"dataset": "shapes_3d"}}))
    with pytest.raises(StudyError, match=r"<study>: methods.ae: unknown dataset 'celeb'; did you mean 'celeba'\?"):
        parse_study(study_dict(methods={"ae": {"recipe": RECIPE, "overrides": {"dataset": "celeb"}}}))
    # the names a recipe builds itself are datasets too
    assert [c.dataset for c in parse_study(study_dict(seeds=[0], datasets=["dsprites"])).cells] == ["dsprites"] * 2


def test_check_name_and_load_suggest_the_closest_dataset():
    assert check_name("dsprites") == "dsprites" and check_name("toy_shapes", extra=("toy_shapes",)) == "toy_shapes"
    for bad, hint in (("dsprite", "did you mean 'dsprites'? "), ("zzz", ""), (3, "")):
        with pytest.raises(ValueError) as e:
            check_name(bad)
        assert str(e.value).startswith(f"name: unknown dataset {bad!r}; {hint}known: dsprites, shapes3d,")
    with pytest.raises(ValueError, match=r"unknown dataset 'mnits'; did you mean 'mnist'\?"):
        load("mnits")


@pytest.mark.parametrize("seeds,message", [
    (3, "seeds is a list of seeds: write seeds: [3] for seed 3 alone, or seeds: [0, 1, 2] for 3 seeds"),
    (0, "seeds is a list of seeds: write seeds: [0] for seed 0 alone"),
])
def test_a_bare_number_of_seeds_is_refused(seeds, message):
    # seeds: 3 ran seed 3 alone, when "three seeds" reads as naturally
    with pytest.raises(StudyError) as e:
        parse_study(study_dict(seeds=seeds))
    assert str(e.value) == f"<study>: {message}"


def test_run_given_a_folder_and_report_given_a_file(finished, tmp_path, capsys):
    out, _, _ = _copy(finished, tmp_path)
    (out / "study.yaml").write_text("study: tiny\n")  # a finished folder holds its file's copy
    assert main(["study", "run", str(out)]) == 2  # run's argument is the file, report's the folder
    assert (f"diffrep study run: error: {out} is a folder; 'diffrep study run' reads a study file (YAML): this study "
            f"folder's is {out / 'study.yaml'}; 'diffrep study report {out}' reports it") in capsys.readouterr().err
    assert main(["study", "run", str(tmp_path)]) == 2
    assert capsys.readouterr().err.rstrip().endswith(f"{tmp_path} is a folder; 'diffrep study run' reads a study "
                                                     "file (YAML)")
    (tmp_path / "a_file").write_text("")
    assert main(["study", "report", str(out), "--out", str(tmp_path / "a_file")]) == 2  # was "File exists"
    assert f"--out {tmp_path / 'a_file'} is a file; give the report's folder" in capsys.readouterr().err
    for empty in ("", ","):  # named nothing: the default list, or "the cells hold no metric values"
        assert main(["study", "report", str(out), "--metrics", empty, "--no-plots"]) == 2
        assert "--metrics names no metric" in capsys.readouterr().err


def test_update_records_a_version_of_the_study_not_another_study(finished, tmp_path):
    out, st, cell = _copy(finished, tmp_path)
    other = parse_study(study_dict(study="other", seeds=[0, 1], methods={"ae": {"recipe": RECIPE}}))
    for update in (False, True):  # --update recorded it over 'tiny''s study.json, orphaning that study's cells
        with pytest.raises(StudyError) as e:
            run_study(other, out, update=update, log=quiet)
        assert str(e.value) == f"{out} holds the study 'tiny', not 'other'; use another --out (the default is studies/other)"
    assert json.loads((out / "study.json").read_text())["study"] == "tiny"
    # a version of 'tiny' (one seed more) is what --update records
    grown = parse_study(study_dict(seeds=[0, 1], methods={"ae": {"recipe": RECIPE}}, steps=1))
    with pytest.raises(StudyError, match="another version of this study"):
        run_study(grown, out, log=quiet)


def test_the_folder_checks_name_what_they_found(finished, tmp_path):
    from diffrep.study.runner import check_folder

    out, st, cell = _copy(finished, tmp_path)
    (out / cell.folder / "done.json").write_text("")  # an empty file: it does not parse
    with pytest.raises(StudyError) as e:
        cell_state(cell, out)
    assert str(e.value) == (f"{out / cell.folder / 'done.json'} cannot be read (Expecting value: line 1 column 1 "
                            "(char 0)); move the cell folder away to run it again")
    (tmp_path / "a_file").write_text("")
    with pytest.raises(StudyError) as e:
        check_folder(st, tmp_path / "a_file", st.cells, update=False, redo_changed=False)
    assert str(e.value) == f"study folder {tmp_path / 'a_file'} exists and is not a directory"
    # two cells of another configuration: the message counts them and names the first
    out2, _, _ = _copy(finished, tmp_path / "two")
    two = parse_study(study_dict(seeds=[0, 1], methods={"ae": {"recipe": RECIPE}}))
    run_study(two, out2, update=True, log=quiet)
    changed = parse_study(study_dict(seeds=[0, 1], steps=2, methods={"ae": {"recipe": RECIPE}}))
    with pytest.raises(StudyError) as e:
        check_folder(changed, out2, changed.cells, update=True, redo_changed=False)
    assert str(e.value).startswith(f"2 cell folders hold results of another configuration (e.g. "
                                   f"{out2 / changed.cells[0].folder}); rerun with --redo-changed")
    with pytest.raises(StudyError) as e:  # and the version check says what changed: here, one cell dropped
        check_folder(st, out2, st.cells, update=False, redo_changed=False)
    assert str(e.value) == (f"{out2} holds results of another version of this study (1 cells dropped); the two "
                            "would mix. Use another --out, or --update to record the new study there (unchanged "
                            "cells keep their results; a dropped cell's folder keeps its results, marked dropped.json "
                            "and left out of the report; add --redo-changed to rerun the changed ones)")
