"""diffrep.metrics.suite: codes aligned to a dataset's items (docs/metrics.md, "Result files": row r of
``codes`` is item ``indices[r]``, binary targets also become ``attributes``), the train/test split
ceil(N (1 - p)) and the too-few-rows notes, checked against values written here with a real dataset (the SAMI
disks, whose factor classes are index_to_factors). Found by mutation testing
(benches/results/mutation_gaps_2026-12-08.md)."""

import math

import numpy as np
import pytest

from diffrep.data.disks import Disks
from diffrep.metrics.mig import mig
from diffrep.metrics.suite import align_to_dataset, compute, sample_warnings


def test_rows_are_dataset_items():
    ds = Disks(bins=(3, 2, 2))  # 12 items, x has 3 classes: not binary
    codes = np.random.default_rng(0).normal(size=(12, 2))
    out = align_to_dataset({"codes": codes}, ds)
    assert np.array_equal(out["factors"], ds.index_to_factors(np.arange(12)))
    assert "attributes" not in out and np.array_equal(out["codes"], codes)
    idx = np.array([5, 0, 11])
    out = align_to_dataset({"codes": codes[:3], "indices": idx}, ds)
    assert np.array_equal(out["factors"], ds.index_to_factors(idx)) and out["factors"].shape == (3, 3)


def test_binary_targets_become_attributes():
    ds = Disks(bins=(2, 2, 2))  # 8 items, every factor binary
    rng = np.random.default_rng(1)
    c, ct = rng.normal(size=(8, 2)), rng.normal(size=(3, 2))
    out = align_to_dataset({"codes": c}, ds)
    assert np.array_equal(out["attributes"], ds.index_to_factors(np.arange(8))) and "attribute_codes" not in out
    it = np.array([7, 1, 2])
    out = align_to_dataset({"codes": c, "codes_test": ct, "indices_test": it}, ds)
    assert np.array_equal(out["factors_test"], ds.index_to_factors(it))
    assert np.array_equal(out["attributes"], np.concatenate([ds.index_to_factors(np.arange(8)), ds.index_to_factors(it)]))
    assert np.array_equal(out["attribute_codes"], np.concatenate([c, ct]))


def test_alignment_refusals_name_the_problem():
    ds = Disks(bins=(3, 2, 2))
    c = np.zeros((12, 2))
    with pytest.raises(TypeError, match=r"^--codes: arrays must be the arrays of a codes file .*, got list"):
        align_to_dataset([c], ds)
    for bad, got in (([1, 2], "list"), (np.zeros(3), "ndarray")):
        with pytest.raises(TypeError, match=rf"^--dataset: dataset must be a dataset with targets .*, got {got}"):
            align_to_dataset({"codes": c}, bad)
    with pytest.raises(ValueError, match=r"^--codes: no array 'codes' \(found \['code'\]\)"):
        align_to_dataset({"code": c}, ds)
    for own in ("factors", "factors_test", "attributes"):
        with pytest.raises(ValueError, match=rf"^--codes: the file has its own \['{own}'\]; --dataset reads"):
            align_to_dataset({"codes": c, own: c}, ds)
    with pytest.raises(ValueError, match=r"'codes' has 5 rows but the dataset has 12 items"):
        align_to_dataset({"codes": c[:5]}, ds)
    with pytest.raises(ValueError, match=r"'indices' must hold one dataset index per row of 'codes' \(3\), got shape \(3, 1\)"):
        align_to_dataset({"codes": c[:3], "indices": np.zeros((3, 1), int)}, ds)
    with pytest.raises(ValueError, match=r"'indices' must be integer dataset indices in \[0, 12\) for disks, got dtype float64"):
        align_to_dataset({"codes": c[:2], "indices": np.array([0.0, 1.0])}, ds, name="disks")
    with pytest.raises(ValueError, match=r"'indices_test' must be integer dataset indices in \[0, 12\) for disks, got dtype int64, "
                                         r"range \[0, 99\]"):
        align_to_dataset({"codes": c, "codes_test": c[:2], "indices_test": np.array([0, 99])}, ds, name="disks")
    with pytest.raises(ValueError, match=r"'codes_test' needs an 'indices_test' array"):
        align_to_dataset({"codes": c, "codes_test": c[:2]}, ds)


