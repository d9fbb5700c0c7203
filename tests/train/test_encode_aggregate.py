"""``diffrep encode`` writes what ``eval --codes`` reads (same scores as ``eval --model``); ``diffrep aggregate``
gives mean +- sample std over runs, checked against hand-computed values."""

import json
import math

import numpy as np
import pytest
import torch

from diffrep.cli import main
from diffrep.cli.aggregate import aggregate, read_scores

from test_cli_messages import DayProbe, DayProbeConfig


def test_encode_then_eval_codes_equals_eval_model(tmp_path, capsys):
    torch.manual_seed(0)
    DayProbe(DayProbeConfig()).save_pretrained(tmp_path / "m")
    common = ["--dataset", "disks", "--source", "procedural", "--num-train", "120", "--num-test", "60",
              "--device", "cpu", "--seed", "3"]
    codes = tmp_path / "out" / "codes.npz"
    assert main(["encode", str(tmp_path / "m"), *common, "--out", str(codes)]) == 0
    assert "wrote 120 + 60 codes of width 2" in capsys.readouterr().err
    z = np.load(codes)
    assert z["codes"].shape == (120, 2) and z["codes_test"].shape == (60, 2)
    assert z["factors"].shape[0] == 120 and json.loads(str(z["meta"]))["dataset"] == "disks"
    # the codes are the encoder's on the images of those factor rows: recompute the first rows by hand
    from diffrep.data import load
    from diffrep.data.base import format_images

    ds = load("disks", source="procedural")
    f = ds.sample_factors(120, np.random.RandomState(3))
    assert np.array_equal(f, z["factors"])
    x = format_images(np.asarray(ds.sample_observations_from_factors(f[:5], np.random.RandomState(0))), "pm1")
    want = torch.stack([x[..., :8].mean((1, 2, 3)), x[..., 8:].mean((1, 2, 3))], 1).double().numpy()
    assert np.allclose(z["codes"][:5], want, atol=1e-6)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["eval", "--codes", str(codes), "--metrics", "mig,sap", "--out", str(a)]) == 0
    assert main(["eval", "--model", str(tmp_path / "m"), *common, "--metrics", "mig,sap", "--out", str(b)]) == 0
    assert json.loads(a.read_text())["scores"] == json.loads(b.read_text())["scores"]
    assert main(["encode", str(tmp_path / "m"), *common, "--out", str(tmp_path / "codes.txt")]) == 2
    assert "ending in .npz" in capsys.readouterr().err


def test_aggregate_mean_and_sample_std(tmp_path, capsys):
    vals = {"mig": [0.1, 0.2, 0.6], "sap": [0.5, None, 0.7]}
    for i in range(3):
        (tmp_path / f"r{i}.json").write_text(json.dumps({"scores": {k: v[i] for k, v in vals.items()}, "meta": {}}))
    s = aggregate([read_scores(tmp_path / f"r{i}.json") for i in range(3)])
    # by hand: mean 0.3, deviations -0.2, -0.1, 0.3 -> sum of squares 0.14 / 2 -> std sqrt(0.07)
    assert s["mig"]["mean"] == pytest.approx(0.3) and s["mig"]["std"] == pytest.approx(math.sqrt(0.07))
    assert s["mig"]["n"] == 3 and s["mig"]["min"] == 0.1 and s["mig"]["max"] == 0.6
    assert s["sap"]["n"] == 2 and s["sap"]["nan"] == 1 and s["sap"]["std"] == pytest.approx(math.sqrt(0.02))
    out = tmp_path / "agg" / "s.json"
    assert main(["aggregate", *[str(tmp_path / f"r{i}.json") for i in range(3)], "--format", "md", "--out", str(out)]) == 0
    md = capsys.readouterr().out
    assert "| mig | 0.3 +- 0.2646 | 3 | 0.1 | 0.6 |" in md
    assert json.loads(out.read_text())["sap"]["nan"] == 1


def test_aggregate_reads_training_records_and_quickstart_folders(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 3.0}\n{"step": 2, "loss": 2.0, "eval/fast/mig": 0.4}\n')
    qs = tmp_path / "qs"
    qs.mkdir()
    (qs / "metrics.json").write_text(json.dumps({"metrics": {"scores": {"loss": 4.0}}}))
    assert read_scores(run) == {"loss": 2.0, "eval/fast/mig": 0.4}
    s = aggregate([read_scores(run), read_scores(qs)])
    assert s["loss"]["mean"] == 3.0 and s["loss"]["std"] == pytest.approx(math.sqrt(2.0))
    assert s["eval/fast/mig"]["n"] == 1 and math.isnan(s["eval/fast/mig"]["std"])
    (tmp_path / "bad.json").write_text("{nope")
    assert main(["aggregate", str(tmp_path / "bad.json")]) == 2
    assert "not JSON" in capsys.readouterr().err
    assert main(["aggregate", str(tmp_path)]) == 2
    assert "no metrics.json" in capsys.readouterr().err


def test_model_verbs_take_a_run_folder(tmp_path, capsys):
    from diffrep.cli._common import resolve_model_dir

    DayProbe(DayProbeConfig()).save_pretrained(tmp_path / "run" / "final")
    assert resolve_model_dir(tmp_path / "run") == tmp_path / "run" / "final"
    assert resolve_model_dir(tmp_path / "run" / "final") == tmp_path / "run" / "final"
    out = tmp_path / "c.npz"
    assert main(["encode", str(tmp_path / "run"), "--dataset", "disks", "--source", "procedural", "--num-train", "8",
                 "--num-test", "4", "--device", "cpu", "--out", str(out)]) == 0
    assert json.loads(str(np.load(out)["meta"]))["model"] == str(tmp_path / "run" / "final")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        resolve_model_dir(tmp_path)


def test_aggregate_a_score_nan_in_every_run_and_no_runs():
    s = aggregate([{"tad": float("nan")}, {"tad": float("nan")}])
    assert s["tad"]["n"] == 0 and s["tad"]["nan"] == 2
    assert all(math.isnan(s["tad"][k]) for k in ("mean", "std", "min", "max"))
    with pytest.raises(ValueError, match="aggregate: no runs"):
        aggregate([])
