"""The study report: mean and sample std over seeds computed by hand, the Markdown and CSV layouts,
and the plot files (diffrep.study.report). The study folder is written by hand (no training)."""

import csv
import json
import math
import sys

import pytest

from diffrep.study import StudyError, parse_study, write_report
from diffrep.study.report import collect, format_mean_std
from diffrep.study.runner import _record_study
from study_fake import RECIPE, study_dict

# (method, weight) -> metric values of seeds 0, 1, 2 (None: the metric gave NaN for that seed)
VALUES = {
    ("ae", 1.0): {"mig": [0.2, 0.4, 0.3], "sap": [1.0, 2.0, 4.0]},
    ("ae", 2.0): {"mig": [0.5, 0.5, 0.8], "sap": [3.0, None, 5.0]},
    ("big", None): {"mig": [0.1, 0.3, 0.2], "sap": [0.5, None, None]},
}


def _folder(tmp_path, skip=()):
    d = study_dict(seeds=[0, 1, 2], eval={"metrics": ["mig", "sap"]}, report={"metrics": ["mig", "sap"]},
                   methods={"ae": {"recipe": RECIPE, "grid": {"model.weight": [1.0, 2.0]}},
                            "big": {"recipe": RECIPE, "overrides": {"model.latent_dim": 8}}})
    st = parse_study(d)
    _record_study(st, tmp_path)
    for c in st.cells:
        if c.folder in skip:
            continue
        key = (c.method, dict(c.params).get("model.weight"))
        scores = {m: v[c.seed] for m, v in VALUES[key].items()}
        cd = tmp_path / c.folder
        cd.mkdir(parents=True)
        train = {"step": 3, "loss": 0.5 + c.seed}
        (cd / "metrics.json").write_text(json.dumps({"scores": scores, "meta": {}, "train": train}))
        (cd / "done.json").write_text(json.dumps({"hash": c.hash}))
    return st


def _sd(xs):
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def test_aggregation_values_and_csv_layout(tmp_path):
    _folder(tmp_path)
    files = write_report(tmp_path, plots=False)
    assert [f.name for f in files] == ["report.md", "table.csv", "cells.csv"]
    with open(tmp_path / "report" / "table.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["method", "setting", "dsprites/mig/mean", "dsprites/mig/std", "dsprites/mig/n",
                       "dsprites/sap/mean", "dsprites/sap/std", "dsprites/sap/n"]
    assert [r[:2] for r in rows[1:]] == [["ae", "weight=1"], ["ae", "weight=2"], ["big", "default"]]
    got = {(r[0], r[1]): [float(x) if x else None for x in r[2:]] for r in rows[1:]}
    # by hand: mean (0.2 + 0.4 + 0.3)/3 = 0.3, sample std sqrt((0.01 + 0.01 + 0)/2) = 0.1
    assert got[("ae", "weight=1")][:3] == pytest.approx([0.3, 0.1, 3])
    # sap 1, 2, 4: mean 7/3, std sqrt(((4/3)^2 + (1/3)^2 + (5/3)^2)/2) = sqrt(7/3)
    assert got[("ae", "weight=1")][3:] == pytest.approx([7 / 3, math.sqrt(7 / 3), 3])
    assert got[("ae", "weight=2")] == pytest.approx([0.6, _sd([0.5, 0.5, 0.8]), 3, 4.0, math.sqrt(2), 2])
    assert got[("big", "default")][:4] == pytest.approx([0.2, 0.1, 3, 0.5])  # one finite sap: no std
    assert got[("big", "default")][4:] == [None, 1]
    with open(tmp_path / "report" / "cells.csv", newline="") as fh:
        cells = list(csv.reader(fh))
    assert cells[0] == ["method", "dataset", "setting", "seed", "model.weight", "mig", "sap"]
    assert cells[1] == ["ae", "dsprites", "weight=1", "0", "1", "0.2", "1.0"]
    assert cells[5] == ["ae", "dsprites", "weight=2", "1", "2", "0.5", ""]
    assert cells[7] == ["big", "dsprites", "default", "0", "", "0.1", "0.5"] and len(cells) == 10


