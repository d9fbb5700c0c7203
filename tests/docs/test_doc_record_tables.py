"""The result tables the docs quote equal the committed records they cite.

Users read these tables instead of the records under ``benches/results/``, so each cell must be the
record's value rounded to the precision the page prints (a cell "0.247" holds a value in
[0.2465, 0.2475]). Each table is found by the line that introduces it; its record is read here with
``json``, or by parsing the bench's text output, and nothing is recomputed beyond that rounding. Records
are dated and never rewritten, so a failure here means the page changed (or cites the wrong record).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benches" / "results"


def table_after(page: str, intro: str) -> list[list[str]]:
    """The body rows (cells stripped, header and rule dropped) of the first Markdown table after the
    line of ``page`` that contains ``intro``."""
    lines = (ROOT / page).read_text().splitlines()
    start = next((i for i, line in enumerate(lines) if intro in line), None)
    assert start is not None, f"{page}: no line contains {intro!r}"
    i = start + 1
    while i < len(lines) and not lines[i].startswith("|"):
        i += 1
    rows = []
    while i < len(lines) and lines[i].startswith("|"):
        rows.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
        i += 1
    assert len(rows) > 2, f"{page}: no table after {intro!r}"
    return rows[2:]


def assert_rounds_to(cell: str, value: float, where: str) -> None:
    """``cell`` (a number as printed, maybe with a unit or 'x') is ``value`` rounded to the cell's decimals."""
    m = re.search(r"-?\d+(?:\.(\d+))?(?:e-?\d+)?", cell)
    assert m, f"{where}: no number in {cell!r}"
    printed = float(m.group(0))
    if "e" in m.group(0):
        mant = m.group(0).split("e")[0]
        decimals = len(mant.split(".")[1]) if "." in mant else 0
        half = 0.5 * 10.0 ** (-decimals) * 10.0 ** int(m.group(0).split("e")[1])
    else:
        half = 0.5 * 10.0 ** (-len(m.group(1) or ""))
    assert abs(printed - value) <= half + 1e-12, f"{where}: page prints {cell!r}, the record holds {value!r}"


def mean_std_cell(cell: str) -> tuple[str, str]:
    mean, std = re.split(r"\s*\+-\s*|\s*±\s*", cell)
    return mean, std


def load(name: str):
    return json.loads((RESULTS / name).read_text())


# -- docs/methods/vae.md: the validation tables ------------------------------------------------------------

@pytest.mark.parametrize("intro, record", [
    ("Seed 0, 1500 steps (2026-12-06", "validate_vae_cpu_1500steps.json"),
    ("validate_vae_cpu_1500steps_2x2convs_2026-12-07.json", "validate_vae_cpu_1500steps_2x2convs_2026-12-07.json"),
])
def test_vae_validation_tables(intro, record):
    rows = {(r["method"], r["beta"]): r for r in load(record)["rows"]}
    body = table_after("docs/methods/vae.md", intro)
    assert [r[0] for r in body] == ["beta-VAE", "beta-TCVAE"]
    for run, betas, kl, tc, recon in body:
        method = {"beta-VAE": "beta-vae", "beta-TCVAE": "beta-tcvae"}[run]
        for beta, *cells in zip(betas.split(" / "), kl.split(" / "), tc.split(" / "), recon.split(" / ")):
            row = rows[(method, float(beta))]
            where = f"vae.md {run} beta {beta} ({record})"
            for cell, key in zip(cells, ("kl", "tc_aggregate", "recon_at_mean")):
                assert_rounds_to(cell, row[key], f"{where} {key}")


# -- docs/methods/encdiff.md: the DyGA validation tables -----------------------------------------------------

ARMS = {"baseline": "baseline", "DyGA + SD": "dyga_sd", "+ DyGA + SD": "dyga_sd", "+ DyGA": "dyga", "+ SD": "sd"}
METRICS = ("separation", "factor_vae", "dci", "reliance")


@pytest.mark.parametrize("intro, record", [
    ("Measured 2026-12-06 (3 seeds, 700 steps", "dyga_validation_cpu_2026-12-06.json"),
    ("(population, over the 3 seeds):", "dyga_validation_cpu_2026-12-06c.json"),
])
def test_encdiff_dyga_tables(intro, record):
    summary = load(record)["summary_mean_std"]
    body = table_after("docs/methods/encdiff.md", intro)
    assert {ARMS[r[0]] for r in body} == set(summary)
    for arm, *cells in body:
        for cell, metric in zip(cells, METRICS):
            mean, std = mean_std_cell(cell)
            where = f"encdiff.md {arm} {metric} ({record})"
            assert_rounds_to(mean, summary[ARMS[arm]][metric][0], where + " mean")
            assert_rounds_to(std, summary[ARMS[arm]][metric][1], where + " std")


def test_encdiff_long_training_table():
    by_steps = {700: load("dyga_validation_cpu_2026-12-06c.json")["summary_mean_std"],
                2000: load("dyga_validation_cpu_long_2026-12-06c.json")["summary_mean_std"]}
    body = table_after("docs/methods/encdiff.md", "Longer training (`benches/results/dyga_validation_cpu_long")
    assert len(body) == 4
    for arm, steps, *cells in body:
        for cell, metric in zip(cells, METRICS):
            mean, std = mean_std_cell(cell)
            value = by_steps[int(steps)][ARMS[arm]][metric]
            assert_rounds_to(mean, value[0], f"encdiff.md {arm} {steps} steps {metric} mean")
            assert_rounds_to(std, value[1], f"encdiff.md {arm} {steps} steps {metric} std")


