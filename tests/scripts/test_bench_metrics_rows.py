"""benches/bench_metrics.py prints each row as it is measured: scripts/gpu_check.py kills a step at its time
limit and reports what the step printed, and the bench used to print its whole table at the end (a run cut
off lost every kernel row). The rows keep the format gpu_check's ``targets`` reads."""

from __future__ import annotations

import importlib.util
import inspect
import re
from pathlib import Path

import pytest
import torch

from helpers import load_script

ROOT = Path(__file__).resolve().parents[2]
NAMES = ["auroc_matrix 40x256x50", "hist_discretize 50x20", "mi_matrix 20x6 n=50", "knn_mi_cd 20x6 n=50 k=10",
         "factor_vae_votes 75x64x20"]  # the kernel shapes at --scale 0.005 (every count floored at 50; 15000 -> 75)


def _bench():
    spec = importlib.util.spec_from_file_location("_bench_metrics_rows", ROOT / "benches" / "bench_metrics.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_kernel_rows_come_one_at_a_time():
    bm = _bench()
    rows = bm.kernel_bench(torch.device("cpu"), scale=0.005)
    name, times = next(rows)
    # the first row is out while the other kernels are not measured yet
    assert inspect.getgeneratorstate(rows) == inspect.GEN_SUSPENDED
    rest = list(rows)
    assert [name] + [n for n, _ in rest] == NAMES
    assert all(len(t) == 2 and all(v > 0 for v in t) for _, t in [(name, times), *rest])  # (native, twin) on the CPU


def test_a_cuda_row_is_what_gpu_check_reads():
    bm, gc = _bench(), load_script("gpu_check")
    fast = bm.kernel_line("auroc_matrix 40x256x8000", (4e-3, 1e-3, 3e-3))  # cpu 4 ms, cuda 1 ms: 4x
    slow = bm.kernel_line("hist_discretize 10000x20", (0.5e-3, 2e-3, 1e-3))  # cpu 0.5 ms, cuda 2 ms: 0.25x
    rows = {t: (m, v) for t, m, v in gc.targets({"bench metric kernels": fast + "\n" + slow + "\n"})}
    assert rows["metric kernels faster than on the CPU"] == ("lowest 0.2x (hist_discretize 10000x20)", "missed")
    rows = {t: (m, v) for t, m, v in gc.targets({"bench metric kernels": fast + "\n"})}
    assert rows["metric kernels faster than on the CPU"] == ("lowest 4.0x (auroc_matrix 40x256x8000)", "met")


def test_the_printed_table_and_the_out_file_hold_every_row(tmp_path, capsys):
    bm = _bench()
    out = tmp_path / "table.txt"
    bm.main(["--skip", "fast,parity,reference,tad", "--scale", "0.005", "--out", str(out)])
    printed = capsys.readouterr().out
    assert out.read_text() == printed
    kernel = [line for line in printed.splitlines() if line.startswith("kernel ")]
    pat = re.compile(r"^kernel (.+?)\s+native\s+[\d.]+ ms\s+twin\s+[\d.]+ ms\s+x\s*[\d.]+$")
    assert [pat.match(line).group(1) for line in kernel] == NAMES
    assert printed.startswith("# bench_metrics  ")


def test_an_unwritable_out_is_refused_before_measuring(tmp_path, capsys):
    bm = _bench()
    with pytest.raises(SystemExit) as exc:
        bm.main(["--skip", "fast,parity,reference,tad", "--out", str(tmp_path / "none" / "t.txt")])
    assert exc.value.code == 2
    io = capsys.readouterr()
    assert io.out == "" and f"error: --out {tmp_path / 'none' / 't.txt'}: No such file or directory" in io.err