def test_split_is_the_ceiling_of_the_train_share():
    # 10 rows, p = 0.38: ceil(6.2) = 7 train rows (rounding 6.2 would give 6); MIG reads all 10 rows
    rng = np.random.default_rng(2)
    f = np.repeat(np.arange(2), 5)[:, None]
    codes = np.hstack([f + 0.1 * rng.normal(size=(10, 1)), rng.normal(size=(10, 1))])
    notes = []
    r = compute({"codes": codes, "factors": f}, ["mig", "sap"], test_fraction=0.38, warn=notes.append)
    assert r["mig"] == mig(codes, f)["mig"]
    assert notes[1].startswith("sap: 3 rows in the smaller split (7 train, 3 test), fewer than the 20")
    assert math.ceil(10 * (1 - 0.38)) == 7


def test_sample_warning_arguments_are_named():
    with pytest.raises(ValueError, match="^n_codes"):
        sample_warnings(["mig"], 10, 10, [2], n_codes=-1)
    with pytest.raises(ValueError, match=r"^factor_sizes\[1\]"):
        sample_warnings(["mig"], 10, 10, [2, 0])


def test_codes_files_that_are_not_npz_archives(tmp_path):
    from diffrep.metrics.suite import load_codes

    p = tmp_path / "obj.npz"
    np.savez(p, codes=np.array([{"a": 1}], dtype=object))  # an object array: numpy would unpickle it
    with pytest.raises(ValueError, match=r"^--codes .*obj\.npz: not an \.npz archive of arrays \(numpy would read it as a "
                                         r"pickle, which is never loaded\)$"):
        load_codes(p)
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(ValueError, match=r"^--codes .*one\.npy: a single \.npy array, not an \.npz archive of named arrays "
                                         r"\('codes', 'factors', \.\.\.\)$"):
        load_codes(tmp_path / "one.npy")
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY\x01\x00\x10\x00{garbage}      \n")  # a broken header: numpy's own words
    with pytest.raises(ValueError, match=r"^--codes .*bad\.npy: not an \.npz archive of arrays \(malformed node"):
        load_codes(tmp_path / "bad.npy")
    with pytest.raises(TypeError, match=r"^--codes: path must be an \.npz file path, got int"):
        load_codes(3)


def test_sample_warning_counts_by_metric():
    assert sample_warnings(["dci"], 5, 5, []) == [  # no factor sizes: K = 2
        "dci: 5 rows in the smaller split (5 train, 5 test), fewer than the 20 it needs for a stable estimate "
        "(largest factor has 2 values; see diffrep.metrics.suite.MIN_ROWS)"]
    assert sample_warnings(["dci"], 40, 40, [np.int64(4)]) == []  # numpy sizes count: 10 x 4 = 40
    with pytest.raises(ValueError, match=r"^factor_sizes\[0\]"):
        sample_warnings(["dci"], 40, 40, [2.5])
    # the attribute metrics count the attribute rows only, 100 of them whatever the splits
    assert sample_warnings(["tad", "latent_auroc"], 0, 0, [2], n_attr=500) == []
    notes = sample_warnings(["tad", "latent_auroc"], 1000, 1000, [2], n_attr=50)
    assert [n.split(",")[0] for n in notes] == ["tad: 50 rows", "latent_auroc: 50 rows"]
    assert sample_warnings(["tad"], 1000, 1000, [2])[0].startswith("tad: 0 rows, fewer than the 100")


def test_compute_arguments_and_the_attribute_only_path():
    rng = np.random.default_rng(3)
    attrs = rng.integers(0, 2, (200, 2))
    codes = attrs + 0.3 * rng.normal(size=(200, 2))
    r = compute({"codes": codes, "attributes": attrs}, ["latent_auroc"])  # no factors needed for it
    assert r.meta["source"] == "model"
    with pytest.raises(ValueError, match=r"^--codes: model has no array 'factors'"):
        compute({"codes": codes, "attributes": attrs}, ["latent_auroc", "mig"])
    with pytest.raises(ValueError, match=r"^--codes: model has no array 'codes'"):
        compute({"factors": attrs}, ["latent_auroc"])
    with pytest.raises(TypeError, match=r"^--codes: path must be an \.npz file or a dict of arrays, got list"):
        compute([codes], ["mig"])
    with pytest.raises(ValueError, match=r"^--metrics: unknown \['nope'\]; choose from \['mig', 'dci'"):
        compute({"codes": codes, "factors": attrs}, ["mig", "nope"])
    for p in (0.0, 1.0):
        with pytest.raises(ValueError, match=r"^--test-fraction must lie in \(0, 1\)"):
            compute({"codes": codes, "factors": attrs}, ["mig"], test_fraction=p)


