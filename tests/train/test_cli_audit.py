"""Regressions from the newcomer / robustness audit of the command line (2026-12-07): every mistake is a
one-line message naming the flag or field and a non-zero exit, never a traceback or a silently wrong run."""

import math

import numpy as np

import pytest

import diffrep.cli.info
from diffrep.cli import main
from diffrep.config import ConfigError
from diffrep.train.config import TrainConfig


def _err(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_config_float_fields_refuse_non_finite(value):
    # lr: inf passed the Gt(0) bound and trained to a NaN loss; eps (no bound) took nan
    with pytest.raises(ConfigError, match=r"'lr': must be a finite number"):
        TrainConfig(lr=value)
    with pytest.raises(ConfigError, match=r"'eps': must be a finite number"):
        TrainConfig(eps=value)


def test_train_override_inf_is_a_message(capsys, tmp_path):
    assert main(["train", "demo/toy-ddpm", "--train.lr", "inf", "--out", str(tmp_path / "run")]) == 2
    assert "config field 'train.lr': must be a finite number, got inf" in _err(capsys)
    assert not (tmp_path / "run").exists()


def test_diverged_training_is_a_message_not_a_traceback(capsys, monkeypatch):
    def diverge(args):
        raise FloatingPointError("non-finite loss nan at step 2: the run diverged")

    monkeypatch.setattr(diffrep.cli.info, "run", diverge)
    assert main(["info"]) == 1
    assert _err(capsys).strip() == "diffrep info: error: non-finite loss nan at step 2: the run diverged"


@pytest.mark.parametrize("value, text", [("1.5", "--test-fraction must lie in (0, 1), got 1.5"),
                                         ("nan", "--test-fraction must be a finite number, got nan")])
def test_eval_codes_test_fraction_out_of_range(capsys, tmp_path, value, text):
    # 1.5 split 200 rows 100/100 (a negative slice end) and scored them; nan failed inside int()
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "c.npz", codes=rng.standard_normal((60, 3)), factors=rng.integers(0, 3, (60, 2)))
    assert main(["eval", "--codes", str(tmp_path / "c.npz"), "--test-fraction", value]) == 2
    assert _err(capsys).strip() == f"diffrep eval: error: {text}"


def test_sample_nrow_zero_is_refused(capsys, tmp_path):
    # --nrow 0 fell back to sqrt(n) through `args.nrow or ...`
    from diffrep.diffusion import NoiseScheduleConfig
    from diffrep.methods.toy_ddpm import ToyDDPM, ToyDDPMConfig
    from diffrep.nn import UNetConfig

    unet = UNetConfig(image_size=8, in_channels=1, out_channels=1, model_channels=8, channel_mult=(1,),
                      num_res_blocks=1, attention_resolutions=(), middle_attention=False, num_groups=4)
    ToyDDPM(ToyDDPMConfig(unet=unet, schedule=NoiseScheduleConfig(num_timesteps=4), sample_steps=2)).save_pretrained(
        tmp_path / "m")
    out = tmp_path / "s.png"
    assert main(["sample", str(tmp_path / "m"), "--n", "2", "--nrow", "0", "--out", str(out)]) == 2
    assert _err(capsys).strip() == "diffrep sample: error: --nrow must be >= 1, got 0"
    assert not out.exists()
    assert main(["sample", str(tmp_path / "m"), "--n", "2", "--steps", "0", "--out", str(out)]) == 2
    assert "num_steps must be an int in [1, 4], got 0" in _err(capsys)


def test_sami_train_refuses_another_family(capsys):
    assert main(["sami", "train", "demo/toy-ddpm", "--train.steps", "1"]) == 2  # trained the toy DDPM
    assert "this command takes a sami/ recipe, got 'demo/toy-ddpm'" in _err(capsys)


def test_sami_analyze_negative_num_images(capsys, tmp_path):
    assert main(["sami", "analyze", str(tmp_path), "--num-images", "-1"]) == 2  # was max(-1, guides, 2)
    assert "--num-images and --guides must be >= 1, got -1 and" in _err(capsys)


