"""The DDP test's run: under torchrun (2 gloo ranks, child processes) or alone (``main`` in the test's own
process); rank r writes params-r.pt."""

import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from diffrep.train import TrainConfig, Trainer
from diffrep.train.distributed import get_rank


class Regressor(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))

    def loss(self, batch, *, step, generator=None):
        x, y = batch
        return {"loss": ((self.net(x) - y) ** 2).mean()}


def main(argv):
    out = Path(argv[0])
    accum = int(argv[1]) if len(argv) > 1 else 1  # gradient accumulation micro-batches per step
    no_sync_calls = []
    _no_sync = nn.parallel.DistributedDataParallel.no_sync

    def _counting_no_sync(self):
        no_sync_calls.append(1)
        return _no_sync(self)

    nn.parallel.DistributedDataParallel.no_sync = _counting_no_sync
    try:
        torch.set_num_threads(1)
        g = torch.Generator().manual_seed(123)
        data = TensorDataset(torch.randn(48, 4, generator=g), torch.randn(48, 1, generator=g))
        torch.manual_seed(0)
        model = Regressor()
        cfg = TrainConfig(steps=8, batch_size=8, lr=1e-2, warmup_steps=2, grad_clip=0.5, ema_decay=0.5, log_every=2,
                          ckpt_every=4, device="cpu", seed=7, dist_timeout_s=120, grad_accum_steps=accum)
        captured = {}
        tr = Trainer(model, data, cfg, out / "run", callbacks=[lambda t, s, m: captured.setdefault("rank", get_rank())])
        tr.train()
    finally:  # in the test's process the class is shared with every later test
        nn.parallel.DistributedDataParallel.no_sync = _no_sync
    torch.save({k: v.clone() for k, v in model.state_dict().items()}, out / f"params-{captured['rank']}.pt")
    (out / f"no_sync-{captured['rank']}.txt").write_text(str(len(no_sync_calls)))


if __name__ == "__main__":
    main(sys.argv[1:])
