"""The model benches (SAMI step, method steps, multi-beta phases, EncDiff + DyGA, diffusion baselines, VAE
baselines, trainer breakdown, ParamReL CelebA-64, dSprites FID) run end to end at tiny sizes in this process:
the banner or header states torch, the machine and the thread count, each row holds both sides measured in the
same run, and every printed ratio is the one its printed times give (within the printing's rounding)."""

from __future__ import annotations

import json
import math
import re

import pytest
import torch

from bench_rows import NUM, BANNER, run, ratio_matches


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def test_sami_step_rows(monkeypatch, capsys, tmp_path):
    log = tmp_path / "rows.jsonl"
    log.write_text('{"earlier": true}\n')
    out = run("bench_sami_step", ["--device", "cpu", "--models", "disks-cpu", "--batch", "1", "--samples", "1",
                                  "--reps", "3", "--warmup", "1", "--json", str(log)], monkeypatch, capsys)
    header = json.loads(out.splitlines()[0])
    assert header["threads"] == 1 and header["torch"] == torch.__version__ and header["warmup"] == 1
    row = re.search(rf"^disks-cpu\s+1\s+1\s+(?P<f>{NUM})ms\s+(?P<r>{NUM})ms\s+(?P<x>{NUM})\s+\[(?P<lo>{NUM}),(?P<hi>{NUM})\]\s+"
                    rf"(?P<gf>{NUM})ms\s+(?P<gr>{NUM})ms\s+(?P<gx>{NUM})$", out, re.M)
    # the ratio is the median of the rounds' ratios (documented): inside their range, not the medians' quotient
    assert float(row["lo"]) <= float(row["x"]) <= float(row["hi"])
    record = json.loads(out.splitlines()[-1])
    assert record["step_ratio_range"][0] <= record["step_ratio_reference_over_fused"] <= record["step_ratio_range"][1]
    lines = log.read_text().splitlines()  # appended to, the earlier line kept
    assert json.loads(lines[0]) == {"earlier": True} and json.loads(lines[-1]) == record and len(lines) == 3


def test_method_step_rows(monkeypatch, capsys):
    out = run("bench_method_step", ["--device", "cpu", "--recipes", "paramrel/digits", "--batch", "1", "--steps", "1",
                                    "--warmup", "1"], monkeypatch, capsys)
    assert BANNER.search(out) and "1 untimed steps, then the median of 1 timed ones" in out
    row = re.search(rf"^paramrel/digits\s+1\s+{NUM}\s+(?P<ms>{NUM})\s+(?P<ips>{NUM})\s+nan  float32$", out, re.M)
    assert ratio_matches(float(row["ips"]), 1e3, float(row["ms"]), 0.1, 0.1), row.group(0)


def test_multibeta_rows(monkeypatch, capsys):
    out = run("bench_multibeta", ["--device", "cpu", "--recipes", "multibeta/dsprites-cpu", "--batch", "1",
                                  "--repeat", "1", "--budget", "0.01"], monkeypatch, capsys)
    assert BANNER.search(out)
    r = re.search(rf"^multibeta/dsprites-cpu\s+1\s+1\s+(?P<p1>{NUM})\s+(?P<bv>{NUM})\s+(?P<p2>{NUM})\s+(?P<enc>{NUM})\s+"
                  rf"(?P<r21>{NUM})\s+(?P<rbv>{NUM})\s+(?P<renc>{NUM})  \(3 rounds\)$", out, re.M)
    p1, bv, p2, enc = (float(r[k]) for k in ("p1", "bv", "p2", "enc"))
    assert ratio_matches(float(r["r21"]), p2, p1, 0.1, 0.01)
    assert ratio_matches(float(r["rbv"]), bv, p1, 0.1, 0.01)
    assert ratio_matches(float(r["renc"]), enc, p2, 0.1, 0.01)


def test_encdiff_rows(monkeypatch, capsys):
    out = run("bench_encdiff", ["--units", "2", "--n", "40", "--sample-batch", "1", "--ddim-steps", "1", "--repeat", "1",
                                "--skip", "step"], monkeypatch, capsys)
    assert BANNER.search(out)
    r = re.search(rf"^refresh 2 units x 40 points x 32: DyGA.fit\s+(?P<a>{NUM}) s\s+plain EM K=8\s+(?P<b>{NUM}) s\s+ratio\s+"
                  rf"(?P<x>{NUM})", out, re.M)
    assert ratio_matches(float(r["x"]), float(r["a"]), float(r["b"]), 0.01, 0.01), r.group(0)
    d = re.search(rf"^ddim    batch    1  DDIM-1 \+ decode\s+(?P<a>{NUM}) s\s+1 U-Net forwards\s+(?P<b>{NUM}) s\s+ratio\s+"
                  rf"(?P<x>{NUM})", out, re.M)
    assert ratio_matches(float(d["x"]), float(d["a"]), float(d["b"]), 0.01, 0.01), d.group(0)


