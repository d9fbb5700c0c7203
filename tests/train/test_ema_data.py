import pytest
import torch
from torch import nn

from diffrep.train import EMA, EpochBatchSampler, TrainConfig, epoch_permutation, lr_at


def test_ema_update_math_and_buffers_untouched():
    m = nn.BatchNorm1d(2)
    with torch.no_grad():
        m.weight.fill_(1.0)
    ema = EMA(m, 0.5, warmup=False)
    assert set(ema.shadow) == {"weight", "bias"}  # parameters only, never buffers
    with torch.no_grad():
        m.weight.fill_(3.0)
        m.running_mean.fill_(7.0)
    ema.update(m, 1)
    torch.testing.assert_close(ema.shadow["weight"], torch.full((2,), 2.0))  # 0.5 * 1 + 0.5 * 3
    with ema.swapped(m):
        torch.testing.assert_close(m.weight.detach(), torch.full((2,), 2.0))
        torch.testing.assert_close(m.running_mean, torch.full((2,), 7.0))
    torch.testing.assert_close(m.weight.detach(), torch.full((2,), 3.0))
    full = ema.full_state_dict(m)
    torch.testing.assert_close(full["running_mean"], torch.full((2,), 7.0))
    # LitEma warm-up: decay after n updates is min(decay, (1 + n)/(10 + n))
    w = EMA(m, 0.999)
    assert w.current_decay() == pytest.approx(0.1)
    w.num_updates = 90
    assert w.current_decay() == pytest.approx(91 / 100)
    e = EMA(m, 0.9, update_after_step=5)
    with torch.no_grad():
        m.weight.fill_(-1.0)
    e.update(m, 3)
    torch.testing.assert_close(e.shadow["weight"], torch.full((2,), -1.0))
    assert e.num_updates == 0


def test_data_order_is_a_function_of_seed_and_epoch_and_shards_cleanly():
    full = list(EpochBatchSampler(20, 4, seed=3, epoch=2))
    assert len(full) == 5 and sorted(i for b in full for i in b) == sorted(epoch_permutation(20, 3, 2).tolist())
    assert list(EpochBatchSampler(20, 4, seed=3, epoch=2, start=3)) == full[3:]
    r0 = list(EpochBatchSampler(20, 4, seed=3, epoch=2, rank=0, world_size=2))
    r1 = list(EpochBatchSampler(20, 4, seed=3, epoch=2, rank=1, world_size=2))
    assert [a + b for a, b in zip(r0, r1)] == full
    assert list(EpochBatchSampler(20, 4, seed=3, epoch=3)) != full
    with pytest.raises(ValueError, match="divisible"):
        EpochBatchSampler(20, 5, seed=0, epoch=0, world_size=2)
    with pytest.raises(ValueError, match="fewer than"):
        EpochBatchSampler(3, 4, seed=0, epoch=0)


def test_lr_schedule():
    c = TrainConfig(steps=100, lr=1.0, warmup_steps=10, lr_schedule="cosine")
    assert lr_at(c, 0) == pytest.approx(0.1) and lr_at(c, 9) == pytest.approx(1.0)
    assert lr_at(c, 10) == pytest.approx(1.0) and lr_at(c, 55) == pytest.approx(0.5) and lr_at(c, 100) == pytest.approx(0.0)
    assert lr_at(TrainConfig(lr=0.3), 50) == 0.3


def test_one_epoch_sampler_for_data_and_train():
    import diffrep.data
    import diffrep.data.sampling

    assert EpochBatchSampler is diffrep.data.EpochBatchSampler is diffrep.data.sampling.EpochBatchSampler
    assert epoch_permutation is diffrep.data.sampling.epoch_permutation
    # drop_last keeps whole global batches only; without it several ranks share a padded short batch
    assert len(EpochBatchSampler(22, 4, seed=0, drop_last=True)) == 5
    r = [EpochBatchSampler(22, 4, seed=0, rank=k, world_size=2) for k in (0, 1)]
    assert [len(list(s)) for s in r] == [6, 6] and set(r[0].indices()) | set(r[1].indices()) == set(range(22))
    with pytest.raises(ValueError, match="start batch"):
        EpochBatchSampler(20, 4, seed=0, start=6)
