"""``--seed`` of every verb whose seed reaches a numpy ``RandomState`` (the metrics' factor draws) as well as
torch generators (``paramrel``, ``encdiff``, ``multibeta``, ``sami``, ``quickstart``, ``eval``, ``encode``,
``data preview``): an integer in [0, 2^32), refused at parsing with the flag and the range named. A plain
``type=int`` let ``1e20`` through as argparse's "invalid int value", and ``-1`` or ``2^64`` on to numpy's "Seed
must be between 0 and 2**32 - 1" or torch's "Overflow when unpacking long long", naming no flag."""

import argparse

import numpy as np
import pytest

from diffrep.cli import main
from diffrep.cli._common import numpy_seed


def test_the_range_numpy_and_torch_both_take():
    top = numpy_seed(str(2**32 - 1))
    assert numpy_seed("0") == 0 and top == 2**32 - 1
    np.random.RandomState(top)  # the top of the range is a seed numpy takes ...
    with pytest.raises(ValueError):
        np.random.RandomState(2**32)  # ... and the first value refused is numpy's own limit
    for bad, message in (("-1", "must be an integer in [0, 2^32), got -1"),
                         (str(2**32), f"must be an integer in [0, 2^32), got {2**32}"),
                         ("1e20", "must be an integer in [0, 2^32), got '1e20'"),
                         ("abc", "must be an integer in [0, 2^32), got 'abc'")):
        with pytest.raises(argparse.ArgumentTypeError) as e:
            numpy_seed(bad)
        assert str(e.value) == message


VERBS = [["paramrel", "sample", "m"], ["paramrel", "eval", "m"], ["encdiff", "encode", "m"], ["multibeta", "sample", "m"],
         ["sami", "sample", "m"], ["quickstart"], ["eval", "--model", "m"], ["encode", "m", "--out", "x.npz"],
         ["data", "preview", "dsprites", "--out", "x.png"]]


@pytest.mark.parametrize("argv", VERBS, ids=lambda a: " ".join(a[:2]))
@pytest.mark.parametrize("seed, shown", [("1e20", "'1e20'"), ("-1", "-1"), ("abc", "'abc'")])
def test_every_verb_refuses_a_seed_outside_the_range_at_parsing(argv, seed, shown, capsys):
    with pytest.raises(SystemExit) as e:
        main([*argv, "--seed", seed])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument --seed: must be an integer in [0, 2^32), got {shown}" in err
    assert "Traceback" not in err
