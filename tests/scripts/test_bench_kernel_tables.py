"""The kernel benches (BFN, guidance, MMD, metric kernels, generation) run end to end at tiny sizes in this process, and print what docs/build.md promises: the banner (torch version, machine, thread
count, device), each row with both sides measured in the same run and the ratio eager / native that their
printed times give (within the printing's rounding), and one ``# target`` line per target the bench checks
(met / missed / not measured), whose verdict follows from the measured value it quotes."""

from __future__ import annotations

import re
import sys

import pytest
import torch

from bench_rows import NUM, BANNER, run, ratio_matches, targets
from helpers import load_bench


@pytest.fixture
def small_copy_floor(monkeypatch):
    """The copy floor's out-of-cache copy moves 2 x 256 MiB 15 times: 64 KiB here (its rows are not checked)."""
    load_bench("bench_bfn")
    harness = sys.modules["harness"]  # the module the benches import
    monkeypatch.setattr(harness, "COPY_OUT_OF_CACHE_FLOATS", 1 << 14)
    monkeypatch.setattr(harness, "COPY_IN_CACHE_FLOATS", 1 << 12)


def test_bfn_rows_and_targets(monkeypatch, capsys, small_copy_floor):
    torch.set_num_threads(1)
    out = run("bench_bfn", ["--sizes", "4096", "--K", "2", "--threads", "1", "--repeat", "1",
                            "--only", "continuous_update,discretised_cts_loss"], monkeypatch, capsys)
    assert BANNER.search(out)[1] == "1"
    row = re.compile(rf"^(?P<op>[a-z_]+(?: log| fwd\+bwd)?)\s+(?P<K>\S+)\s+(?P<n>[\d.e+]+)\s+cpu\s+(?P<nat>{NUM})\s+"
                     rf"(?P<eag>{NUM})\s+(?P<sp>{NUM})x\s+{NUM}x\s+{NUM}\s+\d+%", re.M)
    rows = list(row.finditer(out))
    assert [r["op"] for r in rows] == ["continuous_update", "continuous_update_inverse", "discretised_cts_loss fwd+bwd"]
    for r in rows:
        assert r["n"] == "4.1e+03"  # 4096 elements
        assert ratio_matches(float(r["sp"]), float(r["eag"]), float(r["nat"]), 1e-3, 0.1), r.group(0)
    # the loss row carries both sides' peak memory
    assert re.search(r"^discretised_cts_loss fwd\+bwd .* \d+\.\dMB\s+\d+\.\dMB$", out, re.M)
    t = targets(out)
    assert t["(CPU) flows and updates >= 3x the eager twin at >= 1e5 elements"] == (
        "no flow or update at >= 1e5 elements in this run", "not measured")
    assert t["(CPU) discretised loss at K = 256 >= 5x the eager twin"][1] == "not measured"


def test_a_quoted_value_never_rounds_across_its_target():
    """0.97x against 'not slower' prints 0.97, not 1.0 (the CI failure of 2026-12-07); far from the bound the
    requested digits stay; a strict bound and a 'within' bound (lower is better) too."""
    load_bench("bench_bfn")
    shown = sys.modules["harness"].shown
    assert shown(0.97, lambda x: x >= 1) == "0.97"
    assert shown(0.9996, lambda x: x >= 1) == "0.9996"
    assert shown(1.04, lambda x: x >= 1) == "1.0"
    assert shown(2.96, lambda x: x >= 3) == "2.96"
    assert shown(0.8, lambda x: x >= 1) == "0.8"
    assert shown(1.003, lambda x: x > 1) == "1.003"  # 1.0 would read as 'not faster'
    assert shown(1.004, lambda x: x <= 1.0, 2) == "1.004"
    assert shown(0.996, lambda x: x <= 1.0, 2) == "1.00"
    assert shown(19_999.6, lambda x: x >= 20_000, 0, thousands=True) == "19,999.6"
    assert shown(21_000.4, lambda x: x >= 20_000, 0, thousands=True) == "21,000"


