"""The shell commands of README.md and docs/**/*.md that tests/docs/test_doc_snippets.py does not parse.

That file parses every ``diffrep ...`` line that starts a code span or a code line. This one covers the rest
of what a user copies, without running the work:

- ``python3 scripts/X.py ...``, ``python3 benches/X.py ...`` and ``scripts/X.py --flag ...``: each parses with the
  script's own parser (``parse_args`` / ``parse_known_args`` are intercepted once the script has built its
  parser, so nothing trains); what a ``parse_known_args`` script leaves over must be dotted overrides its
  ``--recipe`` accepts. ``[...]`` is optional: the command parses with and without it, except for the scripts
  the page itself names as taking no such flag. ``bench_<family>.py`` stands for every bench script.
- ``diffrep ...`` commands inside a longer span (a message such as ``interrupted ...; resume with: diffrep
  train ...``) parse with the CLI's parser.
- Every ``family/name`` recipe named in a ``diffrep`` command is in the registry (``family/<recipe>``: the
  family is), in any verb (``diffrep encdiff train encdiff/...``), not only ``diffrep train``.
- Every repository path a page names (``benches/results/...``, ``scripts/...``, ``studies/...``, ``tests/...``,
  ``python/...``, globs included) and every dated record named by its file name alone exists.
- A span that is only a flag (``--overwrite``, ``--arms dyga sd``) names a flag of the CLI, of a script or of
  a bench (or a dotted config override); the table of ``diffrep multibeta VERB MODEL ...`` names verbs and
  their flags.
- ``pip install ".[extra]"`` / ``'diffrep[extra]'`` name extras of pyproject.toml, quoted; the README's pytest
  flags (``-n``, ``--dist``, ``-m slow``) come with the ``test`` extra and the registered markers.
- ``--help`` of every verb and sub-verb exits 0 with its usage (the first thing a new user types).
- Every ``diffrep.x.y`` name a page gives resolves (module, or attribute of one).
- Every config field a page names as an override (``--train.steps 200``, ``--model.unet.channel_mult 1,2``
  anywhere in a span or code line, with or without a command around it) or as a span of its own
  (``train.eval_metrics``, ``model.denoiser.sampler=deterministic``) is a field of some recipe's config:
  test_doc_snippets.py resolves the overrides of complete ``diffrep train RECIPE`` commands only.
"""

from __future__ import annotations

import argparse
import dataclasses
import contextlib
import functools
import glob
import io
import itertools
import re
import shlex
import runpy
import sys
import tomllib
from pathlib import Path

import pytest

from doc_code import PAGES, ROOT, cli_parser, code_texts

# repository paths a page names that are not this repository's: the DisDiff authors' configs (docs/methods/disdiff.md)
FOREIGN_PATHS = ("configs/latent-diffusion/",)


# -- extraction ------------------------------------------------------------------------------------------

def _parts(code: str) -> list[str]:
    """The shell commands of a code line: a ``#`` comment cut, split at ``&&``."""
    return [p.strip() for p in re.split(r"\s#", code)[0].split("&&") if p.strip()]


_SCRIPT = re.compile(r"^(?:python3?\s+)?((?:scripts|benches)/[\w<>]+\.py)(?:\s+(.*))?$")


def script_commands() -> list[tuple[str, str, str, str]]:
    """(where, script path as written, its arguments, paragraph) of every script run shown: with ``python``
    in front, or with arguments (a bare ``scripts/X.py`` is a mention, checked as a path)."""
    out = []
    for where, code, para in code_texts():
        for part in _parts(code):
            m = _SCRIPT.match(part)
            if m and (part.startswith("python") or m.group(2)):
                out.append((where, m.group(1), m.group(2) or "", para))
    return out


_EMBEDDED = re.compile(r"[:;]\s+(diffrep\s.*)$")


