"""scripts/gpu_check.py end to end on the CPU (--dry-run), so it works the first time it meets a GPU."""

from __future__ import annotations

import datetime
import os
import re
import sys
import types
from pathlib import Path

import pytest

from helpers import load_script

ROOT = Path(__file__).resolve().parents[2]


def _load():
    return load_script("gpu_check")


DAY = datetime.date(2026, 12, 7)


def _pin_the_day(gc, monkeypatch):
    """gpu_check names its report by the day (``datetime.date.today()``): pinned to ``DAY``, so that the runs of a
    test that meet a day's existing report still meet it when the test straddles midnight (they read the next
    day's date and wrote a first report of that day instead of '-2')."""
    monkeypatch.setattr(gc, "datetime", types.SimpleNamespace(date=types.SimpleNamespace(today=lambda: DAY)))


def test_plan_covers_build_tests_and_every_gpu_bench():
    gc = _load()
    names = [s.name for s in gc.plan(dry_run=False, arch="90", build=True)]
    assert names[0] == "build" and names[1:3] == ["build report", "CUDA tests"]  # the CUDA tests first
    assert {"bench BFN", "bench guidance", "bench MMD", "bench HDDC", "bench SAMI step", "method step times (bf16)",
            "bench generation", "bench metric kernels"} <= set(names)
    # the steps after the build fit in 8 minutes on an H100 (issue 24), with or without a build step
    for build in (True, False):
        steps = gc.plan(dry_run=False, arch="90", build=build)
        assert gc.plan_limit_s(steps) <= gc.PLAN_LIMIT_S == 480
        assert sum(s.limit_s for s in steps) - gc.plan_limit_s(steps) == (300 if build else 0)
        assert all(s.estimate_s > 0 for s in steps)  # every limit is held against an estimate
    real = {s.name: s.argv for s in gc.plan(dry_run=False, arch="90", build=False)}
    dry = {s.name: s.argv for s in gc.plan(dry_run=True, arch=None, build=False)}
    collected = dry["CUDA tests (collected; they skip without a GPU)"]
    assert [a for a in collected if a.startswith("tests/")] == [a for a in real["CUDA tests"] if a.startswith("tests/")]
    assert {"tests/ops/test_bfn_cuda.py", "tests/ops/test_metric_kernels_cuda.py", "tests/ops/test_knn_cuda.py",
            "tests/ops/test_hddc_cuda.py", "tests/contract/test_contract_issue_02.py"} <= set(collected)
    assert all((ROOT / t).is_file() for t in collected if t.startswith("tests/"))
    for name in ("bench generation", "bench metric kernels"):
        assert real[name][real[name].index("--device") + 1] == "cuda"
    build = gc.plan(dry_run=False, arch="90", build=True)[0].argv
    assert "CUDAARCHS=90" in build and "--no-build-isolation" in build and "--no-deps" in build
    assert all("--device" not in s.argv or s.argv[s.argv.index("--device") + 1] == "cpu"
               for s in gc.plan(dry_run=True, arch=None, build=False))


def _benches() -> set[str]:
    """The runnable scripts of benches/ (harness.py is a library: no __main__ block)."""
    return {p.name for p in (ROOT / "benches").glob("*.py") if 'if __name__ == "__main__"' in p.read_text()}


def test_every_bench_is_planned_on_cuda_or_excluded_with_a_reason():
    """A new bench cannot be skipped silently: each one runs in the plan with ``--device cuda`` (and with
    ``--device cpu`` in the dry run), or EXCLUDED_BENCHES says why not."""
    gc = _load()
    benches = _benches()
    assert {"bench_bfn.py", "bench_data.py", "fid_dsprites.py", "bench_vae.py"} <= benches and "harness.py" not in benches

    def planned(steps):
        return {Path(a).name: s.argv for s in steps for a in s.argv if a.startswith("benches/")}

    real = planned(gc.plan(dry_run=False, arch="90", build=False))
    dry = planned(gc.plan(dry_run=True, arch=None, build=False))
    missing = benches - set(real) - set(gc.EXCLUDED_BENCHES)
    assert not missing, f"benches neither in gpu_check's plan nor in its EXCLUDED_BENCHES: {sorted(missing)}"
    assert not set(real) & set(gc.EXCLUDED_BENCHES)
    assert set(gc.EXCLUDED_BENCHES) <= benches  # no stale entry
    assert all(len(why) > 40 for why in gc.EXCLUDED_BENCHES.values())
    assert set(dry) == set(real)  # the dry run runs every planned bench
    for name, argv in real.items():
        assert argv[argv.index("--device") + 1] == "cuda", name
        assert dry[name][dry[name].index("--device") + 1] == "cpu", name
        assert "--device" in (ROOT / "benches" / name).read_text(), name


