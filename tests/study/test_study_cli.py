"""``diffrep study run|report``: help everywhere, --dry-run, and messages instead of tracebacks."""

import pytest

from diffrep.cli import main
from study_fake import write_study


@pytest.mark.parametrize("argv", [["study", "--help"], ["study", "run", "--help"], ["study", "report", "--help"]])
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    assert "usage: diffrep study" in capsys.readouterr().out


def test_no_verb_prints_help(capsys):
    assert main(["study"]) == 2
    assert "run" in capsys.readouterr().out


def test_dry_run_lists_the_cells_of_a_share(tmp_path, capsys):
    f = write_study(tmp_path / "s.yaml")
    assert main(["study", "run", str(f), "--out", str(tmp_path / "o"), "--dry-run", "--rank", "1", "--world", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("study tiny: 4 cells; this process (rank 1 of 2) runs 2")
    assert [line.split()[:2] for line in out[1:]] == [["1", "ae/dsprites/weight=1/seed1"],
                                                      ["3", "ae/dsprites/weight=2/seed1"]]
    assert all(line.split()[-1] == "new" for line in out[1:])
    assert not (tmp_path / "o").exists()  # a dry run writes nothing


def test_run_then_report_through_the_cli(tmp_path, capsys):
    f = write_study(tmp_path / "s.yaml", seeds=[0])
    assert main(["study", "run", str(f), "--out", str(tmp_path / "o")]) == 0
    assert main(["study", "report", str(tmp_path / "o"), "--no-plots"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / "o" / "report" / n) for n in ("report.md", "table.csv", "cells.csv")]
    assert "| ae | weight=2 | 1 |" in (tmp_path / "o" / "report" / "report.md").read_text()


@pytest.mark.parametrize("text,message", [
    ("study: x\nmethods: [a, b\n", "not valid YAML (line"),
    ("methods: {m: {recipe: demo/toy-ddmp}}\n", "unknown recipe 'demo/toy-ddmp'. Did you mean: demo/toy-ddpm"),
    ("methods: {m: {recipe: demo/toy-ddpm, grid: {model.unet.chanels: [1, 2]}}}\n",
     "methods.m.grid: config field 'model.unet.chanels': unknown field"),
])
def test_bad_study_files_get_a_message(tmp_path, capsys, text, message):
    f = tmp_path / "s.yaml"
    f.write_text(text)
    assert main(["study", "run", str(f), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.startswith("diffrep study run: error:")


def test_missing_paths_get_a_message(tmp_path, capsys):
    assert main(["study", "run", str(tmp_path / "none.yaml")]) == 2
    assert "study file not found" in capsys.readouterr().err
    assert main(["study", "report", str(tmp_path / "none")]) == 2
    assert "study folder not found" in capsys.readouterr().err
    f = write_study(tmp_path / "s.yaml")
    assert main(["study", "run", str(f), "--rank", "3", "--world", "2", "--dry-run"]) == 2
    assert "--rank must be in [0, 1]" in capsys.readouterr().err
