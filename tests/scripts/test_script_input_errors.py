"""The validation scripts (those the method pages show, docs/methods/multibeta.md and sami.md, and validate_paramrel)
answer a wrong recipe, config override or folder with argparse's one-line message and exit status 2, before any
work: they printed a traceback (an unknown recipe, a ConfigError, a missing --load-dir, --run or --data.root).
validate_diffusion_baselines, validate_dyga and validate_paramrel keep an existing record (their default --out was a
committed one; validate_paramrel replaced it after the whole run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import load_script, parser_actions

ROOT = Path(__file__).resolve().parents[2]

CASES = [
    ("validate_multibeta", ["--recipe", "nosuch"], "unknown recipe 'nosuch'"),
    ("validate_multibeta", ["--model.vae.nosuch", "1"], "config field 'model.vae.nosuch': unknown field"),
    ("diagnose_multibeta_phase2", ["--load-dir", "{tmp}/none"], "--load-dir {tmp}/none: no multibeta/config.json"),
    ("validate_sami", ["--recipe", "nosuch"], "unknown recipe 'nosuch'"),
    ("validate_sami", ["--", "--model.nosuch=1"], "config field 'model.nosuch': unknown field"),
    ("validate_sami", ["--run", "{tmp}/none"], "{tmp}/none has no recipe.json and no config.yaml"),
    ("validate_paramrel", ["--recipe", "nosuch"], "unknown recipe 'nosuch'"),
    ("validate_paramrel", ["--recipe", "demo/toy-ddpm"], "demo/toy-ddpm is not a paramrel recipe"),
    ("validate_paramrel", ["--model.nosuch", "1"], "config field 'model.nosuch': unknown field"),
    ("validate_paramrel", ["--steps", "-3"], "config field 'train.steps': must be >= 1, got -3"),
    ("validate_paramrel", ["--data.root", "{tmp}/none"], "dataset root {tmp}/none does not exist (set by --data.root)"),
]


@pytest.mark.parametrize("script, argv, text", CASES, ids=[f"{s} {' '.join(a)}" for s, a, _ in CASES])
def test_a_wrong_input_is_a_message(script, argv, text, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    main = load_script(script).main
    with pytest.raises(SystemExit) as exc:
        main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert f"error: {text.replace('{tmp}', str(tmp_path))}" in err, err  # argparse's "PROG: error: ..." line
    assert "Traceback" not in err
    assert not any(tmp_path.iterdir()), "wrote before refusing"


def test_validate_paramrel_refuses_a_run_folder_that_holds_a_run_before_building(tmp_path, monkeypatch, capsys):
    # the trainer refused it too, but only after both models and the data were built
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    with pytest.raises(SystemExit) as exc:
        load_script("validate_paramrel").main(["--run-dir", str(run), "--recipe", "paramrel/digits"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err
    assert f"error: run folder {run} already holds a run (metrics.jsonl)" in err, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["metrics.jsonl", "run"]


@pytest.mark.parametrize("script", ["validate_diffusion_baselines", "validate_dyga", "validate_paramrel"])
def test_an_existing_record_is_kept(script, tmp_path, monkeypatch, capsys):
    # their default --out was a committed, dated record the method pages cite: a run replaced it without a word
    monkeypatch.chdir(tmp_path)
    record = tmp_path / "record.json"
    record.write_text('{"kept": true}')
    with pytest.raises(SystemExit) as exc:
        load_script(script).main(["--out", str(record)])
    assert exc.value.code == 2
    assert f"error: --out {record} exists (an earlier record); choose another --out or add --overwrite" in \
        capsys.readouterr().err
    assert record.read_text() == '{"kept": true}' and sorted(tmp_path.iterdir()) == [record]


@pytest.mark.parametrize("script", ["validate_diffusion_baselines", "validate_dyga"])
def test_the_default_record_is_a_new_file(script, monkeypatch):
    """The default --out is no committed record (a new run writes a new file, or is refused by the test above)."""
    actions = parser_actions(load_script(script).main, monkeypatch)
    default = next(a.default for a in actions if a.dest == "out")
    assert default.startswith("benches/results/") and not (ROOT / default).exists(), default