def _skips_without_a_gpu(text: str) -> bool:
    """A test file with a test that runs only where CUDA is usable, found by its own patterns (not gpu_check's):
    a skipif on a CUDA check, the cuda marker, a pytest.skip under a CUDA check, a device list holding "cuda",
    or a test taking the conftest ``device`` fixture."""
    return bool(re.search(r"skipif\(\s*not\b[^\n]*(cuda|gpu)", text, re.I)
                or re.search(r"mark\.cuda\b", text)
                or re.search(r"if not [^\n]*cuda[^\n]*:\s*\n\s*pytest\.skip\(", text)
                or re.search(r"DEVICES\s*=.*[\"']cuda[\"']", text)
                or re.search(r"^def test_\w+\([^)]*\bdevice\b", text, re.M))


def test_cuda_test_selection_holds_every_file_with_a_test_that_skips_without_a_gpu():
    gc = _load()
    selected = {a for a in gc.plan(dry_run=False, arch="90", build=False)[1].argv if a.startswith("tests/")}
    files = {p.relative_to(ROOT).as_posix() for p in ROOT.glob("tests/**/test_*.py")
             if _skips_without_a_gpu(p.read_text(encoding="utf-8"))}
    files.discard("tests/scripts/test_gpu_check.py")
    files.discard("tests/contract/test_contract_issue_24.py")  # they test this script, with no CUDA code
    assert {"tests/ops/test_bfn_cuda.py", "tests/ops/test_bfn_cdf_tails.py", "tests/contract/test_contract_issue_02.py",
            "tests/contract/test_contract_issue_04.py", "tests/ops/test_guidance.py"} <= files  # the patterns work
    assert files <= selected, sorted(files - selected)
    assert not any("gpu_check" in (ROOT / f).read_text() for f in selected)  # the dry run would run itself


class _Marker:
    def __init__(self, name, reason=""):
        self.name, self.kwargs = name, {"reason": reason}


class _Item:
    """What is_cuda_test reads of a pytest item: its node id and markers."""

    def __init__(self, nodeid, *markers):
        self.nodeid, self.markers = nodeid, markers

    def get_closest_marker(self, name):
        return next((m for m in self.markers if m.name == name), None)

    def iter_markers(self, name):
        return (m for m in self.markers if m.name == name)


def test_the_pytest_hook_keeps_the_cuda_tests_and_deselects_the_rest():
    gc = _load()
    cases = {"tests/ops/test_knn_cuda.py::test_radii[1-2]": True,  # a CUDA file
             "tests/ops/test_mmd.py::test_grad[cuda-rbf]": True,  # the device fixture's CUDA parameter
             "tests/ops/test_mmd.py::test_grad[cpu-rbf]": False,
             "tests/contract/test_contract_issue_02.py::test_ops_equal": False,
             # host builds of the CUDA sources (g++, no GPU): the CPU suite's, not the GPU step's
             "tests/ops/test_cuda_launchers_host.py::test_cuda_launchers_match_serial_loops_over_the_element_bodies":
                 False,
             "tests/ops/test_bfn_math_host.py::test_cuda_element_body_is_accurate_in_float32": False}
    items = [_Item(n) for n in cases]
    items += [_Item("tests/a/test_x.py::test_marked", _Marker("cuda")),
              _Item("tests/a/test_x.py::test_skips", _Marker("skipif", "no usable CUDA device")),
              _Item("tests/a/test_x.py::test_other_skip", _Marker("skipif", "needs scipy"))]
    expected = list(cases.values()) + [True, True, False]
    assert [gc.is_cuda_test(it) for it in items] == expected

    class Config:
        class hook:
            deselected = []

            @classmethod
            def pytest_deselected(cls, items):
                cls.deselected += items

    kept = list(items)
    gc.pytest_collection_modifyitems(Config, kept)
    assert kept == [it for it, e in zip(items, expected) if e]
    assert Config.hook.deselected == [it for it, e in zip(items, expected) if not e]


