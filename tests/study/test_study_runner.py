"""The study runner: one folder per cell, resume after a crash, never redo a finished cell, refuse a
changed study, and shares of cells per rank that cover every cell once (diffrep.study.runner)."""

import json

import numpy as np
import pytest
import torch

from diffrep.nn import load_pretrained
from diffrep.study import StudyError, cell_state, parse_study, partition, run_study, shard_from_env
from study_fake import CRASH, crash_switch_off, quiet, read_jsonl, study_dict

pytestmark = pytest.mark.usefixtures(crash_switch_off.__name__)  # imported above: pytest finds it here


def test_run_writes_one_folder_per_cell_and_never_redoes_finished_ones(tmp_path):
    st = parse_study(study_dict())
    assert run_study(st, tmp_path, log=quiet) == {"ran": 4, "skipped": 0, "failed": 0}
    for c in st.cells:
        d = tmp_path / c.folder
        for name in ("run.json", "config.yaml", "cell.json", "metrics.json", "done.json", "final/model.safetensors"):
            assert (d / name).is_file(), name
        assert json.loads((d / "done.json").read_text())["hash"] == c.hash
        m = json.loads((d / "metrics.json").read_text())
        last = read_jsonl(d / "metrics.jsonl")[-1]
        assert last["step"] == 3 and m["train"] == last and m["cell"]["folder"] == c.folder
        assert json.loads((d / "run.json").read_text())["data"]["pool"] == 4
        assert cell_state(c, tmp_path) == "done"
    study = json.loads((tmp_path / "study.json").read_text())
    assert study["hash"] == st.hash and [c["folder"] for c in study["cells"]] == [c.folder for c in st.cells]
    stamps = {c.folder: (tmp_path / c.folder / "final/model.safetensors").stat().st_mtime_ns for c in st.cells}
    assert run_study(st, tmp_path, log=quiet) == {"ran": 0, "skipped": 4, "failed": 0}
    assert stamps == {c.folder: (tmp_path / c.folder / "final/model.safetensors").stat().st_mtime_ns
                      for c in st.cells}
    # the seeds give different weights, the grid value reaches the model
    w = [load_pretrained(tmp_path / c.folder / "final") for c in st.cells]
    assert not torch.equal(w[0].enc.weight, w[1].enc.weight)
    assert [m.config.weight for m in w] == [1.0, 1.0, 2.0, 2.0]


def test_resume_after_a_crash_continues_the_cell_exactly(tmp_path):
    st = parse_study(study_dict(seeds=[0], methods={"ae": {"recipe": "test/study-tiny-ae"}}, steps=4))
    (cell,) = st.cells
    run_study(st, tmp_path / "clean", log=quiet)
    CRASH["at"] = 2  # the third optimiser step raises, after the checkpoint of step 2
    with pytest.raises(StudyError, match=r"cell ae/dsprites/default/seed0 failed: RuntimeError: simulated crash"):
        run_study(st, tmp_path / "crashed", log=quiet)
    d = tmp_path / "crashed" / cell.folder
    assert cell_state(cell, tmp_path / "crashed") == "failed" and not (d / "done.json").exists()
    assert [r["step"] for r in read_jsonl(d / "metrics.jsonl")] == [1, 2]
    CRASH["at"] = None
    said = []
    assert run_study(st, tmp_path / "crashed", log=said.append) == {"ran": 1, "skipped": 0, "failed": 0}
    assert any("resuming" in s for s in said)
    assert [r["step"] for r in read_jsonl(d / "metrics.jsonl")] == [1, 2, 3, 4]
    a = load_pretrained(tmp_path / "clean" / cell.folder / "final")
    b = load_pretrained(d / "final")
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), k  # same weights as the run that never crashed
    assert not (d / "failed.json").exists()


def test_keep_going_records_the_failure_and_runs_the_rest(tmp_path):
    st = parse_study(study_dict(seeds=[0]))
    CRASH.update(at=1, weight=2.0)
    assert run_study(st, tmp_path, keep_going=True, log=quiet) == {"ran": 1, "skipped": 0, "failed": 1}
    failed = json.loads((tmp_path / st.cells[1].folder / "failed.json").read_text())
    assert failed["error"] == "RuntimeError: simulated crash at step 1" and failed["hash"] == st.cells[1].hash
    assert [cell_state(c, tmp_path) for c in st.cells] == ["done", "failed"]


def test_changed_study_refuses_to_mix_unless_told(tmp_path):
    st = parse_study(study_dict(seeds=[0]))
    run_study(st, tmp_path, log=quiet)
    longer = parse_study(study_dict(seeds=[0], steps=4))  # same folders, other configs
    with pytest.raises(StudyError, match=r"holds results of another version of this study \(2 cells changed"):
        run_study(longer, tmp_path, log=quiet)
    with pytest.raises(StudyError, match="2 cell folders hold results of another configuration"):
        run_study(longer, tmp_path, update=True, log=quiet)
    assert json.loads((tmp_path / "study.json").read_text())["hash"] == st.hash  # nothing recorded
    assert [cell_state(c, tmp_path) for c in longer.cells] == ["changed", "changed"]
    assert run_study(longer, tmp_path, update=True, redo_changed=True, log=quiet)["ran"] == 2
    for c in longer.cells:
        assert read_jsonl(tmp_path / c.folder / "metrics.jsonl")[-1]["step"] == 4
        assert json.loads((tmp_path / c.folder / "done.json").read_text())["hash"] == c.hash
    # an added grid value: --update keeps the finished cells and runs only the new one
    more = parse_study(study_dict(seeds=[0], steps=4, methods={"ae": {"recipe": "test/study-tiny-ae",
                                                                       "grid": {"model.weight": [1.0, 2.0, 3.0]}}}))
    with pytest.raises(StudyError, match="1 cells added"):
        run_study(more, tmp_path, log=quiet)
    assert run_study(more, tmp_path, update=True, log=quiet) == {"ran": 1, "skipped": 2, "failed": 0}


