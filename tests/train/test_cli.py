import json

import numpy as np
from PIL import Image

from diffrep.cli import main


def _train(out, *extra):
    return main(["train", "demo/toy-ddpm", "--out", str(out), "--train.steps", "6", "--train.batch_size", "8",
                 "--data.num_images", "32", "--train.log_every", "3", "--train.ckpt_every", "3",
                 "--train.sample_every", "6", "--train.num_samples", "4", "--train.device", "cpu", *extra])


def test_train_then_resume_then_sample(tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(out) == 0
    assert (out / "config.yaml").is_file() and (out / "images" / "samples" / "step-00000006.png").is_file()
    steps = [json.loads(l)["step"] for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [3, 6]
    # extend the run from its latest checkpoint
    assert main(["train", "demo/toy-ddpm", "--out", str(out), "--resume", "latest", "--train.steps", "9",
                 "--train.batch_size", "8", "--data.num_images", "32", "--train.log_every", "3",
                 "--train.device", "cpu"]) == 0
    steps = [json.loads(l)["step"] for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [3, 6, 9]
    png = tmp_path / "s.png"
    assert main(["sample", str(out), "--n", "4", "--seed", "5", "--steps", "3", "--upscale", "1", "--out", str(png)]) == 0
    img = np.asarray(Image.open(png))
    assert img.shape == (38, 38, 3)  # 2 x 2 grid of 16 px images with 2 px padding
    png2 = tmp_path / "s2.png"
    assert main(["sample", str(out), "--n", "4", "--seed", "5", "--steps", "3", "--upscale", "1", "--out", str(png2)]) == 0
    assert np.array_equal(img, np.asarray(Image.open(png2)))  # same seed, same samples


def test_bad_config_fails_before_training_naming_the_field(tmp_path, capsys):
    assert main(["train", "demo/toy-ddpm", "--out", str(tmp_path / "r"), "--model.unet.attention_resolutions", "3"]) == 2
    err = capsys.readouterr().err
    assert "model.unet.attention_resolutions" in err and not (tmp_path / "r").exists()
    assert main(["train", "demo/toy-ddpm", "--train.warmup", "3"]) == 2
    assert "train.warmup" in capsys.readouterr().err
    assert main(["train", "nope/recipe"]) == 2
    assert main(["sample", str(tmp_path)]) == 2


def test_print_config_and_yaml_preset(tmp_path, capsys):
    (tmp_path / "p.yaml").write_text("train:\n  steps: 42\nmodel:\n  sample_steps: 5\n")
    assert main(["train", "demo/toy-ddpm", "--config", str(tmp_path / "p.yaml"), "--train.lr", "0.01", "--print-config"]) == 0
    out = capsys.readouterr().out
    assert "steps: 42" in out and "sample_steps: 5" in out and "lr: 0.01" in out
    assert main(["train", "--list"]) == 0
    assert "demo/toy-ddpm" in capsys.readouterr().out
