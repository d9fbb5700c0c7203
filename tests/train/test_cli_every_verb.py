"""Every verb and group of ``diffrep``, generated from its argparse tree (docs/architecture.md,
"Configuration and command line": usage errors are messages, never tracebacks, exit 2).

For each verb: ``--help`` (exit 0, usage naming the verb, a help line for every flag, no unfilled
placeholder, no line over 100 columns, the description whole), an unknown flag, a missing path for every
input it reads (its outputs given paths in a new folder: nothing written, not even that folder; the message
begun with the full verb), a non-number for every numeric flag (number lists given as text too)
and a wrong value for every flag with choices; for each group: the group alone (its verbs named) and a
misspelled verb (the closest named). Only parsing and the first validation run: no model is built,
nothing trains.
"""

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import diffrep
import diffrep.cli
from diffrep.cli import build_parser, eval_generation, main
from diffrep.recipes import list_recipes


def _walk(parser, words=()):
    verbs = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    yield words, parser, verbs
    for name, child in (verbs.choices.items() if verbs else ()):
        yield from _walk(child, (*words, name))


PARSER = build_parser()
TREE = list(_walk(PARSER))
GROUPS = {words: verbs for words, _, verbs in TREE if verbs is not None}
VERBS = {words: parser for words, parser, verbs in TREE if verbs is None}

# the inputs a verb reads, by the dest argparse gives them (the outputs and the other flags are listed too:
# test_every_path_like_flag_is_classified refuses a new flag whose help speaks of files until it is here)
INPUTS = {"path", "model", "file", "folder", "runs", "codes", "config", "videos", "fid_extractor", "fid_weights",
          "real", "fake", "root", "direction", "resume"}
OUTPUTS = {"out", "json", "png", "cache"}
NOT_PATHS = {"weights", "source", "dataset", "overwrite", "update", "beta", "beta_from", "pca_images"}
PATH_WORDS = re.compile(r"\b(file|files|folder|folders|directory|path|PATH|FILE)\b|\.(npz|npy|yaml|png|json)\b")
# number lists given as one string ("0.1,0.3"), parsed by the verb: refused before the model loads
NUMBER_LISTS = {"betas", "dims", "values", "alphas", "guidance_axes"}
NAME_LISTS = {"metrics", "gen_metrics", "what", "report_to"}
MISSING = re.compile(r"does not exist|no such|not found|existing", re.IGNORECASE)


def _group_recipe(group: str) -> str:
    return "demo/toy-ddpm" if group == "train" else next(r.name for r in list_recipes()
                                                             if r.name.startswith(f"{group}/"))


def _required(words, parser, tmp: Path, given=None) -> list[str]:
    """The shortest command line that gets past argparse, then the flags of ``given`` (action -> value):
    every positional filled (a MODEL or PATH with a path that does not exist), every required flag (an
    input file with an empty file: the path under test is the only one missing) and one flag of a
    required either-or group (eval: --generation for its flags, else a missing --model)."""
    given = given or {}
    argv = list(words)
    for a in parser._actions:
        if isinstance(a, argparse._HelpAction) or a.nargs == argparse.REMAINDER:
            continue
        if not a.option_strings:
            argv.append(given.get(a) or _value(a, words, tmp))
        elif a.required or a in given:
            argv += [a.option_strings[-1]] + ([] if a.nargs == 0 else [given.get(a) or _value(a, words, tmp)])
    for group in parser._mutually_exclusive_groups:
        if group.required and not any(a in given for a in group._group_actions):
            generation = any(a.dest in eval_generation.DEFAULTS for a in given)
            argv += ["--generation"] if generation else ["--model", str(tmp / "missing-model")]
    return argv


def _value(action, words, tmp: Path) -> str:
    if action.dest in INPUTS:  # positionals: missing (nothing loads); flags: an empty file that exists
        if action.option_strings:
            (tmp / "inputs").mkdir(exist_ok=True)
            (tmp / "inputs" / f"{action.dest}.npz").touch()
            return str(tmp / "inputs" / f"{action.dest}.npz")
        return str(tmp / f"missing-{action.dest}")
    if action.dest == "recipe":
        return _group_recipe(words[0])
    if action.dest == "name":
        return "dsprites"
    if action.dest == "out":  # data preview writes a .png, encode an .npz
        return str(tmp / ("out.png" if words[0] == "data" else "out.npz"))
    return "0"  # multibeta edit --direction (a unit), diffae manipulate --factor


