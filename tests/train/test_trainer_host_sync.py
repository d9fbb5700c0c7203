"""The trainer reads training numbers back to the host once per log interval on CUDA (diffrep.train.log_interval,
docs/architecture.md "Host synchronisation and the non-finite-loss check"): the logged averages are those of the
per-step numbers, a non-finite loss still raises naming its step before anything of it is written, and the
deferred (CUDA) mode runs here on CPU tensors with the mode forced."""

import functools
import json
import math
import os
import re
import signal
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.data import TensorDataset

import diffrep.train.trainer as trainer_module
from diffrep.train import TrainConfig, Trainer
from diffrep.train.evaluation import PeriodicEvaluation
from diffrep.train.log_interval import LogInterval, StepMetrics

_OURS = (str(Path(trainer_module.__file__)), str(Path(trainer_module.__file__).with_name("log_interval.py")))


class _HostReads(TorchFunctionMode):
    """Counts the tensor -> Python reads (each a host-device synchronisation on CUDA) made by the trainer's own
    code: float(), int(), bool() (a Python ``if``), .item(), .tolist() called from trainer.py or log_interval.py."""

    READS = {"__float__", "__int__", "__bool__", "item", "tolist"}

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in self.READS and sys._getframe(1).f_code.co_filename in _OURS:
            self.count += 1
        return func(*args, **(kwargs or {}))


class _Line(nn.Module):
    """A linear regression that records each micro-batch's loss; ``bad_step`` (1-based) returns a NaN loss."""

    def __init__(self, bad_step: int = 0, bad=math.nan):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(2, 1)
        self.bad_step, self.bad = bad_step, bad
        self.losses: list[float] = []

    def loss(self, batch, *, step, generator=None):
        (x,) = batch
        loss = (self.lin(x).squeeze(1) - x.sum(1)).pow(2).mean()
        if step + 1 == self.bad_step:
            loss = loss * self.bad
        self.losses.append(float(loss.detach()))
        out = {"loss": loss, "const": 0.25}
        if step % 2:
            out["odd"] = loss.detach() * 3
        return out


def _data():
    return TensorDataset(torch.randn(32, 2, generator=torch.Generator().manual_seed(1)))


def _cfg(steps, **kw):
    return TrainConfig(**{**dict(steps=steps, batch_size=8, lr=1e-2, ema_decay=0.5, log_every=3, ckpt_every=0,
                                 device="cpu", seed=0, grad_clip=0.0), **kw})


@pytest.fixture
def deferred(monkeypatch):
    """The trainer's CUDA mode (loss checked at the boundaries, not per step) forced on the CPU."""
    monkeypatch.setattr(trainer_module, "LogInterval", functools.partial(LogInterval, deferred=True))


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _all_finite(ckpt: Path) -> bool:
    from safetensors.torch import load_file

    files = sorted(ckpt.glob("*.safetensors"))
    assert files, f"no weights in {ckpt}"
    return all(bool(torch.isfinite(t).all()) for f in files for t in load_file(str(f)).values())


# -- (a) the logged averages are the per-step numbers' means ----------------------------------------------------
def test_logged_metrics_are_the_means_of_the_per_step_losses(tmp_path):
    m = _Line()
    records = Trainer(m, _data(), _cfg(7), tmp_path).train()
    assert [r["step"] for r in records] == [3, 6, 7]
    bounds = [(0, 3), (3, 6), (6, 7)]
    for r, (a, b) in zip(records, bounds):
        s = 0.0
        for v in m.losses[a:b]:  # the float32 losses, summed in order as Python floats
            s += v
        assert r["loss"] == s / (b - a)
        assert r["const"] == 0.25
        odd = 0.0  # present on 0-based odd steps only; the average is over all steps of the interval
        for i in range(a, b):
            if i % 2:
                odd += float(torch.tensor(m.losses[i], dtype=torch.float32) * 3)
        assert r.get("odd") == (odd / (b - a) if any(i % 2 for i in range(a, b)) else None)
    assert list(records[0]) == ["step", "loss", "const", "odd", "lr"]  # insertion order, as before


def test_the_deferred_mode_logs_bit_identical_numbers(tmp_path, monkeypatch):
    kw = dict(grad_accum_steps=2, grad_clip=1.0, mixed_precision="fp16", ckpt_every=4)
    ref = Trainer(_Line(), _data(), _cfg(9, **kw), tmp_path / "a").train()
    monkeypatch.setattr(trainer_module, "LogInterval", functools.partial(LogInterval, deferred=True))
    got = Trainer(_Line(), _data(), _cfg(9, **kw), tmp_path / "b").train()
    assert {"grad_norm", "loss_scale"} <= set(ref[0])
    assert json.dumps(got) == json.dumps(ref)  # NaN included (a skipped fp16 step's gradient norm)
    assert (tmp_path / "a" / "metrics.jsonl").read_bytes() == (tmp_path / "b" / "metrics.jsonl").read_bytes()


