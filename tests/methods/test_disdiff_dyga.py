"""DyGA + Skip Dropout on DisDiff (the DyGA paper's Table 3) as configuration of DisDiff."""

import pytest
import torch

from diffrep.config import ConfigError
from diffrep.methods.disdiff import DisDiff, DisDiffConfig
from diffrep.methods.dyga import DyGA, DyGAConfig
from diffrep.nn.pretrained import load_pretrained
from diffrep.nn.unet import SkipDropout

from helpers import untrained_on_purpose


def _cfg(**kw):
    return DisDiffConfig(dyga=DyGAConfig(num_units=4, token_dim=8, n_components=2, max_components=4, min_mass=2.0),
                         shift_skip_dropout=0.2, sample_steps=2, **kw)


def test_builds_from_configuration_alone_and_round_trips(tmp_path):
    torch.manual_seed(0)
    m = untrained_on_purpose(DisDiff(_cfg()))
    assert isinstance(m.dyga, DyGA)
    drops = [d for d in m.shift.skip_dropouts if isinstance(d, SkipDropout)]
    assert len(drops) == len(m.shift.skip_dropouts) and all(d.rate == 0.2 for d in drops)  # every shift skip
    assert not any(isinstance(d, SkipDropout) for d in m.unet.skip_dropouts)  # the frozen model is untouched
    x = torch.rand(40, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    # before a fit the alignment is the identity
    u = m.encode_units(x[:4])
    torch.testing.assert_close(m.align_units(u), u)
    report = m.refresh_anchors(x)
    assert bool(m.dyga.fitted) and len(report["n_anchors"]) == 4
    m.train()
    out = m.loss(x[:4], step=0, generator=torch.Generator().manual_seed(1))
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
    m.eval()
    aligned = m.align_units(u)
    assert (aligned - u).abs().max() > 0  # anchored
    d = m.save_pretrained(tmp_path / "m")
    m2 = load_pretrained(d)
    assert m2.config == m.config and bool(m2.dyga.fitted)
    m2.eval()
    torch.testing.assert_close(m2.align_units(u), aligned, rtol=0, atol=0)


def test_dyga_shape_must_match_the_units():
    with pytest.raises(ConfigError, match="dyga"):
        DisDiffConfig(dyga=DyGAConfig(num_units=10, token_dim=32))
    with pytest.raises(ValueError, match="no DyGA"):
        untrained_on_purpose(DisDiff(DisDiffConfig())).refresh_anchors(torch.zeros(4, 3, 16, 16))


def test_training_refits_the_anchors_after_every_r_epochs_of_disentangling():
    """DyGA Alg. 1 through attach_anchor_data (what recipes.disdiff.build does for a DyGA model): no fit during
    pre-training or the first epochs; a refit at the end of every refresh_every-th epoch of disentangling."""
    torch.manual_seed(0)
    data = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    dyga = DyGAConfig(num_units=4, token_dim=8, n_components=2, max_components=4, min_mass=2.0, refresh_every=2)
    m = untrained_on_purpose(DisDiff(DisDiffConfig(dyga=dyga, shift_skip_dropout=0.2, sample_steps=2, pretrain_steps=2)))
    m.attach_anchor_data([(img, 0) for img in data], 2, batch_size=3)  # epochs of 2 steps: a refit every 4 steps
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=1e-3)
    m.train()
    refits = []
    for step in range(11):
        before = {k: v.clone() for k, v in m.dyga.state_dict().items()}
        opt.zero_grad()
        m.loss(data[:4], step=step, generator=torch.Generator().manual_seed(step))["loss"].backward()
        opt.step()  # the weights move every step, so every refit changes the anchors
        if any(before[k].shape != v.shape or not torch.equal(before[k], v) for k, v in m.dyga.state_dict().items()):
            refits.append(step)
    # steps 0, 1 pre-train; at step s, s - 2 disentangling steps are done: a refit when that is a positive multiple of 4
    assert refits == [6, 10]


