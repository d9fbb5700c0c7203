"""The trainer's deferred (CUDA) mode reads the input checks of the BFN and guidance ops of a training step
with the loss's, at the log interval's boundaries, not once per op (diffrep.train.log_interval.LogInterval.op_checks,
docs/architecture.md "Host synchronisation and the non-finite-loss check"). The CUDA path of the ops is emulated
on the CPU (helpers.emulate_cuda_ops: the CPU kernels behind the CUDA path's code), the trainer's CUDA mode forced.

Host reads of a run of N steps logged once (a toy loss of three native ops per step: continuous_flow, the
discretised continuous-time loss and log_posterior), besides the data order's: before -> after: 3 N + 1 -> 2
(the op flags and the loss check with the sums, at the log line). A bad op input raises its own ValueError, its message followed by
the step it came from, at the next boundary, before anything of it is logged or saved.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import diffrep.ops._deferred as deferred_module
import diffrep.train.log_interval as log_interval_module
import diffrep.train.trainer as trainer_module
from diffrep import _native
from diffrep.ops import bfn, guidance, use_backend
from diffrep.train import TrainConfig, Trainer
from diffrep.train.log_interval import LogInterval
from helpers import HostReads, emulate_cuda_ops

pytestmark = pytest.mark.skipif(not _native.cpu_available(), reason="the native CPU module is not built")

SIGMA1, BINS = 1e-3, 16


class _FlowLoss(nn.Module):
    """A toy BFN loss (continuous-time, discretised data; BFN Eq. 122) plus SAMI's log q(z | x) on the
    network's outputs: three native ops per micro-batch. At ``bad_step`` (1-based) the op named by ``bad``
    gets bad input: the flow's t = 1.5 ("t"), the loss's data outside [-1, 1] ("data"), a NaN mu for
    log_posterior ("mu"); ``nan_step`` makes the loss NaN; ``fail_step`` raises a RuntimeError after the ops."""

    def __init__(self, bad_step=0, bad="t", nan_step=0, fail_step=0):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(3, 6)
        self.bad_step, self.bad, self.nan_step, self.fail_step = bad_step, bad, nan_step, fail_step
        self.losses: list[float] = []

    def loss(self, batch, *, step, generator=None):
        (x,) = batch
        bad = step + 1 == self.bad_step
        t = torch.rand(x.shape[0])
        if bad and self.bad == "t":
            t[1] = 1.5
        mu = bfn.continuous_flow(x, t, SIGMA1)
        out = self.lin(mu)
        data = x.clone()
        if bad and self.bad == "data":
            data[0, 2] = 3.0
        loss = bfn.discretised_continuous_time_loss(out[:, :3], out[:, 3:], mu, t, data, SIGMA1, BINS).mean()
        z_mu = out[:, :3] + (math.nan if bad and self.bad == "mu" else 0.0)
        loss = loss - 1e-3 * guidance.log_posterior(x, z_mu, out[:, 3:].clamp(-3, 3)).mean()
        if step + 1 == self.nan_step:
            loss = loss * math.nan
        if step + 1 == self.fail_step:
            raise RuntimeError("a later failure")
        self.losses.append(loss.detach().item())
        return {"loss": loss}


def _data():
    bins = torch.randint(0, BINS, (64, 3), generator=torch.Generator().manual_seed(1))  # 8 steps per epoch
    return TensorDataset((bins + 0.5) / BINS * 2 - 1)  # the bin centres: discretised data in [-1, 1]


def _cfg(steps, **kw):
    return TrainConfig(**{**dict(steps=steps, batch_size=8, lr=1e-2, ema_decay=0.5, log_every=steps, ckpt_every=0,
                                 device="cpu", seed=0, grad_clip=0.0), **kw})


@pytest.fixture
def cuda_mode(monkeypatch):
    """The ops' CUDA path (the CPU kernels behind it) and the trainer's CUDA mode, forced on the CPU."""
    launched = emulate_cuda_ops(monkeypatch)
    monkeypatch.setattr(trainer_module, "LogInterval", functools.partial(LogInterval, deferred=True))
    with use_backend("cuda"):
        yield launched


class _LossReadsUncounted(HostReads):
    """HostReads, less the model's own ``.item()`` of each loss (its record, not the trainer's)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") == "item" and args and args[0].dim() == 0 and args[0].dtype == torch.float32:
            return func(*args, **(kwargs or {}))
        return super().__torch_function__(func, types, args, kwargs)