def test_markdown_layout_and_missing_cells(tmp_path):
    st = _folder(tmp_path, skip={"big/dsprites/default/seed2"})
    write_report(tmp_path, tmp_path / "rep", plots=False, digits=2)
    md = (tmp_path / "rep" / "report.md").read_text()
    lines = md.splitlines()
    assert lines[0] == "# Study tiny"
    assert "8 of 9 cells finished" in lines[2]
    i = lines.index("## dsprites")
    assert lines[i + 2:i + 7] == [
        "| method | setting | seeds | mig | sap |",
        "|---|---|---|---|---|",
        "| ae | weight=1 | 3 | 0.30 ± 0.10 | 2.33 ± 1.53 |",
        "| ae | weight=2 | 3 | 0.60 ± 0.17 | 4.00 ± 1.41 (n=2) |",
        "| big | default | 2 | 0.20 ± 0.14 | 0.50 (n=1) |",
    ]
    assert lines[lines.index("## Not finished") + 2] == "- big/dsprites/default/seed2"
    assert len(st.cells) == 9


def test_train_log_values_and_metric_choice(tmp_path):
    _folder(tmp_path)
    write_report(tmp_path, metrics=["train.loss"], plots=False)
    with open(tmp_path / "report" / "table.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[1][2:] == ["1.5", "1.0", "3"]  # losses 0.5, 1.5, 2.5
    with pytest.raises(StudyError, match=r"--metrics: \['dci'\] not in the results; known: mig, sap, train.loss"):
        write_report(tmp_path, metrics=["dci"], plots=False)


def test_format_mean_std():
    assert format_mean_std(0.41234, 0.02, 3, 3) == "0.412 ± 0.020"
    assert format_mean_std(0.41234, math.nan, 1, 1) == "0.412"
    assert format_mean_std(math.nan, math.nan, 0, 2) == "–"
    assert format_mean_std(1.0, 0.5, 2, 3, digits=1) == "1.0 ± 0.5 (n=2)"


def test_plots_are_written_without_touching_the_backend(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    _folder(tmp_path)
    backend = matplotlib.get_backend()
    had_pyplot = "matplotlib.pyplot" in sys.modules
    files = write_report(tmp_path)
    names = sorted(f.name for f in files)
    assert names == sorted(["report.md", "table.csv", "cells.csv", "box_mig.png", "box_mig.svg", "box_sap.png",
                            "box_sap.svg", "curve_ae_weight.png", "curve_ae_weight.svg"])
    for f in files:
        if f.suffix == ".png":
            assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f.stat().st_size > 2000
        if f.suffix == ".svg":
            assert "<svg" in f.read_text()[:500]
    assert matplotlib.get_backend() == backend
    assert ("matplotlib.pyplot" in sys.modules) == had_pyplot


def test_report_errors(tmp_path):
    with pytest.raises(StudyError, match="study folder not found"):
        write_report(tmp_path / "nope")
    with pytest.raises(StudyError, match="is not a study folder"):
        write_report(tmp_path)
    st = parse_study(study_dict(seeds=[0]))
    _record_study(st, tmp_path)
    with pytest.raises(StudyError, match="no cell has finished yet"):
        write_report(tmp_path)
    # a done.json of another configuration does not count as finished
    c = st.cells[0]
    (tmp_path / c.folder).mkdir(parents=True)
    (tmp_path / c.folder / "metrics.json").write_text(json.dumps({"scores": {"mig": 0.5}}))
    (tmp_path / c.folder / "done.json").write_text(json.dumps({"hash": "other"}))
    _, rows, missing = collect(tmp_path)
    assert rows == [] and len(missing) == 2


def test_without_matplotlib_the_tables_are_written_and_the_plots_say_why_not(tmp_path, monkeypatch):
    _folder(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails as if not installed
    with pytest.raises(StudyError, match=r"plots need matplotlib \(pip install 'diffrep\[plot\]'\); pass --no-plots"):
        write_report(tmp_path)
    assert (tmp_path / "report" / "table.csv").is_file() and (tmp_path / "report" / "report.md").is_file()