def test_anchor_refits_equal_an_independent_fit_on_the_training_images():
    torch.manual_seed(0)
    data = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    m = untrained_on_purpose(DisDiff(_cfg()))
    m.attach_anchor_data([(img, 0) for img in data], 1, batch_size=3)
    m.train()
    ref = DyGA(m.config.dyga)
    m.eval()
    with torch.no_grad():  # encoded in the refit's batches of 3: a batch's size may change a product's last bits
        ref.fit(torch.cat([m.encode_units(data[i:i + 3]) for i in range(0, len(data), 3)]), epoch=1)
    m.train()
    assert not bool(m.dyga.fitted)
    m.loss(data[:2], step=0, generator=torch.Generator().manual_seed(0))  # the first epoch: no fit
    assert not bool(m.dyga.fitted)
    m.loss(data[:2], step=1, generator=torch.Generator().manual_seed(0))  # refit, before this step's update
    got, want = m.dyga.state_dict(), ref.state_dict()
    assert got.keys() == want.keys()
    for k in got:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=0, msg=k)


def test_attach_anchor_data_errors():
    with pytest.raises(ValueError, match=r"^DisDiff.attach_anchor_data: this model has no DyGA \(set DisDiffConfig.dyga\)$"):
        untrained_on_purpose(DisDiff(DisDiffConfig())).attach_anchor_data([torch.zeros(3, 16, 16)] * 4, 1)
    m = untrained_on_purpose(DisDiff(_cfg()))
    with pytest.raises(TypeError, match="map-style dataset of images"):
        m.attach_anchor_data("images/", 1)
    with pytest.raises(ValueError, match=r"^steps_per_epoch must be a positive int, got 0$"):
        m.attach_anchor_data([torch.zeros(3, 16, 16)] * 4, 0)
    with pytest.raises(ValueError, match=r"^batch_size must be a positive int, got 0$"):
        m.attach_anchor_data([torch.zeros(3, 16, 16)] * 4, 1, batch_size=0)
    with pytest.raises(ValueError, match="has 1"):
        m.attach_anchor_data([torch.zeros(3, 16, 16)], 1)
    m.attach_anchor_data([torch.zeros(3, 16, 16)] * 2, 1)  # two images: the least the anchors are fitted on


def test_anchor_refit_happens_once_per_step():
    """Micro-batches of one optimiser step (gradient accumulation) call loss with the same step: only the first
    refits. The encoder is moved between the calls, so a second refit would change the anchors."""
    torch.manual_seed(0)
    data = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    m = untrained_on_purpose(DisDiff(_cfg()))
    m.attach_anchor_data([(img, 0) for img in data], 1, batch_size=4)
    m.train()
    m.loss(data[:2], step=1, generator=torch.Generator().manual_seed(0))  # pretrain_steps=0: 1 step done, r=1
    first = {k: v.clone() for k, v in m.dyga.state_dict().items()}
    with torch.no_grad():
        for p in m.encoder.parameters():
            p.add_(0.05 * torch.randn_like(p))
    m.loss(data[2:4], step=1, generator=torch.Generator().manual_seed(1))  # the same step's next micro-batch
    for k, v in m.dyga.state_dict().items():
        assert torch.equal(v, first[k]), k
    m.loss(data[:2], step=2, generator=torch.Generator().manual_seed(0))  # the next step refits on the moved encoder
    assert any(v.shape != first[k].shape or not torch.equal(v, first[k]) for k, v in m.dyga.state_dict().items())


def test_refresh_anchors_keeps_the_models_mode():
    """The refit reads the units in eval mode and hands the model back in the mode it was in (a refresh in
    evaluation must not switch the shift decoder's Skip Dropout back on)."""
    x = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    m = untrained_on_purpose(DisDiff(_cfg()))
    for mode in (False, True):
        m.train(mode)
        modes = {name: sub.training for name, sub in m.named_modules()}
        m.refresh_anchors(x)
        assert {name: sub.training for name, sub in m.named_modules()} == modes