def _records(run: Path) -> list[dict]:
    f = run / "metrics.jsonl"
    return [json.loads(line) for line in f.read_text().splitlines()] if f.exists() else []


def _reads_of_a_run(tmp_path, steps, **kw) -> tuple[int, list]:
    with _LossReadsUncounted() as r:
        records = Trainer(_FlowLoss(), _data(), _cfg(steps, **kw), tmp_path / f"run{steps}").train()
    return r.count, records


def test_a_training_step_reads_no_op_flags_and_the_numbers_are_the_cpu_paths(tmp_path, cuda_mode):
    reads = {n: _reads_of_a_run(tmp_path, n)[0] for n in (2, 6)}
    with use_backend("cpu", strict=True):  # the CPU kernels' flags are host memory (not counted)
        cpu_reads = _reads_of_a_run(tmp_path / "cpu", 6)[0]
    # the ops' flags, then the loss check with the sums: at the log line only (the rest: the epoch's data order)
    assert reads[2] == reads[6] == cpu_reads + 1 == 3
    assert cuda_mode[:4] == ["cts_flow", "disc_cts_loss", "log_posterior_fwd", "log_posterior_bwd"] and len(cuda_mode) == 4 * 8
    _, got = _reads_of_a_run(tmp_path / "cuda", 6, log_every=2)
    with use_backend("cpu", strict=True):  # the CPU kernels called directly: the same numbers, bit for bit
        _, want = _reads_of_a_run(tmp_path / "cpu2", 6, log_every=2)
    assert json.dumps(got) == json.dumps(want) and len(got) == 3


def test_the_immediate_mode_reads_each_ops_flags_as_before(tmp_path, monkeypatch):
    emulate_cuda_ops(monkeypatch)
    monkeypatch.setattr(trainer_module, "LogInterval", functools.partial(LogInterval, deferred=False))
    with use_backend("cuda"):
        reads = {n: _reads_of_a_run(tmp_path, n)[0] for n in (2, 6)}
    assert reads[6] - reads[2] == 4 * (3 + 1)  # per step: the three ops' flags and the loss check


@pytest.mark.parametrize("bad,message", [
    ("t", "t must lie in [0, 1] (and not be NaN); found 1.5"),
    ("data", "x must lie in [-1, 1]"),
    ("mu", "z, mu or logvar contains NaN"),
])
@pytest.mark.parametrize("kw,found_at,since", [
    (dict(log_every=4, ckpt_every=4), 8, 5),  # the next log line (and checkpoint)
    (dict(log_every=4, ckpt_every=3), 6, 5),  # a checkpoint between two log lines
    (dict(log_every=10, sample_every=7), 7, 1),  # a sample grid
])
def test_a_flagged_op_raises_its_message_and_step_at_the_next_boundary_before_writing(tmp_path, cuda_mode, bad, message,
                                                                                      kw, found_at, since):
    m = _FlowLoss(bad_step=5, bad=bad)
    with pytest.raises(ValueError) as exc:
        Trainer(m, _data(), _cfg(12, **kw), tmp_path).train()
    msg = str(exc.value)
    assert message in msg and msg.index(message) < msg.index("(at step 5). Found by the check after step "
                                                             f"{found_at} (on cpu the input checks of the BFN")
    assert msg.endswith(f"nothing of steps {since}-{found_at} was logged or saved")
    assert message in str(exc.value.__cause__)  # the op's own error, as it raises outside the trainer
    assert len(m.losses) == found_at  # the steps after the flagged one ran on
    assert all(r["step"] < 5 for r in _records(tmp_path))
    saved = sorted((tmp_path / "checkpoints").glob("step-*")) if (tmp_path / "checkpoints").exists() else []
    assert [int(p.name[5:]) for p in saved] == ([4] if kw.get("ckpt_every") == 4 else [3] if kw.get("ckpt_every") else [])
    assert not (tmp_path / "final").exists()


