"""Every bench of benches/ refuses a bad command line with a usage error (exit 2, the flag named, nothing
measured or printed on stdout), never a traceback from deep inside the first kernel or model: before, a size of
0 or -5 was a ValueError or "negative dimension" traceback, ``--batch 0`` of bench_diffusion_baselines ran at the
recipe's batch of 32, ``--K 0`` a ZeroDivisionError, ``--warmup 0`` of bench_train_step a KeyError, an ``--only``
or ``--skip`` typo ran (or skipped) silently, ``fid_dsprites.py --device cuda`` a traceback on a machine without a
GPU, and an existing ``--json`` / ``--out`` was replaced without a word."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch

from helpers import load_bench

ROOT = Path(__file__).resolve().parents[2]

# (bench, argv, what the usage error says)
CASES = [
    ("bench_bfn", ["--sizes", "0"], "argument --sizes: '0' must be >= 1"),
    ("bench_bfn", ["--sizes", "-5"], "argument --sizes: '-5' must be >= 1"),
    ("bench_bfn", ["--sizes", "abc"], "argument --sizes: 'abc' is not an integer"),
    ("bench_bfn", ["--K", "1"], "--K: class counts must be >= 2, got [1]"),
    ("bench_bfn", ["--threads", "0"], "argument --threads: '0' must be >= 1"),
    ("bench_bfn", ["--repeat", "0"], "argument --repeat: '0' must be >= 1"),
    ("bench_bfn", ["--only", "no_such_op"], "--only 'no_such_op': no op matches; the ops: continuous_flow"),
    ("bench_guidance", ["--B", "0"], "argument --B: '0' must be >= 1"),
    ("bench_guidance", ["--D", "-1"], "argument --D: '-1' must be >= 1"),
    ("bench_guidance", ["--repeat", "x"], "argument --repeat: 'x' is not an integer"),
    ("bench_mmd", ["--sizes", "64,abc"], "argument --sizes: 'abc' is not an integer"),
    ("bench_mmd", ["--sizes", "1"], "argument --sizes: '1' must be >= 2"),
    ("bench_mmd", ["--d", "0"], "argument --d: '0' must be >= 1"),
    ("bench_hddc", ["--U", "0"], "argument --U: '0' must be >= 1"),
    ("bench_hddc", ["--K", "8", "--Kmax", "4"], "--Kmax 4 is below --K 8"),
    ("bench_hddc", ["--models", "AkjBkQkDk,bogus"], "--models 'AkjBkQkDk,bogus': each must be one of AkjBkQkDk, full"),
    ("bench_hddc", ["--n", "3", "--K", "2"], "--n 3: too few points per unit for K = 2 clusters"),
    ("bench_hddc", ["--iters", "0"], "argument --iters: '0' must be >= 1"),
    ("bench_hddc", ["--sklearn-units", "0"], "argument --sklearn-units: '0' must be >= 1"),
    ("bench_metrics", ["--skip", "fats"], "--skip: unknown 'fats'; choose from fast, parity, reference, tad, kernels"),
    ("bench_metrics", ["--scale", "0"], "argument --scale: '0' must be > 0"),
    ("bench_generation", ["--n", "3"], "--n 3: PRDC with k = 3 needs at least k + 1 = 4 points"),
    ("bench_generation", ["--twin-n", "2"], "--twin-n 2: PRDC with k = 3 needs at least k + 1 = 4 points"),
    ("bench_generation", ["--skip", "twin,gem"], "--skip: unknown 'gem'"),
    ("bench_generation", ["--images", "0"], "argument --images: '0' must be >= 1"),
    ("bench_sami_step", ["--device", "cpu", "--batch", "0"], "argument --batch: '0' must be >= 1"),
    ("bench_sami_step", ["--device", "cpu", "--samples", "0"], "argument --samples: '0' must be >= 1"),
    ("bench_sami_step", ["--device", "cpu", "--reps", "0"], "--reps must be >= 1, got 0"),
    ("bench_method_step", ["--device", "cpu", "--batch", "0"], "--steps and --batch must be >= 1"),
    ("bench_multibeta", ["--device", "cpu", "--batch", "0"], "--repeat and --batch must be >= 1"),
    ("bench_encdiff", ["--batch", "0"], "argument --batch: '0' must be >= 1"),
    ("bench_encdiff", ["--n", "8"], "--n 8: the refresh row's plain EM at K = 8 needs at least 16 points per unit"),
    ("bench_encdiff", ["--ddim-steps", "0"], "argument --ddim-steps: '0' must be >= 1"),
    ("bench_diffusion_baselines", ["--batch", "0"], "argument --batch: '0' must be >= 1"),
    ("bench_diffusion_baselines", ["--budget", "-1"], "argument --budget: '-1' must be > 0"),
    ("bench_diffusion_baselines", ["--recipes", "nosuch/recipe"], "argument --recipes: invalid choice: 'nosuch/recipe'"),
    ("bench_vae", ["--batch", "0"], "argument --batch: '0' must be >= 1"),
    ("bench_vae", ["--methods", "nosuch"], "argument --methods: invalid choice: 'nosuch'"),
    ("bench_vae", ["--methods"], "argument --methods: expected at least one argument"),
    ("bench_vae", ["--rounds", "0"], "argument --rounds: '0' must be >= 1"),
    ("bench_train_step", ["--device", "cpu", "--steps", "0"], "argument --steps: '0' must be >= 1"),
    ("bench_train_step", ["--device", "cpu", "--warmup", "0"], "argument --warmup: '0' must be >= 1"),
    ("bench_train_step", ["--device", "cpu", "--workers", "-1"], "argument --workers: '-1' must be >= 0"),
    ("bench_train_step", ["--device", "cpu", "--image", "10"], "--image 10: the U-Net halves it twice"),
    ("bench_train_step", ["--device", "cpu", "--channels", "16"], "--channels 16: GroupNorm's 32 groups"),
    ("bench_data", ["--n", "0"], "argument --n: '0' must be >= 1"),
    ("bench_data", ["--n", "4"], "--n 4: the stock DataLoader row loads n / 5 images, at least 1"),
    ("bench_data", ["--batch", "-3"], "argument --batch: '-3' must be >= 1"),
    ("bench_paramrel_celeba64", ["--steps", "0"], "argument --steps: '0' must be >= 1"),
    ("bench_paramrel_celeba64", ["--steps", "5", "--warmup", "5"], "--warmup 5 leaves no timed step of --steps 5"),
    ("fid_dsprites", ["--num", "3"], "--num 3: each split needs 4 to 368640 images"),
    ("fid_dsprites", ["--batch-size", "0"], "argument --batch-size: '0' must be >= 1"),
    ("fid_dsprites", ["--protocol", "bogus"], "argument --protocol: invalid choice: 'bogus'"),
    ("fid_dsprites", ["--metrics", "fid,bogus"], "--metrics: unknown 'bogus'; choose from fid, kid, prdc"),
    ("fid_dsprites", ["--metrics", ","], "--metrics: name at least one of fid, kid, prdc"),
]

# benches whose --device is a list (bench_train_step) or absent (bench_data, bench_paramrel_celeba64)
NO_DEVICE_FLAG = {"bench_data", "bench_paramrel_celeba64"}


def _benches() -> list[str]:
    return sorted(p.stem for p in (ROOT / "benches").glob("*.py") if 'if __name__ == "__main__"' in p.read_text())


def refused(name: str, argv: list[str], monkeypatch, capsys) -> str:
    """Run bench ``name`` with ``argv`` in this process; assert a usage error (exit 2) with nothing on stdout
    (nothing measured); return stderr."""
    mod = load_bench(name)
    monkeypatch.setattr(sys, "argv", [f"benches/{name}.py", *argv])
    with pytest.raises(SystemExit) as exc:
        mod.main()
    io = capsys.readouterr()
    assert exc.value.code == 2, (name, argv, io.err)
    assert io.out == "" and "Traceback" not in io.err, (name, argv, io.out)
    return io.err


@pytest.mark.parametrize("name,argv,says", CASES, ids=[f"{c[0]}:{' '.join(c[1])}" for c in CASES])
def test_a_bad_argument_is_a_usage_error(name, argv, says, monkeypatch, capsys):
    err = refused(name, argv, monkeypatch, capsys)
    assert says in err, err


def test_every_bench_has_argument_cases():
    """A new bench gets its cases here: each runnable script of benches/ appears in CASES."""
    assert sorted({c[0] for c in CASES}) == _benches()


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for a machine where torch sees no GPU")
@pytest.mark.parametrize("name", [n for n in _benches() if n not in NO_DEVICE_FLAG])
def test_device_cuda_without_a_gpu_is_a_usage_error(name, monkeypatch, capsys):
    err = refused(name, ["--device", "cuda"], monkeypatch, capsys)
    assert "--device cuda: no CUDA device is visible" in err, err


def test_the_benches_without_a_device_flag_say_so(monkeypatch, capsys):
    """docs/build.md: bench_data.py and bench_paramrel_celeba64.py take no --device."""
    for name in sorted(NO_DEVICE_FLAG):
        assert "unrecognized arguments: --device cuda" in refused(name, ["--device", "cuda"], monkeypatch, capsys)


@pytest.mark.parametrize("name,flag,extra", [
    ("bench_diffusion_baselines", "--json", []), ("bench_vae", "--json", []), ("bench_metrics", "--out", []),
    ("bench_paramrel_celeba64", "--out", [])])
def test_an_existing_result_is_kept_unless_overwrite(name, flag, extra, tmp_path, monkeypatch, capsys):
    """They used to replace the file without a word (after minutes of timing); an append-only log (--json of
    bench_sami_step and bench_multibeta, fid_dsprites' --out) is appended to, as before."""
    old = tmp_path / "earlier.json"
    old.write_text('{"kept": true}')
    err = refused(name, [flag, str(old), *extra], monkeypatch, capsys)
    assert f"{flag} {old} exists (an earlier result); choose another {flag} or add --overwrite" in err
    assert old.read_text() == '{"kept": true}'


@pytest.mark.parametrize("name,flag,extra", [
    ("bench_sami_step", "--json", ["--device", "cpu"]), ("bench_multibeta", "--json", ["--device", "cpu"]),
    ("bench_diffusion_baselines", "--json", []), ("bench_vae", "--json", []), ("bench_metrics", "--out", []),
    ("fid_dsprites", "--out", [])])
def test_an_output_in_a_missing_folder_is_refused_before_measuring(name, flag, extra, tmp_path, monkeypatch, capsys):
    out = tmp_path / "no_such_folder" / "rows.json"
    err = refused(name, [flag, str(out), *extra], monkeypatch, capsys)
    assert f"{flag} {out}: No such file or directory" in err


def test_an_integer_flag_reads_a_float_spelling(monkeypatch):
    """``--sizes 1e6 1.6e7`` (scripts/gpu_check.py's spelling) still reads as element counts."""
    h = load_bench("harness")
    assert [h.positive_int(t) for t in ("1e6", "1.6e7", "64")] == [1_000_000, 16_000_000, 64]
    assert h.int_list(2)("1024,4096") == [1024, 4096]
    assert h.positive_float("0.5") == 0.5


class _Parsed(Exception):
    """Raised by the patched parse_args once a command line parsed: the bench stops before any work."""


def _doc_commands() -> list[tuple[str, list[str]]]:
    """The example commands of each bench's docstring, as (bench, argv): brackets dropped (optional parts are
    kept), ``a|b`` read as its first choice, placeholders filled, comments cut."""
    import ast
    import shlex

    found = []
    for name in _benches():
        doc = ast.get_docstring(ast.parse((ROOT / "benches" / f"{name}.py").read_text())) or ""
        for line in doc.splitlines():
            m = re.search(rf"python3? benches/{name}\.py(.*)$", line)
            if not m:
                continue
            text = m.group(1).split("#")[0].replace("[", " ").replace("]", " ").replace("...", " ")
            argv = []
            for tok in shlex.split(text):
                tok = tok.split("|")[0]
                if tok in ("F", "out.json") or tok.startswith("benches/results/") or tok.startswith("/tmp/"):
                    tok = "OUT"
                argv.append("HEAD" if tok == "REV" else tok)
            found.append((name, argv))
    return found


DOC_COMMANDS = _doc_commands()


def test_the_docstrings_have_example_commands():
    assert {n for n, _ in DOC_COMMANDS} == set(_benches())


@pytest.mark.parametrize("name,argv", DOC_COMMANDS, ids=[f"{n}:{' '.join(a)}" for n, a in DOC_COMMANDS])
def test_each_docstring_command_parses(name, argv, monkeypatch, tmp_path):
    """The commands a reader copies from a bench's docstring parse as written (a GPU command with its device
    read as the CPU where torch sees no GPU: parse_device refuses it, tested above)."""
    import argparse

    parse = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise _Parsed(parse(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    argv = [str(tmp_path / "out.json") if a == "OUT" else a for a in argv]
    monkeypatch.setattr(sys, "argv", [f"benches/{name}.py", *argv])
    with pytest.raises(_Parsed):
        load_bench(name).main()