def embedded_diffrep_commands() -> list[tuple[str, str]]:
    """(where, text after ``diffrep``) of the diffrep commands that follow a ``:`` or ``;`` inside a span
    (a message quoted in the docs); the ones that start a span are test_doc_snippets.py's."""
    out = []
    for where, code, _ in code_texts():
        if code.lstrip().startswith("diffrep"):
            continue
        m = _EMBEDDED.search(code)
        if m:
            out.append((where, m.group(1)[len("diffrep"):].strip()))
    return out


def diffrep_argvs() -> list[tuple[str, list[str]]]:
    """(where, words after ``diffrep``) of every diffrep command shown anywhere in a code span or line."""
    call = re.compile(r"(?:^|[:;]\s+|&&\s*)(?:\S*torchrun\s.*?-m diffrep(?:\.cli)?|python3? -m diffrep(?:\.cli)?|"
                      r"diffrep)\s+(.*)$")
    out = []
    for where, code, _ in code_texts():
        for part in _parts(code):
            m = call.search(part)
            if m:
                out.append((where, m.group(1).replace("\\|", "|").split()))
    return out


def expand_optional(args: str) -> list[tuple[list[str], bool]]:
    """(argv, whether it includes the optional ``[...]`` parts) for both choices; ``...`` dropped."""
    full = [t for t in shlex.split(args.replace("[", " ").replace("]", " ")) if t != "..."]
    bare = [t for t in shlex.split(re.sub(r"\[[^\]]*\]", " ", args)) if t != "..."]
    return [(full, True)] + ([(bare, False)] if bare != full else [])


# -- the scripts' own parsers ----------------------------------------------------------------------------

class _Parsed(BaseException):  # not an Exception: no handler in a script swallows it
    def __init__(self, namespace, rest):
        self.namespace, self.rest = namespace, rest


def _parse_script(script: Path, argv: list[str], monkeypatch) -> tuple[argparse.Namespace, list[str]]:
    """The script's namespace and leftover arguments for ``argv``, as its ``main`` parses them; the script
    stops right there (the parse methods raise ``_Parsed``). An argparse error is SystemExit(2)."""
    parse_args, parse_known = argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args
    inside = []

    def patched_parse_args(self, args=None, namespace=None):
        inside.append(True)
        try:
            ns = parse_args(self, args, namespace)
        finally:
            inside.pop()
        raise _Parsed(ns, [])

    def patched_parse_known(self, args=None, namespace=None):
        ns, rest = parse_known(self, args, namespace)
        if inside:  # parse_args's own call: it checks the leftovers itself
            return ns, rest
        raise _Parsed(ns, rest)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", patched_parse_args)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", patched_parse_known)
    monkeypatch.setattr(sys, "argv", [str(script), *argv])
    monkeypatch.syspath_prepend(str(script.parent))
    with pytest.raises(_Parsed) as parsed:
        runpy.run_path(str(script), run_name="__main__")
    return parsed.value.namespace, parsed.value.rest


def _script_params():
    seen = set()
    for where, written, args, para in script_commands():
        scripts = sorted(ROOT.glob(written.replace("<family>", "*"))) if "<" in written else [ROOT / written]
        assert scripts, f"{where}: {written} names no file"
        # a page that generalises over scripts may name those that take no optional flag (docs/build.md)
        exempt = {n for m in re.finditer(r"\(([^()]*?)take no `", para) for n in re.findall(r"`([\w.]+\.py)`", m.group(1))}
        for script in scripts:
            for argv, optional in expand_optional(args):
                if optional and script.name in exempt:
                    continue
                key = (script, tuple(argv))
                if key not in seen:
                    seen.add(key)
                    yield pytest.param(script, argv, id=f"{where}: {script.relative_to(ROOT)} {' '.join(argv)}")


