"""``diffrep eval`` as a newcomer uses it: a flag of another input (--generation's with --codes/--model, the
disentanglement metrics' with --generation) is refused, not ignored; a --codes file whose arrays are of the
wrong kind is named by file and array before any warning; --generation prepares --out before any image is
scored and prints --format. Every case: exit 2 and one message, no traceback."""

import json

import numpy as np
import pytest

from diffrep.cli import main
from diffrep.cli.eval_generation import DEFAULTS, format_values
from diffrep.metrics.suite import compute


def _err(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.fixture
def codes_file(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "c.npz"
    np.savez(path, codes=rng.normal(size=(60, 3)), factors=rng.integers(0, 3, (60, 2)))
    return path


@pytest.mark.parametrize("extra,message", [
    (["--real", "r.npy"], "--real applies to --generation only (FID, KID, PRDC of --real and --fake)"),
    (["--k", "5", "--allow-singular"], "--k, --allow-singular apply to --generation only"),
    (["--kid-subset-size", "0"], "--kid-subset-size applies to --generation only"),  # 0 is a given value
    (["--source", "file"], "--source applies to --model, or to --codes with --dataset (index-aligned codes)"),
    (["--root", "x"], "--root applies to --model, or to --codes with --dataset (index-aligned codes)"),
])
def test_codes_refuses_flags_it_does_not_read(codes_file, capsys, extra, message):
    assert main(["eval", "--codes", str(codes_file), "--metrics", "mig", *extra]) == 2
    assert f"diffrep eval: error: {message}" in _err(capsys)


@pytest.mark.parametrize("extra,message", [
    (["--metrics", "mig"], "--metrics applies to --codes/--model (the disentanglement metrics), not --generation"),
    (["--mode", "parity", "--tad-variant", "exact"], "--mode, --tad-variant apply to --codes/--model"),
    (["--dataset", "dsprites", "--num-train", "0"], "--dataset, --num-train apply to --codes/--model"),
    (["--test-fraction", "0.5"], "--test-fraction applies to --codes/--model"),
])
def test_generation_refuses_the_disentanglement_flags(tmp_path, capsys, extra, message):
    # checked before the sources are read: these files need not exist
    argv = ["eval", "--generation", "--real", str(tmp_path / "r.npy"), "--fake", str(tmp_path / "f.npy"), *extra]
    assert main(argv) == 2
    assert f"diffrep eval: error: {message}" in _err(capsys)


def test_model_refuses_test_fraction(tmp_path, capsys):
    assert main(["eval", "--model", str(tmp_path), "--test-fraction", "0.5"]) == 2
    assert "--test-fraction applies to --codes only; --model draws --num-train and --num-test rows" in _err(capsys)


def test_generation_prepares_out_before_reading_anything(tmp_path, capsys):
    # the result was written after the Inception pass: a folder given as --out failed at the very end
    argv = ["eval", "--generation", "--real", str(tmp_path / "nope.npy"), "--fake", str(tmp_path / "nope.npy"),
            "--out", str(tmp_path)]
    assert main(argv) == 2
    assert f"--out {tmp_path} is a folder; give a file path" in _err(capsys)
    (tmp_path / "file").write_text("x")  # a folder that cannot be made is refused as early
    argv[-1] = str(tmp_path / "file" / "r.json")
    assert main(argv) == 2
    assert f"--out {tmp_path / 'file' / 'r.json'}: cannot create its folder (File exists)" in _err(capsys)
    argv[-1] = str(tmp_path / "new" / "r.json")
    assert main(argv) == 2
    # checked first, made only when the result is written: a source that then failed left a new empty folder
    assert "nope.npy" in _err(capsys) and not (tmp_path / "new").exists()


def test_generation_prints_each_format():
    r = {"fid": 12.5, "fid_min_eigenvalue": -1e-14, "protocol": {"preprocessing": "clean", "weights_file": "w.pt",
         "weights_sha1": "0123456789abcdef", "num_real": 4, "num_fake": 5}}
    assert format_values(r, "csv") == "score,value\nfid,12.5\nfid_min_eigenvalue,-1e-14"
    assert format_values(r, "md") == "| score | value |\n| --- | ---: |\n| fid | 12.5 |\n| fid_min_eigenvalue | -1e-14 |"
    assert json.loads(format_values(r, "json")) == r
    assert format_values(r, "text").splitlines() == [
        "score               value", "fid                 12.5", "fid_min_eigenvalue  -1e-14",
        "# protocol clean, weights w.pt (sha1 0123456789ab), 4 real vs 5 fake"]
    assert DEFAULTS["gen_metrics"] == "fid" and DEFAULTS["protocol"] == "clean"


def _save(tmp_path, **arrays):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("case,error,message", [
    ("test_codes_only", ValueError, "has 'codes_test' but no 'factors_test'; give the test split as both arrays "
                                    "(or neither: the last --test-fraction of the rows is then the test split)"),
    ("string_codes_test", TypeError, ": 'codes_test' must hold numbers, got dtype <U1"),
    ("one_d_factors_test", ValueError, ": 'factors_test' must be 2-D (rows x factors, one column per factor: "
                                       "reshape(-1, 1) for one), got shape (10,)"),
    ("test_factors_only", ValueError, "has 'factors_test' but no 'codes_test'"),
    ("string_codes", TypeError, ": 'codes' must hold numbers, got dtype <U1"),
    ("bool_codes", TypeError, ": 'codes' must hold numbers, got dtype bool"),
    ("one_d_factors", ValueError, ": 'factors' must be 2-D (rows x factors, one column per factor: reshape(-1, 1) "
                                  "for one), got shape (60,)"),
    ("one_d_codes", ValueError, ": 'codes' must be 2-D (rows x codes), got shape (60,)"),
    ("half_factors", TypeError, ": 'factors' must hold integer class labels, got non-integer values (float64)"),
    ("nan_factors", TypeError, ": 'factors' must hold integer class labels"),
    ("test_width", ValueError, ": 'codes' has 3 codes per row but 'codes_test' has 2; both splits hold the same codes"),
    ("test_factor_width", ValueError, ": 'factors' has 2 factors per row but 'factors_test' has 1"),
])
def test_codes_file_arrays_are_named_before_any_warning(tmp_path, capsys, case, error, message):
    rng = np.random.default_rng(1)
    c, f = rng.normal(size=(60, 3)), rng.integers(0, 3, (60, 2))
    arrays = {
        "test_codes_only": dict(codes=c, factors=f, codes_test=c[:10]),
        "test_factors_only": dict(codes=c, factors=f, factors_test=f[:10]),
        "string_codes": dict(codes=np.full((60, 3), "a"), factors=f),
        "string_codes_test": dict(codes=c, factors=f, codes_test=np.full((10, 3), "a"), factors_test=f[:10]),
        "one_d_factors_test": dict(codes=c, factors=f, codes_test=c[:10], factors_test=f[:10, 0]),
        "bool_codes": dict(codes=c > 0, factors=f),
        "one_d_factors": dict(codes=c, factors=f[:, 0]),
        "one_d_codes": dict(codes=c[:, 0], factors=f),
        "half_factors": dict(codes=c, factors=f + 0.5),
        "nan_factors": dict(codes=c, factors=np.where(f == 0, np.nan, f)),
        "test_width": dict(codes=c, factors=f, codes_test=c[:10, :2], factors_test=f[:10]),
        "test_factor_width": dict(codes=c, factors=f, codes_test=c[:10], factors_test=f[:10, :1]),
    }[case]
    path = _save(tmp_path, **arrays)
    notes = []
    with pytest.raises(error) as e:
        compute(str(path), ["mig", "dci"], warn=notes.append)
    assert str(e.value).startswith(f"--codes: {path}") and message in str(e.value)
    assert notes == []  # no too-few-rows warning about rows the error then disowns
    assert main(["eval", "--codes", str(path), "--metrics", "mig,dci"]) == 2
    err = _err(capsys)
    assert message in err and "warning" not in err


def test_integral_float_and_bool_factors_still_score_as_classes(tmp_path):
    rng = np.random.default_rng(2)
    c, f = rng.normal(size=(60, 3)), rng.integers(0, 2, (60, 2))
    as_int = compute(str(_save(tmp_path, codes=c, factors=f)), ["mig"])
    as_float = compute(str(_save(tmp_path, codes=c, factors=f.astype(np.float32))), ["mig"])
    as_bool = compute(str(_save(tmp_path, codes=c, factors=f.astype(bool))), ["mig"])
    assert as_int["mig"] == as_float["mig"] == as_bool["mig"]


@pytest.mark.parametrize("attributes,message", [
    (lambda f: f, "'attributes' must hold binary 0/1 labels, got values [0, 1, 2]\n"),
    (lambda f: np.arange(120).reshape(60, 2) % 7, "'attributes' must hold binary 0/1 labels, got values "
                                                  "[0, 1, 2, 3, 4, 5] ...\n"),  # the first six of seven
    (lambda f: np.arange(120).reshape(60, 2) % 6, "'attributes' must hold binary 0/1 labels, got values "
                                                  "[0, 1, 2, 3, 4, 5]\n"),  # all six
    (lambda f: (f[:50] > 0).astype(int), "'attributes' has 50 rows but 'codes' has 60; row i of each is one example"),
    (lambda f: (f[:, 0] > 0).astype(int), "'attributes' must be 2-D binary labels (rows x attributes), got dtype "
                                          "int64, shape (60,)"),
])
def test_attributes_are_named_when_tad_reads_them(tmp_path, capsys, attributes, message):
    rng = np.random.default_rng(3)
    c, f = rng.normal(size=(60, 3)), rng.integers(0, 3, (60, 2))
    path = _save(tmp_path, codes=c, factors=f, attributes=attributes(f))
    assert main(["eval", "--codes", str(path), "--metrics", "tad"]) == 2
    assert f"diffrep eval: error: --codes: {path}: {message}" in _err(capsys)
    # a metric that does not read them scores the file as before
    assert compute(str(path), ["mig"])["mig"] == compute(str(_save(tmp_path, codes=c, factors=f)), ["mig"])["mig"]


def test_a_misspelled_dataset_source_gets_the_closest_name(tmp_path, capsys):
    from diffrep.metrics.image_sources import resolve_source

    with pytest.raises(ValueError) as e:
        resolve_source("dsprite", 10, 0, "real")
    assert str(e.value).startswith("real: 'dsprite' is neither an existing folder (images or a saved model) nor a "
                                   "dataset name (cars3d,") and str(e.value).endswith("; did you mean 'dsprites'?")
    with pytest.raises(ValueError) as e:
        resolve_source("zzz", 10, 0, "fake")
    assert str(e.value).endswith("shapes3d)")  # nothing close: the list alone
    assert main(["eval", "--generation", "--real", "shapes_3d", "--fake", "dsprites", "--num-samples", "4"]) == 2
    assert "did you mean 'shapes3d'?" in _err(capsys)


@pytest.mark.parametrize("empty", ["", ","])
def test_an_empty_metrics_list_is_refused(codes_file, capsys, empty):
    # it printed an empty table and exited 0
    assert main(["eval", "--codes", str(codes_file), "--metrics", empty]) == 2
    assert "--metrics names no metric; choose from ['mig', 'dci'," in _err(capsys)