def test_on_the_cpu_a_bad_op_input_raises_at_once_as_before(tmp_path):
    m = _FlowLoss(bad_step=5, bad="t")
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\] \(and not be NaN\); found 1.5$"):
        Trainer(m, _data(), _cfg(12, log_every=4), tmp_path).train()
    assert len(m.losses) == 4 and [r["step"] for r in _records(tmp_path)] == [4]


def test_the_earlier_of_a_non_finite_loss_and_a_flagged_op_is_reported(tmp_path, cuda_mode):
    with pytest.raises(FloatingPointError, match=r"^non-finite loss nan at step 3: .* check after step 8 "):
        Trainer(_FlowLoss(bad_step=5, nan_step=3), _data(), _cfg(12, log_every=8), tmp_path / "a").train()
    with pytest.raises(ValueError, match=r"found 1.5 \(at step 5\). Found by the check after step 8 "):
        Trainer(_FlowLoss(bad_step=5, nan_step=5), _data(), _cfg(12, log_every=8), tmp_path / "b").train()


def test_a_full_buffer_is_read_during_a_step_and_names_the_flagged_ops_step(tmp_path, cuda_mode, monkeypatch):
    monkeypatch.setattr(deferred_module, "CAPACITY", 4)  # three ops per step: full during step 2, 3, 4, 6, ...
    m = _FlowLoss(bad_step=5, bad="mu")
    with pytest.raises(ValueError, match=r"z, mu or logvar contains NaN .*\(at step 5\). Found when the buffer of op "
                                         r"checks filled during step 6 .* nothing of steps 1-6 was logged or saved$"):
        Trainer(m, _data(), _cfg(12, log_every=10), tmp_path).train()
    assert len(m.losses) == 5 and _records(tmp_path) == []


def test_an_error_after_a_flagged_op_is_reported_with_the_op_as_its_likely_cause(tmp_path, cuda_mode):
    with pytest.raises(ValueError, match=r"found 1.5 \(at step 5\). Found after step 5 failed ") as exc:
        Trainer(_FlowLoss(bad_step=5, fail_step=5), _data(), _cfg(12, log_every=4), tmp_path).train()
    assert isinstance(exc.value.__cause__, RuntimeError)
    with pytest.raises(RuntimeError, match="a later failure"):  # nothing flagged: the error as it was
        Trainer(_FlowLoss(fail_step=5), _data(), _cfg(12, log_every=4), tmp_path / "b").train()


def test_under_ddp_every_rank_raises_for_the_earliest_flagged_op(cuda_mode, monkeypatch):
    """Another rank's op flagged at step 2 (the all-reduce of the earliest steps emulated): this rank, whose
    ops were clean, raises too, naming the step; the rank whose op flagged raises its own message."""
    def other_rank_flagged_at_2(t):
        t[1] = torch.minimum(t[1], torch.tensor(2.0, dtype=t.dtype))
        return t

    monkeypatch.setattr(log_interval_module.D, "all_reduce_min_", other_rank_flagged_at_2)
    iv = LogInterval("cpu", deferred=True)
    for step in (1, 2, 3):
        with iv.op_checks(step):
            bfn.continuous_flow(torch.zeros(2, 3), torch.full((2,), 0.5), SIGMA1)
        iv.check_loss(torch.tensor(1.0), step)
        iv.add({"loss": torch.tensor(1.0)})
    with pytest.raises(ValueError, match=r"^a native op \(BFN, guidance, MMD or HDDC\) flagged its input on another rank \(at step 2\). "
                                         r"Found by the check after step 3 .* steps 1-3 was logged or saved$"):
        iv.flush(3)
    monkeypatch.setattr(log_interval_module.D, "all_reduce_min_", lambda t: t)  # the other ranks clean
    with iv.op_checks(4):
        bfn.continuous_flow(torch.zeros(2, 3), torch.full((2,), 1.5), SIGMA1)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\] \(and not be NaN\); found 1.5 \(at step 4\). Found by the "
                                         r"check after step 4 .* steps 4-4 was logged or saved$"):
        iv.check(4)
