"""Overrides are validated once, after all of them are applied (issue 17 item 3)."""

import pytest

from diffrep.config import ConfigError, apply_overrides
from diffrep.recipes import get_recipe


def _celeba():
    return get_recipe("paramrel/celeba64").make_config()


@pytest.mark.parametrize("flags", [
    ["--model.bfn.data", "continuous", "--model.unet.num_outputs", "1"],
    ["--model.unet.num_outputs", "1", "--model.bfn.data", "continuous"],
])
def test_switching_to_continuous_data_works_in_either_flag_order(flags):
    cfg = apply_overrides(_celeba(), flags)
    assert cfg.model.bfn.data == "continuous" and cfg.model.unet.num_outputs == 1


@pytest.mark.parametrize("flags", [
    ["--model.gamma_mi", "0.9", "--model.lambda_agg", "0.01", "--model.allow_negative_mmd_weight", "true"],
    ["--model.allow_negative_mmd_weight", "true", "--model.gamma_mi", "0.9", "--model.lambda_agg", "0.01"],
    ["--model.lambda_agg", "0.01", "--model.gamma_mi", "0.9", "--model.allow_negative_mmd_weight"],
])
def test_sepdiff_row_in_any_order(flags):
    m = apply_overrides(_celeba(), flags).model
    assert (m.gamma_mi, m.lambda_agg, m.allow_negative_mmd_weight) == (0.9, 0.01, True)
    assert m.mmd_weight == pytest.approx(-0.09)


def test_errors_still_name_the_field():
    with pytest.raises(ConfigError, match=r"'model\.latent_dim': must be >= 1"):
        apply_overrides(_celeba(), ["--model.latent_dim", "0", "--model.gamma_mi", "0.5"])
    with pytest.raises(ConfigError, match=r"'model\.bfn\.data'"):
        apply_overrides(_celeba(), ["--model.bfn.data", "gaussian"])
    # a cross-field rule fails after all overrides, naming the dotted field
    with pytest.raises(ConfigError, match=r"'model\.bfn\.loss_steps'"):
        apply_overrides(_celeba(), ["--model.bfn.time_loss", "discrete"])
    with pytest.raises(ConfigError, match=r"'model\.unet\.num_outputs'"):
        apply_overrides(_celeba(), ["--model.bfn.data", "continuous"])
    with pytest.raises(ConfigError, match=r"'model\.lambda_agg'.*negative"):
        apply_overrides(_celeba(), {"model.gamma_mi": 0.9})
    # after a failed call, construction validates again (the deferral does not leak)
    from diffrep.bfn import BFNDataConfig
    with pytest.raises(ConfigError, match="loss_steps"):
        BFNDataConfig(time_loss="discrete")


def test_delta_recipes_build_the_d_rows():
    for name in ("paramrel/celeba64-delta", "paramrel/shapes3d64-delta", "paramrel/cifar10-delta"):
        cfg = get_recipe(name).make_config()
        base = get_recipe(name.removesuffix("-delta")).make_config()
        m = cfg.model
        assert (m.bfn.data, m.bfn.sigma1, m.unet.num_outputs) == ("continuous", 1e-3, 1)
        assert (m.latent_dim, m.unet.model_channels, m.unet.channel_mult, m.sample_steps) == (
            base.model.latent_dim, base.model.unet.model_channels, base.model.unet.channel_mult, base.model.sample_steps)
        assert cfg.train == base.train and cfg.dataset == base.dataset
