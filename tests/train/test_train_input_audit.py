"""Regression tests of the TrainConfig input audit (2026-12-07). Each test names what happened before."""

import pytest

from diffrep.config import ConfigError
from diffrep.train import TrainConfig


def test_negative_adamw_eps_is_refused_by_the_config():
    # before: eps=-1 was accepted by the config and only torch.optim.AdamW refused it when the Trainer built
    # the optimiser ("Invalid epsilon value: -1.0", without the field's name)
    with pytest.raises(ConfigError, match=r"'eps'"):
        TrainConfig(eps=-1e-8)
    assert TrainConfig(eps=0.0).eps == 0.0  # what torch.optim.AdamW accepts stays accepted
