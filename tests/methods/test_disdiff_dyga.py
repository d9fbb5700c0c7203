"""DyGA + Skip Dropout on DisDiff (the DyGA paper's Table 3) as configuration of DisDiff."""

import pytest
import torch

from diffrep.config import ConfigError
from diffrep.methods.disdiff import DisDiff, DisDiffConfig
from diffrep.methods.dyga import DyGA, DyGAConfig
from diffrep.nn.pretrained import load_pretrained
from diffrep.nn.unet import SkipDropout


def _cfg(**kw):
    return DisDiffConfig(dyga=DyGAConfig(num_units=4, token_dim=8, n_components=2, max_components=4, min_mass=2.0),
                         shift_skip_dropout=0.2, sample_steps=2, **kw)


def test_builds_from_configuration_alone_and_round_trips(tmp_path):
    torch.manual_seed(0)
    m = DisDiff(_cfg())
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
        DisDiff(DisDiffConfig()).refresh_anchors(torch.zeros(4, 3, 16, 16))
