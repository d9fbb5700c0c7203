"""Contract of issue 24 (the GPU check): ``scripts/gpu_check.py`` (the Python equivalent of gpu_check.sh), its
flags (``--dry-run`` ...), the plan (build with ``pip install --no-build-isolation --no-deps`` for the local
architecture, every CUDA test, the benches with ``--device cuda``, one bf16 training step of each method's paper
configuration), the per-step time limits within 8 minutes, the progress lines, and the Markdown report's name
and layout under benches/results/. Not the GPU targets themselves.

Deeper tests: tests/scripts/test_gpu_check.py (the whole dry run end to end, a step over its limit, the first
error, the targets read from the bench tables)."""

from __future__ import annotations

import datetime
import re
import sys
from pathlib import Path

import pytest

from helpers import load_script

ROOT = Path(__file__).resolve().parents[2]


def load_script_from(path: Path):
    import importlib.util

    sys.path.insert(0, str(path.parent))  # the benches import their harness
    try:
        spec = importlib.util.spec_from_file_location(f"_issue24_{path.stem}", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(path.parent))
    return mod


@pytest.fixture(scope="module")
def gc():
    return load_script("gpu_check")


def test_script_and_flags(gc, capsys):
    assert (ROOT / "scripts" / "gpu_check.py").is_file()
    with pytest.raises(SystemExit) as exc:
        gc.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--dry-run", "--no-build", "--arch", "--budget", "--out"):
        assert flag in text, flag


def test_real_plan_builds_for_the_local_architecture_then_runs_every_cuda_test(gc):
    steps = gc.plan(dry_run=False, arch="90", build=True)
    build = steps[0]
    assert build.name == "build" and "CUDAARCHS=90" in build.argv
    i = build.argv.index("pip")
    assert build.argv[i:i + 4] == ["pip", "install", "--no-build-isolation", "--no-deps"]
    tests = next(s for s in steps if s.name == "CUDA tests")
    assert steps.index(tests) == 2  # right after the build and its report: a failing CUDA test comes first
    # every CUDA test: the files that hold one, wherever they live (tests/ops, tests/contract, ...), their other
    # tests deselected by gpu_check's pytest hook
    assert "-p" in tests.argv and "gpu_check" in tests.argv
    assert {p.relative_to(ROOT).as_posix() for p in ROOT.glob("tests/**/test_*cuda*.py")} <= set(tests.argv)
    assert "tests/contract/test_contract_issue_02.py" in tests.argv  # its @pytest.mark.cuda test


def test_benches_run_on_cuda_and_every_method_family_gets_a_bf16_step(gc):
    real = gc.plan(dry_run=False, arch="90", build=False)
    benches = {Path(a).name for s in real for a in s.argv if a.startswith("benches/")}
    assert {"bench_bfn.py", "bench_guidance.py", "bench_mmd.py", "bench_hddc.py", "bench_sami_step.py",
            "bench_method_step.py", "bench_multibeta.py", "bench_generation.py", "bench_metrics.py"} <= benches
    for s in real:
        if "--device" in s.argv:
            assert s.argv[s.argv.index("--device") + 1] == "cuda", s.name
    method_step = load_script_from(ROOT / "benches" / "bench_method_step.py")
    families = {r.split("/")[0] for r in method_step.PAPER_RECIPES}
    assert {"paramrel", "sami", "bfn", "vq", "vae", "diffae", "infodiffusion", "disdiff", "encdiff"} <= families
    assert "torch.bfloat16" in (ROOT / "benches" / "bench_method_step.py").read_text()  # bf16 autocast on CUDA


def test_image_shape_of_latent_and_multibeta_recipes_is_the_image_the_loss_takes():
    from diffrep.recipes import get_recipe

    ms = load_script_from(ROOT / "benches" / "bench_method_step.py")
    assert ms.image_shape(get_recipe("encdiff/shapes3d").make_config().model) == (3, 64)  # not the 16 px latent
    assert ms.image_shape(get_recipe("disdiff/shapes3d").make_config().model) == (3, 64)
    assert ms.image_shape(get_recipe("multibeta/dsprites-cpu").make_config().model) == (1, 32)


def test_time_limits_fit_8_minutes_and_the_dry_run_uses_the_cpu(gc):
    for build in (True, False):
        steps = gc.plan(dry_run=False, arch="90", build=build)
        assert all(s.limit_s > 0 for s in steps)
        assert gc.plan_limit_s(steps) <= gc.PLAN_LIMIT_S == 480
    dry = gc.plan(dry_run=True, arch=None, build=False)
    assert all(s.name != "build" for s in dry)
    assert all(s.argv[s.argv.index("--device") + 1] == "cpu" for s in dry if "--device" in s.argv)
    assert len(dry) == len(gc.plan(dry_run=False, arch="90", build=False))  # the same plan


def test_report_name_layout_and_progress(gc, tmp_path, monkeypatch, capsys):
    ok = gc.Step("quick", [sys.executable, "-c", "print('hello')"], 20, "a target")
    bad = gc.Step("broken", [sys.executable, "-c", "raise ValueError('boom')"], 20)
    monkeypatch.setattr(gc, "plan", lambda dry_run, arch, build: [ok, bad])
    # the day the run started or, where it ran across midnight, the next one (the name is taken mid-run)
    days = {datetime.date.today().strftime("%Y-%m-%d")}
    assert gc.main(["--dry-run", "--out", str(tmp_path)]) == 1  # a failed step: exit 1
    days.add(datetime.date.today().strftime("%Y-%m-%d"))
    out = capsys.readouterr().out
    assert "[gpu_check] quick (limit" in out and "[gpu_check]   quick: pass in" in out  # progress as it goes
    reports = list(tmp_path.glob("*.md"))
    model = re.sub(r"[^a-z0-9]+", "-", gc.gpu_name().lower()).strip("-")  # the GPU model ("no-gpu" here)
    assert len(reports) == 1 and reports[0].name in {f"gpu_check_dryrun_{model}_{day}.md" for day in days}
    text = reports[0].read_text()
    assert text.startswith("# GPU check")
    assert "| step | status | seconds | first error | target |" in text
    assert re.search(r"^\| quick \| pass \| [\d.]+ \|  \| a target \|$", text, re.M)
    assert re.search(r"^\| broken \| fail \(exit 1\) \| [\d.]+ \| ValueError: boom \|", text, re.M)  # the first error
    assert "| target | measured | verdict |" in text and "## quick" in text and "hello" in text


def test_without_a_gpu_the_real_run_is_a_message(gc, capsys, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    assert gc.main(["--no-build", "--out", str(tmp_path)]) == 2  # it writes a report saying so
    assert "no CUDA device is visible" in capsys.readouterr().err
