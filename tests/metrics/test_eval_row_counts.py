"""The too-few-rows warning of ``diffrep eval --codes`` counts the rows each metric reads. MIG and
InfoMEC read the ``codes`` array only; with a separate ``codes_test`` (what ``eval --model`` and
``diffrep encode`` write) the warning counted train + test rows, so it named a count the metric never
saw and stayed silent for a train split below the bound."""

import numpy as np

from diffrep.cli import main
from diffrep.metrics.mig import mig
from diffrep.metrics.suite import compute, sample_warnings


def _file(path, n_train, n_test=None, seed=0):
    rs = np.random.RandomState(seed)
    arrays = {}
    for name, n in (("", n_train), ("_test", n_test)):
        if n is None:
            continue
        f = rs.randint(0, 3, (n, 2))
        arrays["codes" + name] = f + 0.3 * rs.randn(n, 2)
        arrays["factors" + name] = f
    np.savez(path, **arrays)
    return arrays


def test_mig_reads_the_codes_array_and_its_warning_counts_those_rows(tmp_path, capsys):
    # 40 train + 200 test rows, 3 values per factor: MIG needs 100 x 3 = 300 and reads the 40 train rows
    arrays = _file(tmp_path / "c.npz", 40, 200)
    r = compute(str(tmp_path / "c.npz"), ["mig", "sap"], warn=print)
    assert r["mig"] == mig(arrays["codes"], arrays["factors"])["mig"]  # the rows it reads: codes only
    both = mig(np.concatenate([arrays["codes"], arrays["codes_test"]]),
               np.concatenate([arrays["factors"], arrays["factors_test"]]))["mig"]
    assert r["mig"] != both
    out = capsys.readouterr().out
    assert "mig: 40 rows, fewer than the 300" in out and "240" not in out
    assert "sap" not in out  # min(40, 200) = 40 >= 10 x 3
    assert [f for f in r.meta["flags"] if f.startswith("too few samples")] == [
        "too few samples: mig: 40 rows, fewer than the 300 it needs for a stable estimate (largest factor has 3 "
        "values; see diffrep.metrics.suite.MIN_ROWS)"]


def test_a_train_split_below_the_bound_warns_even_when_train_plus_test_is_above_it(tmp_path, capsys):
    """200 + 200 rows: the old count (400 >= 300) gave no warning for MIG reading 200 rows."""
    _file(tmp_path / "c.npz", 200, 200)
    assert main(["eval", "--codes", str(tmp_path / "c.npz"), "--metrics", "mig,infomec"]) == 0
    err = capsys.readouterr().err
    assert "warning: mig: 200 rows, fewer than the 300" in err
    assert "warning: infomec: 200 rows, fewer than the 300" in err


def test_without_codes_test_the_split_comes_from_codes_and_all_rows_count(tmp_path, capsys):
    _file(tmp_path / "c.npz", 240)
    assert main(["eval", "--codes", str(tmp_path / "c.npz"), "--metrics", "mig,sap"]) == 0
    err = capsys.readouterr().err
    assert "mig: 240 rows, fewer than the 300" in err and "sap" not in err  # split 160/80


def test_sample_warnings_counts():
    assert sample_warnings(["mig"], 160, 80, [3]) == [
        "mig: 240 rows, fewer than the 300 it needs for a stable estimate (largest factor has 3 values; "
        "see diffrep.metrics.suite.MIN_ROWS)"]
    assert sample_warnings(["mig"], 160, 80, [3], n_codes=160)[0].startswith("mig: 160 rows,")
    assert sample_warnings(["mig", "dci"], 200, 200, [3], n_codes=300) == []
    assert sample_warnings(["dci"], 200, 20, [3], n_codes=200) == [
        "dci: 20 rows in the smaller split (200 train, 20 test), fewer than the 30 it needs for a stable estimate "
        "(largest factor has 3 values; see diffrep.metrics.suite.MIN_ROWS)"]