def _call(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, (argv, err)
    return code, out, err


@pytest.fixture(autouse=True)
def _one_parser(monkeypatch, tmp_path):
    """main() builds the same parser for every case (20 ms each): built once here; the cases run in an
    empty folder, which must hold nothing afterwards but the inputs the cases made, and at a fixed width."""
    monkeypatch.setattr(diffrep.cli, "build_parser", lambda: PARSER)
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.chdir(tmp_path)
    yield
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "inputs") == [], "a refused command wrote files"


def _id(words):
    return " ".join(words) or "diffrep"


def test_the_tree_holds_every_command():
    # the walk reaches every command of diffrep.cli.SUBCOMMANDS and the verbs of each group
    assert {words[0] for words, _, _ in TREE if words} == set(diffrep.cli.SUBCOMMANDS)
    assert len(VERBS) > 60 and len(GROUPS) == 11  # diffrep itself, data, study and the eight method families
    assert ("multibeta", "edit") in VERBS and ("study", "report") in VERBS and ("data",) in GROUPS


def test_every_verb_selects_a_function(tmp_path):
    # main() calls args.func of the verb parsed (a group alone is refused before): none may lack one
    for words, parser in VERBS.items():
        args, _ = PARSER.parse_known_args(_required(words, parser, tmp_path))
        assert callable(getattr(args, "func", None)), words


def test_every_list_flag_is_classified():
    # a comma-separated flag argparse leaves as text is a number list (checked below) or a list of names
    unclassified = {f"{' '.join(words)} {a.option_strings}" for words, parser in VERBS.items()
                    for a in parser._actions if a.option_strings and a.type is None and a.nargs != 0
                    and "comma-separated" in (a.help or "") and a.dest not in NUMBER_LISTS | NAME_LISTS}
    assert not unclassified, sorted(unclassified)


def test_every_path_like_flag_is_classified():
    # a new flag whose help speaks of a file or folder is an input (checked below), an output or neither
    unclassified = {f"{' '.join(words)} {a.option_strings or a.dest}" for words, parser in VERBS.items()
                    for a in parser._actions if not isinstance(a, argparse._HelpAction)
                    and PATH_WORDS.search(f"{a.help or ''} {a.metavar or ''}")
                    and a.dest not in INPUTS | OUTPUTS | NOT_PATHS}
    assert not unclassified, sorted(unclassified)


@pytest.mark.parametrize("words", [w for w, _, _ in TREE], ids=_id)
def test_help(words, capsys):
    code, out, err = _call([*words, "--help"], capsys)
    assert code == 0 and err == ""
    assert out.startswith(f"usage: {' '.join(('diffrep', *words))}")
    assert not re.search(r"%\(\w+\)|%[sdr]\b|\{\}|\{\w+\}", out), out   # {a,b} lists choices; {x} alone is a hole
    assert max(map(len, out.splitlines())) <= 100
    parser = dict((w, p) for w, p, _ in TREE)[words]
    silent = [a.option_strings or a.dest for a in parser._actions  # 'paramrel sample --n N' said nothing
              if not a.help and not isinstance(a, argparse._SubParsersAction)]  # a group's verbs have their own
    assert not silent, silent
    if parser.description:  # given whole, ending a sentence (not a docstring cut at a line)
        assert " ".join(parser.description.split()) in " ".join(out.split())
        assert parser.description.rstrip()[-1] in ".)\"'`", parser.description


@pytest.mark.parametrize("words", list(VERBS), ids=_id)
def test_unknown_flag(words, capsys, tmp_path):
    parser = VERBS[words]
    code, _, err = _call([*_required(words, parser, tmp_path), "--no-such-flag"], capsys)
    assert code == 2
    if any(a.nargs == argparse.REMAINDER for a in parser._actions):  # after a recipe: 'diffrep train' reads it
        # a runtime error, begun with the full verb as the usage errors are ('diffrep multibeta train', not
        # 'diffrep train' nor 'diffrep multibeta'), and saying the flag is none of train's own either
        assert err.startswith(f"{' '.join(('diffrep', *words))}: error: config field 'no-such-flag': unknown "
                              "field"), err
        assert f"--no-such-flag is not a flag of '{' '.join(('diffrep', *words))}' either (--config, --out," in err, err
    else:
        assert f"usage: {' '.join(('diffrep', *words))}" in err
        assert "error: unrecognized arguments: --no-such-flag" in err


