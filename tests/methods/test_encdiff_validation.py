"""scripts/validate_dyga.py end to end at a tiny size (slow): both arms run, every recorded quantity is
in its range, and the claim check reads the summary it wrote."""

from __future__ import annotations

import json

import pytest

from helpers import load_script, parser_actions


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
        rel = r["reliance"]  # the ratio the check reads and, not gated, the gap of its two losses
        assert rel["reliance"] == pytest.approx(rel["loss_shuffled"] / rel["loss_true"])
        assert rel["loss_gap"] == pytest.approx(rel["loss_shuffled"] - rel["loss_true"])
    assert set(rec["reliance_parts_mean_std"]) == {"baseline", "dyga_sd"}
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


def test_reliance_parts_summary_holds_both_losses_and_their_gap():
    """The losses behind the reliance ratio and their gap, per arm (hand values); the gap is derived from
    the two losses for a run recorded before the field; arms whose runs lack the losses are left out; the
    claim's checks are unchanged (they read the ratio)."""
    mod = _load()

    def run(arm, seed, true, shuf, gap=True):
        r = _run(arm, seed, 0.2, 0.5, 0.3, shuf / true)
        r["reliance"].update(loss_true=true, loss_shuffled=shuf)
        if gap:
            r["reliance"]["loss_gap"] = shuf - true
        return r

    runs = [run("baseline", 0, 0.05, 0.15), run("baseline", 1, 0.07, 0.13, gap=False),
            run("sd", 0, 0.08, 0.14), run("sd", 1, 0.08, 0.12), _run("dyga", 0, 0.2, 0.5, 0.3, 2.0)]
    out = mod.summarize(runs, ["baseline", "sd", "dyga"])
    parts = out["reliance_parts_mean_std"]
    assert set(parts) == {"baseline", "sd"}
    assert parts["baseline"]["loss_true"] == pytest.approx((0.06, 0.01))
    assert parts["baseline"]["loss_gap"] == pytest.approx((0.08, 0.02))  # gaps 0.10 and 0.06 (derived)
    assert parts["sd"]["loss_gap"] == pytest.approx((0.05, 0.01))  # gaps 0.06 and 0.04
    assert out["reliance_parts_deltas_vs_baseline"]["sd"] == pytest.approx(
        {"loss_true": 0.02, "loss_shuffled": -0.01, "loss_gap": -0.03})
    # the ratio means: baseline (3 + 13/7) / 2, sd (1.75 + 1.5) / 2
    assert out["summary_mean_std"]["sd"]["reliance"][0] == pytest.approx(1.625)
    assert out["summary_mean_std"]["baseline"]["reliance"][0] == pytest.approx((3 + 13 / 7) / 2)


def test_trace_reliance_with_skip_dropout_on_matches_eval_when_nothing_drops():
    """trace_dyga_reliance.reliance_parts with the Skip Dropout layers in training mode: at rate 0 it is
    EncDiff.condition_reliance draw for draw; at rate 0.2 the true-token loss changes, and the global RNG
    (which the masks draw from) is left as it was, so a traced run trains as an untraced one."""
    import torch

    from diffrep.methods.encdiff import EncDiff
    from diffrep.nn.unet import SkipDropout
    from diffrep.recipes.encdiff import cpu_model

    trace = load_script("trace_dyga_reliance")
    torch.manual_seed(0)
    m = EncDiff(cpu_model(conditioning="none", num_units=3, token_dim=4))
    with torch.no_grad():  # the zero-initialised convs would make the output ignore the skips (and tokens)
        for mod in m.unet.modules():
            if isinstance(mod, torch.nn.Conv2d) and not mod.weight.any():
                mod.weight.normal_(0, 0.05)
    drops = [d for d in m.modules() if isinstance(d, SkipDropout)]
    assert len(drops) == 4  # the 16 and 8 px decoder skips of the CPU U-Net
    x = torch.rand(6, 3, 16, 16) * 2 - 1
    ref = m.condition_reliance(x, generator=torch.Generator().manual_seed(3), repeats=2)
    for d in drops:
        d.rate = 0.0
    same = trace.reliance_parts(m, x, seed=3, repeats=2, skip_dropout_on=True)
    assert same == pytest.approx(ref, rel=1e-6, abs=0)
    for d in drops:
        d.rate = 0.2
    state = torch.get_rng_state()
    on = trace.reliance_parts(m, x, seed=3, repeats=2, skip_dropout_on=True)
    assert torch.equal(torch.get_rng_state(), state) and m.training
    assert on["loss_true"] != pytest.approx(ref["loss_true"], rel=1e-4)
    with pytest.raises(ValueError, match="t_range"):
        trace.reliance_parts(m, x, t_range=(0, 2000), skip_dropout_on=True)


@pytest.mark.parametrize("argv, text", [(["--every", "0"], "--steps and --every must be positive, got 700 and 0"),
                                        (["--arms", "nosuch"], "invalid choice: 'nosuch'"),
                                        (["--out", "{tmp}/kept.json"], "--out {tmp}/kept.json exists")])