@pytest.mark.parametrize("script, argv", _script_params())
def test_script_command_parses(script, argv, monkeypatch):
    assert script.is_file(), f"{script.relative_to(ROOT)} does not exist"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            ns, rest = _parse_script(script, argv, monkeypatch)
        except SystemExit as exc:
            pytest.fail(f"{script.name} refused {' '.join(argv)} (exit {exc.code}): {err.getvalue()}")
    if rest:  # parse_known_args scripts: the rest are config overrides of the recipe it trains
        from diffrep.config import apply_overrides
        from diffrep.recipes import get_recipe

        assert getattr(ns, "recipe", None), f"{script.name}: {rest} left over and no --recipe to apply them to"
        apply_overrides(get_recipe(ns.recipe).make_config(), rest)


def test_script_commands_are_found():
    """The extraction sees the documented script runs (so the parametrised test cannot pass by seeing none)."""
    shown = {(w.split(":")[0], s) for w, s, _, _ in script_commands()}
    assert ("README.md", "benches/bench_bfn.py") in shown
    assert ("docs/build.md", "benches/bench_<family>.py") in shown
    assert ("docs/methods/multibeta.md", "scripts/validate_multibeta.py") in shown


# -- diffrep commands inside messages --------------------------------------------------------------------

@pytest.mark.parametrize("command", [pytest.param(c, id=f"{w}: diffrep {c}") for w, c in embedded_diffrep_commands()])
def test_embedded_diffrep_command_parses(command):
    for argv, _ in expand_optional(command):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                args, unknown = cli_parser().parse_known_args(argv)
            except SystemExit:
                pytest.fail(f"argparse refused diffrep {' '.join(argv)}: {err.getvalue()}")
        assert not unknown, f"diffrep {' '.join(argv)}: unrecognised {unknown}"
        assert getattr(args, "func", None) is not None, f"diffrep {' '.join(argv)} selects no verb"


def test_embedded_commands_are_found():
    assert any(c.startswith("train RECIPE --out DIR --resume latest") for _, c in embedded_diffrep_commands())


# -- flags named alone, and verb tables ------------------------------------------------------------------

# flags a page names that belong to other programs: pip's (README, docs/build.md) and the original authors'
# command lines (docs/methods/disdiff.md, infodiffusion.md)
FOREIGN_FLAGS = {"--no-deps", "--no-compile", "--no-build-isolation", "--dis_weight", "--kld_weight", "--mmd_weight"}


def _cli_options() -> set[str]:
    def walk(parser):
        for action in parser._actions:
            yield from action.option_strings
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    yield from walk(child)

    return set(walk(cli_parser()))


def _whole_field_overrides() -> set[str]:
    """``--FIELD VALUE`` for a top-level field of a recipe's config (a dict field given whole,
    ``--dataset_options '{size: 32}'``): a config override without a dot."""
    from diffrep.recipes import list_recipes

    types = {type(recipe.make_config()) for recipe in list_recipes()}
    return {f"--{f.name}" for cls in types for f in dataclasses.fields(cls)}


class _Options(BaseException):
    def __init__(self, options):
        self.options = options


def _script_options(script: Path, monkeypatch) -> set[str]:
    """The flags of a script's parser, read when its ``main`` first parses (before parsing: nothing runs)."""
    def capture(self, *args, **kwargs):
        raise _Options({o for a in self._actions for o in a.option_strings})

    with monkeypatch.context() as m:
        m.setattr(argparse.ArgumentParser, "parse_args", capture)
        m.setattr(argparse.ArgumentParser, "parse_known_args", capture)
        m.setattr(sys, "argv", [str(script)])
        m.syspath_prepend(str(script.parent))
        try:
            runpy.run_path(str(script), run_name="__main__")
        except _Options as found:
            return found.options
    return set()  # no command line (a helper module)