def test_diffusion_baselines_rows(monkeypatch, capsys, tmp_path):
    out_json = tmp_path / "rows.json"
    out = run("bench_diffusion_baselines", ["--batch", "1", "--rounds", "1", "--budget", "0.01", "--recipes",
                                            "diffae/shapes3d-cpu", "--json", str(out_json)], monkeypatch, capsys)
    assert BANNER.search(out)
    r = re.search(rf"^diffae/shapes3d-cpu\s+1\s+(?P<m>{NUM})\s+(?P<b>{NUM})\s+(?P<x>{NUM})\s+(?P<sps>{NUM})$", out, re.M)
    assert ratio_matches(float(r["x"]), float(r["m"]), float(r["b"]), 0.1, 0.01), r.group(0)
    assert ratio_matches(float(r["sps"]), 1e3, float(r["m"]), 0.1, 0.01), r.group(0)
    assert json.loads(out_json.read_text())["rows"][0]["batch"] == 1


def test_vae_rows(monkeypatch, capsys, tmp_path):
    out_json = tmp_path / "rows.json"
    out = run("bench_vae", ["--batch", "1", "--rounds", "1", "--budget", "0.01", "--methods", "vae", "ae",
                            "--json", str(out_json)], monkeypatch, capsys)
    assert BANNER.search(out)
    rows = {m: (float(ms), float(x)) for m, ms, x in
            re.findall(rf"^(vae|ae)\s+({NUM})\s+{NUM}\s+({NUM})$", out, re.M)}
    assert set(rows) == {"vae", "ae"} and rows["vae"][1] == 1.0
    assert ratio_matches(rows["ae"][1], rows["ae"][0], rows["vae"][0], 0.1, 0.01)
    rec = {r["method"]: r for r in json.loads(out_json.read_text())["rows"]}
    assert math.isclose(rec["ae"]["ratio_to_vae"], rec["ae"]["ms_per_step"] / rec["vae"]["ms_per_step"])
    assert math.isclose(rec["ae"]["steps_per_s"], 1e3 / rec["ae"]["ms_per_step"])


def test_train_step_rows(monkeypatch, capsys):
    out = run("bench_train_step", ["--device", "cpu", "--workers", "0", "--steps", "1", "--warmup", "1", "--batch", "1",
                                   "--image", "8"], monkeypatch, capsys)
    assert re.match(r"# torch \S+, \S+, \d+ CPUs, GPU: none, torch threads 1; 1 untimed steps, then the mean of 1 timed", out)
    r = re.search(rf"^cpu\s+0\s+(?P<d>{NUM})\s+(?P<f>{NUM})\s+(?P<b>{NUM})\s+(?P<o>{NUM})\s+(?P<t>{NUM})\s+{NUM}\s+"
                  rf"(?P<p>{NUM})%$", out, re.M)
    parts = [float(r[k]) for k in "dfbo"]
    assert abs(sum(parts) - float(r["t"])) <= 0.025  # four parts rounded to 0.01, and the total
    # data% is rounded twice (the share to 4 places, then the percentage to 1)
    assert ratio_matches(float(r["p"]) / 100, parts[0], float(r["t"]), 0.01, 0.002)


@pytest.mark.slow
def test_paramrel_celeba64_record(monkeypatch, capsys, tmp_path):
    """The recipe's model on one 64 x 64 image a step (its batch of 64 takes over a minute a step here)."""
    out = tmp_path / "steps.json"
    run("bench_paramrel_celeba64", ["--steps", "2", "--warmup", "1", "--batch", "1", "--out", str(out)], monkeypatch,
        capsys)
    rec = json.loads(out.read_text())
    assert rec["steps"] == 2 and rec["warmup_steps"] == 1 and rec["threads"] == 1 and rec["batch_size"] == 1
    assert math.isclose(rec["images_per_s"], rec["batch_size"] / rec["median_step_s"])


@pytest.mark.slow
def test_fid_dsprites_record(monkeypatch, capsys, tmp_path):
    """PRDC of 8 + 8 images through the FID Inception on the CPU (~6 s; skipped without the weights)."""
    from diffrep.metrics import generation as G

    try:
        G.inception_features(torch.zeros(1, 3, 64, 64, dtype=torch.uint8), progress=False)
    except FileNotFoundError as exc:
        pytest.skip(f"no FID Inception weights here: {exc}")
    log = tmp_path / "fid.jsonl"
    run("fid_dsprites", ["--num", "8", "--metrics", "prdc", "--out", str(log)], monkeypatch, capsys)
    rec = json.loads(log.read_text())
    assert set(rec) >= {"precision", "recall", "density", "coverage", "seconds", "split", "machine"}
    assert rec["protocol"]["num_real"] == rec["protocol"]["num_fake"] == 8