def test_bfn_target_verdicts_from_rows():
    """The verdicts from hand-made rows: the lowest row decides, and a row below the size does not count."""
    bfn = load_bench("bench_bfn")
    rows = [{"op": "continuous_flow", "K": "-", "n": 100_000, "speedup": 3.5, "copy": 80, "peak": None},
            {"op": "discrete_update", "K": 16, "n": 100_000, "speedup": 2.96, "copy": 75, "peak": None},
            {"op": "discretised_probs", "K": 16, "n": 100_000, "speedup": 0.8, "copy": 3, "peak": None},
            {"op": "discrete_update", "K": 2, "n": 10_000, "speedup": 0.5, "copy": 5, "peak": None},
            {"op": "discretised_cts_loss fwd+bwd", "K": 256, "n": 100_000, "speedup": 6.0, "copy": 0,
             "peak": 5_000_000}]
    lines = targets("\n".join(bfn.targets(rows, torch.device("cpu"))))
    assert lines["(CPU) flows and updates >= 3x the eager twin at >= 1e5 elements"] == (
        "lowest 2.96x (discrete_update, K=16, 1.0e+05 elements)", "missed")  # not '3.0x ... missed'
    assert lines["(CPU) no native op slower than its eager twin at >= 1e5 elements"] == (
        "lowest 0.8x (discretised_probs, K=16, 1.0e+05 elements)", "missed")
    assert lines["(CPU) discretised loss at K = 256 >= 5x the eager twin"][1] == "met"
    # 5 MB against one 1e5 x 256 float32 tensor of 102.4 MB
    assert lines["(CPU) discretised loss at K = 256 in O(B x D) memory"] == (
        "peak 5.0 MB vs 102.4 MB for one B x D x K float32 tensor (1.0e+05 elements)", "met")
    rows[4]["peak"] = 102_399_000  # just below the bound: not printed as the bound itself
    lines = targets("\n".join(bfn.targets(rows, torch.device("cpu"))))
    assert lines["(CPU) discretised loss at K = 256 in O(B x D) memory"] == (
        "peak 102.399 MB vs 102.4 MB for one B x D x K float32 tensor (1.0e+05 elements)", "met")
    rows[1]["speedup"] = 3.0
    gpu = targets("\n".join(bfn.targets([dict(r, n=16_000_000) for r in rows], torch.device("cuda"))))
    # K = 16 (discretised_probs at 3%) and the losses are not elementwise ops of the target: the K = 2 update at
    # 5% decides
    assert gpu["(GPU) elementwise ops >= 70% of copy bandwidth at >= 16M elements"] == (
        "lowest 5.0% (discrete_update, K=2, 1.6e+07 elements)", "missed")
    assert gpu["(GPU) discretised loss >= 10x the eager twin"] == (
        "lowest 6.0x (discretised_cts_loss fwd+bwd, K=256, 1.6e+07 elements)", "missed")


def test_guidance_rows_and_target_at_the_issue_size(monkeypatch, capsys):
    """At the issue's B = 512, D = 256 (a few ms a step), so the target line is measured."""
    torch.set_num_threads(1)
    out = run("bench_guidance", ["--repeat", "1"], monkeypatch, capsys)
    assert BANNER.search(out)
    row = re.compile(rf"^\s*(?P<S>\d+)\s+512\s+256\s+(?P<dt>float\d+)\s+cpu\s+(?P<f>{NUM})\s+(?P<e>{NUM})\s+(?P<sp>{NUM})x$",
                     re.M)
    rows = list(row.finditer(out))
    assert [(r["S"], r["dt"]) for r in rows] == [("1", "float32"), ("1", "float64"), ("8", "float32"), ("8", "float64")]
    for r in rows:
        assert ratio_matches(float(r["sp"]), float(r["e"]), float(r["f"]), 1e-3, 0.1), r.group(0)
    measured, verdict = targets(out)["fused not slower than autograd at B = 512, D = 256, S = 1 and 8"]
    low = min(float(r["sp"]) for r in rows)
    said = float(re.match(rf"lowest ({NUM})x \(", measured)[1])
    # the rows print to 0.1; the target line may print more digits near 1, never a number across the verdict
    assert abs(said - low) <= 0.05 + 1e-9
    assert verdict == ("met" if said >= 1 else "missed")


def test_mmd_rows(monkeypatch, capsys):
    out = run("bench_mmd", ["--sizes", "32", "--repeat", "1"], monkeypatch, capsys)
    assert BANNER.search(out)
    row = re.compile(rf"^(rbf|imq)\s+(biased|unbiased)\s+32\s+32\s+cpu\s+(?P<f>{NUM})\s+(?P<e>{NUM})\s+(?P<sp>{NUM})x\s+"
                     rf"{NUM}\s+{NUM}$", re.M)
    rows = list(row.finditer(out))
    assert len(rows) == 2
    for r in rows:
        assert ratio_matches(float(r["sp"]), float(r["e"]), float(r["f"]), 1e-2, 0.1), r.group(0)
    assert targets(out)["(CPU) >= 3x the eager twin at N = M = 4096, d = 32"] == (
        "no row at N = M = 4096, d = 32 in this run", "not measured")


