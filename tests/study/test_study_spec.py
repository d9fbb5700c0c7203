"""Study files: grid expansion, cell names and hashes, and the errors a bad file gets (diffrep.study.spec)."""

import itertools

import pytest
import yaml

from diffrep.study import StudyError, load_study, parse_study
from diffrep.study.spec import format_value, setting_name, short_names
from study_fake import RECIPE, study_dict, write_study


def test_grid_expansion_order_and_resolved_configs():
    st = parse_study(study_dict())
    # methods x datasets x grid points x seeds, in that nesting order
    got = [(c.method, c.dataset, c.params, c.seed) for c in st.cells]
    assert got == [("ae", "dsprites", (("model.weight", 1.0),), 0), ("ae", "dsprites", (("model.weight", 1.0),), 1),
                   ("ae", "dsprites", (("model.weight", 2.0),), 0), ("ae", "dsprites", (("model.weight", 2.0),), 1)]
    assert [c.index for c in st.cells] == [0, 1, 2, 3]
    for c in st.cells:
        assert c.config.model.weight == dict(c.params)["model.weight"]
        assert c.config.train.seed == c.seed
        assert c.config.train.steps == 3
        assert c.config.pool == 4  # the recipe's own value, untouched


def test_multi_key_grid_is_the_cartesian_product_and_layers_apply_in_order():
    grid = {"model.weight": [1, 3], "model.latent_dim": [2, 4, 5]}
    d = study_dict(seeds=[7], overrides={"train.lr": 0.5, "model.latent_dim": 9},
                   methods={"ae": {"recipe": RECIPE, "overrides": {"train.lr": 0.25}, "grid": grid}})
    st = parse_study(d)
    want = list(itertools.product([1, 3], [2, 4, 5]))
    assert [(c.config.model.weight, c.config.model.latent_dim) for c in st.cells] == want
    assert all(c.config.train.lr == 0.25 for c in st.cells)  # method overrides over study overrides
    assert [c.setting for c in st.cells][:2] == ["weight=1_latent_dim=2", "weight=1_latent_dim=4"]


def test_cell_folders_and_hashes_are_stable():
    a, b = parse_study(study_dict()), parse_study(study_dict())
    assert [c.folder for c in a.cells] == ["ae/dsprites/weight=1/seed0", "ae/dsprites/weight=1/seed1",
                                           "ae/dsprites/weight=2/seed0", "ae/dsprites/weight=2/seed1"]
    assert [c.hash for c in a.cells] == [c.hash for c in b.cells] and a.hash == b.hash
    assert len({c.hash for c in a.cells}) == 4
    # adding a method leaves the first method's cells (folders and hashes) as they were
    more = study_dict()
    more["methods"]["ae2"] = {"recipe": RECIPE, "overrides": {"model.latent_dim": 2}}
    c = parse_study(more)
    assert [(x.folder, x.hash) for x in c.cells[:4]] == [(x.folder, x.hash) for x in a.cells]
    assert c.cells[4].folder == "ae2/dsprites/default/seed0" and c.hash != a.hash
    # a changed training length changes every hash, not the folders
    d = parse_study(study_dict(steps=4))
    assert [x.folder for x in d.cells] == [x.folder for x in a.cells]
    assert not {x.hash for x in d.cells} & {x.hash for x in a.cells}
    # so does a changed evaluation
    e = parse_study(study_dict(eval={"metrics": ["mig"]}))
    assert not {x.hash for x in e.cells} & {x.hash for x in a.cells}


def test_value_and_setting_names():
    assert [format_value(v) for v in (4.0, 4, 0.001, 1e-4, 2.5, True, "x", [1, 2.0])] == \
        ["4", "4", "0.001", "0.0001", "2.5", "true", "x", "1,2"]
    assert short_names(["a.x", "b.x", "c.y"]) == {"a.x": "a.x", "b.x": "b.x", "c.y": "y"}
    assert setting_name(()) == "default"
    assert setting_name((("model.beta", 4.0), ("train.lr", 1e-3))) == "beta=4_lr=0.001"
    assert setting_name((("model.kind", "a/b c"),)) == "kind=a-b-c"  # never a path separator


def test_datasets_by_name_and_by_overrides():
    st = parse_study(study_dict(datasets=["dsprites"], seeds=[0]))
    assert {c.config.dataset for c in st.cells} == {"dsprites"} and st.cells[0].folder.startswith("ae/dsprites/")
    st = parse_study(study_dict(datasets={"px16": {}, "px8": {"pool": 8}}, seeds=[0]))
    assert [(c.dataset, c.config.pool) for c in st.cells] == [("px16", 4), ("px16", 4), ("px8", 8), ("px8", 8)]


def _err(d, match):
    with pytest.raises(StudyError, match=match):
        parse_study(d, "s.yaml")