def test_only_runs_the_named_steps_and_refuses_an_unknown_name(tmp_path, monkeypatch, capsys):
    """``--only`` (a rerun after a fix) through ``main``: the dry run of two cheap steps, each in its own process."""
    gc = _load()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert gc.main(["--dry-run", "--jobs", "2", "--only", "build report,bench GUIDANCE", "--out", str(tmp_path)]) == 0
    text = next(tmp_path.glob("gpu_check_dryrun_*.md")).read_text()
    rows = [line.split(" | ")[0][2:] for line in text.split("## Targets")[0].splitlines() if line.startswith("| ")][1:]
    assert rows == ["build report", "bench guidance"]
    assert "| bench guidance | pass |" in text and "## Limits" in text
    with pytest.raises(SystemExit) as e:
        gc.main(["--dry-run", "--only", "bench MMD,no such step", "--out", str(tmp_path)])
    assert e.value.code == 2 and "no such step matches no step" in capsys.readouterr().err


@pytest.mark.slow
def test_dry_run_writes_a_report_with_every_step_passing(tmp_path, monkeypatch, capsys):
    """The whole dry run through ``main`` (in this process; every step still runs in its own process,
    two at a time with ``--jobs 2``, each importing the diffrep this test imports). ~45 s on 2 cores: slow."""
    gc = _load()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    rc = gc.main(["--dry-run", "--jobs", "2", "--out", str(tmp_path)])
    out = capsys.readouterr()
    reports = list(tmp_path.glob("gpu_check_dryrun_*.md"))
    assert rc == 0, out.out[-3000:] + out.err[-3000:]
    assert len(reports) == 1
    text = reports[0].read_text()
    assert "| bench HDDC | pass |" in text and "fail" not in text.split("## ")[0]
    assert "| bench generation | pass |" in text and "| bench metric kernels | pass |" in text
    # every step of the plan, in the plan's order, whatever order they finished in
    rows = [line.split(" | ")[0][2:] for line in text.split("## Targets")[0].splitlines() if line.startswith("| ")][1:]
    assert rows == [s.name for s in gc.plan(dry_run=True, arch=None, build=False)]
    # the CPU tables have no CUDA rows: those targets are 'not measured', the twin rows are read
    assert "| metric kernels faster than on the CPU | - | not measured |" in text
    assert "| kNN kernel (PRDC) values equal to its eager twin's | kernel P=" in text
    # the CUDA test step collected the CUDA tests only (they skip here) and ran none of the CPU suite
    tests = text.split("## CUDA tests")[1].split("\n## ")[0]
    assert re.search(r"\d+ skipped, \d+ deselected", tests) and "test_hddc_cuda.py" in tests
    # the target patterns read the benches' own tables (a drifted layout would read 0 rows: 'not measured' on the
    # GPU); the metric kernels' CUDA rows exist on a GPU only
    outputs = {name: text.split(f"\n## {name}\n")[1].split("```\n", 1)[1].split("\n```")[0] for name in gc.TABLES}
    read = gc.table_rows(outputs)
    assert all(read[name] > 0 for name in gc.TABLES if name != "bench metric kernels"), read
    bfn_rows = [line for line in outputs["bench BFN"].splitlines() if re.match(r"[a-z_]+ .* cpu ", line)]
    assert read["bench BFN"] == len(bfn_rows) == 22  # every op at K = 2, 16 and 256 (the "log" rows too)


