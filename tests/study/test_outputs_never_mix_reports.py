"""Reports never mix: an analysis stopped part-way is recognisable and cleared by the next one
(``diffrep sami analyze``), and two plots of one study report never share a file name (``diffrep study
report``: the second replaced the first without a word), and a study updated to a smaller grid marks the cells it
dropped, which its report and ``diffrep aggregate`` then leave out."""

from __future__ import annotations

import json

import pytest
import torch

from diffrep.cli import main

from helpers import tiny_sami
from study_fake import crash_switch_off, quiet, study_dict

pytestmark = pytest.mark.usefixtures(crash_switch_off.__name__)  # imported above: pytest finds it here


# -- diffrep sami analyze stopped part-way ----------------------------------------------------------------

def test_an_analysis_stopped_partway_is_marked_and_cleared_by_the_next(tmp_path, monkeypatch, capsys):
    # analysis.json is written last: an analysis that failed after its first figures left them unmarked, and the
    # next analysis (which cleared only beside an analysis.json) wrote its record beside the stale figures
    pytest.importorskip("matplotlib")
    from diffrep.analysis import sami as A

    model = tmp_path / "m"
    tiny_sami(dtype=torch.float32, sampler="ddim").save_pretrained(model)
    out = tmp_path / "an"

    def fail(*args, **kwargs):
        raise RuntimeError("killed")

    with monkeypatch.context() as m, pytest.raises(RuntimeError, match="killed"):
        m.setattr(A, "global_axes", fail)
        main(["sami", "analyze", str(model), "--what", "spectrum,global", "--out", str(out), "--num-images", "2",
              "--guides", "1"])
    assert sorted(p.name for p in out.iterdir()) == ["analysis.incomplete", "spectrum.png"]
    capsys.readouterr()
    assert main(["sami", "analyze", str(model), "--what", "global", "--out", str(out), "--num-images", "2",
                 "--guides", "1"]) == 0
    assert "removed its spectrum.png, analysis.incomplete" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["analysis.json", "global_axes.png"]
    assert json.loads((out / "analysis.json").read_text())["figures"] == [str(out / "global_axes.png")]


# -- diffrep study report: two plots, one file name -------------------------------------------------------

def _rows(grid: dict, metrics: list[str]) -> tuple[dict, list[dict]]:
    """A study record and its finished cells: one method 'mb' over ``grid`` (two values each), one seed."""
    import itertools

    study = {"cells": [], "spec": {"methods": [{"label": "mb", "grid": grid}]}}
    rows = []
    for i, values in enumerate(itertools.product(*grid.values())):
        params = dict(zip(grid, values))
        setting = ",".join(f"{k}={v}" for k, v in params.items())
        study["cells"].append({"method": "mb", "dataset": "dsprites", "setting": setting})
        rows.append({"method": "mb", "dataset": "dsprites", "setting": setting, "params": params, "seed": 0,
                     "values": {m: float(i) for m in metrics}})
    return study, rows


def test_grid_parameters_sharing_a_last_name_get_a_plot_each(tmp_path):
    # train.lr and train_latent.lr (a multibeta grid) both wrote curve_mb_lr: the second replaced the first
    pytest.importorskip("matplotlib")
    from diffrep.study.report import _plots, aggregate

    study, rows = _rows({"train.lr": [1, 2], "train_latent.lr": [1, 2]}, ["mig"])
    written = _plots(tmp_path, study, aggregate(rows, ["mig"]), ["mig"])
    assert sorted(p.name for p in written) == sorted(
        f"{n}.{e}" for n in ("box_mig", "curve_mb_train.lr", "curve_mb_train_latent.lr") for e in ("png", "svg"))
    assert len(set(written)) == len(written) and all(p.is_file() for p in written)