def test_flags_named_alone_exist(monkeypatch):
    """A span that is just a flag (``--overwrite``, ``--arms dyga sd``, ``--rank/--world``) names a flag of the
    CLI or of a script or bench, or a dotted config override; not a flag renamed or removed since."""
    known = _cli_options() | FOREIGN_FLAGS | _whole_field_overrides()
    for script in sorted([*ROOT.glob("scripts/*.py"), *ROOT.glob("benches/*.py")]):
        known |= _script_options(script, monkeypatch)
    unknown = []
    for where, code, _ in code_texts():
        if code.startswith("--"):
            for flag in re.findall(r"--[\w-]+(?:\.[\w.-]+)?", code.split(" ")[0]):
                if "." not in flag and flag not in known:
                    unknown.append((where, flag))
    assert not unknown, unknown


def _verb_table_rows():
    """(where, group, cell) of each row of a table of verbs that follows ``diffrep GROUP VERB MODEL ...``:
    the first cell (in backticks) is the verb and its flags."""
    out = []
    for page in PAGES:
        lines = page.read_text().splitlines()
        for i, line in enumerate(lines):
            m = re.search(r"`diffrep (\w+) VERB MODEL \.\.\.`", line)
            if not m:
                continue
            j = i + 1
            while j < len(lines) and not lines[j].startswith("|"):
                j += 1
            while j < len(lines) and lines[j].startswith("|"):
                cell = re.match(r"\| `(.+?)` \|", lines[j])
                if cell:
                    out.append((f"{page.relative_to(ROOT)}:{j + 1}", m.group(1), cell.group(1).replace("\\|", "|")))
                j += 1
    return out