def _same_scores(got, want):
    for k, v in want.items():
        assert k in got, k
        np.testing.assert_equal(got[k], v, err_msg=k)


def test_each_metric_reads_its_own_arrays():
    """compute == the metrics called by hand: MIG and InfoMEC on the whole ``codes``; DCI, SAP, modularity and
    downstream on the ceil(N (1 - p)) train rows and the rest; the attribute metrics on ``attribute_codes``."""
    from diffrep.metrics.auroc import latent_auroc
    from diffrep.metrics.dci import dci
    from diffrep.metrics.downstream import downstream_efficiency
    from diffrep.metrics.infomec import infomec
    from diffrep.metrics.modularity import modularity_explicitness
    from diffrep.metrics.sap import sap
    from diffrep.metrics.tad import tad

    rng = np.random.default_rng(4)
    f = rng.integers(0, 3, (150, 2))
    codes = np.hstack([f + 0.4 * rng.normal(size=(150, 2)), rng.normal(size=(150, 1))])
    attrs = (f > 0).astype(int)
    acodes = codes + 0.1  # the attribute metrics read attribute_codes when the file has them
    z = {"codes": codes, "factors": f, "attributes": attrs, "attribute_codes": acodes}
    ctr, cte, ftr, fte = codes[:100], codes[100:], f[:100], f[100:]  # ceil(150 x 2/3) = 100 train rows
    r = compute(z, ["mig", "infomec", "dci", "sap", "modularity_explicitness", "downstream", "tad", "latent_auroc"],
                mode="parity", estimator="fast", tad_variant="exact")
    _same_scores(r, mig(codes, f, mode="parity"))
    _same_scores(r, infomec(codes, f, mode="parity"))
    _same_scores(r, dci(ctr, ftr, cte, fte, estimator="fast", mode="parity"))
    _same_scores(r, sap(ctr, ftr, cte, fte, mode="parity"))
    _same_scores(r, modularity_explicitness(ctr, ftr, cte, fte, mode="parity"))
    d = downstream_efficiency(ctr, ftr, cte, fte, sizes=(10, 100), predictor="fast")  # the sizes <= 100 train rows
    _same_scores(r, d)
    _same_scores(r, tad(acodes, attrs, variant="exact", mode="parity"))
    _same_scores(r, latent_auroc(acodes, attrs, mode="parity"))
    # the metrics' own flags are kept next to the too-few-rows notes
    r = compute({"codes": np.hstack([codes, np.zeros((150, 1))]), "factors": f}, ["mig"])
    assert r.meta["flags"] == ["mig: constant codes [3] (collapsed; MI 0)",
                               "too few samples: mig: 150 rows, fewer than the 300 it needs for a stable estimate "
                               "(largest factor has 3 values; see diffrep.metrics.suite.MIN_ROWS)"]


def test_rows_and_values_checked_before_any_metric():
    rng = np.random.default_rng(5)
    c, f = rng.normal(size=(12, 2)), rng.integers(0, 2, (12, 1))
    with pytest.raises(ValueError, match=r"^--codes: model: 'codes' has 12 rows but 'factors' has 11; row i of each"):
        compute({"codes": c, "factors": f[:11]}, ["mig"])
    with pytest.raises(ValueError, match=r"^--codes: model: 'codes_test' has 3 rows but 'factors_test' has 2"):
        compute({"codes": c, "factors": f, "codes_test": c[:3], "factors_test": f[:2]}, ["sap"])
    bad = c.copy()
    bad[[1, 4], 0] = np.nan
    bad[4, 1] = np.inf
    with pytest.raises(ValueError, match=r"^--codes: model: 'codes' holds NaN or inf in 2 of its 12 rows$"):
        compute({"codes": bad, "factors": f}, ["mig"])
    with pytest.raises(ValueError, match=r"^--codes: model: 'codes_test' holds NaN or inf in 2 of its 12 rows$"):
        compute({"codes": c, "factors": f, "codes_test": bad, "factors_test": f}, ["sap"])
    with pytest.raises(ValueError, match=r"^model: 2 train and 0 test rows; every metric needs both splits non-empty "
                                         r"\(--test-fraction 0\.4 of 2 rows\)"):
        compute({"codes": c[:2], "factors": f[:2]}, ["sap"], test_fraction=0.4)


def test_attribute_metric_notes_count_attribute_rows():
    rng = np.random.default_rng(6)
    attrs = rng.integers(0, 2, (50, 2))
    notes = []
    compute({"codes": attrs + rng.normal(size=(50, 2)), "attributes": attrs}, ["latent_auroc"], warn=notes.append)
    assert notes == ["latent_auroc: 50 rows, fewer than the 100 it needs for a stable estimate (largest factor has 2 "
                     "values; see diffrep.metrics.suite.MIN_ROWS)"]