# -- docs/methods/disdiff.md: the swap gate's table ----------------------------------------------------------

def _verdict_counts(cell: str) -> tuple[int, dict[str, int]]:
    """'2 of 6 (3 mixed, 1 inactive)' -> (2, {'mixed': 3, 'inactive': 1})."""
    first = int(re.match(r"\d+", cell).group(0))
    return first, {k: int(n) for n, k in re.findall(r"(\d+) (mixed|inactive)", cell)}


def test_disdiff_swap_table():
    runs = {"`--scale 0.4`": load("diffusion_baselines_validation_2026-12-06.json")["disdiff"]}
    for record in ("diffusion_baselines_validation_2026-12-06b.json", "diffusion_baselines_validation_2026-12-07.json"):
        runs.update({name: run["disdiff"] for name, run in load(record)["runs"].items()})
    body = table_after("docs/methods/disdiff.md", "The gate **fails** at CPU scale.")
    assert [r[0] for r in body] == list(runs)
    for name, _steps, _error, inverted, fresh, mig in body:
        rec = runs[name]
        for cell, suffix in ((inverted, ""), (fresh, "_fresh_xT")):
            if cell == "not measured":
                assert "unit_verdicts" + suffix not in rec, name
                continue
            verdicts = rec["unit_verdicts" + suffix]
            one, others = _verdict_counts(cell)
            assert one == verdicts.count("one_factor") == rec["units_one_factor" + suffix], (name, cell)
            for kind, n in others.items():
                assert verdicts.count(kind) == n, (name, cell, kind)
        assert_rounds_to(mig, rec["mig"], f"disdiff.md {name} MIG")


# -- docs/metrics.md: the dSprites magnitudes ----------------------------------------------------------------

def test_fid_dsprites_magnitudes():
    record = json.loads((RESULTS / "fid_dsprites_2026-12-06.jsonl").read_text().splitlines()[0])
    (fid, kid, precision, recall, density, coverage), = table_after("docs/metrics.md", "Procedural dSprites has no official split")
    assert_rounds_to(fid, record["fid"], "metrics.md FID")
    kid_mean, kid_std = mean_std_cell(kid)
    assert_rounds_to(kid_mean, record["kid_mean"], "metrics.md KID mean")
    assert_rounds_to(kid_std, record["kid_std"], "metrics.md KID std")
    for cell, key in zip((precision, recall, density, coverage), ("precision", "recall", "density", "coverage")):
        assert_rounds_to(cell, record[key], f"metrics.md {key}")
    assert record["protocol"]["prdc"]["k"] == 3 and "dc_k" not in record["protocol"]["prdc"]  # "k' = k = 3"


# -- docs/kernels/knn.md: the PRDC cost table ----------------------------------------------------------------

def _bench_seconds(text: str, section: str) -> dict[str, float]:
    """The 'implementation  seconds' rows of one '## PRDC, N = M = ...' section of a bench_generation.py output."""
    part = text.split(section, 1)[1].split("\n## ", 1)[0]
    return {m.group(1).strip(): float(m.group(2))
            for m in re.finditer(r"^(\S.*?)\s{2,}(\d+\.\d+)\s+\d+\.\d+x", part, re.M)}


def test_knn_cost_table():
    text = (RESULTS / "generation_cpu_1thread_2026-12-06.txt").read_text()
    at_2k = _bench_seconds(text, "## PRDC, N = M = 2000,")
    at_10k = _bench_seconds(text, "## PRDC, N = M = 10000,")
    rows = {r[0]: r[1:] for r in table_after("docs/kernels/knn.md", "(`benches/results/generation_cpu_1thread_2026-12-06.txt`):")}
    kernel, twin, gemm, prdc = rows["500"]
    assert_rounds_to(kernel, at_10k["(N = M = 500) diffrep kNN kernel"], "knn.md 500 kernel")
    assert_rounds_to(twin, at_10k["(N = M = 500) eager twin"], "knn.md 500 twin")
    for n, measured in (("2000", at_2k), ("10000", at_10k)):
        kernel, _twin, gemm, prdc = rows[n]
        assert_rounds_to(kernel, measured["diffrep kNN kernel (cpu)"], f"knn.md {n} kernel")
        assert_rounds_to(gemm, measured["eager GEMM form + kthvalue"], f"knn.md {n} GEMM")
        assert_rounds_to(prdc, measured["prdc package 0.2 (strict <)"], f"knn.md {n} prdc")


# -- the helpers on hand-made cases ----------------------------------------------------------------------------

def test_assert_rounds_to_by_hand():
    assert_rounds_to("0.247", 0.2465, "x")
    assert_rounds_to("1.0e-4", 1.02e-4, "x")
    assert_rounds_to("79 s", 79.06, "x")
    with pytest.raises(AssertionError):
        assert_rounds_to("0.56", 0.5546875, "x")
    with pytest.raises(AssertionError):
        assert_rounds_to("1.1e-4", 1.0e-4, "x")
    assert _verdict_counts("2 of 6 (3 mixed, 1 inactive)") == (2, {"mixed": 3, "inactive": 1})
    assert mean_std_cell("0.247 +- 0.030") == ("0.247", "0.030")