def test_step_limit_and_first_error_are_reported(tmp_path, monkeypatch):
    gc = _load()
    monkeypatch.setattr(gc, "MIN_LIMIT_S", 1.0)
    slow = gc.Step("sleeper", [sys.executable, "-c", "import time; time.sleep(30)"], limit_s=1)
    r = gc.run_step(slow, scale=1.0, env=dict(os.environ))
    assert r["status"] == "fail (over its 1 s limit)" and r["seconds"] < 20
    bad = gc.Step("raiser", [sys.executable, "-c", "raise ValueError('boom')"], limit_s=30)
    r = gc.run_step(bad, scale=1.0, env=dict(os.environ))
    assert r["status"] == "fail (exit 1)" and "ValueError: boom" in r["first_error"]
    # a bench that reports a failed row and goes on (bench_method_step, bench_multibeta): that row, not the last line
    rows = 'recipe  batch\n{"ms": 1}\nvq/celeba64   FAILED: FileNotFoundError: no LPIPS\n{"ms": 2}\n'
    assert gc._first_error(rows) == "vq/celeba64   FAILED: FileNotFoundError: no LPIPS"
    assert gc._first_error("all\nfine\n") == "fine" and gc._first_error("") == "(no output)"


def test_without_a_gpu_the_real_run_refuses_with_a_message(tmp_path, capsys):
    gc = _load()
    import torch

    if torch.cuda.is_available():
        return
    assert gc.main(["--no-build", "--out", str(tmp_path)]) == 2  # the preflight, in its own process, sees no GPU
    assert "no CUDA device" in capsys.readouterr().err
    assert "Stopped before any step: no CUDA device" in next(tmp_path.glob("gpu_check_no-gpu_*.md")).read_text()
    for bad, msg in ((["--jobs", "2"], "needs --dry-run"), (["--dry-run", "--jobs", "0"], "must be >= 1")):
        with pytest.raises(SystemExit) as e:
            gc.main(bad)
        assert e.value.code == 2 and msg in capsys.readouterr().err


def test_targets_are_read_from_the_bench_tables():
    gc = _load()
    bfn = ("op                                K   elements  backend  native ms   eager ms  speed-up   (best)    GB/s  % copy\n"
           "continuous_flow                   -    1.6e+07     cuda      0.129      0.116      9.9x     9.2x  2000.0     81% \n"
           "discrete_update                   2    1.6e+07     cuda      0.129      0.116      4.9x     5.2x  1500.0     64% \n"
           "discrete_update                  16    1.6e+07     cuda      0.129      0.116      4.9x     5.2x  1500.0     10% \n"
           "discrete_update log               2    1.6e+07     cuda      0.129      0.116      4.9x     5.2x  1400.0     60% \n"
           "discretised_cts_loss fwd+bwd    256    1.6e+07     cuda      9.315    100.308     10.8x    10.3x     0.0      1%\n"
           "discretised_cts_loss fwd+bwd     16    1.0e+06     cuda      3.108      7.679      8.5x     2.4x     0.1      1%\n")
    mmd = ("rbf    biased      4096  32     cuda      0.32      0.93     7.0x      0.08       1.4\n"
           "imq    unbiased    4096  32     cuda      0.41      2.53     6.2x      0.08       3.7\n")
    hddc = "AkjBkQkDk  fit+split/filter     0.84 s (0.9 CPU s)   plain EM (30 it)     0.20 s\n"
    rows = {t: (m, v) for t, m, v in gc.targets({"bench BFN": bfn, "bench MMD": mmd, "bench HDDC": hddc,
                                                  "bench HDDC argv": "bench_hddc.py --U 20 --n 100000"})}
    copy = next(v for t, v in rows.items() if "copy bandwidth" in t)
    assert copy == ("lowest 60% (discrete_update log, K=2)", "missed")  # K = 16 is not an elementwise row
    assert next(v for t, v in rows.items() if "discretised loss" in t) == ("lowest 8.5x (K=16, 1.0e+06)", "missed")
    assert next(v for t, v in rows.items() if "MMD" in t) == ("lowest 6.2x (imq unbiased)", "met")
    assert next(v for t, v in rows.items() if "HDDC" in t) == ("0.84 s", "met")
    empty = gc.targets({})
    assert len(empty) == 9 and all(v == "not measured" for _, _, v in empty)