@pytest.mark.parametrize("argv, text", [
    (["paramrel", "traverse", "M", "--out", "{folder}"], "--out {folder} is a folder; give a file path"),
    (["paramrel", "eval", "M", "--json", "{folder}"], "--json {folder} is a folder; give a file path"),
    (["sample", "M", "--out", "{tmp}/grid.txt"], "--out {tmp}/grid.txt: give a file name ending in .png or"),
    (["multibeta", "encode", "M", "--out", "{folder}"], "--out {folder} is a folder"),  # was written as {folder}.npz
    (["multibeta", "decode", "M", "--codes", "c.npz", "--out", "{tmp}/d.npz"], "give a file name ending in .png"),
    (["multibeta", "eval", "M", "--json", "{folder}"], "--json {folder} is a folder"),
    (["encdiff", "encode", "M", "--out", "{tmp}/codes.png"], "--out {tmp}/codes.png: give a file name ending in .npz"),
    (["encdiff", "sample", "M", "--out", "{folder}"], "--out {folder} is a folder"),
])
def test_outputs_are_checked_before_any_work(capsys, tmp_path, argv, text):
    # these verbs wrote after computing (PIL's "unknown file extension:") or let numpy append .npz to a folder
    folder = tmp_path / "existing"
    folder.mkdir()
    (tmp_path / "M").mkdir()
    fill = dict(folder=folder, tmp=tmp_path)
    argv = [a.format(**fill) if a != "M" else str(tmp_path / "M") for a in argv]
    assert main(argv) == 2
    assert text.format(**fill) in _err(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["M", "existing"]


def test_multibeta_codes_pickle_is_named(tmp_path):
    from diffrep.cli.multibeta import read_codes

    (tmp_path / "c.npz").write_text("not an archive")
    with pytest.raises(ValueError, match=r"^--codes: .*c.npz is not an .npz archive of arrays"):
        read_codes(tmp_path / "c.npz", None)  # was numpy's advice to load it with allow_pickle=True


def test_quickstart_refuses_a_training_run_folder(capsys, tmp_path):
    # quickstart wrote run/, model/ and its figures next to the train run's checkpoints/ and final/
    (tmp_path / "checkpoints" / "step-00000002").mkdir(parents=True)
    (tmp_path / "metrics.jsonl").write_text('{"step": 2}\n')
    before = sorted(p.name for p in tmp_path.iterdir())
    for extra in ([], ["--overwrite"]):
        assert main(["quickstart", "--out", str(tmp_path), "--steps", "1", *extra]) == 2
        assert "holds a training run (metrics.jsonl, checkpoints/step-00000002), not a quickstart folder" in _err(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_refused_resumes_leave_the_run_as_it_was(capsys, tmp_path):
    # resuming a step-2 checkpoint with --train.steps 1 ran nothing, rewrote config.yaml and printed
    # "trained demo/toy-ddpm to step 1: loss nan"
    import torch
    from torch.utils.data import TensorDataset

    from helpers import TinyLinear
    from diffrep.train import TrainConfig, Trainer

    small = ["--data.num_images", "8", "--train.batch_size", "4", "--train.sample_every", "0", "--model.unet.model_channels",
             "8", "--model.unet.num_groups", "4", "--model.unet.attention_resolutions", "[]"]
    run = tmp_path / "run"
    assert main(["train", "demo/toy-ddpm", "--out", str(run), "--train.steps", "2", *small]) == 0
    config = (run / "config.yaml").read_text()
    capsys.readouterr()
    assert main(["train", "demo/toy-ddpm", "--out", str(run), "--resume", "latest", "--train.steps", "1", *small]) == 2
    assert "is at step 2, past train.steps=1; pass --train.steps N with N > 2" in _err(capsys)
    assert (run / "config.yaml").read_text() == config
    assert main(["train", "demo/toy-ddpm", "--out", str(run), "--resume", "latest", "--train.steps", "2", *small]) == 0
    err = _err(capsys)
    assert "nothing to train, the run is already at train.steps=2" in err and "loss nan" not in err
    # a resume the trainer refuses (another model class) rewrote config.yaml and run.json first, so later
    # commands read the wrong recipe's data settings (run.json removed: else the recipe check refuses first)
    # (now the config check refuses first: bfn/digits' config is not the run's)
    (run / "run.json").unlink()
    assert main(["train", "bfn/digits", "--out", str(run), "--resume", "latest", "--train.steps", "3"]) == 2
    assert "--resume: the config differs from the run's" in _err(capsys)
    assert (run / "config.yaml").read_text() == config and not (run / "run.json").exists()
    # the library refuses too (a checkpoint folder not named step-*, which the command line cannot read)
    data = TensorDataset(torch.randn(8, 2))
    cfg = dict(batch_size=4, ema_decay=0.0, log_every=1, device="cpu")
    Trainer(TinyLinear(), data, TrainConfig(steps=2, **cfg), tmp_path / "lib").train()
    with pytest.raises(ValueError, match=r"is at step 2, past steps=1"):
        Trainer(TinyLinear(), data, TrainConfig(steps=1, **cfg), tmp_path / "lib").train(resume="latest")


def test_multibeta_code_metrics_explicit_zero_is_not_the_default():
    # `num_train or sizes["num_train"]` turned 0 into the quick preset's 10,000
    from diffrep.cli.multibeta import code_metrics
    from diffrep.data import ArrayGroundTruthData

    ds = ArrayGroundTruthData(np.zeros((6, 1, 4, 4), np.float32), ["a", "b"], [3, 2])
    with pytest.raises(ValueError, match="num_train"):
        code_metrics(None, ds, 0.5, "cpu", ["mig"], num_train=0)


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_on_a_cpu_machine_is_not_blamed_on_the_weights(capsys, tmp_path):
    # encdiff built its own device and load_safetensors_checked reported "model.safetensors is not a valid
    # safetensors file (truncated or corrupted?): pin_memory=True requires a CUDA ..."
    from diffrep.nn import load_pretrained

    (tmp_path / "m").mkdir()
    assert main(["encdiff", "sample", str(tmp_path / "m"), "--device", "cuda", "--out", str(tmp_path / "x.png")]) == 2
    assert "--device cuda: no CUDA device is usable here" in _err(capsys)
    _toy(tmp_path / "toy")
    with pytest.raises(ValueError, match=r"^map_location 'cuda': no such CUDA device is usable here"):
        load_pretrained(tmp_path / "toy", map_location="cuda")


def test_multibeta_and_encdiff_verbs_take_a_run_folder(capsys, tmp_path):
    # 'diffrep train' prints the run folder; these verbs said "holds no config.json" / "not a save_pretrained directory"
    run = tmp_path / "run"
    (run / "final").mkdir(parents=True)
    _toy(run / "checkpoints" / "step-00000001")
    (run / "checkpoints" / "step-00000001" / "manifest.json").write_text("{}")
    for argv, cls in ((["multibeta", "encode", str(run), "--out", str(tmp_path / "c.npz")], "MultiBeta model"),
                      (["encdiff", "encode", str(run), "--out", str(tmp_path / "c.npz")], "EncDiff model")):
        assert main(argv) == 2
        assert f"checkpoints/step-00000001 holds a ToyDDPM, not a{'n' if cls[0] == 'E' else ''} {cls}" in _err(capsys)


def _toy(path):
    from diffrep.diffusion import NoiseScheduleConfig
    from diffrep.methods.toy_ddpm import ToyDDPM, ToyDDPMConfig
    from diffrep.nn import UNetConfig

    unet = UNetConfig(image_size=8, in_channels=1, out_channels=1, model_channels=8, channel_mult=(1,),
                      num_res_blocks=1, attention_resolutions=(), middle_attention=False, num_groups=4)
    ToyDDPM(ToyDDPMConfig(unet=unet, schedule=NoiseScheduleConfig(num_timesteps=4), sample_steps=2)).save_pretrained(path)


def test_bfn_sample_refuses_another_model(capsys, tmp_path):
    _toy(tmp_path / "toy")
    assert main(["bfn", "sample", str(tmp_path / "toy"), "--n", "1", "--out", str(tmp_path / "x.png")]) == 2
    assert "holds a ToyDDPM, not a BFN; use 'diffrep sample' for any model" in _err(capsys)
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("argv", [["data", "preview", "digits", "--out", "{tmp}/p.png", "--seed", "-1"],
                                  ["encode", "{tmp}", "--dataset", "dsprites", "--out", "{tmp}/c.npz", "--seed", "-1"]])
def test_negative_seed_is_named(capsys, tmp_path, argv):
    # numpy's "expected non-negative integer" / "Seed must be between 0 and 2**32 - 1" named no flag; refused at
    # parsing since (cli._common.numpy_seed, tests/train/test_numpy_seed_flag.py)
    with pytest.raises(SystemExit) as e:
        main([a.format(tmp=tmp_path) for a in argv])
    assert e.value.code == 2
    assert _err(capsys).strip().endswith("argument --seed: must be an integer in [0, 2^32), got -1")


def test_resume_into_another_recipes_run_is_refused(capsys, tmp_path):
    # `train multibeta/... --out TOY_RUN --resume latest` found no phase checkpoint, started afresh and wrote
    # phase1/, phase2/, final/, config.yaml and run.json into the toy run's folder
    import json

    run = tmp_path / "run"
    (run / "checkpoints" / "step-00000002").mkdir(parents=True)
    (run / "checkpoints" / "step-00000002" / "manifest.json").write_text("{}")
    (run / "metrics.jsonl").write_text('{"step": 2, "loss": 1.0}\n')
    (run / "run.json").write_text(json.dumps({"recipe": "demo/toy-ddpm", "data": {}}))
    before = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    assert main(["train", "multibeta/dsprites-cpu", "--out", str(run), "--resume", "latest"]) == 2
    assert "holds a run of recipe 'demo/toy-ddpm' (its run.json), not 'multibeta/dsprites-cpu'" in _err(capsys)
    (run / "run.json").unlink()  # a run written without run.json: a phased recipe still sees the single-phase run
    assert main(["train", "multibeta/dsprites-cpu", "--out", str(run), "--resume", "latest"]) == 2
    assert "holds a single-phase run (metrics.jsonl, checkpoints/step-00000002)" in _err(capsys)
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*")) == [b for b in before if b != "run.json"]


def test_unknown_eval_preset_writes_nothing(capsys, tmp_path):
    argv = ["train", "demo/toy-ddpm", "--out", str(tmp_path / "run"), "--train.eval_every", "1",
            "--train.eval_metrics", "[bogus]"]
    assert main(argv) == 2  # config.yaml and run.json were written before the trainer named the preset
    assert "train.eval_metrics: unknown preset 'bogus'" in _err(capsys)
    assert not (tmp_path / "run").exists()


def test_resume_with_another_config_is_refused(capsys, tmp_path):
    # a resume with --data.num_images 16 was accepted silently; config.yaml then described only the later steps
    small = ["--train.batch_size", "4", "--train.sample_every", "0", "--model.unet.model_channels", "8",
             "--model.unet.num_groups", "4", "--model.unet.attention_resolutions", "[]"]
    run = tmp_path / "run"
    assert main(["train", "demo/toy-ddpm", "--out", str(run), "--train.steps", "2", "--data.num_images", "8", *small]) == 0
    config = (run / "config.yaml").read_text()
    capsys.readouterr()
    assert main(["train", "demo/toy-ddpm", "--out", str(run), "--resume", "latest", "--train.steps", "3",
                 "--data.num_images", "16", "--train.lr", "1e-3", *small]) == 2
    err = _err(capsys)
    assert "the config differs from the run's" in err and "data.num_images (8 -> 16)" in err
    assert "train.lr (0.002 -> 0.001)" in err and "train.steps" not in err.split("keeps its config")[0]
    assert (run / "config.yaml").read_text() == config
    # what may change: the length of the run, its logging and evaluation; a field config.yaml lacks (a run
    # of an older diffrep) is not a change
    yaml_text = (run / "config.yaml").read_text()
    assert "  log_every: " in yaml_text
    (run / "config.yaml").write_text("\n".join(line for line in yaml_text.splitlines() if "ema_warmup" not in line))
    assert main(["train", "demo/toy-ddpm", "--out", str(run), "--resume", "latest", "--train.steps", "3",
                 "--train.log_every", "1", "--data.num_images", "8", *small]) == 0
    assert "trained demo/toy-ddpm to step 3" in _err(capsys)


def test_eval_codes_refuses_flags_only_model_reads(capsys, tmp_path):
    # --num-train 0 / --seed with --codes were ignored without a word
    np.savez(tmp_path / "c.npz", codes=np.random.default_rng(0).normal(size=(60, 3)),
             factors=np.random.default_rng(1).integers(0, 3, (60, 2)))
    assert main(["eval", "--codes", str(tmp_path / "c.npz"), "--num-train", "0", "--seed", "3"]) == 2
    assert "--num-train, --seed apply to --model only; --codes reads codes already computed" in _err(capsys)
    assert main(["eval", "--codes", str(tmp_path / "c.npz"), "--metrics", "mig"]) == 0


def test_quickstart_names_the_paramrel_recipes_only(capsys, tmp_path):
    # an unknown --recipe listed all recipes of every method, which quickstart then refused anyway
    assert main(["quickstart", "--out", str(tmp_path / "q"), "--recipe", "paramrel/dsprite"]) == 2
    err = _err(capsys)
    assert "--recipe must be a ParamReL recipe, got 'paramrel/dsprite'. Did you mean: paramrel/dsprites" in err
    assert "paramrel/digits" in err and "vae/" not in err
    assert main(["quickstart", "--out", str(tmp_path / "q"), "--recipe", "vae/vae-cpu"]) == 2
    assert "--recipe must be a ParamReL recipe, got 'vae/vae-cpu'" in _err(capsys)
    assert not (tmp_path / "q").exists()