def test_deferred_mode_reads_the_device_once_per_log_line(tmp_path, deferred):
    with _HostReads() as reads:
        Trainer(_Line(), _data(), _cfg(12, log_every=4, grad_accum_steps=2, grad_clip=1.0), tmp_path).train()
    assert reads.count == 3  # the flushes at steps 4, 8 and 12


def test_immediate_mode_checks_every_micro_batch(tmp_path):
    # the counter sees the per-step reads the CPU mode keeps: one `if` per micro-batch, plus the 3 flushes
    with _HostReads() as reads:
        Trainer(_Line(), _data(), _cfg(12, log_every=4, grad_accum_steps=2), tmp_path).train()
    assert reads.count == 12 * 2 + 3


# -- (b) a non-finite loss raises with its step, and nothing of it is written -------------------------------------
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_cpu_mode_raises_at_the_step_before_its_backward(tmp_path, bad):
    m = _Line(bad_step=5, bad=bad)
    with pytest.raises(FloatingPointError, match=rf"^non-finite loss {bad} at step 5: the run diverged"):
        Trainer(m, _data(), _cfg(10, log_every=2, ckpt_every=2), tmp_path).train()
    assert [r["step"] for r in _records(tmp_path)] == [2, 4]
    ckpts = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert ckpts == ["step-00000002", "step-00000004"]
    assert all(_all_finite(tmp_path / "checkpoints" / c) for c in ckpts)
    assert all(torch.isfinite(p).all() for p in m.parameters())  # raised before the NaN reached the weights
    assert not (tmp_path / "final").exists()


@pytest.mark.parametrize("kw,found_at", [
    (dict(log_every=4, ckpt_every=4), 8),  # the next log line (and checkpoint)
    (dict(log_every=4, ckpt_every=3), 6),  # a checkpoint between two log lines
    (dict(log_every=10, sample_every=7), 7),  # a sample grid
])
def test_deferred_mode_raises_at_the_next_boundary_before_writing(tmp_path, deferred, kw, found_at):
    m = _Line(bad_step=5)
    with pytest.raises(FloatingPointError) as exc:
        Trainer(m, _data(), _cfg(12, **kw), tmp_path).train()
    msg = str(exc.value)
    assert msg.startswith("non-finite loss nan at step 5: the run diverged")
    last_check = 4 if kw["log_every"] == 4 else (3 if kw.get("ckpt_every") == 3 else 0)
    assert f"check after step {found_at}" in msg and f"steps {last_check + 1}-{found_at} was logged or saved" in msg
    assert not any(torch.isfinite(p).all() for p in m.parameters())  # the run did go on with NaN weights
    assert all(r["step"] < 5 for r in _records(tmp_path)) if (tmp_path / "metrics.jsonl").exists() else True
    saved = sorted((tmp_path / "checkpoints").glob("step-*")) if (tmp_path / "checkpoints").exists() else []
    assert all(int(p.name[5:]) < 5 and _all_finite(p) for p in saved)
    assert not (tmp_path / "images" / "samples").exists() or not any((tmp_path / "images" / "samples").iterdir())
    assert not (tmp_path / "final").exists()


def test_deferred_mode_checks_before_an_evaluation_and_a_callbacks_record(tmp_path, deferred):
    evaluated = []
    probe = PeriodicEvaluation(3, {"w": lambda model: (evaluated.append(1), {"s": 0.0})[1]}, use_ema=False)
    with pytest.raises(FloatingPointError, match="at step 2: .* check after step 3 "):
        Trainer(_Line(bad_step=2), _data(), _cfg(9, log_every=10), tmp_path / "a", callbacks=[probe]).train()
    assert evaluated == []
    record = lambda tr, step, metrics: {"extra": 1.0} if step == 4 else None  # noqa: E731
    with pytest.raises(FloatingPointError, match="at step 3: .* check after step 4 "):
        Trainer(_Line(bad_step=3), _data(), _cfg(9, log_every=10), tmp_path / "b", callbacks=[record]).train()
    assert not (tmp_path / "b" / "metrics.jsonl").exists() or _records(tmp_path / "b") == []


