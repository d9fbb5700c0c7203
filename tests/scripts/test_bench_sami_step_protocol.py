"""benches/bench_sami_step.py's timing protocol: both sides warmed up alike, then timed in interleaved rounds
whose order alternates, summarised by medians and the median of the rounds' ratios. Before, each side ran its
warm-up and reps in turn (fused first), and the dry run's ``--warmup 0`` put the process's first, slow step on
the fused side alone: a 2x "slowdown" that was an artefact (benches/results/sami_step_cpu_1thread_2026-12-07.md)."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    sys.path.insert(0, str(ROOT / "benches"))
    try:
        spec = importlib.util.spec_from_file_location("_bench_sami_step_protocol", ROOT / "benches" / "bench_sami_step.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(ROOT / "benches"))
    return mod


def test_rounds_alternate_the_order_after_equal_warm_up():
    b = _bench()
    calls = []
    tf, tr = b.interleaved(lambda: calls.append("f"), lambda: calls.append("r"), "cpu", reps=4, warmup=2)
    # 2 warm-up rounds of both, then f r | r f | f r | r f: each side first in half of the rounds
    assert calls == ["f", "r", "f", "r"] + ["f", "r", "r", "f", "f", "r", "r", "f"]
    assert len(tf) == len(tr) == 4 and all(t >= 0 for t in tf + tr)


def test_the_first_call_is_never_timed(monkeypatch):
    """The bench's clock replaced by one that moves only when a call says so: the times are exactly what the
    timed calls took, whatever the machine's load (the real clock and a 50 ms sleep left the verdict to the load:
    a timed call of nothing that was preempted read as the slow first call)."""
    b = _bench()
    clock = {"now": 0.0}
    monkeypatch.setattr(b, "time", types.SimpleNamespace(perf_counter=lambda: clock["now"]))

    def slow_on(n):  # 5 s on its n-th call, nothing on the others
        calls = {"n": 0}

        def fn():
            calls["n"] += 1
            if calls["n"] == n:
                clock["now"] += 5.0
        return fn

    def steady():
        clock["now"] += 0.25

    # the process's first call (allocator growth, lazy initialisation) falls in the warm-up
    tf, tr = b.interleaved(slow_on(1), steady, "cpu", reps=3, warmup=1)
    assert tf == [0.0, 0.0, 0.0] and tr == [0.25, 0.25, 0.25]
    # a slow call in a timed round is measured (the clock above is the one the bench reads)
    tf, tr = b.interleaved(slow_on(2), steady, "cpu", reps=3, warmup=1)
    assert tf == [5.0, 0.0, 0.0] and tr == [0.25, 0.25, 0.25]


@pytest.mark.parametrize("reps, warmup, match", [(0, 1, "reps must be >= 1"), (3, 0, "warmup must be >= 1")])
def test_counts_are_validated(reps, warmup, match):
    with pytest.raises(ValueError, match=match):
        _bench().interleaved(lambda: None, lambda: None, "cpu", reps=reps, warmup=warmup)


def test_summary_is_medians_and_the_median_of_the_rounds_ratios():
    b = _bench()
    tf = [0.010, 0.020, 0.012]
    tr = [0.011, 0.018, 0.024]  # per round 1.1, 0.9, 2.0
    s = b.summary(tf, tr)
    assert s["fused_ms"] == pytest.approx(12.0) and s["reference_ms"] == pytest.approx(18.0)
    assert s["ratio"] == pytest.approx(1.1) and s["ratio_min"] == pytest.approx(0.9) and s["ratio_max"] == pytest.approx(2.0)
    # the median of the ratios, not the ratio of the medians (18 / 12 = 1.5): a round compares both under one load
    assert s["ratio"] != pytest.approx(s["reference_ms"] / s["fused_ms"])
