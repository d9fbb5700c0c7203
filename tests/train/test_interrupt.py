"""Ctrl-C and SIGTERM save a checkpoint at the current step, print how to resume and exit non-zero
without a traceback; under SLURM, N independent copies of one run are refused (issue 17 item 15)."""

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from helpers import TinyLinear as _Lin
from diffrep.cli import main
from diffrep.train import (LaunchError, TrainConfig, Trainer, TrainingInterrupted, check_launch, list_checkpoints,
                           read_metrics, verify_checkpoint)

PYTHON = Path(__file__).resolve().parents[2] / "python"


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1",
            "PYTHONPATH": str(PYTHON) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _start(out):
    cmd = [sys.executable, "-m", "diffrep.cli", "train", "demo/toy-ddpm", "--out", str(out),
           "--train.steps", "100000", "--train.batch_size", "8", "--data.num_images", "16", "--train.log_every", "1",
           "--train.ckpt_every", "0", "--train.sample_every", "0", "--train.device", "cpu"]
    return subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_steps(proc, out, n, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        m = out / "metrics.jsonl"
        if m.is_file() and len(m.read_text().splitlines()) >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"training exited early: {proc.communicate()[1][-2000:]}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("training did not reach the step in time")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_real_signal_saves_a_checkpoint_and_prints_how_to_resume(tmp_path, sig):
    out = tmp_path / "run"
    proc = _start(out)
    _wait_for_steps(proc, out, 3)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err[-2000:]
    assert "Traceback" not in err, err[-3000:]
    m = re.search(r"interrupted at step (\d+); resume with: (.*)", err)
    assert m, err[-2000:]
    step, command = int(m.group(1)), m.group(2)
    assert step >= 3
    # the checkpoint is at the step the message names, complete and valid; the log ends there
    assert [s for s, _ in list_checkpoints(out / "checkpoints")] == [step]
    verify_checkpoint(out / "checkpoints" / f"step-{step:08d}")
    assert read_metrics(out / "metrics.jsonl")[-1]["step"] == step
    # the printed command resumes the run (shortened to two more steps; through the ``diffrep`` entry
    # point's function in this process: the signal path above is the part that needs a real process)
    args = shlex.split(command)
    assert args[:3] == ["diffrep", "train", "demo/toy-ddpm"] and "--resume" in args and "latest" in args
    assert main([*args[1:], "--train.steps", str(step + 2)]) == 0
    steps = [rec["step"] for rec in read_metrics(out / "metrics.jsonl")]
    assert steps == list(range(1, step + 3))




def test_the_library_trainer_raises_training_interrupted(tmp_path):
    cfg = TrainConfig(steps=50, batch_size=4, lr=1e-2, ema_decay=0.0, log_every=1, ckpt_every=0, device="cpu")
    kill = lambda tr, step, m: os.kill(os.getpid(), signal.SIGINT) if step == 3 else None  # noqa: E731
    before = signal.getsignal(signal.SIGINT)  # default_int_handler, or SIG_IGN under nohup / a background job
    with pytest.raises(TrainingInterrupted) as exc:
        Trainer(_Lin(), TensorDataset(torch.randn(16, 2)), cfg, tmp_path, callbacks=[kill]).train()
    assert exc.value.step == 3 and exc.value.signum == signal.SIGINT
    assert exc.value.checkpoint == tmp_path / "checkpoints" / "step-00000003"
    assert [s for s, _ in list_checkpoints(tmp_path / "checkpoints")] == [3]
    assert signal.getsignal(signal.SIGINT) is before  # the handler is restored
    assert not (tmp_path / "final").exists()  # an interrupted run has no final/ weights


def test_slurm_tasks_without_world_size_are_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("SLURM_NTASKS", "4")
    out = tmp_path / "run"
    assert main(["train", "demo/toy-ddpm", "--out", str(out), "--train.steps", "1", "--train.device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "SLURM_NTASKS=4" in err and "WORLD_SIZE" in err and "torchrun" in err and "Traceback" not in err
    assert not out.exists()  # refused before anything was written
    cfg = TrainConfig(steps=1, batch_size=4, device="cpu", ema_decay=0.0)
    with pytest.raises(LaunchError, match="independent copies"):
        Trainer(_Lin(), TensorDataset(torch.randn(8, 2)), cfg, tmp_path / "lib").train()
    check_launch({"SLURM_NTASKS": "4", "WORLD_SIZE": "4"})  # torchrun inside SLURM: fine
    check_launch({"SLURM_NTASKS": "1"})
    check_launch({})
