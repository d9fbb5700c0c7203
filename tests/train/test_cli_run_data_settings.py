"""One rule for "which data did this model's run train on" in every model verb (``diffrep eval --model``,
``encode``, ``encdiff``, ``multibeta``, ``paramrel``: :func:`diffrep.recipes.runinfo.resolve_data_settings`,
docs/data.md "Dataset roots and saved data settings"). ``diffrep encdiff`` resolved it by hand: ``--dataset``
naming the run's own dataset dropped the run's root and options, ``--option`` and ``--root`` on the sub-grid
were ignored without a word, and an old record's ``pool: 4`` on a 64 px dataset got no note. Run folders are
written here by hand (run.json beside a tiny saved model's ``final/``), the sub-grid rendered on a 64-image
corner of its grid."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from diffrep.cli import main
from diffrep.recipes.runinfo import resolve_data_settings

TINY = ((0, 2), (0, 3), (1, 4), (0, 3), (0, 1), (0, 4))   # 2^6 = 64 images of the sub-grid's values
CPU_POOL = 4   # the pool of encdiff/shapes3d-cpu, what encdiff reads when no run records a dataset


def _run(tmp_path, data, recipe="paramrel/dsprites", name="run", model=None):
    """A run folder as ``diffrep train`` writes it: run.json beside final/ (a copy of ``model``) and in final/."""
    run = tmp_path / name
    if model is None:
        (run / "final").mkdir(parents=True)
    else:
        shutil.copytree(model, run / "final")
    info = json.dumps({"recipe": recipe, "data": data, "diffrep_version": "0.1.0"})
    (run / "run.json").write_text(info, encoding="utf-8")
    (run / "final" / "run.json").write_text(info, encoding="utf-8")
    return run


def _data(dataset, options=None, pool=1, root=None):
    return {"dataset": dataset, "options": options or {}, "pool": pool, "root": root}


# -- the rule itself ----------------------------------------------------------------------------------------

def test_the_record_describes_its_own_dataset_whether_named_or_not(tmp_path):
    root = str(tmp_path / "files")
    run = _run(tmp_path, _data("cars3d", {"size": 32}, 2, root))
    for dataset in (None, "cars3d"):   # encdiff dropped the run's root and options when --dataset named it
        s = resolve_data_settings(run / "final", dataset)
        assert (s["dataset"], s["options"], s["pool"], s["root"]) == ("cars3d", {"size": 32}, 2, root)
        assert s["root_flag"] == "the run's data.root" and s["from_run"]


def test_each_flag_given_wins_over_the_record(tmp_path):
    run = _run(tmp_path, _data("cars3d", {"size": 32, "crop": True}, 2, str(tmp_path / "old")))
    s = resolve_data_settings(run, None, pool=1, options={"size": 64}, root=str(tmp_path / "new"))
    assert s["options"] == {"size": 64, "crop": True} and s["pool"] == 1
    assert s["root"] == str(tmp_path / "new") and s["root_flag"] == "--root"


def test_the_model_verbs_hints_name_their_option_flag(tmp_path, monkeypatch):
    # these verbs have no --source: the loader's source is one of their --option settings, and its hints say so
    import argparse

    from diffrep.cli._common import run_dataset

    monkeypatch.delenv("DIFFREP_DATA", raising=False)
    run = _run(tmp_path, _data("disks"))
    args = argparse.Namespace(model=str(run), dataset=None, pool=None, option=["source=file"], root=None)
    with pytest.raises(ValueError, match=r"disks is procedural only \(no original files are read\); use "
                                         r"--option source=procedural$"):
        run_dataset(args)
    args.option = ["source=procedural"]  # the hint given works
    assert run_dataset(args)[0].source == "procedural"


def test_another_dataset_starts_from_its_defaults(tmp_path):
    run = _run(tmp_path, _data("cars3d", {"size": 32}, 2, str(tmp_path / "old")))
    s = resolve_data_settings(run, "dsprites")
    assert (s["dataset"], s["options"], s["pool"], s["root"], s["root_flag"]) == ("dsprites", {}, 1, None, "--root")


def test_a_verbs_fallback_applies_where_the_record_says_nothing(tmp_path):
    fallback = _data("shapes3d_subgrid", pool=CPU_POOL)
    bare = tmp_path / "model"
    bare.mkdir()
    assert resolve_data_settings(bare, fallback=fallback)["pool"] == CPU_POOL                 # no run.json
    run = _run(tmp_path, _data("shapes3d"), recipe="encdiff/shapes3d")
    assert resolve_data_settings(run, "shapes3d_subgrid", fallback=fallback)["pool"] == CPU_POOL  # another dataset
    assert resolve_data_settings(run, fallback=fallback)["dataset"] == "shapes3d"             # the record wins
    null = _run(tmp_path, _data(None), recipe="demo/toy-ddpm", name="null")
    assert resolve_data_settings(null, fallback=fallback)["dataset"] == "shapes3d_subgrid"


def test_no_record_and_no_fallback_asks_for_dataset(tmp_path):
    bare = tmp_path / "model"
    bare.mkdir()
    with pytest.raises(ValueError, match=r"no run.json records the dataset it was trained on .*; pass --dataset NAME"):
        resolve_data_settings(bare)
    null = _run(tmp_path, _data(None), recipe="demo/x", name="null")   # it said "no run.json" though there is one
    with pytest.raises(ValueError, match=r"its run's run.json records no dataset \(recipe demo/x\); pass --dataset"):
        resolve_data_settings(null)


@pytest.mark.parametrize("pool", [0, -1, True, "2", 2.0])
def test_a_pool_that_is_not_a_count_is_named(tmp_path, pool):
    with pytest.raises(ValueError, match=r"--pool must be an int >= 1"):
        resolve_data_settings(_run(tmp_path, _data("dsprites")), pool=pool)


# -- diffrep encdiff through the rule -----------------------------------------------------------------------

@pytest.fixture
def encdiff_model(tmp_path, monkeypatch):
    """A tiny untrained EncDiff saved by save_pretrained (16 px, 3 units); the sub-grid's factory renders the
    64-image corner TINY, recording the pool each call asks for."""
    from diffrep.methods.encdiff import EncDiff
    from diffrep.recipes import encdiff as recipes

    torch.manual_seed(0)
    cfg = recipes.cpu_model(num_units=3, token_dim=4)
    d = tmp_path / "model"
    EncDiff(cfg).eval().save_pretrained(d)
    real, pools = recipes.Shapes3DSubgrid, []

    def tiny(pool=4):
        pools.append(pool)
        return real(pool, grid=TINY)

    monkeypatch.setattr("diffrep.recipes.encdiff.Shapes3DSubgrid", tiny)
    return d, pools


def _encode(model, tmp_path, *flags):
    return main(["encdiff", "encode", str(model), "--n", "4", "--device", "cpu", "--out", str(tmp_path / "c.npz"),
                 *flags])


def test_encdiff_without_a_run_reads_the_cpu_sub_grid_at_pool_4(tmp_path, encdiff_model):
    from diffrep.recipes import get_recipe

    assert get_recipe("encdiff/shapes3d-cpu").make_config().pool == CPU_POOL
    model, pools = encdiff_model
    assert _encode(model, tmp_path) == 0 and pools == [CPU_POOL]
    with np.load(tmp_path / "c.npz") as z:
        assert z["scalars"].shape[0] == 4


def test_encdiff_dataset_named_as_the_runs_keeps_the_runs_root(tmp_path, capsys, encdiff_model):
    model, _ = encdiff_model
    gone = tmp_path / "moved"
    run = _run(tmp_path, _data("dsprites", root=str(gone)), recipe="encdiff/shapes3d", model=model)
    for flags in ([], ["--dataset", "dsprites"]):   # the second read $DIFFREP_DATA: the run's root was dropped
        assert _encode(run / "final", tmp_path, *flags) == 2
        err = capsys.readouterr().err
        assert f"dataset root {gone} does not exist (set by the run's data.root)" in err, err
        assert "Traceback" not in err
    other = tmp_path / "elsewhere"
    assert _encode(run / "final", tmp_path, "--root", str(other)) == 2   # --root wins over the run's
    assert f"dataset root {other} does not exist (set by --root)" in capsys.readouterr().err
    assert not (tmp_path / "c.npz").exists()


def test_encdiff_root_on_the_sub_grid_is_refused_not_ignored(tmp_path, capsys, encdiff_model):
    model, pools = encdiff_model
    assert _encode(model, tmp_path, "--root", str(tmp_path)) == 2
    assert (f"--root={tmp_path}: shapes3d_subgrid is drawn procedurally, no files are read; drop --root"
            in capsys.readouterr().err)
    assert pools == [] and not (tmp_path / "c.npz").exists()


def test_encdiff_option_size_on_the_sub_grid_is_read_not_ignored(tmp_path, capsys, encdiff_model):
    """--option size=S renders the sub-grid at S px (the named form every verb reads); it was dropped, and the
    16 px sub-grid read instead. The recorded pool (4) then max-pools on top, as for any named dataset."""
    model, pools = encdiff_model
    run = _run(tmp_path, _data("shapes3d_subgrid", pool=1), recipe="paramrel/x", model=model)
    assert _encode(run, tmp_path, "--option", "size=8") == 2
    assert pools == [8] and "the dataset's images are (3, 8, 8), the model reads (3, 16, 16)" in capsys.readouterr().err
    assert _encode(model, tmp_path, "--option", "size=16", "--pool", "1") == 0 and pools[-1] == 4


def test_encdiff_old_record_pool_4_on_a_64px_dataset_is_read_as_pool_1_with_the_note(tmp_path, capsys,
                                                                                        encdiff_model):
    model, _ = encdiff_model
    run = _run(tmp_path, _data("dsprites", pool=4), recipe="encdiff/shapes3d", model=model)
    assert _encode(run, tmp_path) == 2
    err = capsys.readouterr().err
    assert err.count("note: ") == 1 and "records pool 4 for dsprites, but recipe encdiff/shapes3d pools only" in err
    assert "the dataset's images are (1, 64, 64)" in err


# -- diffrep eval / encode: --option, as the other verbs ----------------------------------------------------

def test_eval_model_takes_option_over_the_runs_and_codes_refuses_it(tmp_path, capsys, encdiff_model):
    model, pools = encdiff_model
    run = _run(tmp_path, _data("shapes3d_subgrid", {"size": 32}, 1), recipe="paramrel/x", model=model)
    js = tmp_path / "m.json"
    assert main(["eval", "--model", str(run), "--option", "size=16", "--num-train", "20", "--num-test", "10",
                 "--metrics", "mig", "--device", "cpu", "--out", str(js)]) == 0
    meta = json.loads(js.read_text())["meta"]
    assert meta["dataset_options"] == {"size": 16} and meta["pool"] == 1 and pools == [4]
    out = tmp_path / "c.npz"
    assert main(["encode", str(run), "--option", "size=16", "--num-train", "8", "--num-test", "4", "--device", "cpu",
                 "--out", str(out)]) == 0
    with np.load(out) as z:
        assert json.loads(str(z["meta"]))["dataset_options"] == {"size": 16} and z["codes"].shape[0] == 8
    capsys.readouterr()
    assert main(["eval", "--codes", str(out), "--option", "size=16"]) == 2
    assert "--option applies to --model only" in capsys.readouterr().err