@pytest.mark.parametrize("words", list(VERBS), ids=_id)
def test_a_flag_is_never_abbreviated(words, capsys, tmp_path):
    """argparse's default reads a prefix as the flag (--over for --overwrite, --res 3 for --resume 3): a typo or
    a flag added later could silently mean another. Every prefix one letter short of a flag is refused and,
    where it is the prefix of that flag alone, the flag is named."""
    parser = VERBS[words]
    assert parser.allow_abbrev is False
    flags = [o for a in parser._actions for o in a.option_strings if o.startswith("--") and len(o) > 4]
    remainder = any(a.nargs == argparse.REMAINDER for a in parser._actions)
    for flag in flags:
        prefix = flag[:-1]
        if prefix in flags:
            continue
        code, _, err = _call([*_required(words, parser, tmp_path), prefix], capsys)
        assert code == 2, (flag, err)
        verb = " ".join(("diffrep", *words))
        if remainder:  # after the recipe: a config field or one of train's own flags, neither of which it is
            assert f"{prefix} is not a flag of '{verb}' either" in err, err
        else:
            assert f"{verb}: error: unrecognized arguments: {prefix}" in err, err
            if [f for f in flags if f.startswith(prefix)] == [flag]:
                assert f"did you mean {flag}? (flags are not abbreviated)" in err, err


def _inputs(parser):
    return [a for a in parser._actions if a.dest in INPUTS and a.nargs != 0]


def _new_output(words, action, tmp: Path) -> str:
    """A path in a folder that does not exist yet, for an output flag, with a suffix the verb takes (a wrong one
    is refused before the inputs are read, which would hide what the test below checks)."""
    what = (action.help or "").split("(")[0].lower()  # "run directory (default: ...)", "output file (...)"
    if action.dest == "png":
        suffix = ".png"
    elif action.dest == "json" or words[-1] == "eval" or words == ("aggregate",):
        suffix = ".json"
    elif action.dest == "cache" or words[-1] in ("encode", "denoise"):
        suffix = ".npz"
    elif "folder" in what or "directory" in what:
        suffix = ""
    else:
        suffix = ".png"
    return str(tmp / "new" / f"{action.dest}{suffix}")


@pytest.mark.parametrize("words", [w for w, p in VERBS.items() if _inputs(p)], ids=_id)
def test_missing_input_paths(words, capsys, tmp_path):
    # every output flag is given a path in a new folder: a command refused for its input must not have made it
    # ('eval --generation --out new/r.json' with a missing --real made new/ before refusing)
    parser = VERBS[words]
    outputs = {a: _new_output(words, a, tmp_path) for a in parser._actions if a.dest in OUTPUTS and a.nargs != 0}
    problems = []
    for action in _inputs(parser):
        missing = tmp_path / "missing" / f"{action.dest}.npz"
        given = {a: path for a, path in outputs.items() if a.dest != "cache"} | {action: str(missing)}
        if words == ("eval",) and action.dest in ("real", "fake", "fid_weights"):  # the other side: a dataset
            given = {a: "dsprites" for a in parser._actions if a.dest in ("real", "fake")} | outputs | given
        argv = _required(words, parser, tmp_path, given)
        code, _, err = _call(argv, capsys)
        flag = action.option_strings[-1] if action.option_strings else ""  # named with the path: "--codes X"
        said = MISSING.search(err)  # says why: 'X is not a directory' left a typo for a file to guess
        full = f"{' '.join(('diffrep', *words))}: error: "  # the full verb, as argparse's usage errors begin
        if code != 2 or str(missing) not in err or flag not in err or not said or not err.startswith(full):
            problems.append(f"{' '.join(argv[len(words):])}: exit {code}, {err.strip()[-300:]}")
        if (tmp_path / "new").exists():
            problems.append(f"{' '.join(argv[len(words):])}: made {tmp_path / 'new'} before refusing")
            shutil.rmtree(tmp_path / "new")
    assert not problems, "\n".join(problems)