def test_guidance_and_sami_targets_are_read_from_their_tables():
    """The rows as bench_guidance.py and bench_sami_step.py print them (their format strings, GPU sizes)."""
    gc = _load()
    guid = ("  S     B     D    dtype  backend  fused ms  eager ms  speedup\n"
            "  1   512   256  float32     cuda     0.050     0.400     8.0x\n"
            "  1   512   256  float64     cuda     0.090     0.450     5.0x\n"
            "  8   512   256  float32     cuda     0.300     0.270     0.9x\n"
            "  8   512   256  float64     cuda     0.500     1.000     2.0x\n")
    sami = ("model          B  S  step fused   step ref  ratio   g fused    g ref\n"
            "disks-cpu     32  1       4.1ms      4.3ms   1.05     0.1ms    0.3ms\n"
            "halfunet64    32  4      20.0ms     19.0ms   0.95     0.4ms    1.1ms\n")
    rows = {t: (m, v) for t, m, v in gc.targets({"bench guidance": guid, "bench SAMI step": sami})}
    g = next(v for t, v in rows.items() if t.startswith("guidance fused vs autograd"))
    assert g == ("S=1 float32 8.0x, S=1 float64 5.0x, S=8 float32 0.9x, S=8 float64 2.0x (cuda)", "missed")
    assert next(v for t, v in rows.items() if t.startswith("SAMI")) == (
        "disks-cpu B=32 S=1: 4.1 vs 4.3 ms (x1.05); halfunet64 B=32 S=4: 20.0 vs 19.0 ms (x0.95)", "recorded (no number set)")
    # the interleaved bench's rows carry the range of the rounds' ratios after the median
    now = ("# medians of 5 interleaved rounds after 2 warm-up rounds; ratio = median of the rounds' reference / fused\n"
           "model          B  S  step fused   step ref  ratio       range   g fused    g ref g ratio\n"
           "disks-cpu      2  1      47.8ms     48.0ms   1.00 [0.88,1.01]     1.8ms    1.6ms    0.89\n")
    assert next((m, v) for t, m, v in gc.targets({"bench SAMI step": now}) if t.startswith("SAMI")) == (
        "disks-cpu B=2 S=1: 47.8 vs 48.0 ms (x1.00, rounds x0.88-1.01)", "recorded (no number set)")
    fast = {t: v for t, _, v in gc.targets({"bench guidance": guid.replace("0.9x", "1.1x")})}
    assert next(v for t, v in fast.items() if t.startswith("guidance")) == "met"
    # the dry run's sizes are not the target's: not measured, however fast
    small = {t: v for t, _, v in gc.targets({"bench guidance": guid.replace("  512   256", "   16     8")})}
    assert next(v for t, v in small.items() if t.startswith("guidance")) == "not measured"
    assert gc.table_rows({"bench guidance": guid, "bench SAMI step": sami})["bench guidance"] == 4


def test_generation_and_metric_kernel_targets_are_read_from_their_tables():
    gc = _load()
    kern = ("# kernels on GPU NVIDIA H100 vs the CPU kernels (16 CPU threads), min of 3 after a warm-up\n"
            "kernel auroc_matrix 40x256x8000         cpu    47.90 ms  cuda     1.20 ms  vs cpu x   39.9  twin(cuda)"
            "     3.00 ms  x   2.5\n"
            "kernel hist_discretize 10000x20         cpu     0.55 ms  cuda     0.61 ms  vs cpu x    0.9  twin(cuda)"
            "     0.70 ms  x   1.1\n"
            "kernel knn_mi_cd 20x6 n=10000 k=10      cpu   240.00 ms  cuda     4.00 ms  vs cpu x   60.0  twin(cuda)"
            "    90.00 ms  x  22.5\n")
    gen = ("diffrep kNN kernel (cuda)               4.20     1.00x  P=0.0020 R=0.9945 D=0.0010 C=0.0030\n"
           "(N = M = 5000) diffrep kNN kernel        0.11     1.00x  P=0.0033 R=1.0000 D=0.0011 C=0.0033\n"
           "(N = M = 5000) eager twin                9.35    87.48x  P=0.0033 R=1.0000 D=0.0011 C=0.0034\n"
           "(N = M = 5000) diffrep kNN kernel        0.11     1.00x  P=0.0033 R=1.0000 D=0.0011 C=0.0033\n"
           "(N = M = 5000) prdc package 0.2          3.00    27.00x  P=0.0033 R=1.0000 D=0.0011 C=0.0033\n")
    rows = {t: (m, v) for t, m, v in gc.targets({"bench metric kernels": kern, "bench generation": gen})}
    assert rows["metric kernels faster than on the CPU"] == ("lowest 0.9x (hist_discretize 10000x20)", "missed")
    assert rows["kNN kernel (PRDC) faster than its eager twin"] == ("twin 87.48x the kernel's time at N = M = 5000",
                                                                    "met")
    assert rows["kNN kernel (PRDC) values equal to its eager twin's"][1] == "missed"  # C differs in the last digit
    fast = kern.replace("0.61 ms  vs cpu x    0.9", "0.50 ms  vs cpu x    1.1")
    rows = {t: (m, v) for t, m, v in gc.targets({"bench metric kernels": fast})}
    assert rows["metric kernels faster than on the CPU"] == ("lowest 1.1x (hist_discretize 10000x20)", "met")
    assert rows["kNN kernel (PRDC) faster than its eager twin"] == ("-", "not measured")


