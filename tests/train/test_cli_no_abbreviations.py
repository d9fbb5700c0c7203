"""No flag of diffrep, its scripts or its benches is read from a prefix (argparse's ``allow_abbrev``): '--ou x'
was '--out x' and '--res 3' was '--resume 3', so a typo, or a flag added later that shares a prefix, could
silently mean another. The refusal names the flag the prefix belongs to (``diffrep.cli.unknown_flag_hint``);
the per-verb sweep over every flag is test_cli_every_verb.py's test_a_flag_is_never_abbreviated."""

import argparse
import ast
from pathlib import Path

import pytest

from diffrep.cli import main, unknown_flag_hint
from diffrep.recipes import get_recipe

ROOT = Path(__file__).resolve().parents[2]


def _parser():
    p = argparse.ArgumentParser(allow_abbrev=False)
    for flag in ("--out", "--overwrite", "--beta", "--beta-from", "--threads"):
        p.add_argument(flag)
    return p


@pytest.mark.parametrize("unknown, hint", [
    (["--overwrit"], "did you mean --overwrite? (flags are not abbreviated)"),  # a prefix of one flag
    (["--thread=2"], "did you mean --threads? (flags are not abbreviated)"),  # --flag=value: the flag part
    (["--ou"], "did you mean --out? (flags are not abbreviated)"),  # --out alone starts with --ou
    (["--bet"], "did you mean --beta?"),  # the prefix of two flags: the closest one, not a prefix claim
    (["--treads"], "did you mean --threads?"),  # no prefix, a near miss
    (["x.npz", "--overwrit"], "did you mean --overwrite? (flags are not abbreviated)"),  # a stray value first
    (["--zzz"], None),
    (["x.npz", "-o"], None),  # short flags and values are not named
])
def test_unknown_flag_hint(unknown, hint):
    assert unknown_flag_hint(_parser(), unknown) == hint


@pytest.mark.parametrize("parser, unknown, word", [(None, ["--x"], "parser"), ("p", ["--x"], "parser"),
                                                   (_parser(), "--x", "unknown"), (_parser(), [3], "unknown")])
def test_unknown_flag_hint_refuses_wrong_inputs(parser, unknown, word):
    with pytest.raises(TypeError, match=f"unknown_flag_hint: {word} must be"):
        unknown_flag_hint(parser, unknown)


def test_train_own_flag_prefix_before_the_recipe_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["train", "--ou", str(tmp_path / "x"), "demo/toy-ddpm"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "diffrep train: error: unrecognized arguments: --ou; did you mean --out? (flags are not abbreviated)" in err
    assert list(tmp_path.iterdir()) == []  # nothing trained, no run folder


def test_train_own_flag_prefix_after_the_recipe_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "demo/toy-ddpm", "--overwrit"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("diffrep train: error: config field 'overwrit': unknown field for DemoConfig")
    assert err.rstrip().endswith("did you mean --overwrite?")
    assert list(tmp_path.iterdir()) == []


def test_sami_train_names_itself(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["sami", "train", "sami/disks-cpu", "--overwrit"]) == 2
    err = capsys.readouterr().err
    assert "--overwrit is not a flag of 'diffrep sami train' either" in err
    assert "see 'diffrep sami train --help', and 'diffrep sami train sami/disks-cpu --help'" in err


@pytest.mark.parametrize("name", ["vae", "vae/"])
def test_a_family_name_alone_lists_that_family(name):
    with pytest.raises(ValueError) as exc:
        get_recipe(name)
    msg = str(exc.value)
    assert msg.startswith(f"unknown recipe {name!r}; a recipe names its family and its setting, and the vae recipes "
                          "are: vae/")
    listed = msg.split("are: ", 1)[1].split(", ")
    assert listed and all(r.startswith("vae/") for r in listed)
    assert "vae/beta-vae-cpu" in listed and "demo/toy-ddpm" not in msg


def _parser_calls(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "ArgumentParser":
            yield node


@pytest.mark.parametrize("folder", ["scripts", "benches"])
def test_scripts_and_benches_never_abbreviate(folder):
    calls = [(p, c) for p in sorted((ROOT / folder).rglob("*.py")) for c in _parser_calls(p)]
    assert calls, folder
    bad = [f"{p.relative_to(ROOT)}:{c.lineno}" for p, c in calls
           if not any(k.arg == "allow_abbrev" and getattr(k.value, "value", True) is False for k in c.keywords)]
    assert bad == [], f"ArgumentParser without allow_abbrev=False: {bad}"