def test_trace_script_refuses_bad_input_with_a_message(argv, text, tmp_path, capsys):
    """A wrong argument is argparse's one-line message (exit 2, no traceback), before any training; an
    existing record is kept."""
    kept = tmp_path / "kept.json"
    kept.write_text("{}")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "new.json")]
    with pytest.raises(SystemExit) as exc:
        load_script("trace_dyga_reliance").main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err
    assert text.replace("{tmp}", str(tmp_path)) in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.json"] and kept.read_text() == "{}"


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


@pytest.mark.parametrize("extra", [[], ["--overwrite"], ["--combine", "a.json"]])
def test_a_folder_as_out_is_refused_before_any_work(extra, tmp_path, capsys):
    # with --overwrite every arm trained, then the record's write failed with IsADirectoryError
    with pytest.raises(SystemExit) as e:
        _load().main(["--steps", "1", "--seeds", "0", "--out", str(tmp_path)] + extra)
    assert e.value.code == 2
    assert f"error: --out {tmp_path} is a folder; give the JSON record's file path" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_every_flag_says_what_it_is(monkeypatch):
    """--seeds and --steps had no help (what a seed trains, where the first DyGA refresh falls)."""
    bare = [a.dest for a in parser_actions(_load().main, monkeypatch) if a.option_strings and not a.help]
    assert bare == [], bare


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
    import re

    mod = _load()
    actions = parser_actions(mod.main, monkeypatch)
    defaults = {a.dest: a.default for a in actions}
    shown = dict(re.findall(r"\[--(seeds|steps) ([\d ]+)\]", mod.__doc__))
    assert set(shown) == {"seeds", "steps"}
    assert shown["steps"].strip() == str(defaults["steps"]) and shown["seeds"].split() == [str(v) for v in defaults["seeds"]]


@pytest.mark.parametrize("script", ["validate_dyga", "trace_dyga_reliance"])
@pytest.mark.parametrize("device, text", [("cuda", "--device cuda: no CUDA device is usable here ("),
                                          ("meta", "invalid choice: 'meta'")])
def test_device_cuda_without_a_gpu_is_a_usage_error_before_any_work(script, device, text, tmp_path, monkeypatch,
                                                                    capsys):
    """--device cuda where torch sees no GPU (forced here, so the refusal is checked on a GPU machine too) is
    argparse's one-line message, exit 2, before the dataset is rendered or a record written: not torch's
    traceback at the first model move."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "r.json"
    with pytest.raises(SystemExit) as exc:
        load_script(script).main(["--device", device, "--steps", "1", "--out", str(out)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err and text in err, err
    assert not out.exists()


class _Images:
    """64 random images in [0, 1]: what train_arm reads of a dataset (len, images01) for an arm without DyGA."""

    def __init__(self):
        import torch

        self.images01 = torch.rand(64, 3, 16, 16, generator=torch.Generator().manual_seed(5))

    def __len__(self):
        return len(self.images01)


def _cuda_or_skip():
    import torch

    return pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))


@pytest.mark.parametrize("device", ["cpu", _cuda_or_skip()])
def test_train_arm_puts_model_and_batches_on_the_device_and_the_cpu_run_is_unchanged(device, monkeypatch):
    """train_arm(device=...) moves the model (every parameter) and each batch to the device; on the CPU the
    losses are bit-for-bit those of a call without the argument (the committed records' path). On a GPU
    the same CPU generators draw the same t, noise and data order from the same initial weights, so two
    steps' losses agree with the CPU's to float tolerance."""
    import torch

    from diffrep.methods.encdiff import EncDiff

    mod = _load()
    ds = _Images()
    seen = []
    loss = EncDiff.loss

    def spy(self, batch, **kw):   # records where each batch is, then the real loss
        seen.append(batch.device)
        return loss(self, batch, **kw)

    def on_step(model, n):
        seen.append({p.device for p in model.parameters()} | {b.device for b in model.buffers()})

    ref_model, ref, _ = mod.train_arm("sd", 0, 2, ds)
    monkeypatch.setattr(EncDiff, "loss", spy)
    model, losses, _ = mod.train_arm("sd", 0, 2, ds, on_step=on_step, device=torch.device(device))
    dev = torch.device(device, 0) if device == "cuda" else torch.device(device)
    assert seen == [dev, {dev}, dev, {dev}]
    if device == "cpu":
        assert losses == ref and all(torch.equal(a, b) for a, b in zip(model.parameters(), ref_model.parameters()))
    else:
        assert losses == pytest.approx(ref, rel=1e-2)


def test_rng_state_round_trip_restores_the_global_stream():
    """rng_state/set_rng_state (what a traced run uses around its diagnostics): draws after a restore repeat."""
    import torch

    mod = _load()
    state = mod.rng_state("cpu")
    a = torch.rand(5)
    mod.set_rng_state(state, "cpu")
    assert state[1] is None and torch.equal(torch.rand(5), a)