@pytest.mark.parametrize("group, cell", [pytest.param(g, c, id=f"{w}: {g} {c}") for w, g, c in _verb_table_rows()])
def test_verb_table_row_names_a_verb_and_its_flags(group, cell):
    groups = next(a for a in cli_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    verbs = next(a for a in groups[group]._actions if isinstance(a, argparse._SubParsersAction)).choices
    verb, *rest = cell.split()
    assert verb in verbs, f"diffrep {group} has no verb {verb}"
    options = {o for a in verbs[verb]._actions for o in a.option_strings}
    for flag in re.findall(r"--[\w-]+", " ".join(rest)):
        assert flag in options, f"diffrep {group} {verb} has no flag {flag}"


def test_verb_tables_are_found():
    rows = _verb_table_rows()
    assert sum(g == "multibeta" for _, g, _ in rows) == 9, rows


# -- recipes ---------------------------------------------------------------------------------------------

def _families() -> set[str]:
    from diffrep.recipes import list_recipes

    return {r.name.split("/")[0] for r in list_recipes()}


def _recipe_params():
    families, seen = _families(), set()
    for where, argv in diffrep_argvs():
        for tok in argv:
            m = re.fullmatch(r"([\w-]+)/(\S+)", tok)
            if m and m.group(1) in families and tok not in seen:
                seen.add(tok)
                yield pytest.param(tok, id=f"{where}: {tok}")


@pytest.mark.parametrize("name", _recipe_params())
def test_named_recipe_exists(name):
    from diffrep.recipes import get_recipe

    family, rest = name.split("/", 1)
    assert family in _families(), family
    if "<" not in rest:  # family/<recipe>: a placeholder, the family is enough
        get_recipe(name)  # raises, naming the known recipes, when there is none


def test_every_recipe_command_is_seen():
    names = {p.values[0] for p in _recipe_params()}
    assert {"multibeta/dsprites-cpu", "encdiff/shapes3d-cpu", "paramrel/celeba64"} <= names, names


# -- paths -----------------------------------------------------------------------------------------------

_REPO_PATH = re.compile(r"(?<![\w./-])((?:benches|scripts|studies|tests|python|csrc|docs|configs)/[\w./*<>-]*)")
_DATED = re.compile(r"^(?:\.\.\.)?[\w.-]*_20\d\d-\d\d-\d\d\w*\.(?:txt|json|jsonl|md|csv)$")


def _path_params():
    seen = set()
    for where, code, para in code_texts():
        for tok in _REPO_PATH.findall(code):
            tok = tok.rstrip(".")
            if tok.startswith(FOREIGN_PATHS) or "<" in tok or tok in seen:
                continue  # <family>: the script test expands it
            seen.add(tok)
            yield pytest.param(tok, id=f"{where}: {tok}")
        if _DATED.match(code.strip()) and code not in seen:  # a record named by its file name alone
            seen.add(code)
            yield pytest.param("benches/results/" + code.strip().replace("...", "*"), id=f"{where}: {code}")


@functools.lru_cache(maxsize=None)
def _study_output_folders() -> frozenset[str]:
    """The folders ``diffrep study run studies/X.yaml`` writes by default (``studies/<study name>``): a page
    names them for ``study report`` before they exist."""
    from diffrep.study import load_study

    return frozenset(f"studies/{load_study(f).name}" for f in (ROOT / "studies").glob("*.yaml"))


@pytest.mark.parametrize("path", _path_params())
def test_named_repository_path_exists(path):
    if path.rstrip("/") in _study_output_folders():
        return
    assert glob.glob(str(ROOT / path)), f"{path} does not exist in the repository"


def test_paths_are_found():
    paths = {p.values[0] for p in _path_params()}
    assert "studies/dsprites_cpu.yaml" in paths and "benches/results/bfn_cpu_2core_2026-12-06b.txt" in paths


# -- dotted names ----------------------------------------------------------------------------------------

# the CUDA module exists only in a build with CUDA (docs/build.md)
BUILD_ONLY = ("diffrep._cuda",)


def _resolves(name: str) -> bool:
    """Whether ``a.b.c`` is a module, or an attribute chain under the longest importable module prefix."""
    import importlib

    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_named_python_names_resolve():
    """Each ``diffrep.x.y`` a page names (a module, a function to call or ``python3 -m``) exists: a user types it."""
    import warnings

    names = {(where, n) for where, code, _ in code_texts() for n in re.findall(r"(?<![\w./])(diffrep(?:\.\w+)+)", code)}
    assert len(names) > 100
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # moved names still resolve, with a warning
        missing = sorted((w, n) for w, n in names if not n.startswith(BUILD_ONLY) and not _resolves(n))
    assert not missing, missing


# -- config fields named ---------------------------------------------------------------------------------

# a span that is a dotted name under a config section but no field: file names (``model.safetensors``, LMDB's
# ``data.mdb``) and the study report's ``train.<key>`` log values (docs/study.md)
NOT_FIELDS = re.compile(r"\.(?:safetensors|mdb|json|jsonl|yaml|pt|npz|png)$|^train\.(?:loss|kl)$")
_OVERRIDE = re.compile(r"(?<![\w-])--([A-Za-z_]\w*(?:\.[\w-]+)+)")
_FIELD_SPAN = re.compile(r"((?:train|train_latent|train_adv|model|data)(?:\.\w+)+)(?:\s*=\s*\S+|\s+\S+)?")


@functools.lru_cache(maxsize=None)
def _config_fields() -> frozenset[str]:
    """Every dotted field path (and section) of every registered recipe's config."""
    from diffrep.config import config_to_dict, flatten_dict
    from diffrep.recipes import list_recipes

    out = set()
    for r in list_recipes():
        for key in flatten_dict(config_to_dict(r.make_config())):
            parts = key.split(".")
            out |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return frozenset(out)


def named_config_fields() -> list[tuple[str, str]]:
    """(where, dotted path) of each config field a page names: ``--a.b`` anywhere, or a whole span ``a.b``
    under train / model / data; placeholders (``--a.b``, ``--model.denoiser.X``) are left out."""
    out = []
    for where, code, _ in code_texts():
        names = _OVERRIDE.findall(code)
        m = _FIELD_SPAN.fullmatch(code.strip())
        if m and not NOT_FIELDS.search(m.group(1)):
            names.append(m.group(1))
        out += [(where, n.replace("-", "_")) for n in names
                if n != "a.b" and not any(c.isupper() or c == "<" for c in n)]
    return out


def test_named_config_fields_exist():
    """A field renamed or removed since a page was written would be refused ("unknown field") when copied."""
    named = named_config_fields()
    assert len(named) > 40 and any(w.startswith("docs/methods/multibeta.md:") and n == "model.representation_beta"
                                   for w, n in named), named
    missing = sorted({(w, n) for w, n in named if n not in _config_fields()})
    assert not missing, missing


def test_field_extraction_on_hand_cases():
    assert _OVERRIDE.findall("diffrep train R --train.steps 5 --model.unet.channel_mult=1,2 --out x") == [
        "train.steps", "model.unet.channel_mult"]
    assert _FIELD_SPAN.fullmatch("model.denoiser.sampler=deterministic").group(1) == "model.denoiser.sampler"
    assert _FIELD_SPAN.fullmatch("train.seed = seed").group(1) == "train.seed"
    assert NOT_FIELDS.search("model.safetensors") and NOT_FIELDS.search("train.loss")
    assert not NOT_FIELDS.search("train.lossy")


# -- pip extras and the pytest flags ---------------------------------------------------------------------

def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_named_pip_extras_exist():
    extras = _pyproject()["project"]["optional-dependencies"]
    named = set()
    for where, code, _ in code_texts():
        for part in _parts(code):
            if re.search(r"\bpip install\b", part):
                named |= {e for group in re.findall(r"(?:\.|diffrep)\[([\w,-]+)\]", part) for e in group.split(",")}
                # quoted: zsh (macOS's shell) expands an unquoted [...] as a glob and stops with "no matches found"
                assert not re.search(r"(?<![\"'\w])(?:\.|diffrep)\[", part), f"{where}: quote the extra in {part}"
    assert "test" in named and "lsun" in named, named
    assert named <= set(extras), named - set(extras)


def test_readme_pytest_flags_come_with_the_test_extra():
    """README: ``pip install ".[test]" ... pytest -q -n 2 --dist loadfile`` needs pytest-xdist in the extra;
    ``pytest -q -m slow`` needs the marker registered."""
    readme = (ROOT / "README.md").read_text()
    assert "-n 2 --dist loadfile" in readme and "-m slow" in readme
    project = _pyproject()
    assert any(d.startswith("pytest-xdist") for d in project["project"]["optional-dependencies"]["test"])
    assert any(m.startswith("slow:") for m in project["tool"]["pytest"]["ini_options"]["markers"])


# -- --help of every verb --------------------------------------------------------------------------------

def _verbs(parser: argparse.ArgumentParser, words=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield [*words, name]
                yield from _verbs(child, [*words, name])


def _verb_params():
    return [pytest.param(w, id=" ".join(w)) for w in _verbs(cli_parser())]


@pytest.mark.parametrize("words", _verb_params())
def test_verb_help(words, capsys):
    """What ``diffrep VERB --help`` prints (argparse answers --help while parsing, before main runs a verb)."""
    with pytest.raises(SystemExit) as exc:
        cli_parser().parse_known_args([*words, "--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0
    assert out.startswith(f"usage: diffrep {' '.join(words)}"), out[:200]


def test_every_top_level_verb_has_help():
    from diffrep.cli import SUBCOMMANDS

    assert {tuple(p.values[0]) for p in _verb_params()} >= {(v,) for v in SUBCOMMANDS}


def test_combinations_of_optional_parts():
    """expand_optional on a hand case: with and without the bracketed part, ``...`` dropped."""
    assert expand_optional("[--device cuda] ...") == [(["--device", "cuda"], True), ([], False)]
    assert expand_optional("--load-dir DIR") == [(["--load-dir", "DIR"], True)]
    assert list(itertools.chain.from_iterable(a for a, _ in expand_optional("a [b]"))) == ["a", "b", "a"]