def _numeric(action) -> bool:
    """A flag argparse converts (int, float, a seed): it must refuse a non-number naming the flag."""
    return bool(action.option_strings) and action.type not in (None, str)


@pytest.mark.parametrize("words", [w for w, p in VERBS.items() if any(_numeric(a) or a.choices or a.dest in NUMBER_LISTS
                                                                        for a in p._actions if a.option_strings)], ids=_id)
def test_numbers_and_choices(words, capsys, tmp_path):
    parser = VERBS[words]
    problems, cases = [], 0
    for action in parser._actions:
        name = "/".join(action.option_strings)  # argparse's name of the flag: -n/--num
        listed = action.dest in NUMBER_LISTS and action.type is None  # the verb's message: "--betas must be ..."
        wrong = ([("abc", "a non-number")] * (_numeric(action) or listed)
                 + [("zzz", "a wrong choice")] * bool(action.choices))
        for value, why in wrong:
            cases += 1
            code, _, err = _call(_required(words, parser, tmp_path, {action: value}), capsys)
            named = f"error: {action.option_strings[-1]} " if listed else f"error: argument {name}: "
            if code != 2 or named not in err or f"'{value}'" not in err:
                problems.append(f"{why} {name} {value}: exit {code}, {err.strip()[-200:]}")
    assert cases and not problems, "\n".join(problems)


@pytest.mark.parametrize("words", list(GROUPS), ids=_id)
def test_group_without_its_verb(words, capsys):
    code, out, err = _call(list(words), capsys)
    verbs = list(GROUPS[words].choices)
    assert code == 2
    assert out.startswith(f"usage: {' '.join(('diffrep', *words))}") and all(v in out for v in verbs)
    noun = "command" if not words else "verb"
    assert err.strip() == (f"{' '.join(('diffrep', *words))}: error: no {noun} given; choose one of {', '.join(verbs)} "
                           f"('{' '.join(('diffrep', *words))} {GROUPS[words].metavar} --help' shows its flags)")


def _misspelled(verb: str) -> str:
    """Two neighbouring letters swapped, the first pair that differs after the first letter: 'tarin', 'smaple'."""
    i = next(i for i in range(1, len(verb) - 1) if verb[i] != verb[i + 1])
    return verb[:i] + verb[i + 1] + verb[i] + verb[i + 2:]


@pytest.mark.parametrize("words", list(GROUPS), ids=_id)
def test_misspelled_verb_names_the_closest(words, capsys):
    for verb in GROUPS[words].choices:
        if len(verb) < 4:
            continue
        code, _, err = _call([*words, _misspelled(verb)], capsys)
        assert code == 2
        assert f"invalid choice: '{_misspelled(verb)}'" in err and err.rstrip().endswith(f"did you mean '{verb}'?"), err


def test_version_and_a_wrong_choice_near_a_right_one(capsys):
    code, out, _ = _call(["--version"], capsys)
    assert code == 0 and out.strip() == f"diffrep {diffrep.__version__}"
    code, _, err = _call(["sample", "m", "--device", "cdua"], capsys)
    assert code == 2 and "argument --device: invalid choice: 'cdua' (choose from 'auto', 'cpu', 'cuda'); did you mean " \
        "'cuda'?" in err
    code, _, err = _call(["sample", "m", "--device", "gpu"], capsys)  # nothing close: the choices only
    assert code == 2 and err.rstrip().endswith("(choose from 'auto', 'cpu', 'cuda')")


@pytest.mark.slow  # a fresh interpreter imports torch: 2-5 s
def test_python_m_diffrep_without_arguments(tmp_path):
    # the entry point a shell reaches besides the 'diffrep' script (which calls the same main)
    env = {"PYTHONPATH": str(Path(diffrep.__file__).parents[1]), "COLUMNS": "100", "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-m", "diffrep"], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=60)
    assert res.returncode == 2 and res.stdout.startswith("usage: diffrep [-h] [--version] COMMAND ...")
    assert res.stderr.startswith("diffrep: error: no command given; choose one of info, demo, quickstart,")