def _bench(name: str):
    """benches/<name>.py as a module (the benches import their harness from benches/)."""
    import importlib.util

    sys.path.insert(0, str(ROOT / "benches"))
    try:
        spec = importlib.util.spec_from_file_location(f"_gpu_check_{name}", ROOT / "benches" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(ROOT / "benches"))
    return mod


def test_the_vq_gan_paper_row_times_on_a_machine_without_lpips_weights(tmp_path, monkeypatch):
    """vq/celeba64 (LPIPS weight 1.0) is one of the plan's bf16 method steps; the GPU machine has no LPIPS file and
    no network, so the bench stands a random-weight LPIPS in (same network, same cost) and says so."""
    import torch

    from diffrep.nn.lpips import LPIPS, LPIPS_ENV
    from diffrep.recipes import get_recipe

    ms = _bench("bench_method_step")
    monkeypatch.delenv(LPIPS_ENV, raising=False)
    cfg = get_recipe("vq/celeba64").make_config().model
    assert cfg.perceptual_weight > 0 and not cfg.perceptual_weights
    model = ms.build_model(cfg)
    assert ms.lpips_stand_in(model) and len(model._lpips) == 1 and isinstance(model._lpips[0], LPIPS)
    assert not ms.lpips_stand_in(model)  # once
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    assert torch.equal(model.perceptual(x, x), torch.zeros(2))  # LPIPS(x, x) = 0, whatever the weights
    assert bool((model.perceptual(x, -x) != 0).all())  # random linear weights: any sign, but a distance is taken
    # a weight file that is named is loaded as before: a wrong path stays an error, never a silent stand-in
    monkeypatch.setenv(LPIPS_ENV, str(tmp_path / "missing.safetensors"))
    named = ms.build_model(cfg)
    assert not ms.lpips_stand_in(named)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        named.perceptual(x, x)
    assert not ms.lpips_stand_in(ms.build_model(get_recipe("vq/toy-cpu").make_config().model))  # no LPIPS term


