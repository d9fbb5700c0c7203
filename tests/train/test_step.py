"""The trainer passes every model its 0-based step (the method surface of diffrep.methods.base)."""

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from diffrep.train import TrainConfig, Trainer


def _cfg(steps, **kw):
    return TrainConfig(**{**dict(steps=steps, batch_size=4, lr=1e-2, ema_decay=0.0, log_every=1, ckpt_every=0,
                                 device="cpu", seed=0), **kw})


class _Recorder(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 1)
        self.steps: list[int] = []

    def loss(self, batch, *, step, generator=None):
        self.steps.append(step)
        return {"loss": self.lin(batch[0]).pow(2).mean()}


def test_trainer_passes_the_step_and_resume_continues_it(tmp_path):
    data = TensorDataset(torch.randn(16, 2))
    m = _Recorder()
    Trainer(m, data, _cfg(3, ckpt_every=3), tmp_path).train()
    assert m.steps == [0, 1, 2]
    m2 = _Recorder()
    Trainer(m2, data, _cfg(5), tmp_path).train(resume="latest")
    assert m2.steps == [3, 4]


class _Legacy(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 1)

    def loss(self, batch):
        return {"loss": self.lin(batch[0]).pow(2).mean()}


def test_a_loss_without_step_still_trains_with_a_deprecation_warning(tmp_path):
    with pytest.warns(DeprecationWarning, match="step"):
        tr = Trainer(_Legacy(), TensorDataset(torch.randn(8, 2)), _cfg(2), tmp_path)
    assert len(tr.train()) == 2
