"""DiffAE's ``z_stats_fitted`` (tested by every latent-stage loss) and the multi-beta denoiser's ``schedule_set``
(tested by every phase-2 loss) are host copies (diffrep.nn.derived.DerivedValue, docs/architecture.md "Host
synchronisation and the non-finite-loss check"): each follows every write of its buffer (``fill_``,
``load_state_dict``, attribute assignment), so the next loss refuses or proceeds as the buffer says, and only the
first loss after a write reads the flag.

The steady read counts (DiffAE latent stage: 1, the batch; MultiBeta phase 2: 2, the batch and the encoder's beta
embedding) are those of tests/methods/test_loss_host_reads.py; a write adds exactly one read, at the next loss.
"""

from __future__ import annotations

import pytest
import torch

from helpers import host_reads
from test_loss_host_reads import _diffae, _g, _images, _multibeta

NOT_FITTED = r"^DiffAE.latent_loss: the z_sem statistics are not fitted"
NO_SCHEDULE = r"^LatentDenoiser.loss: no noise schedule installed"


def _reads_per_loss(m, x, n: int = 3) -> list[int]:
    return [host_reads(lambda: m.loss(x, step=0, generator=_g()))[0] for _ in range(n)]


def _loss(m, x) -> torch.Tensor:
    return m.loss(x, step=0, generator=_g())["loss"].detach()


# -- DiffAE's z_stats_fitted ------------------------------------------------------------------------------------------
def test_diffae_latent_loss_follows_each_write_of_z_stats_fitted():
    x = _images(2, 3, 16)
    ref = _diffae("latent")                     # fitted by fit_latent_stats, never touched: the expected loss
    want = _loss(ref, x)
    m = _diffae("latent")
    assert _reads_per_loss(m, x) == [1, 1, 1]   # fit_latent_stats recorded the flag: never read
    m.z_stats_fitted.fill_(False)               # in place
    with pytest.raises(ValueError, match=NOT_FITTED):
        m.loss(x, step=0)
    m.z_stats_fitted.fill_(True)
    assert _reads_per_loss(m, x) == [2, 1, 1]   # the flag read once, after the write
    assert torch.equal(_loss(m, x), want)
    m.z_stats_fitted = torch.tensor(False)      # attribute assignment: another tensor
    with pytest.raises(ValueError, match=NOT_FITTED):
        m.loss(x, step=0)
    m.z_stats_fitted = torch.tensor(True)
    assert _reads_per_loss(m, x) == [2, 1, 1]
    assert torch.equal(_loss(m, x), want)


def test_diffae_latent_loss_follows_a_state_dict_load():
    x = _images(2, 3, 16)
    fitted = _diffae("latent")
    want = _loss(fitted, x)
    m = _diffae()                               # same weights, statistics not fitted
    m.set_stage("latent")
    with pytest.raises(ValueError, match=NOT_FITTED):
        m.loss(x, step=0)
    m.load_state_dict(fitted.state_dict())      # copies into the buffers in place
    assert _reads_per_loss(m, x) == [2, 1, 1]
    assert torch.equal(_loss(m, x), want)       # the loaded statistics are the ones used
    m.load_state_dict(_diffae().state_dict())   # an unfitted model's state
    with pytest.raises(ValueError, match=NOT_FITTED):
        m.loss(x, step=0)


# -- the multi-beta denoiser's schedule_set ---------------------------------------------------------------------------
def test_multibeta_phase2_loss_follows_each_write_of_schedule_set():
    x = _images(2, 1, 32)
    want = _loss(_multibeta(2), x)              # set_phase(2) installed the schedule: the expected loss
    m = _multibeta(2)
    flag = m.denoiser.schedule_set
    assert _reads_per_loss(m, x) == [2, 2, 2]   # set_schedule recorded the flag: never read
    flag.fill_(0)
    with pytest.raises(RuntimeError, match=NO_SCHEDULE):
        m.loss(x, step=0)
    flag.fill_(1)
    assert _reads_per_loss(m, x) == [3, 2, 2]
    assert torch.equal(_loss(m, x), want)
    m.denoiser.schedule_set = torch.tensor(0, dtype=torch.uint8)
    with pytest.raises(RuntimeError, match=NO_SCHEDULE):
        m.loss(x, step=0)
    m.denoiser.schedule_set = torch.tensor(1, dtype=torch.uint8)
    assert _reads_per_loss(m, x) == [3, 2, 2]
    assert torch.equal(_loss(m, x), want)


def test_multibeta_phase2_loss_follows_a_state_dict_load():
    x = _images(2, 1, 32)
    installed = _multibeta(2)
    want = _loss(installed, x)
    m = _multibeta(2)
    m.denoiser.load_state_dict(_multibeta(1).denoiser.state_dict())   # phase 1: no schedule installed
    assert int(m.denoiser.schedule_set) == 0
    with pytest.raises(RuntimeError, match=NO_SCHEDULE):
        m.loss(x, step=0)
    m.denoiser.load_state_dict(installed.denoiser.state_dict())
    assert _reads_per_loss(m, x) == [3, 2, 2]
    assert torch.equal(_loss(m, x), want)
