"""Study methods that the plain train-then-encode cell does not cover (docs/study.md): a multi-phase
recipe (its ``train_phases`` hook, as multibeta/*), a model whose ``encode`` needs fitted statistics
(``eval.calibrate``, as DisDiff's PCA per unit), the procedural Shapes3D sub-grid chosen by name
(``dataset: shapes3d_subgrid``), and the plan of studies/all_methods_cpu.yaml (no training)."""

import dataclasses
import importlib
import json
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from diffrep.nn import load_pretrained
from diffrep.recipes import register_recipe
from diffrep.study import StudyError, load_study, parse_study, run_study
from study_fake import CRASH, RECIPE, StudyTinyRecipeConfig, _build, crash_switch_off, quiet, read_jsonl

pytestmark = pytest.mark.usefixtures(crash_switch_off.__name__)  # imported above: pytest finds it here

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------------------
# a multi-phase recipe: two Trainer runs in phase1/ and phase2/, the model saved to final/


PHASE_CALLS = []
PHASE_CRASH = {"phase": None, "at": None}  # the loss raises at step "at" of that phase


@dataclasses.dataclass
class PhasedConfig(StudyTinyRecipeConfig):
    phase2_steps: int = 2

    def train_phases(self, model, dataset, out, *, resume=None, overwrite=False):
        from diffrep.train import Trainer

        PHASE_CALLS.append(resume)
        history = []
        for name, steps in (("phase1", self.train.steps), ("phase2", self.phase2_steps)):
            CRASH["at"] = PHASE_CRASH["at"] if name == PHASE_CRASH["phase"] else None
            cfg = dataclasses.replace(self.train, steps=steps)
            history += Trainer(model, dataset, cfg, Path(out) / name).train(resume=resume)
        model.save_pretrained(Path(out) / "final")
        return history


register_recipe("test/study-tiny-phased", PhasedConfig, _build, "study tests: two training phases", cpu_friendly=True)