def test_errors_name_the_place_in_the_file():
    _err(study_dict(methods={"ae": {"recipe": "test/study-tiny-aee"}}), r"methods\.ae\.recipe: unknown recipe.*"
         r"Did you mean: test/study-tiny-ae")
    _err(study_dict(methods={"ae": {"recipe": RECIPE, "grid": {"model.wieght": [1, 2]}}}),
         r"methods\.ae\.grid: config field 'model\.wieght': unknown field.*did you mean 'weight'")
    _err(study_dict(methods={"ae": {"recipe": RECIPE, "grid": {"model.latent_dim": [2, 0]}}}),
         r"methods\.ae\.grid: config field 'model\.latent_dim'")
    _err(study_dict(methods={"ae": {"recipe": RECIPE, "overrides": {"model.latent_dim": "many"}}}),
         r"methods\.ae\.overrides: config field 'model\.latent_dim'")
    _err(study_dict(overrides={"train.nope": 1}), r"s\.yaml: overrides: config field 'train\.nope'")
    _err(study_dict(seedz=[1]), r"unknown key 'seedz'; did you mean 'seeds'")
    _err(study_dict(seeds=[0, 0]), "repeat")
    _err(study_dict(seeds=[-1]), "seeds must be")
    _err(study_dict(steps=0), "steps must be")
    _err(study_dict(eval={"metrics": ["mig", "migg"]}), r"eval\.metrics: unknown \['migg'\]")
    _err(study_dict(eval={"num_train": 0}), r"eval\.num_train must be")
    _err(study_dict(methods={"ae": {"recipe": RECIPE, "grid": {"model.weight": [1, 1.0]}}}), "repeats a value")
    _err(study_dict(methods={"ae": {"recipe": RECIPE, "grid": {"model.weight": 2}}}), "non-empty list")
    _err(study_dict(methods={"a/b": RECIPE}), "not a usable label")
    _err(study_dict(methods={}), "methods must be")
    _err(study_dict(methods={"demo": "demo/toy-ddpm"}, datasets=["dsprites"]),
         "demo/toy-ddpm.*chooses no dataset by name")
    _err(["not", "a", "mapping"], "a study file is a YAML mapping")


def test_load_study_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("study: x\nmethods: [a, b\n", encoding="utf-8")
    with pytest.raises(StudyError, match=r"bad\.yaml: not valid YAML \(line \d+, column \d+\)"):
        load_study(bad)
    with pytest.raises(StudyError, match="study file not found"):
        load_study(tmp_path / "missing.yaml")
    st = load_study(write_study(tmp_path / "ok.yaml"))
    assert st.name == "tiny" and len(st.cells) == 4 and st.source.endswith("ok.yaml")
    # the name defaults to the file's stem
    d = study_dict()
    del d["study"]
    (tmp_path / "my_study.yaml").write_text(yaml.safe_dump(d), encoding="utf-8")
    assert load_study(tmp_path / "my_study.yaml").name == "my_study"


def test_the_cpu_study_file_is_valid():
    from pathlib import Path

    st = load_study(Path(__file__).resolve().parents[2] / "studies" / "dsprites_cpu.yaml")
    assert len(st.cells) == 12 and st.seeds == (0, 1)
    assert {c.recipe for c in st.cells} == {"vae/beta-vae-cpu", "vae/beta-tcvae-cpu", "vae/factor-vae-cpu"}
    assert all(c.config.train.steps == 500 and c.config.pool == 2 for c in st.cells)
    assert [c.config.model.gamma for c in st.cells if c.method == "factor-vae"] == [10, 10, 40, 40]


def test_every_family_is_a_study_method():
    # recipes of every family resolve and validate as study cells (no training here)
    methods = {r.replace("/", "_"): {"recipe": r, "grid": {"train.lr": [1e-4, 2e-4]}}
               for r in ("paramrel/dsprites", "sami/disks-cpu", "bfn/digits", "vq/toy-cpu", "vae/ae-cpu",
                         "demo/toy-ddpm")}
    st = parse_study({"seeds": [3], "steps": 5, "methods": methods})
    assert len(st.cells) == 12
    assert [c.config.train.lr for c in st.cells[:2]] == [1e-4, 2e-4]
    assert all(c.config.train.steps == 5 and c.config.train.seed == 3 for c in st.cells)
    # the dataset label is each recipe's own dataset
    assert [c.dataset for c in st.cells[::2]] == ["dsprites", "disks", "digits", "toy_shapes", "dsprites",
                                                 "toy_shapes"]
    # by name: the field that chooses the dataset (dataset, or data.dataset for SAMI)
    st = parse_study({"datasets": ["disks"], "methods": {"sami": "sami/disks-cpu"}})
    assert st.cells[0].config.data.dataset == "disks"


def test_study_hash_covers_folders_not_the_report():
    a = parse_study(study_dict())
    renamed = study_dict()
    renamed["methods"] = {"ae2": renamed["methods"]["ae"]}
    b = parse_study(renamed)
    assert [c.hash for c in a.cells] == [c.hash for c in b.cells] and a.hash != b.hash
    assert parse_study(study_dict(report={"metrics": ["train.loss"]})).hash == a.hash