def test_the_docs_table_is_the_plan():
    """docs/build.md#gpu-check lists every step after the build with its limit and estimate, in the plan's order,
    and every bench left out."""
    gc = _load()
    text = (ROOT / "docs" / "build.md").read_text().split("## GPU check")[1].split("\n## ")[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| step") and not line.startswith("| bench |")]
    plan_rows = [r for r in rows if len(r) == 5]
    steps = gc.plan(dry_run=False, arch="90", build=False)
    assert [(r[0], float(r[2]), float(r[3])) for r in plan_rows] == [(s.name, s.limit_s, s.estimate_s) for s in steps]
    assert sum(float(r[2]) for r in plan_rows) == gc.plan_limit_s(steps)
    excluded = [r[0].strip("`") for r in rows if len(r) == 2]
    assert excluded == sorted(gc.EXCLUDED_BENCHES)
    # the page names the steps with short limits
    assert [s.name for s in gc.short_limits(steps)] == ["bench EncDiff + DyGA"] and "the EncDiff + DyGA bench" in text


def test_a_second_run_of_the_day_keeps_the_first_report(tmp_path, monkeypatch):
    """A split run (build and CUDA tests in one command, the rest in a second) or a rerun after a fix writes a
    new report beside the first: -2, -3, ..."""
    gc = _load()
    _pin_the_day(gc, monkeypatch)
    quick = gc.Step("quick", [sys.executable, "-c", "print('hello')"], 20)
    monkeypatch.setattr(gc, "plan", lambda dry_run, arch, build: [quick])
    for _ in range(3):
        assert gc.main(["--dry-run", "--out", str(tmp_path)]) == 0
    first = next(p.name for p in tmp_path.glob("*.md") if not re.search(r"-\d\.md$", p.name))
    assert first.endswith(f"_{DAY:%Y-%m-%d}.md")
    assert sorted(p.name for p in tmp_path.glob("*.md")) == sorted([first, first[:-3] + "-2.md", first[:-3] + "-3.md"])


class _CutOff(Exception):
    """The command killed from outside between two steps."""


def test_the_report_is_on_disk_after_every_step(tmp_path, monkeypatch):
    """The lent machine's command may be cut off at its time limit: the report is rewritten after each step,
    naming the steps not yet run, so a run killed before its end still leaves what it measured."""
    gc = _load()
    _pin_the_day(gc, monkeypatch)  # the complete run's report is the day's second ('-2')
    first = gc.Step("first", [sys.executable, "-c", "print('measured 1.5 ms')"], 20)
    second = gc.Step("second", [sys.executable, "-c", "print('x')"], 20)
    monkeypatch.setattr(gc, "plan", lambda dry_run, arch, build: [first, second])
    run_step = gc.run_step
    seen = []

    def cut_off_at_second(step, scale, env, deadline=None, echo=False):
        if step is second:  # what the first step left on disk when the second starts
            seen.extend(p.read_text() for p in tmp_path.glob("*.md"))
            raise _CutOff
        return run_step(step, scale, env, deadline, echo)

    monkeypatch.setattr(gc, "run_step", cut_off_at_second)
    with pytest.raises(_CutOff):
        gc.main(["--dry-run", "--out", str(tmp_path)])
    assert len(seen) == 1 and "measured 1.5 ms" in seen[0]
    assert "1 step(s) not run yet: second" in seen[0] and "| first | pass |" in seen[0]
    monkeypatch.setattr(gc, "run_step", run_step)
    gc.main(["--dry-run", "--out", str(tmp_path)])  # a complete run's report has no such line
    done = [p.read_text() for p in tmp_path.glob("*-2.md")]
    assert len(done) == 1 and "not run yet" not in done[0] and "| second | pass |" in done[0]


class _Parsed(Exception):
    """Raised by the patched parse_args once a bench's command line parsed: the bench stops before any work."""


def test_every_bench_parses_its_gpu_command_line(monkeypatch):
    """The GPU sizes are never run here (the dry run passes the tiny ones), so a typo in a GPU-only argument would
    first fail on the lent machine: each planned bench's main parses the real plan's arguments, in this process,
    with its parser stopped right after parsing (an unknown flag or a bad value exits 2 with argparse's message)."""
    import argparse

    gc = _load()
    parse = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise _Parsed(parse(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    checked = []
    for dry_run in (False, True):
        for step in gc.plan(dry_run=dry_run, arch="90", build=False):
            script = next((a for a in step.argv if a.startswith("benches/")), None)
            if script is None:
                continue
            argv = step.argv[step.argv.index(script) + 1:]
            monkeypatch.setattr(sys, "argv", [script, *argv])
            with pytest.raises(_Parsed) as parsed:
                _bench(Path(script).stem).main()
            ns = vars(parsed.value.args[0])
            assert ns["device"] in ("cuda", ["cuda"]) if not dry_run else ns["device"] in ("cpu", ["cpu"]), script
            checked.append(script)
    assert len(checked) == 2 * len({a for s in gc.plan(dry_run=False, arch="90", build=False) for a in s.argv
                                    if a.startswith("benches/")})