def test_a_multi_phase_recipe_trains_every_phase_and_resumes_them(tmp_path):
    PHASE_CALLS.clear()
    st = parse_study({"seeds": [0], "steps": 3, "methods": {"ph": {"recipe": "test/study-tiny-phased",
                                                                    "overrides": {"phase2_steps": 2}}},
                      "eval": {"metrics": []}})
    (cell,) = st.cells
    assert run_study(st, tmp_path, log=quiet)["ran"] == 1
    d = tmp_path / cell.folder
    p1, p2 = read_jsonl(d / "phase1" / "metrics.jsonl"), read_jsonl(d / "phase2" / "metrics.jsonl")
    assert [r["step"] for r in p1] == [1, 2, 3] and [r["step"] for r in p2] == [1, 2]
    assert not (d / "metrics.jsonl").exists() and (d / "final" / "model.safetensors").is_file()
    assert PHASE_CALLS == [None]  # a fresh cell starts fresh
    # the training record: the last phase's last record, each phase's under "phases"
    last = json.loads((d / "trained.json").read_text())["last"]
    assert last["step"] == 2 and last["loss"] == p2[-1]["loss"]
    assert last["phases"] == {"phase1": p1[-1], "phase2": p2[-1]}
    assert json.loads((d / "metrics.json").read_text())["train"] == last

    # a crash in phase 2 (its second step): the rerun resumes every phase from its newest checkpoint
    clean = load_pretrained(d / "final")
    crashed = tmp_path / "crashed"
    PHASE_CRASH.update(phase="phase2", at=1)  # phase 2's second step, after its checkpoint at step 1
    try:
        with pytest.raises(StudyError, match="simulated crash"):
            run_study(st, crashed, log=quiet)
    finally:
        PHASE_CRASH.update(phase=None, at=None)
    assert (crashed / cell.folder / "phase1" / "final").is_dir()
    assert [r["step"] for r in read_jsonl(crashed / cell.folder / "phase2" / "metrics.jsonl")] == [1]
    PHASE_CALLS.clear()
    assert run_study(st, crashed, log=quiet)["ran"] == 1
    assert PHASE_CALLS == ["latest"]
    resumed = load_pretrained(crashed / cell.folder / "final")
    for a, b in zip(clean.state_dict().values(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)

    # a changed cell: --redo-changed clears every phase's run and trains them again, as a fresh folder does
    st3 = parse_study({"seeds": [0], "steps": 3, "methods": {"ph": {"recipe": "test/study-tiny-phased",
                                                                     "overrides": {"phase2_steps": 3, "train.lr": 0.05}}},
                       "eval": {"metrics": []}})
    assert run_study(st3, crashed, update=True, redo_changed=True, log=quiet)["ran"] == 1
    assert PHASE_CALLS[-1] is None
    run_study(st3, tmp_path / "fresh", log=quiet)
    for name in ("phase1", "phase2"):
        assert read_jsonl(crashed / cell.folder / name / "metrics.jsonl") == read_jsonl(
            tmp_path / "fresh" / cell.folder / name / "metrics.jsonl")


# ------------------------------------------------------------------------------------------------
# eval.calibrate: a model whose codes are centred by a fitted mean




def test_calibrate_fits_the_model_on_fresh_images_and_the_metrics_read_the_calibrated_model(tmp_path):
    from diffrep.data.base import format_images
    from diffrep.recipes.encode import encode_dataset
    from diffrep.recipes.runinfo import dataset_from_settings, resolve_data_settings

    st = parse_study({"seeds": [0], "steps": 2, "methods": {"c": {"recipe": "test/study-centered-ae",
                                                                   "eval": {"calibrate": "fit_center",
                                                                            "calibrate_images": 64}}},
                      "eval": {"metrics": ["mig"], "num_train": 100, "num_test": 50, "seed": 3, "device": "cpu"}})
    (cell,) = st.cells
    run_study(st, tmp_path, log=quiet)
    d = tmp_path / cell.folder
    final, cal = load_pretrained(d / "final"), load_pretrained(d / "calibrated")
    assert torch.count_nonzero(final.center) == 0
    # the centre is the mean code of 64 images drawn by hand: RandomState(eval seed + 1), pm1 images
    ds = dataset_from_settings(resolve_data_settings(d / "final"), source="auto")
    rng = np.random.RandomState(4)
    x = format_images(np.asarray(ds.sample_observations_from_factors(ds.sample_factors(64, rng), rng)), "pm1")
    with torch.no_grad():
        want = final.enc(x.reshape(64, -1)).mean(0)
    torch.testing.assert_close(cal.center, want, rtol=1e-6, atol=1e-7)
    for k in ("enc.weight", "dec.bias"):  # nothing else changed
        torch.testing.assert_close(cal.state_dict()[k], final.state_dict()[k], rtol=0, atol=0)
    m = json.loads((d / "metrics.json").read_text())
    assert m["meta"]["model"] == str(d / "calibrated") and m["meta"]["calibrate"] == "fit_center"
    assert m["meta"]["calibrated_from"] == str(d / "final")
    assert json.loads((d / "calibrated" / "run.json").read_text())["data"] == json.loads(
        (d / "run.json").read_text())["data"]
    # the codes are the calibrated model's, and the scores those of diffrep eval on the calibrated folder
    src = encode_dataset(str(d / "calibrated"), None, 100, 50, 3, 256, "model", "pm1", None, "auto", "cpu")
    raw = encode_dataset(str(d / "final"), None, 100, 50, 3, 256, "model", "pm1", None, "auto", "cpu")
    np.testing.assert_allclose(src["codes"], raw["codes"] - want.double().numpy(), rtol=0, atol=1e-6)
    from diffrep.cli import main

    out = tmp_path / "eval.json"
    assert main(["eval", "--model", str(d / "calibrated"), "--metrics", "mig", "--num-train", "100", "--num-test",
                 "50", "--seed", "3", "--device", "cpu", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["scores"] == pytest.approx(m["scores"], rel=0, abs=1e-12)


def test_calibrate_errors(tmp_path):
    base = {"seeds": [0], "steps": 1, "eval": {"metrics": ["mig"], "num_train": 50, "num_test": 20, "device": "cpu"}}
    with pytest.raises(StudyError, match=r"methods.c.eval.calibrate must be the name of a model method"):
        parse_study({**base, "methods": {"c": {"recipe": RECIPE, "eval": {"calibrate": "fit center"}}}})
    with pytest.raises(StudyError, match=r"calibrate_images is set but calibrate is not"):
        parse_study({**base, "methods": {"c": {"recipe": RECIPE, "eval": {"calibrate_images": 10}}}})
    with pytest.raises(StudyError, match=r"calibrate_images must be an integer >= 1"):
        parse_study({**base, "methods": {"c": {"recipe": RECIPE, "eval": {"calibrate": "f", "calibrate_images": 0}}}})
    st = parse_study({**base, "methods": {"c": {"recipe": RECIPE, "eval": {"calibrate": "fit_center"}}}})
    with pytest.raises(StudyError, match=r"names fit_center\(\), which StudyTinyAE does not have"):
        run_study(st, tmp_path, log=quiet)


def test_without_calibrate_the_evaluation_settings_and_hashes_are_as_before():
    from diffrep.study.spec import EvalSpec

    # the keys every study folder written before eval.calibrate existed hashed
    assert list(EvalSpec().to_dict()) == ["metrics", "num_train", "num_test", "seed", "batch_size", "weights",
                                          "item_format", "mode", "estimator", "tad_variant", "device"]
    st = parse_study({"methods": {"a": RECIPE, "b": {"recipe": RECIPE, "eval": {"calibrate": "f"}}}})
    assert "calibrate" not in st.cells[0].describe()["eval"]
    assert st.cells[1].describe()["eval"]["calibrate"] == "f" and st.cells[0].hash != st.cells[1].hash


# ------------------------------------------------------------------------------------------------
# the Shapes3D sub-grid by name, and its data settings


class FakeSubgrid(torch.utils.data.Dataset):
    """Stands in for recipes.encdiff.Shapes3DSubgrid (which renders 5,120 images): records ``pool``."""

    made = []

    def __init__(self, pool=4):
        FakeSubgrid.made.append(pool)
        self.pool, self.factor_sizes, self.num_factors = pool, [4, 4, 4, 4, 4, 5], 6
        self.images = torch.arange(6 * 3 * 64 * 64, dtype=torch.float32).reshape(6, 3, 64, 64) / (6 * 3 * 64 * 64)
        self.images = torch.nn.functional.avg_pool2d(self.images, pool) if pool > 1 else self.images

    def __len__(self):
        return 6

    def __getitem__(self, i):
        return self.images[i] * 2 - 1, torch.zeros(6, dtype=torch.long)

    def sample_factors(self, n, rng):
        return np.zeros((n, 6), np.int64)

    def sample_observations_from_factors(self, factors, rng=None):
        return self.images[: len(factors)].permute(0, 2, 3, 1).numpy()


@pytest.fixture
def fake_subgrid(monkeypatch):
    FakeSubgrid.made.clear()
    monkeypatch.setattr("diffrep.recipes.encdiff.Shapes3DSubgrid", FakeSubgrid)
    return FakeSubgrid


def test_subgrid_by_name_is_the_renders_average_pooled_to_size(fake_subgrid):
    from diffrep.recipes.runinfo import (RECIPE_DATASETS, DataRoot, dataset_from_settings, load_named,
                                         register_recipe_dataset)

    assert isinstance(RECIPE_DATASETS["shapes3d_subgrid"](4), FakeSubgrid)  # registered by diffrep.recipes
    with pytest.raises(TypeError, match=r"callable factory"):
        register_recipe_dataset("x", None)
    for size, pool in ((64, 1), (32, 2), (16, 4), (8, 8)):
        assert load_named("shapes3d_subgrid", {"size": size}, DataRoot()).pool == pool
    with pytest.raises(ValueError, match=r"needs dataset_options.size"):
        load_named("shapes3d_subgrid", {}, DataRoot())
    with pytest.raises(ValueError, match=r"size must be one of \[64, 32, 16, 8\], got 24"):
        load_named("shapes3d_subgrid", {"size": 24}, DataRoot())
    with pytest.raises(ValueError, match=r"unknown dataset_options \['pool'\]"):
        load_named("shapes3d_subgrid", {"size": 32, "pool": 2}, DataRoot())
    with pytest.raises(ValueError, match=r"drawn procedurally"):
        load_named("shapes3d_subgrid", {"size": 32}, DataRoot(root="/data"))
    # the run's data settings: by name (size, then the recipe's max-pooling), or the sub-grid recipes' pool
    ds = dataset_from_settings({"dataset": "shapes3d_subgrid", "options": {"size": 32}, "pool": 2}, source="auto")
    want = torch.nn.functional.max_pool2d(FakeSubgrid(2).images, 2).permute(0, 2, 3, 1).numpy()
    np.testing.assert_array_equal(np.asarray(ds.sample_observations_from_factors(np.zeros((6, 6)))), want)
    ds = dataset_from_settings({"dataset": "shapes3d_subgrid", "options": {}, "pool": 4}, source="auto")
    assert isinstance(ds, FakeSubgrid) and ds.pool == 4
    with pytest.raises(ValueError, match=r"drawn procedurally"):
        dataset_from_settings({"dataset": "shapes3d_subgrid", "options": {}, "pool": 4}, source="file")
    with pytest.raises(ValueError, match=r"unknown options \['crop'\]"):
        dataset_from_settings({"dataset": "shapes3d_subgrid", "options": {"crop": 1}, "pool": 4})


def _image_size(model_cfg):
    from diffrep.recipes.encode import _model_image_size

    return _model_image_size(types.SimpleNamespace(config=model_cfg))


def test_the_all_methods_study_plan(fake_subgrid):
    """studies/all_methods_cpu.yaml parses, every cell's recipe resolves and validates, and every method
    trains and is evaluated on the same sub-grid at the size its networks read."""
    from diffrep.recipes.runinfo import data_settings, dataset_from_settings

    st = load_study(ROOT / "studies" / "all_methods_cpu.yaml")
    methods = {"diffae": "diffae/shapes3d-cpu", "infodiffusion": "infodiffusion/shapes3d-cpu",
               "disdiff": "disdiff/shapes3d-cpu-onerun", "beta-vae": "vae/beta-vae-cpu",
               "factor-vae": "vae/factor-vae-cpu", "encdiff-dyga": "encdiff/shapes3d-cpu",
               "encdiff": "encdiff/shapes3d-cpu-baseline", "multibeta": "multibeta/dsprites-cpu",
               "paramrel": "paramrel/dsprites", "sami": "sami/disks-cpu"}
    assert {m.label: m.recipe for m in st.methods} == methods
    assert len(st.cells) == 2 * len(methods) and st.seeds == (0, 1)
    assert {c.dataset for c in st.cells} == {"shapes3d_subgrid"}
    for c in st.cells:
        steps = 1600 if c.method == "disdiff" else 800
        assert c.config.train.steps == steps and c.config.train.device == "cpu", c.folder
        assert c.eval.metrics == ("mig", "dci", "sap", "modularity_explicitness")
        assert (c.eval.num_train, c.eval.num_test, c.eval.seed) == (2000, 1000, 0)
        assert c.eval.calibrate == ("fit_code_pca" if c.method == "disdiff" else "")
    by = {c.method: c for c in st.cells if c.seed == 0}
    assert by["disdiff"].config.model.pretrain_steps == 800 and by["disdiff"].config.model.stage == "disentangle"
    assert by["multibeta"].config.phases == (1, 2) and by["multibeta"].config.train_latent.steps == 300
    assert by["multibeta"].config.train_subset == 0
    assert by["encdiff-dyga"].config.model.conditioning == "dyga" and by["encdiff"].config.model.conditioning == "none"
    assert by["paramrel"].config.model.bfn.data == "discretised"
    assert by["sami"].config.model.convnet.latent_dim == 10 and by["sami"].config.train.batch_size == 32
    for m, c in by.items():
        family = importlib.import_module(f"diffrep.recipes.{c.recipe.split('/')[0]}")
        size = _image_size(c.config.model)
        fake_subgrid.made.clear()
        train = family.build_dataset(c.config.data if m == "sami" else c.config)  # what the recipe trains on
        evaluated = dataset_from_settings(data_settings(c.config), source="auto")  # what the metrics read
        assert fake_subgrid.made == [64 // size] * 2, m
        for ds in (train, evaluated):
            assert ds[0][0].shape == (3, size, size), m
        assert size == (32 if m in ("beta-vae", "factor-vae", "multibeta") else 16), m


def test_sami_reads_the_subgrid(fake_subgrid):
    from diffrep.config import ConfigError
    from diffrep.recipes.runinfo import data_settings
    from diffrep.recipes.sami import SAMIDataConfig, build_dataset, build_eval_dataset, disks_cpu_config

    cfg = SAMIDataConfig("shapes3d_subgrid", size=32)
    assert build_dataset(cfg).pool == 2 and build_eval_dataset(cfg)[0].pool == 2
    run = dataclasses.replace(disks_cpu_config(), data=SAMIDataConfig("shapes3d_subgrid", size=16))
    assert data_settings(run) == {"dataset": "shapes3d_subgrid", "options": {"size": 16}, "pool": 1, "root": None}
    with pytest.raises(ConfigError, match=r"rendered at \[64, 32, 16, 8\] px, got 20"):
        SAMIDataConfig("shapes3d_subgrid", size=20).validate()
    with pytest.raises(ConfigError, match=r"drawn procedurally"):
        SAMIDataConfig("shapes3d_subgrid", size=16, root="/data").validate()