def test_mmd_target_verdicts_from_rows():
    """At N = M = 4096 the lowest speed-up decides (3x on the CPU, 5x on a GPU) and the highest fused peak is held
    to one 4096 x 4096 float32 Gram matrix, 64 MiB."""
    mmd = load_bench("bench_mmd")
    rows = [(4.0, 10 * 2**20, "rbf biased"), (3.2, 70 * 2**20, "imq unbiased")]
    cpu = targets("\n".join(mmd.targets(rows, torch.device("cpu"))))
    assert cpu["(CPU) >= 3x the eager twin at N = M = 4096, d = 32"] == ("lowest 3.2x (imq unbiased)", "met")
    assert cpu["O(N d) memory at N = M = 4096 (fused peak below one N x M float32 Gram matrix)"] == (
        "highest 70.00 MiB (imq unbiased) vs 64 MiB", "missed")
    near = targets("\n".join(mmd.targets([(4.0, 64 * 2**20 - 2**10, "rbf biased")], torch.device("cpu"))))
    assert near["O(N d) memory at N = M = 4096 (fused peak below one N x M float32 Gram matrix)"] == (
        "highest 63.999 MiB (rbf biased) vs 64 MiB", "met")  # not '64.00 MiB ... vs 64 MiB -> met'
    gpu = targets("\n".join(mmd.targets(rows[:1], torch.device("cuda"))))
    assert gpu["(GPU) >= 5x the eager twin at N = M = 4096, d = 32"] == ("lowest 4.0x (rbf biased)", "missed")
    assert gpu["O(N d) memory at N = M = 4096 (fused peak below one N x M float32 Gram matrix)"][1] == "met"


def test_generation_target_verdicts():
    """Values that differ in the 4th decimal are a missed target; a twin slower than the kernel a met one."""
    gen = load_bench("bench_generation")
    same = {"precision": 0.5, "recall": 0.25, "density": 1.0, "coverage": 0.75}
    lines = targets("\n".join(gen.targets(100, 0.5, same, 2.0, dict(same, density=1.0002))))
    assert lines["kNN kernel (PRDC) faster than its eager twin"] == ("twin x4.00 the kernel's time at N = M = 100", "met")
    assert lines["kNN kernel (PRDC) values equal to its eager twin's"] == (
        "kernel P=0.5000 R=0.2500 D=1.0000 C=0.7500; twin P=0.5000 R=0.2500 D=1.0002 C=0.7500", "missed")
    lines = targets("\n".join(gen.targets(100, 2.0, same, 0.5, dict(same))))
    assert [v for _, v in lines.values()] == ["missed", "met"]


def test_metric_kernel_rows(monkeypatch, capsys):
    bm = load_bench("bench_metrics")
    code = bm.main(["--skip", "fast,parity,reference,tad", "--scale", "0.005"])
    assert code is None
    out = capsys.readouterr().out
    assert re.search(r"^# machine: .* torch_threads=\d+ ", out, re.M) and re.search(r"^# python \S+ torch \S+", out, re.M)
    row = re.compile(rf"^kernel (?P<name>.+?)\s+native\s+(?P<n>{NUM}) ms\s+twin\s+(?P<t>{NUM}) ms\s+x\s*(?P<x>{NUM})$", re.M)
    rows = list(row.finditer(out))
    assert len(rows) == 5
    for r in rows:
        assert ratio_matches(float(r["x"]), float(r["t"]), float(r["n"]), 0.1, 0.1), r.group(0)
    measured, verdict = targets(out)["(CPU) no native metric kernel slower than its PyTorch twin"]
    low = float(re.match(rf"lowest x({NUM}) ", measured)[1])
    assert verdict == ("met" if low >= 1 else "missed")


def test_generation_rows(monkeypatch, capsys):
    out = run("bench_generation", ["--n", "40", "--d", "8", "--twin-n", "20", "--skip", "strict,prdc,inception,fid"],
              monkeypatch, capsys)
    assert BANNER.search(out)
    row = re.compile(rf"^(?P<impl>.+?)\s+(?P<s>{NUM})\s+(?P<x>{NUM})x\s+(?P<vals>P=\S+ R=\S+ D=\S+ C=\S+)$", re.M)
    rows = {r["impl"]: r for r in row.finditer(out)}
    assert set(rows) == {"diffrep kNN kernel (cpu)", "(N = M = 20) diffrep kNN kernel", "(N = M = 20) eager twin",
                         "eager GEMM form + kthvalue"}
    kern, twin = rows["(N = M = 20) diffrep kNN kernel"], rows["(N = M = 20) eager twin"]
    assert ratio_matches(float(twin["x"]), float(twin["s"]), float(kern["s"]), 1e-4, 0.01)
    gemm, nat = rows["eager GEMM form + kthvalue"], rows["diffrep kNN kernel (cpu)"]
    assert ratio_matches(float(gemm["x"]), float(gemm["s"]), float(nat["s"]), 1e-4, 0.01)
    assert gemm["vals"] == nat["vals"]  # the same k = 3 at the same N: the same four numbers
    t = targets(out)
    assert t["kNN kernel (PRDC) values equal to its eager twin's"] == (
        f"kernel {kern['vals']}; twin {twin['vals']}", "met" if kern["vals"] == twin["vals"] else "missed")
    ratio = float(re.match(rf"twin x({NUM}) ", t["kNN kernel (PRDC) faster than its eager twin"][0])[1])
    assert abs(ratio - float(twin["x"])) <= 0.011
