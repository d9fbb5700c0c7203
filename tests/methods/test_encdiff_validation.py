"""scripts/validate_dyga.py end to end at a tiny size (slow): both arms run, every recorded quantity is
in its range, and the claim check reads the summary it wrote."""

from __future__ import annotations

import json

import pytest

from helpers import load_script


@pytest.mark.slow
def test_validate_dyga_runs_and_records_every_quantity(tmp_path):
    mod = _load()
    out = tmp_path / "dyga.json"
    assert mod.main(["--seeds", "0", "--steps", "170", "--quick", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert [r["arm"] for r in rec["runs"]] == ["baseline", "dyga_sd"]
    for r in rec["runs"]:
        assert 0 <= r["sep_raw"]["separation"] <= 1 and 0 <= r["factor_vae"] <= 1
        assert 0 <= r["dci_disentanglement"] <= 1 and r["reliance"]["reliance"] > 0
        assert len(r["sep_raw"]["anchors"]) == 10
    dy = rec["runs"][1]
    assert len(dy["anchor_history"]) == 1 and dy["anchor_history"][0]["epoch"] == 1     # 160 steps per epoch
    s = rec["summary_mean_std"]
    assert rec["checks"]["reliance_higher"] == (s["dyga_sd"]["reliance"][0] > s["baseline"]["reliance"][0])
    assert rec["claim_holds"] == all(rec["checks"].values())


def _load():
    return load_script("validate_dyga")


def _run(arm, seed, sep, fv, dci, rel, steps=10):
    return {"arm": arm, "seed": seed, "steps": steps, "sep_raw": {"separation": sep}, "factor_vae": fv,
            "dci_disentanglement": dci, "reliance": {"reliance": rel}}


def test_summary_deltas_checks_and_combining_records_of_separate_arm_jobs(tmp_path):
    """The four Table 4 arms run as two jobs are merged; means, deltas to the baseline and the claim's
    checks are recomputed from the runs (hand values)."""
    mod = _load()
    a = {"runs": [_run("baseline", 0, 0.2, 0.5, 0.3, 2.0), _run("baseline", 1, 0.4, 0.7, 0.5, 4.0),
                  _run("dyga_sd", 0, 0.35, 0.5, 0.3, 3.0), _run("dyga_sd", 1, 0.40, 0.68, 0.5, 3.4)], "seconds": 5}
    b = {"runs": [_run("dyga", 0, 0.3, 0.6, 0.4, 3.0), _run("sd", 0, 0.1, 0.2, 0.1, 1.0)], "seconds": 7}
    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    pa.write_text(json.dumps(a))
    pb.write_text(json.dumps(b))
    out = mod.combine([str(pa), str(pb)], str(tmp_path / "c.json"))
    s = out["summary_mean_std"]
    assert s["baseline"]["separation"] == pytest.approx((0.3, 0.1))
    assert s["dyga_sd"]["reliance"] == pytest.approx((3.2, 0.2))
    assert out["deltas_vs_baseline"]["dyga"] == pytest.approx({"separation": 0.0, "factor_vae": 0.0, "dci": 0.0,
                                                               "reliance": 0.0})
    assert out["deltas_vs_baseline"]["sd"]["separation"] == pytest.approx(-0.2)
    assert out["deltas_vs_baseline"]["dyga_sd"]["separation"] == pytest.approx(0.075)
    assert out["checks"] == {"separation_plus_0.05": True, "factor_vae_within_0.02": True,
                             "dci_within_0.02": True, "reliance_higher": True}
    assert out["claim_holds"] and out["seconds"] == 12 and out["steps"] == 10
    assert json.loads((tmp_path / "c.json").read_text())["checks"] == out["checks"]
    pb.write_text(json.dumps({"runs": [_run("sd", 0, 0.1, 0.2, 0.1, 1.0, steps=20)]}))
    with pytest.raises(SystemExit, match="mix step counts"):
        mod.combine([str(pa), str(pb)], str(tmp_path / "d.json"))


def test_combining_an_earlier_combined_record_with_new_seeds(tmp_path):
    """A combined record (seeds 0-1) merged with a new job's record (seed 2): the summary pools all three
    seeds (hand values), per_seed holds each seed's values and its deltas to that seed's baseline,
    provenance nests the earlier record's sources, and merging a record with one of its own sources
    (a run twice) or full with --quick metric sizes is refused."""
    mod = _load()
    a = {"runs": [_run("baseline", 0, 0.2, 0.5, 0.3, 2.0), _run("dyga_sd", 0, 0.3, 0.4, 0.2, 1.0)], "seconds": 3}
    b = {"runs": [_run("baseline", 1, 0.4, 0.7, 0.5, 4.0), _run("dyga_sd", 1, 0.5, 0.6, 0.4, 5.0)], "seconds": 4}
    for name, rec in (("a.json", a), ("b.json", b)):
        (tmp_path / name).write_text(json.dumps(rec))
    first = mod.combine([str(tmp_path / "a.json"), str(tmp_path / "b.json")], str(tmp_path / "ab.json"))
    assert first["combined_from"] == ["a.json", "b.json"]
    c = {"runs": [_run("baseline", 2, 0.6, 0.9, 0.7, 6.0), _run("dyga_sd", 2, 0.4, 0.8, 0.6, 3.0)], "seconds": 5,
         "quick": False}
    (tmp_path / "c.json").write_text(json.dumps(c))
    out = mod.combine([str(tmp_path / "ab.json"), str(tmp_path / "c.json")], str(tmp_path / "abc.json"),
                      note="seed 2 added")
    s = out["summary_mean_std"]
    # baseline separation 0.2, 0.4, 0.6: mean 0.4, population std sqrt(((-0.2)^2 + 0 + 0.2^2) / 3)
    assert s["baseline"]["separation"] == pytest.approx((0.4, (0.08 / 3) ** 0.5))
    assert s["dyga_sd"]["reliance"] == pytest.approx((3.0, (8 / 3) ** 0.5))
    assert out["deltas_vs_baseline"]["dyga_sd"]["reliance"] == pytest.approx(-1.0)
    assert out["per_seed"]["2"]["dyga_sd"]["separation"] == pytest.approx(0.4)
    assert out["per_seed"]["2"]["deltas_vs_baseline"]["dyga_sd"] == pytest.approx(
        {"separation": -0.2, "factor_vae": -0.1, "dci": -0.1, "reliance": -3.0})
    assert out["per_seed"]["0"]["deltas_vs_baseline"]["dyga_sd"]["factor_vae"] == pytest.approx(-0.1)
    assert list(out["per_seed"]) == ["0", "1", "2"] and out["seeds"] == [0, 1, 2]
    assert out["seeds_per_arm"] == {"baseline": [0, 1, 2], "dyga_sd": [0, 1, 2]}
    assert out["combined_from"] == [{"record": "ab.json", "combined_from": ["a.json", "b.json"]}, "c.json"]
    assert out["seconds"] == 12 and out["note"] == "seed 2 added" and out["quick"] is False
    assert json.loads((tmp_path / "abc.json").read_text())["per_seed"] == out["per_seed"]
    with pytest.raises(SystemExit, match="'baseline' seed 0 is in both"):
        mod.combine([str(tmp_path / "ab.json"), str(tmp_path / "a.json")], str(tmp_path / "x.json"))
    (tmp_path / "q.json").write_text(json.dumps({"runs": [_run("sd", 3, 0.1, 0.2, 0.1, 1.0)], "quick": True}))
    with pytest.raises(SystemExit, match="mix --quick"):
        mod.combine([str(tmp_path / "c.json"), str(tmp_path / "q.json")], str(tmp_path / "y.json"))
    with pytest.raises(SystemExit):
        mod.main(["--note", "x", "--out", str(tmp_path / "z.json")])


def test_combine_refuses_a_file_named_twice_and_records_that_are_not_validate_dyga_runs(tmp_path):
    """A record named twice (by two spellings) is refused by name, not as "a combined record and one of its
    sources"; an empty 'runs' list or a run without the fields the summary reads is refused by name (a
    KeyError traceback; "the records mix step counts []"); a new --out folder is created."""
    mod = _load()
    a = tmp_path / "a.json"
    a.write_text(json.dumps({"runs": [_run("baseline", 0, 0.2, 0.5, 0.3, 2.0)]}))
    with pytest.raises(SystemExit, match=r"a.json: given twice \(as .*a.json\); name each record once"):
        mod.combine([str(a), str(tmp_path / "." / "a.json")], str(tmp_path / "x.json"))
    (tmp_path / "e.json").write_text(json.dumps({"runs": []}))
    with pytest.raises(SystemExit, match="e.json: its 'runs' list is empty"):
        mod.combine([str(a), str(tmp_path / "e.json")], str(tmp_path / "x.json"))
    bad = _run("sd", 1, 0.1, 0.2, 0.1, 1.0)
    del bad["reliance"], bad["arm"]
    (tmp_path / "k.json").write_text(json.dumps({"runs": [bad]}))
    with pytest.raises(SystemExit, match="k.json: run 0 is not a validate_dyga run \\(no 'arm', 'reliance'\\)"):
        mod.combine([str(a), str(tmp_path / "k.json")], str(tmp_path / "x.json"))
    assert not (tmp_path / "x.json").exists()
    out = mod.combine([str(a)], str(tmp_path / "new" / "c.json"))
    assert out["summary_mean_std"]["baseline"]["separation"] == pytest.approx((0.2, 0.0))
    assert json.loads((tmp_path / "new" / "c.json").read_text())["runs"] == [_run("baseline", 0, 0.2, 0.5, 0.3, 2.0)]


@pytest.mark.parametrize("argv, message", [
    (["--steps", "0"], "--steps must be >= 1, got 0"),
    (["--seeds", "0", "1", "0"], "--seeds repeats a value: [0, 1, 0]"),
    (["--seeds", "-1"], "--seeds must be non-negative, got [-1]"),
    (["--arms", "sd", "baseline", "sd"], "--arms repeats a value: ['sd', 'baseline', 'sd']")])
def test_a_training_run_refuses_steps_and_repeated_seeds_or_arms_before_any_work(argv, message, tmp_path, capsys):
    # --steps 0 recorded a NaN loss for an untrained model; a repeated seed or arm was trained and counted twice
    out = tmp_path / "r.json"
    with pytest.raises(SystemExit) as e:
        _load().main(argv + ["--out", str(out)])
    assert e.value.code == 2 and f"error: {message}" in capsys.readouterr().err
    assert not out.exists()


def test_a_run_shorter_than_one_epoch_is_told_its_dyga_arms_never_align():
    """5,120 images at batch 32: 160 steps per epoch, the first refresh at step 160 (the 161st step)."""
    note = _load().refresh_note
    assert note(160, ["baseline", "dyga_sd", "dyga", "sd"], 5120) == (
        "note: --steps 160 ends before the first anchor refresh (step 160, one epoch of 160 steps): the arms "
        "dyga_sd, dyga train without DyGA alignment")
    assert note(161, ["baseline", "dyga_sd"], 5120) is None
    assert note(2, ["baseline", "sd"], 5120) is None


def test_the_usage_lines_defaults_are_the_parsers(monkeypatch):
    """The docstring's usage line showed --steps 800 while the parser (and the docs' records) use 700."""
    import argparse
    import re

    mod = _load()
    actions = []

    def capture(self, args=None, namespace=None):
        actions.extend(self._actions)
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", capture)
    with pytest.raises(SystemExit):
        mod.main([])
    defaults = {a.dest: a.default for a in actions}
    shown = dict(re.findall(r"\[--(seeds|steps) ([\d ]+)\]", mod.__doc__))
    assert set(shown) == {"seeds", "steps"}
    assert shown["steps"].strip() == str(defaults["steps"]) and shown["seeds"].split() == [str(v) for v in defaults["seeds"]]
