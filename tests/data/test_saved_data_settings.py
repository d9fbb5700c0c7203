"""Model verbs read the run's saved data settings (issue 17 item 16): a ParamReL model trained on
dSprites max-pooled to 32 x 32 is evaluated and traversed on 32 x 32 images without repeating
--dataset/--pool, and a wrong size is a clear error, not a shape mismatch deep in a convolution."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from diffrep.cli import main
from diffrep.recipes.runinfo import dataset_from_settings, find_run_info, resolve_data_settings


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("paramrel_run") / "run"
    assert main(["train", "paramrel/dsprites", "--out", str(out), "--train.steps", "2", "--train.batch_size", "4",
                 "--train.log_every", "1", "--train.device", "cpu"]) == 0
    return out


def test_the_run_records_its_data_settings(run):
    info = json.loads((run / "run.json").read_text())
    assert info["recipe"] == "paramrel/dsprites"
    assert info["data"] == {"dataset": "dsprites", "options": {}, "pool": 2, "root": None}
    assert find_run_info(run / "final") == info  # final/ carries it too
    s = resolve_data_settings(run / "final")
    assert dataset_from_settings(s)[0][0].shape == (1, 32, 32)
    # a different dataset on the command line drops the run's options and pooling
    assert resolve_data_settings(run / "final", "digits")["pool"] == 1


def test_paramrel_traverse_uses_the_runs_dataset_and_pooling(run, tmp_path):
    png = tmp_path / "trav.png"
    assert main(["paramrel", "traverse", str(run / "final"), "--n", "1", "--steps", "2", "--device", "cpu",
                 "--out", str(png)]) == 0
    img = np.asarray(Image.open(png))
    latents = json.loads((run / "final" / "config.json").read_text())["latent_dim"]
    # one row per latent x 7 values of 32 px images, padding 2: the pooled size, not 64 px
    assert img.shape[:2] == (latents * 34 + 2, 7 * 34 + 2)


def test_eval_model_uses_the_runs_settings_and_names_a_wrong_size(run, tmp_path, capsys):
    js = tmp_path / "m.json"
    assert main(["eval", "--model", str(run / "final"), "--num-train", "40", "--num-test", "20", "--metrics", "mig",
                 "--device", "cpu", "--out", str(js)]) == 0
    meta = json.loads(js.read_text())["meta"]
    assert meta["dataset"] == "dsprites" and meta["pool"] == 2
    capsys.readouterr()
    assert main(["eval", "--model", str(run / "final"), "--pool", "1", "--num-train", "10", "--num-test", "5",
                 "--metrics", "mig", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "reads 32x32 images" in err and "64x64" in err and "--pool 2" in err
