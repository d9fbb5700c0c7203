"""Input audit of diffrep.bfn (flows, output distributions, BFNDataConfig): each test pins a defect
that was found and fixed; the comment says what happened before."""

from __future__ import annotations

import math

import pytest
import torch

from diffrep.bfn.flows import ContinuousFlow, DiscreteFlow


@pytest.mark.parametrize("flow, x", [
    (ContinuousFlow(0.01), torch.zeros(2, 1, 2, 2)),
    (DiscreteFlow(2, 1.0), torch.zeros(2, 1, 2, 2, dtype=torch.long)),
])
def test_nan_time_is_refused(flow, x):
    # Before: mean_state(x, nan) returned a FlowState of NaNs ("t must lie in [0, 1]" tested t < 0 | t > 1,
    # which NaN fails both ways); step/inverse_step shared the check.
    with pytest.raises(ValueError, match="not be NaN"):
        flow.mean_state(x, math.nan)
    with pytest.raises(ValueError, match="not be NaN"):
        flow.mean_state(x, torch.tensor([0.5, math.nan]))
    assert torch.isfinite(flow.mean_state(x, 0.5).params).all()


def test_flow_parameters_reject_bool_and_inf():
    # Before: DiscreteFlow(2, inf) was built (its beta then failed deep in the schedule), and
    # sqrt_beta1=True was read as 1.0.
    with pytest.raises(ValueError, match="sqrt_beta1 must be"):
        DiscreteFlow(2, math.inf)
    with pytest.raises(ValueError, match="sqrt_beta1 must be"):
        DiscreteFlow(2, True)
    with pytest.raises(ValueError, match="sigma1 must be"):
        ContinuousFlow(True)


def test_delta_clip_range_must_be_non_negative():
    # Before: clip_range=-1 was accepted and silently meant "no clip" (the clip runs only when > 0).
    from diffrep.bfn.config import BFNDataConfig
    from diffrep.bfn.distributions import DeltaOutput
    from diffrep.config import ConfigError

    with pytest.raises(ValueError, match="clip_range must be a finite number >= 0"):
        DeltaOutput(0.01, clip_range=-1.0)
    with pytest.raises(ConfigError, match="'clip_range': must be >= 0"):
        BFNDataConfig(data="continuous", clip_range=-1.0)
    assert DeltaOutput(0.01, clip_range=0).clip_range == 0.0


def test_loss_steps_without_discrete_time_loss_is_refused():
    # Before: loss_steps=10 with time_loss="continuous" trained L^inf without a word (loss_steps was
    # read only by L^n), and a negative loss_steps was accepted.
    from diffrep.bfn.config import BFNDataConfig
    from diffrep.config import ConfigError, apply_overrides

    with pytest.raises(ConfigError, match="'loss_steps': 10 is the n of L\\^n"):
        BFNDataConfig(loss_steps=10)
    with pytest.raises(ConfigError, match="'loss_steps': must be >= 0"):
        BFNDataConfig(loss_steps=-1)
    cfg = apply_overrides(BFNDataConfig(), ["--loss_steps", "10", "--time_loss", "discrete"])
    assert (cfg.time_loss, cfg.loss_steps) == ("discrete", 10)


def test_bfn_sample_final_empty_string_is_refused():
    # Before: final="" (falsy) silently fell back to the config's final ("mode").
    from diffrep.bfn.model import BFN, BFNConfig
    from diffrep.nn.unet import UNetConfig

    cfg = BFNConfig(unet=UNetConfig(image_size=28, in_channels=1, out_channels=1, model_channels=8,
                                    channel_mult=(1,), num_res_blocks=1, attention_resolutions=(),
                                    middle_attention=False, num_groups=4), sample_steps=1)
    with pytest.raises(ValueError, match="final must be 'mode' or 'sample', got ''"):
        BFN(cfg).sample(1, num_steps=1, final="")


def test_schedule_alphas_check_the_step():
    # Before: n_steps=0 raised ZeroDivisionError, and discrete_alpha(0, n, beta1) returned a negative
    # accuracy -beta1/n^2 (i = 0 is not a step of the n-step sender, Eq. 190 needs 1 <= i <= n).
    from diffrep.bfn import schedules

    with pytest.raises(ValueError, match="n_steps must be a positive int"):
        schedules.discrete_alpha(1, 0, 9.0)
    with pytest.raises(ValueError, match="n_steps must be a positive int"):
        schedules.continuous_alpha(1, 0, 1e-3)
    with pytest.raises(ValueError, match=r"step i must be a number in \[1, n_steps=4\], got 0"):
        schedules.discrete_alpha(0, 4, 9.0)
    with pytest.raises(ValueError, match="step i"):
        schedules.continuous_alpha(5, 4, 1e-3)
    assert schedules.discrete_alpha(2, 4, 9.0) == pytest.approx(9.0 * 3 / 16)


def test_bfn_reconstruction_loss_checks_its_images():
    # Before: BFN.reconstruction_loss(x) skipped the batch check that BFN.loss makes: a [B, 1, 14, 14]
    # batch for a 28 px model failed inside the U-Net, a NaN image gave a NaN loss.
    from diffrep.bfn.model import BFN, BFNConfig
    from diffrep.nn.unet import UNetConfig

    cfg = BFNConfig(unet=UNetConfig(image_size=28, in_channels=1, out_channels=1, model_channels=8,
                                    channel_mult=(1,), num_res_blocks=1, attention_resolutions=(),
                                    middle_attention=False, num_groups=4), sample_steps=1)
    net = BFN(cfg)
    with pytest.raises(ValueError, match="BFN.reconstruction_loss"):
        net.reconstruction_loss(torch.zeros(2, 1, 14, 14))
    with pytest.raises(ValueError, match="BFN.reconstruction_loss"):
        net.reconstruction_loss(torch.full((2, 1, 28, 28), math.nan))
    assert net.reconstruction_loss(torch.ones(2, 1, 28, 28)).shape == (2,)


@pytest.mark.parametrize("sigma1", [math.nan, 2.0, -1.0, True])
def test_output_distributions_check_sigma1(sigma1):
    # Before: DeltaOutput(nan) / DiscretisedNormalOutput(2.0, 16) were built; the value surfaced later
    # (or, without noise prediction, as a NaN loss weight).
    from diffrep.bfn.distributions import DeltaOutput, DiscretisedNormalOutput

    with pytest.raises(ValueError, match="DeltaOutput: sigma1 must be in"):
        DeltaOutput(sigma1)
    with pytest.raises(ValueError, match="DiscretisedNormalOutput: sigma1 must be in"):
        DiscretisedNormalOutput(sigma1, 16)
