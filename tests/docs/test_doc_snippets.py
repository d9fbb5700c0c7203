"""Every code example a user copies from README.md and docs/**/*.md works.

- Each ```python block runs end to end, in-process, in a fresh temporary working directory, its text
  unchanged. Training is made tiny by the ``tiny_training`` fixture (test-only; the library has no such
  hook and gets none): it wraps ``diffrep.train.Trainer.__init__`` so that every run a block starts
  (directly, or through a recipe such as ``MultiBetaRecipeConfig.train_phases``) trains ``TINY_STEPS``
  optimiser steps of at most ``TINY_BATCH`` examples, without periodic checkpoints, samples or
  evaluations. Everything else (the recipes' models and datasets, the encoding, the metrics) is what a
  user runs. A block must then deliver what it claims: every run it trains saved as ``final/config.json``
  + ``final/model.safetensors`` (README: "Every model saves as ..."), every file it names written, no
  non-finite number printed, every metric it imports printed and in [0, 1] (MIG recomputed here from the
  block's own codes and factors), and the claims of its comments (``CLAIMS``).
- Each ``diffrep ...`` command line shown (inline code, fenced and indented code blocks, ``torchrun -m
  diffrep.cli``) parses. Placeholders (``MODEL``, ``NAME``, ...) are plain strings to argparse; ``a|b``
  alternatives expand to each verb; ``[...]`` optional parts are included; ``...`` is dropped. A
  complete command must select a verb and leave no argument unrecognised; a prose fragment
  (a verb group, a verb without its required arguments, a flag without its value) must name an existing
  verb and flags of it; ``VERB`` or ``...`` after a verb group stands for each of its verbs.
  The recipe overrides of ``train`` commands are resolved against the recipe (``--print-config``), and
  the cheap commands run for real (``_cheap_variant``).
Blocks that take more than a few seconds on one CPU thread are marked ``slow`` (``pytest -m slow``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import dataclasses
import itertools
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from doc_code import FENCE, PAGES, ROOT, cli_parser, code_texts, line_at

TINY_STEPS = 2
TINY_BATCH = 8

# -- extraction ------------------------------------------------------------------------------------------

def python_blocks() -> list[tuple[str, str]]:
    """(``page:line``, code) of every ```python block."""
    out = []
    for page in PAGES:
        text, rel = page.read_text(), page.relative_to(ROOT)
        out += [(f"{rel}:{line_at(text, m.start())}", m.group(2)) for m in FENCE.finditer(text) if m.group(1) == "python"]
    return out


_CALL = re.compile(r"^(?:diffrep|\S*torchrun\s.*?-m diffrep(?:\.cli)?|python3? -m diffrep(?:\.cli)?)(?:\s+(.*)|$)")


def _diffrep_args(line: str) -> str | None:
    """What follows ``diffrep`` (or ``-m diffrep[.cli]``) in a shell line; None when it calls no diffrep."""
    line = re.split(r"\s#", line)[0]
    for part in line.split("&&"):
        m = _CALL.match(part.strip())
        if m:
            return (m.group(1) or "").strip()
    return None


def command_lines() -> list[tuple[str, str]]:
    """(``page:line``, the text after ``diffrep``) of every diffrep command shown: lines of fenced
    (non-Python, non-YAML) and indented code blocks, and inline code spans (which may wrap a line)."""
    return [(where, c) for where, code, _ in code_texts() if (c := _diffrep_args(code)) is not None]


def expand(command: str) -> list[list[str]]:
    """The argv lists a documented command stands for: ``\\|`` and `` | `` alternatives expanded (a ``...``
    alternative, "and others", dropped), optional ``[...]`` parts included, the ``...`` of a placeholder
    (``RUN...``: several runs) dropped; a standalone ``...`` stays (after a verb group it stands for any
    verb, elsewhere for more arguments: ``_resolve`` decides)."""
    text = command.replace("\\|", "|")
    text = re.sub(r"\s*\|\s*", "|", text).replace("[", " ").replace("]", " ")
    tokens = [t if t == "..." else re.sub(r"\.\.\.$", "", t) for t in text.split()]
    choices = [[c for c in t.split("|") if c not in ("", "...")] if "|" in t else [t] for t in tokens if t]
    return [list(p) for p in itertools.product(*choices)]


# -- the tiny-training fixture ---------------------------------------------------------------------------

@pytest.fixture
def tiny_training(monkeypatch):
    """Every ``Trainer`` built while the test runs trains ``TINY_STEPS`` steps of <= ``TINY_BATCH``
    examples with no periodic checkpoint, sample or evaluation; yields the run folders, in order."""
    from diffrep.train import Trainer

    runs: list[Path] = []
    init = Trainer.__init__

    def tiny_init(self, model, dataset, config, run_dir, **kwargs):
        config = dataclasses.replace(config, steps=min(config.steps, TINY_STEPS),
                                     batch_size=min(config.batch_size, TINY_BATCH), grad_accum_steps=1,
                                     ckpt_every=0, sample_every=0, eval_every=0, log_every=1)
        init(self, model, dataset, config, run_dir, **kwargs)
        runs.append(Path(run_dir))

    monkeypatch.setattr(Trainer, "__init__", tiny_init)
    yield runs


# -- running the Python blocks ---------------------------------------------------------------------------

def _histogram_mig(z: np.ndarray, f: np.ndarray, bins: int = 20) -> float:
    """MIG as disentanglement_lib computes it, written here from its definition: each code discretised
    into ``bins`` equal-width bins over its range (np.histogram edges, np.digitize), discrete mutual
    information with each factor, gap between the two most informative codes over the factor's entropy."""
    from collections import Counter

    def mi(a, b):
        n = len(a)
        pab, pa, pb = Counter(zip(a, b)), Counter(a), Counter(b)
        return sum(c / n * math.log(c * n / (pa[x] * pb[y])) for (x, y), c in pab.items())

    codes = [tuple(np.digitize(col, np.histogram(col, bins)[1][:-1])) for col in z.T]
    gaps = []
    for k in range(f.shape[1]):
        fk = tuple(f[:, k].tolist())
        h = mi(fk, fk)
        if h > 0:
            m = sorted((mi(c, fk) for c in codes), reverse=True)
            gaps.append((m[0] - m[1]) / h)
    return float(np.mean(gaps)) if gaps else 0.0


def _check_ops_tour(ns: dict, out: str) -> None:
    # "exact h^-1": the inverse update returns the prior (mu, rho = 1) the sender update started from
    torch.testing.assert_close(ns["mu_back"], ns["mu"], atol=1e-5, rtol=1e-5)
    assert torch.allclose(torch.as_tensor(ns["rho_back"], dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64))
    assert ns["mu"].shape == ns["x"].shape and ns["y"].shape == ns["x"].shape
    assert out.startswith("bfn.continuous_flow"), out  # explain names the op and the backend chosen


def _check_bfn_samples(ns: dict, out: str) -> None:
    from PIL import Image

    x = ns["x"]
    assert x.shape[0] == 16 and torch.isfinite(x).all() and float(x.min()) >= -1 and float(x.max()) <= 1
    side = (4 * (x.shape[-1] + 2) + 2) * 8  # nrow=4, padding 2, scale=8
    assert Image.open("runs/bfn/samples.png").size == (side, side)


def _check_dyga(ns: dict, out: str) -> None:
    dyga, c = ns["dyga"], ns["c"]
    assert ns["c_tilde"].shape == c.shape and torch.isfinite(ns["c_tilde"]).all()
    assert dyga.n_anchors.shape == (c.shape[1],) and bool((dyga.n_anchors >= 1).all())
    assert dyga.last_fit["n_anchors"] == dyga.n_anchors.tolist()


def _check_multibeta_doc(ns: dict, out: str) -> None:
    x = ns["x"]
    for name in ("x_sharp", "x_blur"):
        assert ns[name].shape == x.shape and torch.isfinite(ns[name]).all(), name
    assert not torch.equal(ns["x_sharp"], ns["x_blur"])  # the latent denoiser changes the code before decoding
    assert ns["model"].phase == 2


def _check_vae_doc(ns: dict, out: str) -> None:
    assert set(ns["out"]) == {"loss", "recon", "kl", "tc"}
    assert all(bool(torch.isfinite(v)) for v in ns["out"].values())
    images, z = ns["images"], ns["z"]
    assert z.shape == (images.shape[0], ns["model"].config.latent_dim)
    mu, _ = ns["model"].posterior(images)
    torch.testing.assert_close(z, mu)  # "the posterior mean"


def _check_paramrel_resume(ns: dict, out: str) -> None:
    # "train(resume="latest") continues a run": the finished run resumes at its last step and trains no further
    from diffrep.train import Trainer

    history = Trainer(ns["model"], ns["data"], ns["cfg"].train, "runs/paramrel").train(resume="latest")
    assert not [r for r in history if "loss" in r]


def _check_multibeta_any_beta(ns: dict, out: str) -> None:
    # "encode(x, beta=...) reads any other β": codes of the same images at another beta, same shape, different
    x = ns["format_images"](ns["full"].sample_observations_from_factors(ns["f"][:8], np.random.RandomState(1)), "pm1")
    with torch.no_grad():
        z0, z9 = ns["model"].encode(x), ns["model"].encode(x, beta=0.9)
    assert z0.shape == z9.shape == (8, ns["z"].shape[1]) and not torch.equal(z0, z9)


# the claims of a block's comments, keyed by a line that identifies the block
CLAIMS = {
    "mu_back, rho_back = bfn.continuous_update_inverse": _check_ops_tour,
    '# train(resume="latest") continues a run': _check_paramrel_resume,
    "# encode(x, beta=...) reads any other β": _check_multibeta_any_beta,
    'save_image(x, "runs/bfn/samples.png"': _check_bfn_samples,
    "dyga = DyGA(DyGAConfig(": _check_dyga,
    "x_blur = model.reconstruct(x, beta=0.6, denoise=False)": _check_multibeta_doc,
    "model = BetaTCVAE(BetaTCVAE.config_class(beta=6.0))": _check_vae_doc,
}

# blocks that take more than about two seconds on one CPU thread (their first line, a comment naming them);
# with tiny training the encoding of 2000-3000 images, the metrics and BFN's sampling dominate
SLOW = ("# ParamReL", "# BFN", "# Multi-beta VAE", "# EncDiff", "# DiffAE")

_METRIC_KEYS = re.compile(r"'(mig|sap|dci_\w+)': ([^,}\s]+)")


def _block_params():
    for where, code in python_blocks():
        slow = code.lstrip().startswith(SLOW)
        yield pytest.param(code, id=where, marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize("code", _block_params())
def test_python_block_runs(code, tiny_training, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ns = {"__name__": "__main__"}
    exec(compile(code, "<doc block>", "exec"), ns)
    out = capsys.readouterr().out

    for run in tiny_training:  # every trained run saved as a model folder
        for name in ("config.json", "model.safetensors"):
            assert (run / "final" / name).is_file(), f"{run}/final/{name} missing"
    for path in re.findall(r"""["']([\w./-]+\.(?:png|npz|json|safetensors|csv))["']""", code):
        assert Path(path).is_file() and Path(path).stat().st_size > 0, f"{path} not written"
    assert not re.search(r"\b(nan|inf)\b", out, re.I), out

    printed = _METRIC_KEYS.findall(out)
    for key, value in printed:
        assert 0.0 <= float(value) <= 1.0, (key, value)
    imported = re.search(r"^from diffrep\.metrics import (.+)$", code, re.M)
    for metric in (imported.group(1).replace(" ", "").split(",") if imported else []):
        assert any(k.startswith(metric) for k, _ in printed), f"{metric} imported but not printed: {out}"
    if imported and "mig" in imported.group(1) and "z" in ns and "f" in ns:  # MIG of the last (z, f) printed
        last = [float(v) for k, v in printed if k == "mig"][-1]
        z = ns["z"] if isinstance(ns["z"], np.ndarray) else None
        if z is not None:
            assert last == pytest.approx(_histogram_mig(z, np.asarray(ns["f"])), abs=1e-9)
    for marker, check in CLAIMS.items():
        if marker in code:
            check(ns, out)


def test_every_block_is_found_and_claims_match_blocks():
    blocks = python_blocks()
    assert len(blocks) >= 8 + 3, [w for w, _ in blocks]  # README's eight, dyga, multibeta, vae
    for marker in CLAIMS:
        assert sum(marker in code for _, code in blocks) == 1, marker
    for start in SLOW:
        assert sum(code.lstrip().startswith(start) for _, code in blocks) == 1, start


def test_readme_shortening_hint():
    """The README's "shorten a run with apply_overrides(cfg, {"train.steps": 200})" sets the steps."""
    from diffrep.config import apply_overrides
    from diffrep.recipes import get_recipe

    assert 'apply_overrides(cfg, {"train.steps": 200})' in (ROOT / "README.md").read_text()
    cfg = get_recipe("paramrel/dsprites").make_config()
    cfg = apply_overrides(cfg, {"train.steps": 200})
    assert cfg.train.steps == 200


# -- the command lines -----------------------------------------------------------------------------------

@pytest.fixture
def parser():
    return cli_parser()


def _subverbs(parser: argparse.ArgumentParser) -> dict:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return subs[0].choices if subs else {}


def _verb_parser(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[argparse.ArgumentParser, list[str], list[str]]:
    """(the deepest sub-parser the leading words select, those words, the rest)."""
    words = []
    while argv and argv[0] in _subverbs(parser):
        parser = _subverbs(parser)[argv[0]]
        words.append(argv[0])
        argv = argv[1:]
    return parser, words, argv


# placeholders argparse converts: integers
PARSE_VALUES = {"N": "4"}


def _takes(verb: argparse.ArgumentParser, rest: list[str]) -> bool:
    """Whether a verb takes what follows ``VERB`` in a synopsis: every flag shown, and a model folder
    (a positional ``model`` or ``path``) when a placeholder such as ``MODEL`` or ``RUN/final`` follows."""
    options = {o for a in verb._actions for o in a.option_strings}
    positionals = [a.dest for a in verb._actions if not a.option_strings]
    flags_ok = all(t.split("=")[0] in options for t in rest if t.startswith("--"))
    needs_model = any(not t.startswith("-") and t != "..." for t in rest[:1])
    return flags_ok and (not needs_model or bool(positionals) and positionals[0] in ("model", "path"))


def resolve(parser: argparse.ArgumentParser, argv: list[str]) -> list[list[str]]:
    """Concrete argv lists of an expanded command: ``VERB`` or ``...`` right after a verb group is each of its
    verbs that takes the rest (``_takes``); any other ``...`` is dropped; integer placeholders get a number."""
    p, words, rest = _verb_parser(parser, argv)
    if rest and rest[0] in ("VERB", "...") and _subverbs(p):
        verbs = [v for v, vp in _subverbs(p).items() if _takes(vp, rest[1:])]
        assert verbs, f"no verb of diffrep {' '.join(words)} takes {' '.join(rest[1:])}"
        return [r for verb in verbs for r in resolve(parser, [*words, verb, *rest[1:]])]
    return [[PARSE_VALUES.get(t, t) for t in argv if t != "..."]]


def _command_params():
    parser, seen = cli_parser(), set()
    for where, command in command_lines():
        for argv in (r for a in expand(command) for r in resolve(parser, a)):
            if argv and tuple(argv) not in seen:  # `diffrep` alone names the command
                seen.add(tuple(argv))
                yield pytest.param(argv, id=f"{where}: diffrep {' '.join(argv)}")


@pytest.mark.parametrize("argv", _command_params())
def test_command_parses(argv, parser):
    """Every word selects a verb and every flag is the verb's; the command then parses with nothing
    unrecognised, or it is a mention: a verb group, a verb shown without its required arguments (a
    synopsis), or a flag named without its value (prose)."""
    p, words, rest = _verb_parser(parser, argv)
    assert words or argv == ["--version"], f"{argv[0]} is no verb of diffrep"
    options = {o: a for a in p._actions for o in a.option_strings}
    overrides = any(a.dest == "overrides" for a in p._actions)  # train-like verbs: --a.b VALUE after the recipe
    for i, tok in enumerate(rest):
        if tok.startswith("-") and not re.fullmatch(r"-[\d.e-]+", tok):
            flag = tok.split("=")[0]
            assert flag in options or (overrides and i > 0), f"diffrep {' '.join(words)} has no flag {flag}"
    if not rest and _subverbs(p):
        return  # a verb group named in prose
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            args, unknown = parser.parse_known_args(argv)
        except SystemExit as exc:
            message = err.getvalue()
            if exc.code == 0 and argv == ["--version"]:
                return
            flag_named = rest and rest[-1] in options and "expected one argument" in message
            assert flag_named or re.search(r"the following arguments are required|one of the arguments .* is required",
                                           message), \
                f"argparse refused diffrep {' '.join(argv)}: {message}"
            return
    assert not unknown, f"unrecognised: {unknown}"
    assert getattr(args, "func", None) is not None, f"diffrep {' '.join(argv)} selects no verb"


def test_every_verb_is_documented():
    """Each top-level verb of ``diffrep`` appears in a documented command (the README's table, docs/architecture.md)."""
    from diffrep.cli import SUBCOMMANDS

    shown = {argv[0] for _, c in command_lines() for argv in expand(c) if argv}
    assert set(SUBCOMMANDS) <= shown, set(SUBCOMMANDS) - shown


def _documented_text() -> str:
    return "\n".join(page.read_text() for page in PAGES)


def test_python_m_entry_points_run(monkeypatch, capsys):
    """``python3 -m diffrep`` and ``torchrun ... -m diffrep.cli`` (docs) run the command line."""
    import runpy
    import sys

    modules = set(re.findall(r"-m (diffrep(?:\.\w+)*) ", _documented_text()))
    assert modules >= {"diffrep.cli"}, modules
    for module in sorted(modules):
        monkeypatch.setattr(sys, "argv", [module, "--version"])
        with pytest.raises(SystemExit) as exc:
            runpy.run_module(module, run_name="__main__", alter_sys=False)
        assert exc.value.code == 0, module
        assert capsys.readouterr().out.startswith("diffrep "), module


@pytest.mark.slow
def test_documented_bench_scripts_parse():
    """``python3 benches/bench_bfn.py [--device cuda]`` and ``benches/bench_<family>.py`` (README, docs/build.md):
    each script named exists and answers ``--help``."""
    import subprocess
    import sys

    named = set(re.findall(r"python3 (benches/bench_[\w<>]+\.py)", _documented_text()))
    scripts = {s for n in named for s in (sorted(ROOT.glob(n.replace("<family>", "*"))) if "<" in n else [ROOT / n])}
    assert ROOT / "benches" / "bench_bfn.py" in scripts
    assert all(f"`{name}`" in (ROOT / "docs" / "build.md").read_text() for name in NO_DEVICE_FLAG)
    for script in sorted(scripts):
        assert script.is_file(), script
        run = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120,
                             cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT / "python")})
        assert run.returncode == 0, (script, run.stderr[-1000:])
        if script.name not in NO_DEVICE_FLAG:  # "[--device cuda]"
            assert "--device" in run.stdout, script


NO_DEVICE_FLAG = ("bench_data.py", "bench_paramrel_celeba64.py")  # named so in docs/build.md


# placeholders of the documented commands, for the ones that run for real (paths relative to the repository)
REAL = {"NAME": "dsprites", "RECIPE": "vae/ae-cpu", "F.png": "preview.png", "--a.b": "--train.steps", "value": "5",
        "<recipe>": "dsprites-cpu",
        "<method>-<dataset>": "beta-vae-dsprites", "<method>-cpu": "beta-vae-cpu", "RUN/final": "RUN/final"}


def _cheap_variant(argv: list[str], parser) -> list[str] | None:
    """The documented command as it runs here in a second or so (None: not cheap): introspection verbs as
    written; ``train`` with its overrides checked by ``--print-config`` (a run would be long); ``study run``
    as ``--dry-run``."""
    p, words, rest = _verb_parser(parser, argv)
    real = [REAL.get(t, t) for t in argv]
    real = [re.sub(r"<recipe>|<method>-<dataset>|<method>-cpu", lambda m: REAL[m.group(0)], t) for t in real]
    if argv == ["--version"] or words in (["info"], ["demo"], ["data", "info"], ["data", "preview"]) or \
            (len(words) == 2 and words[1] == "recipes"):
        return real
    if words == ["train"]:
        if "--list" in rest or "--help" in rest:
            return real
        recipe = real[1] if len(real) > 1 and not real[1].startswith("-") else REAL["RECIPE"]
        extra = [t for t in real[2:] if t not in ("--resume", "latest", "--overwrite")]
        return ["train", recipe, *extra, "--print-config"]
    if words == ["study", "run"] and rest and rest[0].endswith(".yaml") and (ROOT / rest[0]).is_file():
        return ["study", "run", "{ROOT}/" + rest[0], "--dry-run", "--out", "study-out"]
    return None


SLOW_COMMANDS = ("demo",)  # a few seconds: it times a native kernel against its twin on 4M floats


def _real_params():
    parser, seen = cli_parser(), set()
    for where, command in command_lines():
        for argv in (r for a in expand(command) for r in resolve(parser, a)):
            real = _cheap_variant(argv, parser)
            if real is not None and tuple(real) not in seen:
                seen.add(tuple(real))
                marks = [pytest.mark.slow] if real[0] in SLOW_COMMANDS else []
                yield pytest.param(real, id=f"{where}: diffrep {' '.join(real)}", marks=marks)


@pytest.mark.parametrize("argv", _real_params())
def test_cheap_command_runs(argv, tmp_path, monkeypatch, capsys):
    from diffrep.cli import main

    monkeypatch.chdir(tmp_path)
    argv = [a.replace("{ROOT}", str(ROOT)) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exc:  # --version
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 0, f"diffrep {' '.join(argv)}: exit {code}\n{err[-2000:]}"
    assert out.strip(), "printed nothing"
    if "preview" in argv:
        assert (tmp_path / "preview.png").stat().st_size > 0


def test_documented_study_yaml_is_valid(tmp_path, monkeypatch, capsys):
    """The YAML of docs/study.md (the file format) is a study that ``study run --dry-run`` accepts."""
    from diffrep.cli import main

    text = (ROOT / "docs" / "study.md").read_text()
    blocks = [m.group(2) for m in FENCE.finditer(text) if m.group(1) == "yaml"]
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dsprites_cpu.yaml").write_text(blocks[0])
    assert main(["study", "run", "dsprites_cpu.yaml", "--dry-run"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    for label in ("beta-vae", "ae", "disdiff"):
        assert label in out


# -- the long commands, for real with tiny training ------------------------------------------------------

def _cli(argv: list[str], capsys) -> str:
    from diffrep.cli import main

    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, f"diffrep {' '.join(argv)}: exit {code}\n{err[-2000:]}"
    return out


@pytest.mark.slow
def test_quickstart_writes_what_the_readme_lists(tiny_training, tmp_path, monkeypatch, capsys):
    """README: reconstructions, samples, latent traversals, time-varying reconstructions and a metrics JSON
    (MIG, DCI, FactorVAE, SAP, modularity, InfoMEC, traversal shifts), a summary table; a second run into
    the same folder needs --overwrite."""
    import json

    from diffrep.cli import main

    monkeypatch.chdir(tmp_path)
    out = _cli(["quickstart", "--out", "qs"], capsys)
    assert "quickstart summary" in out
    for name in ("reconstructions.png", "samples.png", "traversals.png", "time_varying.png", "metrics.json",
                 "model/config.json", "model/model.safetensors"):
        assert (tmp_path / "qs" / name).is_file(), name
    record = json.loads((tmp_path / "qs" / "metrics.json").read_text())
    scores = record["metrics"]["scores"] if "scores" in record["metrics"] else record["metrics"]
    for key in ("mig", "dci_disentanglement", "factor_vae", "sap", "modularity", "infom", "infoe", "infoc"):
        value = next(v for k, v in scores.items() if k.startswith(key))
        assert math.isfinite(value) and 0 <= value <= 1, (key, value)
    assert "traversal_centroid_shift" in record
    assert main(["quickstart", "--out", "qs"]) == 2
    assert "--overwrite" in capsys.readouterr().err


@pytest.mark.slow
def test_model_commands_run(tiny_training, tmp_path, monkeypatch, capsys):
    """The README's command table on one tiny trained model: train, sample, encode, eval --codes (the
    encode file, and codes aligned to dataset indices with --dataset), eval --model, aggregate."""
    from diffrep.data import load
    from diffrep.data.pooled import Pooled
    from diffrep.nn import load_pretrained

    monkeypatch.chdir(tmp_path)
    _cli(["train", "vae/beta-vae-cpu", "--out", "run"], capsys)
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
    _cli(["sample", "run/final", "--out", "samples.png"], capsys)
    assert (tmp_path / "samples.png").stat().st_size > 0
    _cli(["encode", "run/final", "--dataset", "dsprites", "--out", "codes.npz", "--num-train", "600",
          "--num-test", "300"], capsys)
    out = _cli(["eval", "--codes", "codes.npz", "--metrics", "mig", "--format", "json"], capsys)
    assert "mig" in out

    # index-aligned codes (docs/metrics.md): row i is item indices[i]; the targets come from the dataset
    data, rng = Pooled(load("dsprites"), 2), np.random.RandomState(0)  # the recipe's 32 x 32 dSprites
    idx = rng.choice(len(data), 1000, replace=False)
    model = load_pretrained("run/final").eval()
    with torch.no_grad():
        z = model.encode(torch.stack([data[int(i)][0] for i in idx])).numpy()
    np.savez("aligned.npz", codes=z, indices=idx)
    out = _cli(["eval", "--codes", "aligned.npz", "--dataset", "dsprites", "--metrics", "mig", "--format", "json",
                "--out", "aligned.json"], capsys)
    import json

    record = json.loads((tmp_path / "aligned.json").read_text())
    got = record["scores"]["mig"] if "scores" in record else record["mig"]
    factors = np.stack([data[int(i)][1].numpy() for i in idx])
    assert got == pytest.approx(_histogram_mig(z, factors), abs=1e-9)

    _cli(["eval", "--model", "run/final", "--dataset", "dsprites", "--num-train", "600", "--num-test", "300",
          "--metrics", "mig,sap", "--out", "run/metrics.json"], capsys)
    out = _cli(["aggregate", "run"], capsys)
    assert "mig" in out