def test_deferred_mode_checks_before_the_interrupts_checkpoint(tmp_path, deferred):
    kill = lambda tr, step, m: os.kill(os.getpid(), signal.SIGINT) if step == 6 else None  # noqa: E731
    with pytest.raises(BaseException) as exc:  # not TrainingInterrupted (a KeyboardInterrupt) after a save
        Trainer(_Line(bad_step=5), _data(), _cfg(20, log_every=10), tmp_path, callbacks=[kill]).train()
    assert isinstance(exc.value, FloatingPointError), repr(exc.value)
    assert re.search("at step 5: .* check after step 6 ", str(exc.value))
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").glob("step-*"))


# -- (c) LogInterval itself, in both modes, on CPU tensors ----------------------------------------------------
def test_log_interval_sums_in_float64_and_keeps_the_order():
    vals = [torch.tensor(v, dtype=torch.float32) for v in (0.1, 1e8, -1e8, 1 / 3)]
    iv = LogInterval("cpu", deferred=True)
    for i, v in enumerate(vals):
        iv.add({"a": v, "n": i, **({"b": v * 2} if i == 1 else {})})
    avg = iv.flush(4)
    s = 0.0
    for v in vals:
        s += float(v)
    assert avg == {"a": s / 4, "n": (0 + 1 + 2 + 3) / 4, "b": float(vals[1] * 2) / 4}
    assert list(avg) == ["a", "n", "b"] and iv.count == 0
    with pytest.raises(RuntimeError, match="no step was added"):
        iv.flush(5)


def test_log_interval_deferred_check_names_the_first_non_finite_step():
    iv = LogInterval("cpu", deferred=True, start=10)
    for step, v in [(11, 1.0), (12, math.inf), (13, math.nan), (14, 2.0)]:
        iv.check_loss(torch.tensor(v), step)  # no raise here: the check is deferred
        iv.add({"loss": torch.tensor(v)})
    with pytest.raises(FloatingPointError, match=r"^non-finite loss inf at step 12: .*check after step 14 .*"
                                                 r"nothing of steps 11-14 was logged or saved"):
        iv.check(14, collective=False)
    with pytest.raises(FloatingPointError, match="at step 12"):  # a rank-local check leaves them to the next one
        iv.flush(14)


def test_log_interval_reads_once_and_only_when_something_is_pending():
    iv = LogInterval("cpu", deferred=True)
    with _HostReads() as reads:
        iv.check(0)  # nothing noted: no read
        for step in (1, 2, 3):
            iv.check_loss(torch.tensor(0.5 * step), step)
            iv.add({"loss": torch.tensor(0.5 * step), "g": torch.tensor(1.0, dtype=torch.float64)})
        avg = iv.flush(3)  # the check and the sums in one read
        iv.check(3)  # flushed: nothing pending
    assert reads.count == 1 and avg == {"loss": 1.0, "g": 1.0}
    iv.check_loss(torch.tensor(1.0), 4)
    with _HostReads() as reads:
        iv.check(4)
    assert reads.count == 1


def test_log_interval_immediate_mode_raises_at_once_with_the_step():
    iv = LogInterval("cpu")
    assert not iv.deferred and LogInterval("cpu", deferred=True).deferred
    iv.check_loss(torch.tensor(1.0), 1)
    with pytest.raises(FloatingPointError, match=r"^non-finite loss nan at step 2: the run diverged"):
        iv.check_loss(torch.tensor([math.nan]), 2)


def test_step_metrics_read_only_what_is_asked():
    m = StepMetrics({"loss": torch.tensor(0.5), "c": 2.0})
    assert len(m) == 2 and list(m) == ["loss", "c"]
    assert m["loss"] == 0.5 and isinstance(m["loss"], float) and dict(m) == {"loss": 0.5, "c": 2.0}
    with pytest.raises(KeyError):
        m["nope"]


def test_log_interval_refuses_bad_inputs():
    iv = LogInterval("cpu", deferred=True)
    with pytest.raises(ValueError, match="must be a scalar"):
        iv.add({"v": torch.ones(2)})
    with pytest.raises(TypeError, match="must be a tensor or a number"):
        iv.add({"v": "x"})
    with pytest.raises(ValueError, match="step"):
        iv.check_loss(torch.tensor(1.0), 0)
    with pytest.raises(TypeError, match="loss must be a tensor"):
        iv.check_loss(1.0, 1)
    with pytest.raises(TypeError, match="deferred"):
        LogInterval("cpu", deferred=1)
    with pytest.raises(ValueError, match="start"):
        LogInterval("cpu", start=-1)
    with pytest.raises(ValueError, match="step"):
        PeriodicEvaluation(2, {"x": lambda m: {}}).due(-1, 4)