def test_attribute_metrics_without_factors_and_their_notes():
    rng = np.random.default_rng(7)
    attrs = rng.integers(0, 2, (50, 2))
    codes = attrs + rng.normal(size=(50, 2))
    notes = []
    compute({"codes": codes, "attributes": attrs}, ["tad", "latent_auroc"], warn=notes.append)  # no factors needed
    assert [n.split(",")[0] for n in notes] == ["tad: 50 rows", "latent_auroc: 50 rows"]
    # with a split metric too: its note first, then the attribute metrics' (counted on the attribute rows)
    notes = []
    f = rng.integers(0, 2, (50, 1))
    compute({"codes": codes, "factors": f, "attributes": attrs}, ["mig", "tad"], warn=notes.append)
    assert [n.split(",")[0] for n in notes] == ["mig: 50 rows", "tad: 50 rows"]
    notes = []
    compute({"codes": codes, "factors": f, "attributes": attrs}, ["mig", "latent_auroc"], warn=notes.append)
    assert [n.split(",")[0] for n in notes] == ["mig: 50 rows", "latent_auroc: 50 rows"]
    with pytest.raises(ValueError, match=r"^--metrics tad: model has no binary 'attributes' array$"):
        compute({"codes": codes, "factors": f}, ["tad"])
    with pytest.raises(ValueError, match=r"'attributes' must hold binary 0/1 labels, got values \[0, 1, 2\]"):
        compute({"codes": codes, "attributes": attrs * np.array([1, 2])}, ["latent_auroc"])
    # mode reaches the attribute metrics: a constant attribute is an error in parity mode
    const = attrs.copy()
    const[:, 1] = 0
    for m in ("tad", "latent_auroc"):
        with pytest.raises(ValueError, match="single class"):
            compute({"codes": codes, "attributes": const}, [m], mode="parity")


def test_nonfinite_rows_are_counted_by_row():
    rng = np.random.default_rng(8)
    f = rng.integers(0, 3, (60, 2))
    c = np.hstack([f + 0.3 * rng.normal(size=(60, 2)), rng.normal(size=(60, 1))])
    bad = c.copy()
    bad[[1, 4, 7], 0] = np.nan  # three rows, one column
    with pytest.raises(ValueError, match=r"'codes' holds NaN or inf in 3 of its 60 rows$"):
        compute({"codes": bad, "factors": f}, ["mig"])


def test_more_codes_file_refusals(tmp_path):
    from diffrep.metrics.suite import load_codes

    with pytest.raises(ValueError, match=r"^--codes .* is a folder; give an \.npz file$"):
        load_codes(tmp_path)
    np.savez(tmp_path / "c.npz", codes=np.zeros((40, 2)))
    raw = (tmp_path / "c.npz").read_bytes()
    (tmp_path / "t.npz").write_bytes(raw[: len(raw) // 2])  # a zip cut in half
    with pytest.raises(ValueError, match=r"^--codes .*t\.npz: not a readable \.npz archive \(truncated or another format\?\)"):
        load_codes(tmp_path / "t.npz")
    # an open np.load archive (not a dict) is accepted as the arrays of a codes file
    ds = Disks(bins=(3, 2, 2))
    np.savez(tmp_path / "d.npz", codes=np.zeros((12, 2)))
    with np.load(tmp_path / "d.npz") as z:
        assert np.array_equal(align_to_dataset(z, ds)["factors"], ds.index_to_factors(np.arange(12)))
    with pytest.raises(ValueError, match=r"--dataset reads the targets of codes aligned to dataset indices \(drop --dataset "
                                         r"to score the file's own arrays\)$"):
        align_to_dataset({"codes": np.zeros((12, 2)), "factors": np.zeros((12, 1))}, ds)
    # binary train targets but a test split that is not: no attributes
    fx = ds.index_to_factors(np.arange(12))
    train_idx = np.flatnonzero(fx[:, 0] < 2)[:4]
    test_idx = np.flatnonzero(fx[:, 0] == 2)[:2]
    out = align_to_dataset({"codes": np.zeros((4, 2)), "indices": train_idx, "codes_test": np.zeros((2, 2)),
                            "indices_test": test_idx}, ds)
    assert np.isin(out["factors"], (0, 1)).all() and "attributes" not in out
