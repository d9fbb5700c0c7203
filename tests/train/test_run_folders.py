"""Run folders never mix (issue 17 item 14): a folder holding a run is refused unless resumed or
overwritten; overwrite deletes only what diffrep wrote; --resume latest without a checkpoint starts
fresh and says so; a corrupt newest checkpoint names the older valid one and the --resume PATH."""

import json
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from helpers import TinyLinear as _Lin
from diffrep.cli import main
from diffrep.train import RunFolderError, TrainConfig, Trainer, list_checkpoints, read_metrics




def _data():
    return TensorDataset(torch.randn(16, 2, generator=torch.Generator().manual_seed(0)))


def _cfg(steps, **kw):
    return TrainConfig(**{**dict(steps=steps, batch_size=4, lr=1e-2, ema_decay=0.0, log_every=1, ckpt_every=0,
                                 device="cpu", seed=0), **kw})


def _steps(run):
    return [r["step"] for r in read_metrics(Path(run) / "metrics.jsonl")]


def test_a_second_fresh_run_into_the_same_folder_is_refused(tmp_path):
    Trainer(_Lin(), _data(), _cfg(4, ckpt_every=2), tmp_path).train()
    before = (tmp_path / "metrics.jsonl").read_text()
    with pytest.raises(RunFolderError, match=r"already holds a run.*--resume latest.*--overwrite"):
        Trainer(_Lin(), _data(), _cfg(3), tmp_path).train()
    assert (tmp_path / "metrics.jsonl").read_text() == before  # untouched: no step 1..3 appended
    assert [s for s, _ in list_checkpoints(tmp_path / "checkpoints")] == [2, 4]


def test_overwrite_clears_only_what_diffrep_wrote(tmp_path):
    Trainer(_Lin(), _data(), _cfg(4, ckpt_every=2), tmp_path).train()
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "checkpoints" / "my-export.bin").write_bytes(b"x")
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "README").write_text("mine too")
    Trainer(_Lin(), _data(), _cfg(3), tmp_path).train(overwrite=True)
    assert _steps(tmp_path) == [1, 2, 3]  # only the new run's records
    assert [s for s, _ in list_checkpoints(tmp_path / "checkpoints")] == [3]  # the old step-2/4 are gone
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert (tmp_path / "checkpoints" / "my-export.bin").read_bytes() == b"x"
    assert (tmp_path / "images" / "README").read_text() == "mine too"


def test_overwrite_never_deletes_a_folder_that_is_not_a_diffrep_run(tmp_path):
    (tmp_path / "final").mkdir()
    (tmp_path / "final" / "thesis.tex").write_text("do not delete")
    (tmp_path / "metrics.jsonl").write_text("accuracy 0.9\n")
    with pytest.raises(RunFolderError, match="does not look like a diffrep run"):
        Trainer(_Lin(), _data(), _cfg(2), tmp_path).train(overwrite=True)
    assert (tmp_path / "final" / "thesis.tex").read_text() == "do not delete"
    assert (tmp_path / "metrics.jsonl").read_text() == "accuracy 0.9\n"


def test_overwrite_and_resume_exclude_each_other(tmp_path):
    with pytest.raises(RunFolderError, match="exclude each other"):
        Trainer(_Lin(), _data(), _cfg(2), tmp_path).train(resume="latest", overwrite=True)


def test_resume_latest_without_a_checkpoint_starts_fresh_and_says_so(tmp_path, capsys):
    # a run killed before its first checkpoint: two logged steps, no checkpoint
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 9.0}\n{"step": 2, "loss": 8.0}\n')
    Trainer(_Lin(), _data(), _cfg(3), tmp_path).train(resume="latest")
    assert "starting a fresh run from step 0" in capsys.readouterr().err
    assert _steps(tmp_path) == [1, 2, 3]
    assert read_metrics(tmp_path / "metrics.jsonl")[0]["loss"] != 9.0  # the stale records were dropped


