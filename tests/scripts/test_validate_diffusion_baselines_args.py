"""scripts/validate_diffusion_baselines.py refuses, before any training, the arguments that made it fail only after
the earlier methods had trained for minutes (an --eval-steps outside the 1000-step schedule, a --load-model folder
that is not a saved model) or that it ignored without a word (DisDiff's flags without disdiff in --methods)."""

from __future__ import annotations

import pytest

from helpers import load_script

CASES = [
    (["--eval-steps", "0"], "--eval-steps must be in [1, 1000] (DDIM steps of a 1000-step schedule), got 0"),
    (["--eval-steps", "1001"], "--eval-steps must be in [1, 1000]"),
    (["--seed", "-1"], "--seed must be >= 0, got -1"),
    (["--methods", "diffae", "--recon-loss", "l1"], "--recon-loss: DisDiff only (its training and swap measurement); "
                                                    "add disdiff to --methods"),
    (["--methods", "disdiff", "--dis-weight", "-0.5"], "--dis-weight must be a finite number >= 0, got -0.5"),
    (["--methods", "disdiff", "--dis-weight", "nan"], "--dis-weight must be a finite number >= 0, got nan"),
    (["--methods", "diffae", "--dis-weight", "1"], "--dis-weight: DisDiff only"),
    (["--methods", "diffae", "infodiffusion", "--pretrain-steps", "3", "--save-dir", "{tmp}/s"],
     "--pretrain-steps, --save-dir: DisDiff only"),
    (["--load-model", "{tmp}/none"], "--load-model {tmp}/none: not a saved model folder (no config.json)"),
    (["--load-model", "{tmp}/run"], "--load-model {tmp}/run: not a saved model folder (no config.json) (a run folder: "
                                    "give {tmp}/run/final)"),
    (["--load-pretrained", "{tmp}/none"], "--load-pretrained {tmp}/none: not a saved model folder"),
    (["--load-model", "{tmp}/run/final", "--disentangle-steps", "5"], "--load-model evaluates a saved model without "
                                                                       "training: drop --load-pretrained"),
    # another method's folder failed with from_pretrained's traceback, after the sub-grid had rendered
    (["--load-model", "{tmp}/diffae"], "--load-model {tmp}/diffae: holds a DiffAE, not a DisDiff"),
    (["--load-pretrained", "{tmp}/diffae"], "--load-pretrained {tmp}/diffae: holds a DiffAE, not a DisDiff"),
    (["--load-model", "{tmp}/run/final"], "--load-model {tmp}/run/final: holds no diffrep model, not a DisDiff"),
]


@pytest.mark.parametrize("argv, text", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_wrong_arguments_are_refused_before_training(argv, text, tmp_path, capsys):
    (tmp_path / "run" / "final").mkdir(parents=True)
    (tmp_path / "run" / "final" / "config.json").write_text("{}")  # what the checks look for: a saved model folder
    (tmp_path / "diffae").mkdir()
    (tmp_path / "diffae" / "config.json").write_text('{"_class_name": "DiffAE"}')
    main = load_script("validate_diffusion_baselines").main
    out = tmp_path / "record.json"
    with pytest.raises(SystemExit) as exc:
        main([a.replace("{tmp}", str(tmp_path)) for a in argv] + ["--out", str(out)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err
    assert f"error: {text.replace('{tmp}', str(tmp_path))}" in err, err
    assert not out.exists() and not (tmp_path / "s").exists()