def test_two_metrics_with_one_file_name_are_refused(tmp_path):
    # 'a/b' and 'a_b' are both box_a_b: the second plot replaced the first without a word
    pytest.importorskip("matplotlib")
    from diffrep.study import StudyError
    from diffrep.study.report import _plots, aggregate

    study, rows = _rows({"model.beta": [0.5, 1.0]}, ["a/b", "a_b"])
    with pytest.raises(StudyError, match=r"two plots of the report would both be written to .*box_a_b\.png"):
        _plots(tmp_path, study, aggregate(rows, ["a/b", "a_b"]), ["a/b", "a_b"])


# -- diffrep study run --redo-changed: a multi-phase cell ---------------------------------------------------

def test_redo_changed_clears_a_multiphase_cells_phase_records(tmp_path):
    # the cleared cell kept phase1/information.json (auto_beta's choice of beta) and the phases' run.json copies:
    # the cell run again with auto_beta off showed the earlier configuration's choice beside its own model
    from diffrep.study.runner import _clear_cell

    d = tmp_path / "cell"
    (d / "phase1" / "final").mkdir(parents=True)
    (d / "phase1" / "metrics.jsonl").write_text('{"step": 2, "loss": 1.0}\n')
    (d / "phase1" / "final" / "config.json").write_text('{"_diffrep_version": "0"}')
    for name in ("information.json", "run.json"):
        (d / "phase1" / name).write_text("{}")
    (d / "cell.json").write_text("{}")
    (d / "phase1" / "notes.txt").write_text("mine")
    _clear_cell(d)
    assert sorted(str(p.relative_to(d)) for p in d.rglob("*")) == ["phase1", "phase1/notes.txt"]


# -- study --update to a smaller grid ------------------------------------------------------------------------

def test_a_study_update_marks_dropped_cells_and_the_report_reads_only_the_current_grid(tmp_path, capsys):
    import re

    from diffrep.study import StudyError, collect, parse_study, run_study, write_report
    from diffrep.study.runner import DROPPED_JSON

    def grid(*weights):
        return parse_study(study_dict(seeds=[0], steps=1, methods={"ae": {"recipe": "test/study-tiny-ae",
                                                                          "grid": {"model.weight": list(weights)}}}))

    three = grid(1.0, 2.0, 3.0)
    assert run_study(three, tmp_path, rank=0, world=2, log=quiet)["ran"] == 2  # cells 0 and 2; cell 1 never ran
    kept, never, dropped = (tmp_path / c.folder for c in three.cells)
    one = grid(1.0)
    with pytest.raises(StudyError, match=r"2 cells dropped.*marked dropped\.json and left out of the report"):
        run_study(one, tmp_path, log=quiet)
    assert run_study(one, tmp_path, update=True, log=quiet) == {"ran": 0, "skipped": 1, "failed": 0}
    assert (dropped / "done.json").is_file()  # its results stay on disk, marked
    mark = json.loads((dropped / DROPPED_JSON).read_text())
    assert sorted(mark) == ["dropped_by", "study", "when", "why"] and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
                                                                               mark["when"])
    assert mark["study"] == "tiny" and mark["dropped_by"] == one.hash and "--update" in mark["why"]
    assert not (kept / DROPPED_JSON).exists() and not never.exists()  # no folder made for a cell that never ran
    _, rows, missing = collect(tmp_path)
    assert [r["params"] for r in rows] == [{"model.weight": 1.0}] and missing == []
    write_report(tmp_path, metrics=["train.loss"], plots=False)
    cells_csv = (tmp_path / "report" / "cells.csv").read_text().splitlines()
    assert len(cells_csv) == 2 and "weight=3" not in "".join(cells_csv)  # a header and the one current cell
    # a glob over the study folder: the dropped cell is refused by diffrep aggregate
    assert main(["aggregate", str(kept), str(dropped)]) == 2
    assert f"{dropped} is a study cell that a later version of its study dropped" in capsys.readouterr().err
    assert main(["aggregate", str(dropped / "metrics.json")]) == 2
    # added back: the mark goes, the finished cell counts again
    assert run_study(three, tmp_path, update=True, rank=0, world=2, log=quiet) == {"ran": 0, "skipped": 2, "failed": 0}
    assert not (dropped / DROPPED_JSON).exists() and len(collect(tmp_path)[1]) == 2
