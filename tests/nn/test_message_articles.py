"""The messages that name a class, a type or a recipe family put "an" before a vowel sound (_checks.a_or_an):
"which is not an InfoDiffusion", "is an int", "takes an encdiff/ recipe"; "a ParamReL", "a UNet" stay."""

from __future__ import annotations

import pytest

from diffrep._checks import a_or_an
from diffrep.methods.infodiffusion import InfoDiffusion
from diffrep.nn.encoders import HalfUNet, HalfUNetConfig


@pytest.mark.parametrize("name, want", [
    ("InfoDiffusion", "an InfoDiffusion"), ("EncDiff", "an EncDiff"), ("int", "an int"), ("object", "an object"),
    ("encdiff/", "an encdiff/"), ("OrderedDict", "an OrderedDict"), ("Unknown", "an Unknown"),
    ("ParamReL", "a ParamReL"), ("DisDiff", "a DisDiff"), ("list", "a list"), ("SAMI", "a SAMI"),
    ("UNet", "a UNet"), ("UNetConfig", "a UNetConfig"), ("Uniform", "a Uniform"), ("user", "a user")])
def test_a_or_an_by_the_first_sound(name, want):
    assert a_or_an(name) == want


@pytest.mark.parametrize("bad", ["", None, 3])
def test_a_or_an_names_a_bad_name(bad):
    with pytest.raises(ValueError, match="name must be a non-empty str"):
        a_or_an(bad)


def test_a_config_for_another_class_says_an_before_a_vowel(tmp_path):
    cfg = HalfUNetConfig(image_size=8, in_channels=2, model_channels=8, channel_mult=(1, 2), num_res_blocks=1,
                         num_groups=4, latent_dim=3)
    d = HalfUNet(cfg).save_pretrained(tmp_path / "m")
    with pytest.raises(ValueError, match=r"config is for HalfUNet, which is not an InfoDiffusion$"):
        InfoDiffusion.from_pretrained(d)


def test_a_family_command_takes_an_encdiff_recipe():
    from diffrep.cli._common import train_prefixed

    with pytest.raises(ValueError, match=r"^this command takes an encdiff/ recipe, got 'bfn/x'"):
        train_prefixed("encdiff/", "bfn/x", [])
