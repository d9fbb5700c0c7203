"""An article before a number is the one its reading takes (``_checks.a_or_an``): "an 8-d input", "an 11-step",
"an 18x18", "an 80", "an 18,000" but "a 1-d", "a 110", "a 1,100"; and the messages built with a number after
"a" use it (FSQ's axis check, DisDiff's orthogonal part embeddings)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from diffrep._checks import a_or_an
from diffrep.config import ConfigError
from diffrep.methods.disdiff_config import DisDiffConfig
from diffrep.nn.fsq import FSQ
from diffrep.nn.unet import UNetConfig


def _spoken_first(n: int) -> str:
    """The first word of n read aloud in English (below a million), written out independently."""
    ones = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen " \
           "seventeen eighteen nineteen".split()
    tens = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
    lead = n // 1000 if n >= 1000 else n
    if lead >= 100:
        return ones[lead // 100]
    return ones[lead] if lead < 20 else tens[lead // 10]


@pytest.mark.parametrize("n", [0, 1, 3, 8, 11, 12, 18, 19, 20, 80, 88, 100, 110, 800, 811, 1000, 1100, 8000,
                               11000, 18000, 18500, 21000, 80000, 110000, 800000])
def test_the_article_of_a_number_is_that_of_its_first_spoken_word(n):
    word = _spoken_first(n)
    want = "an" if word[0] in "aei" else "a"    # eight, eighteen, eighty, eleven; "one" is read "won"
    assert a_or_an(f"{n}-d") == f"{want} {n}-d"
    if n >= 1000:
        assert a_or_an(f"{n:,}") == f"{want} {n:,}"


def test_fsq_names_an_8_d_input():
    q = FSQ([3, 3], dim=9)
    with pytest.raises(ValueError, match=r"dim=9 is out of range for an 8-d input$"):
        q(torch.zeros((1,) * 7 + (2,)))
    with pytest.raises(ValueError, match=r"dim=9 is out of range for a 3-d input$"):
        q(torch.zeros(1, 1, 2))


def test_disdiff_names_an_8_square_matrix():
    unet = UNetConfig(image_size=16, in_channels=3, out_channels=3, model_channels=4, channel_mult=(1,),
                      num_res_blocks=1, attention_resolutions=(), num_groups=4)   # time embedding 16: 8 x 8 parts
    with pytest.raises(ConfigError, match=r"rows of an 8-square matrix: at most 8 units, got 9"):
        DisDiffConfig(num_units=9, unit_dim=2, unet=unet,
                      encoder=dataclasses.replace(DisDiffConfig().encoder, latent_dim=18))
