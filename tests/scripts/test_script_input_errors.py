"""The validation scripts the method pages show (docs/methods/multibeta.md, sami.md) answer a wrong recipe,
config override or folder with argparse's one-line message and exit status 2, before any work: they printed
a traceback (an unknown recipe, a ConfigError, a missing --load-dir or --run)."""

from __future__ import annotations

import pytest

from helpers import load_script

CASES = [
    ("validate_multibeta", ["--recipe", "nosuch"], "unknown recipe 'nosuch'"),
    ("validate_multibeta", ["--model.vae.nosuch", "1"], "config field 'model.vae.nosuch': unknown field"),
    ("diagnose_multibeta_phase2", ["--load-dir", "{tmp}/none"], "--load-dir {tmp}/none: no multibeta/config.json"),
    ("validate_sami", ["--recipe", "nosuch"], "unknown recipe 'nosuch'"),
    ("validate_sami", ["--", "--model.nosuch=1"], "config field 'model.nosuch': unknown field"),
    ("validate_sami", ["--run", "{tmp}/none"], "{tmp}/none has no recipe.json and no config.yaml"),
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