def test_foreign_folder_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(StudyError, match="no study.json; it is not this study's folder"):
        run_study(parse_study(study_dict(seeds=[0])), tmp_path, log=quiet)


@pytest.mark.parametrize("n", [0, 1, 4, 7, 12])
@pytest.mark.parametrize("world", [1, 2, 3, 5])
def test_partition_covers_every_cell_exactly_once(n, world):
    shares = [partition(n, r, world) for r in range(world)]
    flat = sorted(i for s in shares for i in s)
    assert flat == list(range(n))
    assert max(len(s) for s in shares) - min(len(s) for s in shares) <= 1


def test_partition_and_shard_errors_and_slurm():
    with pytest.raises(StudyError, match="--rank must be in"):
        partition(4, 2, 2)
    with pytest.raises(StudyError, match="--world must be >= 1"):
        partition(4, 0, 0)
    with pytest.raises(StudyError, match="go together"):
        shard_from_env(1, None, env={})
    assert shard_from_env(None, None, env={}) == (0, 1)
    assert shard_from_env(1, 3, env={"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "9"}) == (1, 3)
    env = {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "3", "SLURM_ARRAY_TASK_COUNT": "4"}
    assert shard_from_env(None, None, env=env) == (2, 4)
    with pytest.raises(StudyError, match="SLURM_ARRAY_TASK_COUNT is not"):
        shard_from_env(None, None, env={"SLURM_ARRAY_TASK_ID": "1"})


def test_ranks_share_one_study_folder(tmp_path):
    st = parse_study(study_dict())
    got = [run_study(st, tmp_path, rank=r, world=3, log=quiet) for r in range(3)]
    assert [g["ran"] for g in got] == [2, 1, 1]
    assert all(cell_state(c, tmp_path) == "done" for c in st.cells)


def test_evaluated_cell_matches_diffrep_eval(tmp_path, capsys):
    from diffrep.cli import main

    ev = {"metrics": ["mig", "sap"], "num_train": 40, "num_test": 20, "seed": 3, "device": "cpu"}
    st = parse_study(study_dict(seeds=[0], methods={"ae": {"recipe": "test/study-tiny-ae"}}, eval=ev))
    run_study(st, tmp_path, log=quiet)
    d = tmp_path / st.cells[0].folder
    m = json.loads((d / "metrics.json").read_text())
    assert m["meta"]["num_train"] == 40 and m["meta"]["dataset"] == "dsprites" and m["meta"]["pool"] == 4
    out = tmp_path / "eval.json"
    rc = main(["eval", "--model", str(d / "final"), "--metrics", "mig,sap", "--num-train", "40", "--num-test", "20",
               "--seed", "3", "--device", "cpu", "--out", str(out)])
    assert rc == 0
    ref = json.loads(out.read_text())["scores"]
    assert set(m["scores"]) == set(ref) and {"mig", "sap"} <= set(ref)
    for k in ref:
        np.testing.assert_allclose(m["scores"][k], ref[k], rtol=0, atol=1e-12, err_msg=k)


def test_a_method_without_encode_is_refused_before_training(tmp_path):
    st = parse_study({"seeds": [0], "steps": 2, "overrides": {"train.batch_size": 2, "train.device": "cpu"},
                      "methods": {"ddpm": "demo/toy-ddpm"}, "eval": {"metrics": ["mig"]}})
    with pytest.raises(StudyError, match=r"method ddpm \(demo/toy-ddpm\): ToyDDPM lacks the study surface.*no encode"):
        run_study(st, tmp_path, log=quiet)
    d = tmp_path / st.cells[0].folder
    assert not (d / "metrics.jsonl").exists() and not (d / "final").exists()


def test_a_cell_whose_evaluation_crashed_is_evaluated_without_retraining(tmp_path, monkeypatch):
    import diffrep.recipes.encode as enc

    ev = {"metrics": ["sap"], "num_train": 30, "num_test": 15, "device": "cpu"}
    st = parse_study(study_dict(seeds=[0], methods={"ae": {"recipe": "test/study-tiny-ae"}}, eval=ev))
    real = enc.encode_dataset

    def broken(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(enc, "encode_dataset", broken)
    with pytest.raises(StudyError, match="OSError: disk full"):
        run_study(st, tmp_path, log=quiet)
    (cell,) = st.cells
    assert cell_state(cell, tmp_path) == "failed"
    weights = tmp_path / cell.folder / "final" / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    monkeypatch.setattr(enc, "encode_dataset", real)
    (tmp_path / cell.folder / "failed.json").unlink()
    assert cell_state(cell, tmp_path) == "trained"
    assert run_study(st, tmp_path, log=quiet)["ran"] == 1
    assert weights.stat().st_mtime_ns == stamp and cell_state(cell, tmp_path) == "done"
    assert "sap" in json.loads((tmp_path / cell.folder / "metrics.json").read_text())["scores"]