def test_resume_latest_without_a_checkpoint_message(tmp_path, capsys):
    Trainer(_Lin(), _data(), _cfg(1), tmp_path).train(resume="latest")
    err = capsys.readouterr().err
    assert f"no checkpoint under {tmp_path / 'checkpoints'}; starting a fresh run from step 0" in err


def test_corrupt_newest_checkpoint_names_the_older_valid_one(tmp_path):
    Trainer(_Lin(), _data(), _cfg(3, ckpt_every=1, keep_checkpoints=3), tmp_path).train()
    newest = tmp_path / "checkpoints" / "step-00000003"
    older = tmp_path / "checkpoints" / "step-00000002"
    with open(newest / "trainer_state.pt", "r+b") as fh:  # flip bytes: the manifest's SHA-256 no longer matches
        fh.seek(10)
        fh.write(b"\xff\xfe\xfd")
    with pytest.raises(RunFolderError) as err:
        Trainer(_Lin(), _data(), _cfg(5), tmp_path).train(resume="latest")
    msg = str(err.value)
    assert str(newest) in msg and "corrupt" in msg and f"--resume {older}" in msg and "step 2" in msg
    hist = Trainer(_Lin(), _data(), _cfg(5), tmp_path).train(resume=older)
    assert [h["step"] for h in hist] == [3, 4, 5] and _steps(tmp_path) == [1, 2, 3, 4, 5]


def _cli(out, *extra):
    return main(["train", "demo/toy-ddpm", "--out", str(out), "--train.steps", "4", "--train.batch_size", "8",
                 "--data.num_images", "16", "--train.log_every", "2", "--train.ckpt_every", "2",
                 "--train.sample_every", "0", "--train.device", "cpu", *extra])


def test_cli_refuses_a_second_run_and_keeps_the_first_runs_config(tmp_path, capsys):
    out = tmp_path / "run"
    assert _cli(out) == 0
    config = (out / "config.yaml").read_text()
    capsys.readouterr()
    assert _cli(out, "--train.lr", "0.5") == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--overwrite" in err and "Traceback" not in err
    assert (out / "config.yaml").read_text() == config  # the first run's config was not replaced
    assert _steps(out) == [2, 4]
    assert _cli(out, "--train.steps", "2", "--overwrite") == 0
    assert _steps(out) == [2] and [s for s, _ in list_checkpoints(out / "checkpoints")] == [2]
    assert "steps: 2" in (out / "config.yaml").read_text()
    info = json.loads((out / "run.json").read_text())
    assert info["recipe"] == "demo/toy-ddpm" and info["data"]["dataset"] == "toy_shapes"


def test_quickstart_refuses_an_earlier_run_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "qs"
    (out / "run").mkdir(parents=True)
    (out / "run" / "metrics.jsonl").write_text('{"step": 50, "loss": 1.0}\n')
    assert main(["quickstart", "--recipe", "paramrel/digits", "--steps", "1", "--sample-steps", "1", "--eval", "none",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "already holds a quickstart run" in err and "--overwrite" in err and "--resume" not in err
    assert "Traceback" not in err
    assert (out / "run" / "metrics.jsonl").read_text() == '{"step": 50, "loss": 1.0}\n'


def test_resuming_another_runs_checkpoint_into_a_folder_holding_a_run_is_refused(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    Trainer(_Lin(), _data(), _cfg(2, ckpt_every=2), a).train()
    Trainer(_Lin(), _data(), _cfg(3), b).train()
    with pytest.raises(RunFolderError, match="another run folder"):
        Trainer(_Lin(), _data(), _cfg(4), b).train(resume=a / "checkpoints" / "step-00000002")
    hist = Trainer(_Lin(), _data(), _cfg(4), tmp_path / "c").train(resume=a / "checkpoints" / "step-00000002")
    assert [h["step"] for h in hist] == [3, 4]  # a fresh folder continues it
