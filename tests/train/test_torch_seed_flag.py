"""``--seed`` of ``diffrep sample`` and ``diffrep demo`` seeds a ``torch.Generator``: an integer in [0, 2^64),
refused at parsing with the flag named (a larger one failed inside torch: "Overflow when unpacking long
long", naming neither)."""

import argparse

import pytest
import torch

from diffrep.cli import main
from diffrep.cli._common import torch_seed


def test_the_range_torch_takes():
    assert torch_seed("0") == 0 and torch_seed(str(2**64 - 1)) == 2**64 - 1
    torch.Generator().manual_seed(torch_seed(str(2**64 - 1)))  # the top of the range is a seed torch takes
    for bad, message in (("-1", "must be an integer in [0, 2^64), got -1"),
                         (str(2**64), f"must be an integer in [0, 2^64), got {2**64}"),
                         ("1.5", "must be an integer in [0, 2^64), got '1.5'")):
        with pytest.raises(argparse.ArgumentTypeError) as e:
            torch_seed(bad)
        assert str(e.value) == message


@pytest.mark.parametrize("argv", [["demo", "--seed", "99999999999999999999"],
                                  ["sample", "some/model", "--seed", "99999999999999999999"]])
def test_sample_and_demo_refuse_a_seed_torch_cannot_take(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"diffrep {argv[0]}: error: argument --seed: must be an integer in [0, 2^64), got 99999999999999999999" in err
