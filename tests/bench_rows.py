"""Reading a bench's printed output in tests: its banner, its rows' numbers, its target lines, and whether a
printed ratio is the ratio of the printed times (tests/scripts/test_bench_*_tables.py)."""
import math
import re
import sys

from helpers import load_bench

NUM = r"(?:\d+\.\d+|\d+)"
BANNER = re.compile(r"^# diffrep \S+, torch \S+, \S+, threads=(\d+), device=cpu", re.M)
TARGET = re.compile(r"^# target (?P<what>.+?): (?P<measured>.*) -> (?P<verdict>met|missed|not measured)$", re.M)


def run(name: str, argv: list[str], monkeypatch, capsys) -> str:
    """benches/<name>.py's ``main`` run in this process with ``argv``; its standard output."""
    mod = load_bench(name)
    monkeypatch.setattr(sys, "argv", [f"benches/{name}.py", *argv])
    code = mod.main()
    assert code in (None, 0)
    return capsys.readouterr().out


def ratio_matches(ratio: float, num: float, den: float, time_step: float, ratio_step: float) -> bool:
    """``ratio`` (printed to ``ratio_step``) is num / den of the printed times (each to ``time_step``)."""
    lo = (num - time_step / 2) / (den + time_step / 2) - ratio_step / 2
    hi = math.inf if den - time_step / 2 <= 0 else (num + time_step / 2) / (den - time_step / 2) + ratio_step / 2
    return lo - 1e-9 <= ratio <= hi + 1e-9


def targets(out: str) -> dict[str, tuple[str, str]]:
    """Each ``# target WHAT: MEASURED -> VERDICT`` line: WHAT -> (MEASURED, VERDICT)."""
    return {m["what"]: (m["measured"], m["verdict"]) for m in TARGET.finditer(out)}
