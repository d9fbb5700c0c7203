"""Contract of issue 17 (correctness of what exists: ParamReL and SAMI defects, run folders that never
mix, tests that catch wrong maths), one test per numbered item, calling the public names by the paths the
issue and its closing note give.

Deeper tests that already cover an item are named beside it and not repeated: tests/bfn/test_quantize.py
(1), tests/config/test_overrides_validate_once.py (3), tests/methods/test_paramrel_xattn_hyper.py (4, 5),
tests/methods/test_quickstart_sampling_doc.py (6), tests/analysis/test_traversal.py (8),
tests/recipes/test_sami_eval_data.py (9, 10), tests/analysis/test_sami_validation.py (11),
tests/analysis/test_sami_analysis_values.py (12), tests/methods/test_sami_exact_bayes.py (13: Eq. 8 and
Eq. 10 against the linear-Gaussian closed form to 1e-10, a flipped sign fails; no public name of its own),
tests/train/test_run_folders.py (14), tests/train/test_interrupt.py (15, real subprocesses and signals),
tests/data/test_roots.py and tests/data/test_saved_data_settings.py (16); the value tests that kill the
listed mutations: tests/bfn/test_loss_values.py, tests/methods/test_paramrel_values.py,
tests/methods/test_sami_objective_values.py, tests/metrics/test_protocol_values.py.
"""

import dataclasses
import inspect
import io
import json
import math
import os
import signal
import contextlib
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from helpers import load_script, sami_images, tiny_bfn, tiny_paramrel, tiny_sami
from diffrep.config import ConfigError, apply_overrides
from diffrep.recipes import get_recipe

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- 1. quantise discretised data to the bin centres

def test_quantize_signature():
    from diffrep.bfn import quantize
    assert list(inspect.signature(quantize).parameters) == ["x", "num_bins"]


@pytest.mark.parametrize("K", [2, 3, 5, 7, 16, 100, 255, 256])
def test_quantize_8bit_pixels_to_the_bin_centres(K):
    from diffrep.bfn import quantize
    p = np.arange(256)
    x = torch.from_numpy(p / 127.5 - 1).float()  # what the loaders hand the flow
    # the reference: x01 = p/255, bin = clamp(floor(x01 K), 0, K - 1) (exact in integers), centre (2 bin + 1)/K - 1
    bins = np.minimum((p * K) // 255, K - 1)
    want = torch.from_numpy((2 * bins + 1) / K - 1).float()
    got = quantize(x, K)
    assert got.dtype == torch.float32 and got.shape == x.shape
    assert torch.equal(got, want)
    if K == 256:
        assert float(got[0]) == pytest.approx(-1 + 1 / 256) and float(got[255]) == pytest.approx(1 - 1 / 256)


def test_quantize_is_the_nearest_centre_for_any_value():
    from diffrep.bfn import quantize
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2000, generator=g, dtype=torch.float64) * 2.4 - 1.2  # outside [-1, 1] too: the edge bins
    for K in (2, 7, 16):
        centres = (2 * torch.arange(1, K + 1, dtype=torch.float64) - 1) / K - 1
        brute = centres[(x[:, None] - centres[None]).abs().argmin(1)]
        assert torch.allclose(quantize(x, K), brute, atol=0, rtol=0)
    with pytest.raises(ValueError, match="num_bins"):
        quantize(x, 1)


def test_every_discretised_flow_quantises_its_data():
    from diffrep.bfn import BFNDataConfig, quantize
    from diffrep.bfn.config import make_flow
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    for model in (tiny_paramrel("discretised"), tiny_bfn("discretised")):  # 16 bins
        assert torch.equal(model.flow.prepare_data(x), quantize(x, 16))
    for K in (3, 256):
        assert torch.equal(make_flow(BFNDataConfig(data="discretised", num_bins=K)).prepare_data(x), quantize(x, K))
    cont = tiny_paramrel("continuous")
    assert torch.equal(cont.flow.prepare_data(x), x)  # continuous data are not snapped


@pytest.mark.parametrize("encoder_input", ["theta", "x"])
def test_training_and_encoding_see_quantised_data(encoder_input):
    from diffrep.bfn import quantize
    m = tiny_paramrel("discretised", encoder_input=encoder_input).eval()
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(2)) * 2 - 1
    q = quantize(x, 16)
    with torch.no_grad():  # the reference quantises in its data transform: every reader of x sees the centres
        assert torch.equal(m.encode(x), m.encode(q))
        lx = m.loss(x, step=0, generator=torch.Generator().manual_seed(1))["loss"]
        lq = m.loss(q, step=0, generator=torch.Generator().manual_seed(1))["loss"]
    assert torch.equal(lx, lq)


# ---------------------------------------------------------------- 2. no weight flips a term's sign

def _paramrel_cfg():
    return get_recipe("paramrel/digits").make_config()


def test_gamma_mi_above_one_is_rejected_naming_the_field():
    for extra in ({}, {"model.allow_negative_mmd_weight": True}):
        with pytest.raises(ConfigError, match=r"gamma_mi"):
            apply_overrides(_paramrel_cfg(), {"model.gamma_mi": 1.2, **extra})
    with pytest.raises(ConfigError, match=r"'model\.gamma_mi'.*>= 0"):
        apply_overrides(_paramrel_cfg(), {"model.gamma_mi": -0.1})
    with pytest.raises(ConfigError, match=r"'model\.lambda_agg'.*>= 0"):
        apply_overrides(_paramrel_cfg(), {"model.lambda_agg": -0.1})
    # the MMD weight gamma_mi + lambda_agg - 1 < 0 maximises the MMD: refused unless asked for literally
    with pytest.raises(ConfigError, match=r"lambda_agg.*negative"):
        apply_overrides(_paramrel_cfg(), {"model.gamma_mi": 0.5, "model.lambda_agg": 0.1})
    m = apply_overrides(_paramrel_cfg(), {"model.gamma_mi": 1.0, "model.lambda_agg": 0.01}).model
    assert (m.kl_weight, m.mmd_weight) == (pytest.approx(0.0), pytest.approx(0.01))


# ---------------------------------------------------------------- 3. overrides validated once; delta recipes

@pytest.mark.parametrize("flags", [
    ["--model.bfn.data", "continuous", "--model.unet.num_outputs", "1"],
    ["--model.unet.num_outputs", "1", "--model.bfn.data", "continuous"],
    ["--model.allow_negative_mmd_weight", "true", "--model.gamma_mi", "0.9", "--model.lambda_agg", "0.01"],
    ["--model.lambda_agg", "0.01", "--model.gamma_mi", "0.9", "--model.allow_negative_mmd_weight", "true"],
])
def test_overrides_work_in_any_flag_order(flags):
    cfg = apply_overrides(get_recipe("paramrel/celeba64").make_config(), flags)
    if "continuous" in flags:
        assert cfg.model.bfn.data == "continuous"
    else:
        assert cfg.model.mmd_weight == pytest.approx(0.9 + 0.01 - 1)


@pytest.mark.parametrize("name", ["paramrel/celeba64-delta", "paramrel/shapes3d64-delta", "paramrel/cifar10-delta"])
def test_delta_output_recipes(name):
    m = get_recipe(name).make_config().model
    assert (m.bfn.data, m.bfn.sigma1) == ("continuous", 1e-3)


# ---------------------------------------------------------------- 4. cross-attention at every level

def test_xattn_conditions_every_resolution_level_by_default():
    from diffrep.methods.paramrel import ParamReLConfig
    assert ParamReLConfig.__dataclass_fields__["xattn_levels"].default == "all"
    m = tiny_paramrel("continuous", cond="xattn", xattn_tokens=2)
    u = m.config.unet
    levels = {u.image_size >> i for i in range(len(u.channel_mult))}  # 8 x 8 with two levels: 8 and 4
    assert set(u.attention_resolutions) == levels == {8, 4} and u.middle_attention
    b = tiny_paramrel("continuous", cond="xattn", xattn_tokens=2, xattn_levels="bottleneck").config.unet
    assert tuple(b.attention_resolutions) == () and b.middle_attention


# ---------------------------------------------------------------- 5. hyper-feature encoder: the current step's features

def test_hyper_steps_is_kept_ignored_and_the_docs_say_which_features():
    from diffrep.methods.paramrel import ParamReL
    a = tiny_paramrel("discrete", encoder="hyper")
    b = ParamReL(dataclasses.replace(a.config, hyper_steps=3))
    b.load_state_dict(a.state_dict())
    x = (torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)) > 0.5).float() * 2 - 1
    la = a.loss(x, step=0, generator=torch.Generator().manual_seed(5))["loss"]
    lb = b.loss(x, step=0, generator=torch.Generator().manual_seed(5))["loss"]
    assert torch.equal(la, lb)  # an older config's hyper_steps loads and changes nothing
    doc = (ROOT / "docs" / "methods" / "paramrel.md").read_text().lower()
    assert "current step" in doc


# ---------------------------------------------------------------- 6. the quickstart says what sampling does

def test_quickstart_docstring_is_true_for_the_cpu_recipes():
    import diffrep.cli.quickstart as qs
    doc = " ".join(qs.__doc__.split())
    assert "one z ~ N(0, I) per image drawn once and held for all n steps" in doc
    assert "never called while sampling" in doc
    for name in ("paramrel/dsprites", "paramrel/digits"):
        m = get_recipe(name).make_config().model
        assert (m.z_source, m.encoder_input) == ("prior_fixed", "x"), name


# ---------------------------------------------------------------- 7. notebook preset: BFN loss / (D K)

def test_notebook_reduction_divides_by_d_times_k():
    K = 3
    m = tiny_paramrel("discrete", K=K, reduction="notebook").eval()
    x = torch.randint(0, K, (4, 1, 8, 8), generator=torch.Generator().manual_seed(0)).float() / (K - 1) * 2 - 1
    with torch.no_grad():
        out = m.loss(x, step=0, generator=torch.Generator().manual_seed(3))
    D = 8 * 8
    cfg = m.config
    want = out["bfn_loss"] / (D * K) + cfg.kl_weight * out["kl"] * 4 + cfg.mmd_weight * out["mmd"]
    assert float(out["loss"]) == pytest.approx(float(want), rel=1e-5)
    with pytest.raises(ConfigError, match="reduction"):
        tiny_paramrel("discretised", reduction="notebook")


# ---------------------------------------------------------------- 8. the quickstart shows what z carries

def test_centroid_shifts_measure_the_traversal_in_pixels():
    from diffrep.analysis.traversal import centroid_shifts

    def decode(codes):  # a lit pixel at column round(z0), row round(z1) of a 16 x 16 image
        img = -torch.ones(codes.shape[0], 1, 16, 16)
        for i, (cx, cy) in enumerate(codes.round().long().tolist()):
            img[i, 0, cy, cx] = 1.0
        return img

    base = torch.tensor([[3.0, 5.0], [4.0, 9.0]])
    values = torch.tensor([[2.0, 6.0, 12.0], [1.0, 7.0, 14.0]])
    r = centroid_shifts(decode, base, [0, 1], values)
    # latent 0 sweeps the column 2 -> 12 (10 px in x, y fixed); latent 1 the row 1 -> 14 (13 px in y)
    assert r["per_latent"][0]["dx"] == pytest.approx(10.0) and r["per_latent"][0]["dy"] == pytest.approx(0.0)
    assert r["per_latent"][1]["dy"] == pytest.approx(13.0) and r["per_latent"][1]["dx"] == pytest.approx(0.0)
    assert (r["best_x"], r["best_y"]) == (0, 1)
    assert r["max_abs_dx"] == pytest.approx(10.0) and r["max_abs_dy"] == pytest.approx(13.0)


class _Dots:
    """Ground-truth data: one lit pixel at (x, y) of an 8 x 8 image, factors x, y in 0..7."""
    factor_sizes = [8, 8]
    factor_names = ["x", "y"]

    def sample_factors(self, n, rng):
        return np.stack([rng.integers(0, 8, n), rng.integers(0, 8, n)], 1)

    def sample_observations_from_factors(self, f, rng):
        out = np.zeros((len(f), 8, 8, 1), np.float32)
        out[np.arange(len(f)), f[:, 1], f[:, 0], 0] = 1.0
        return out


def test_quickstart_traversal_record_and_the_cpu_recipe(tmp_path):
    from diffrep.cli.quickstart import POSITION_GATE_PX, write_traversals
    from diffrep.viz import legible_scale
    assert POSITION_GATE_PX == 8.0 and legible_scale(64) >= 4
    m = tiny_paramrel("discrete", latent=2, encoder_input="x", z_source="prior_fixed", steps=2).eval()
    with torch.no_grad():
        rec = write_traversals(m, _Dots(), tmp_path, "cpu", 2, 0, num_values=3, num_bases=2, num_codes=24)
    assert (tmp_path / "traversals.png").is_file()
    shift = rec["traversal_centroid_shift"]
    assert set(shift) == {"z0", "z1"} and all({"x", "y"} <= set(v) for v in shift.values())
    assert rec["gate"]["threshold_px"] == 8.0 and set(rec["gate"]) >= {"x", "y"}
    assert sorted(rec["latent_order"]) == [0, 1] and {lat["best_factor"] for lat in rec["latents"]} <= {"x", "y"}
    # the recipe change that made z carry position: sqrt(beta1) 3 -> 1 (issue 17's note), then 0.75 (a later,
    # documented change: docs/methods/paramrel.md#quickstart, the gate at 8 of 8 seeds); 6 latents
    from diffrep.recipes.paramrel import DSPRITES_SQRT_BETA1
    cpu = get_recipe("paramrel/dsprites").make_config().model
    assert (cpu.bfn.sqrt_beta1, cpu.latent_dim) == (DSPRITES_SQRT_BETA1, 6) and DSPRITES_SQRT_BETA1 <= 1.0


# ---------------------------------------------------------------- 9, 10. held-out evaluation; num_images honoured

def _image_folder(tmp_path, n=5):
    from PIL import Image
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(n):  # file i is a flat image of grey level 40 i
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(folder / f"{i:03d}.png")
    return folder


def test_sami_evaluation_reads_held_out_data_and_training_honours_num_images(tmp_path):
    from diffrep.recipes.sami import EVAL_SEED_OFFSET, SAMIDataConfig, build_dataset, build_eval_dataset
    folder = _image_folder(tmp_path)
    cfg = SAMIDataConfig(dataset="image_folder", root=str(folder), size=8, num_images=3)
    train = build_dataset(cfg)
    held, where = build_eval_dataset(cfg, 2)

    def level(ds, i):
        item = ds[i][0] if isinstance(ds[i], (tuple, list)) else ds[i]
        return round(float((item.float().mean() + 1) / 2 * 255))

    assert [level(train, i) for i in range(len(train))] == [0, 40, 80]  # the first 3 in sorted order
    assert [level(held, i) for i in range(len(held))] == [120, 160]  # the files after the training subset
    assert "after the training subset" in where
    disks = SAMIDataConfig(dataset="disks", num_images=4, size=8, seed=2)
    _, where = build_eval_dataset(disks, 4, seed=1)
    assert str(2 + EVAL_SEED_OFFSET + 1) in where and EVAL_SEED_OFFSET == 1000
    for split in ("test", "all"):
        with pytest.raises(ValueError, match="test split"):
            build_eval_dataset(SAMIDataConfig(dataset="celeba", split=split, size=8), 4)
    with pytest.raises(ValueError, match="none is left"):
        build_eval_dataset(dataclasses.replace(cfg, num_images=5), 2)
    assert get_recipe("sami/celeba64").make_config().data.num_images == 60000  # the paper's 60,000, not 162,770


# ---------------------------------------------------------------- 11. validation in two tiers

def _report(pos=0.4, knn=0.95, v_ratio=0.01, drop=-0.01, band_gaps=(-0.1, -0.2)):
    return {"variability": {"v_uncond": 1.0, "v_cond_mean": 0.05, "v_data": 0.05 / v_ratio},
            "position_transfer": {"cond_abs_error_px": pos, "uncond_abs_error_px": 1.0},
            "monotonicity": {"x": {"readout_spearman": 0.95, "mean_abs_spearman": 0.95},
                             "y": {"readout_spearman": 0.95, "mean_abs_spearman": 0.95},
                             "background": {"mean_abs_spearman": 0.95},
                             "knn_r2": {"x": knn, "y": 0.99, "background": 0.99}},
            "spectrum": {"mean_var": [1.0, 1.0 + drop]},
            "eps_mse": {"guided": 0.5, "unguided": 0.6,
                        "bands": [{"guided": 1.0 + g, "unguided": 1.0} for g in band_gaps]}}


def test_grade_report_has_smoke_gates_and_paper_checks_with_the_papers_thresholds():
    from diffrep.analysis.sami_validation import PAPER_CHECKS, SMOKE_GATES, SPECTRUM_TOLERANCE, grade_report
    assert SPECTRUM_TOLERANCE == 0.02
    r = grade_report(_report())
    assert set(r["smoke"]) == set(SMOKE_GATES) and set(r["paper"]) == set(PAPER_CHECKS)
    assert r["smoke_pass"] and r["paper_pass"]
    assert all({"value", "threshold", "pass", "what"} <= set(e) for t in ("smoke", "paper") for e in r[t].values())
    # each paper check at and just past its threshold
    cases = [("position_error_at_most_half", dict(pos=0.5), True), ("position_error_at_most_half", dict(pos=0.51), False),
             ("knn_r2_gt_0.9", dict(knn=0.9), False), ("knn_r2_gt_0.9", dict(knn=0.91), True),
             ("v_cond_over_v_data_lt_0.05", dict(v_ratio=0.05), False),
             ("v_cond_over_v_data_lt_0.05", dict(v_ratio=0.049), True),
             ("spectrum_nondecreasing", dict(drop=-0.019), True), ("spectrum_nondecreasing", dict(drop=-0.03), False)]
    for check, kw, ok in cases:
        assert grade_report(_report(**kw))["paper"][check]["pass"] is ok, (check, kw)
    # guided below unguided overall (the smoke gate) but not in one band: the paper's per-band check fails
    one_band = grade_report(_report(band_gaps=(-0.3, 0.01)))
    assert one_band["smoke"]["guided_mse_below_unguided"]["pass"] and not one_band["paper"]["guidance_sign_every_band"]["pass"]


def test_validate_sami_records_the_recipe_actually_run(tmp_path):
    from diffrep.config import dump_yaml
    vs = load_script("validate_sami")
    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.json").write_text(json.dumps({"recipe": "sami/disks-cpu-frozen"}))
    assert vs.recipe_of_run(run, None) == {"recipe": "sami/disks-cpu-frozen", "source": "recipe.json"}
    (run / "recipe.json").unlink()
    dump_yaml(get_recipe("sami/disks").make_config(), run / "config.yaml")
    assert vs.recipe_of_run(run, None)["recipe"] == "sami/disks"
    assert vs.recipe_of_run(run, "sami/celeba64")["source"] == "--recipe"
    assert '"--strict"' in (ROOT / "scripts" / "validate_sami.py").read_text()  # paper checks set the exit code too


# ---------------------------------------------------------------- 12. rigid/sloppy guidance and Algorithm 1's step

def test_rigid_sloppy_guidance_masks_only_the_mahalanobis_term_by_default():
    from diffrep.methods.sami_config import SAMIConfig
    assert SAMIConfig.__dataclass_fields__["guidance_logdet"].default == "all"
    m = tiny_sami()
    x = sami_images(2)
    z = torch.randn(2, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with torch.no_grad():
        mu, lv = m.posterior(x)
    axes = (0, 2)
    a = list(axes)
    maha = -0.5 * (((z - mu)[:, a] ** 2) / lv[:, a].exp()).sum(1)
    logdet = lambda idx: -0.5 * (lv[:, idx] + math.log(2 * math.pi)).sum(1)  # noqa: E731
    _, lq_paper = m.guidance(x, z, axes=axes)  # the paper (A.4): log-det over every axis
    _, lq_axes = m.guidance(x, z, axes=axes, logdet="axes")
    assert torch.allclose(lq_paper, maha + logdet([0, 1, 2]), rtol=1e-10, atol=1e-10)
    assert torch.allclose(lq_axes, maha + logdet(a), rtol=1e-10, atol=1e-10)


def test_algorithm_1_literal_step_and_guidance_magnitude_use_the_chains_coefficient():
    from diffrep.analysis.guidance import guidance_magnitude
    m = tiny_sami(alg1_literal=True, sampler="ddpm")
    t = torch.tensor([1, 10, 19])
    like = torch.zeros(3, 1, 8, 8, dtype=torch.float64)
    ab, beta = (m.schedule.gather(n, t, like).flatten() for n in ("alphas_cumprod", "betas"))
    # DDPM mean shift of eps_hat = eps - k g is beta / (sqrt(alpha) sqrt(1 - abar)) k g; Algorithm 1 prints
    # sqrt(1 - alpha) g = sqrt(beta) g, so k = sqrt(beta) sqrt(alpha) sqrt(1 - abar) / beta; Eq. 8: sqrt(1 - abar)
    k_lit = beta.sqrt() * (1 - beta).sqrt() * (1 - ab).sqrt() / beta
    assert torch.allclose(m.guidance_coefficient(t, like, literal=True).flatten(), k_lit, rtol=1e-10)
    assert torch.allclose(m.guidance_coefficient(t, like, literal=False).flatten(), (1 - ab).sqrt(), rtol=1e-10)
    r = guidance_magnitude(m, sami_images(1), sampler="ddpm")
    assert r["literal_step"] is True and len(r["t"]) == m.config.schedule.num_timesteps


def test_sami_sample_cli_exposes_the_rigid_sloppy_flags():
    from diffrep.cli import main
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(["sami", "sample", "--help"])
    text = out.getvalue()
    assert "--guidance-axes" in text and "--logdet {all,axes}" in text


# ---------------------------------------------------------------- 14. run folders never mix

class _Lin(torch.nn.Module):
    def __init__(self, stop_at=None):
        super().__init__()
        self.lin = torch.nn.Linear(2, 1)
        self.stop_at = stop_at

    def loss(self, batch, *, step, generator=None):
        if step == self.stop_at:  # a real Ctrl-C arriving during this step
            os.kill(os.getpid(), signal.SIGINT)
        return {"loss": self.lin(batch[0]).pow(2).mean()}


def _train_cfg(steps, **kw):
    from diffrep.train import TrainConfig
    return TrainConfig(**{**dict(steps=steps, batch_size=4, lr=1e-2, ema_decay=0.0, log_every=1, ckpt_every=0,
                                 device="cpu", seed=0), **kw})


def _data():
    return TensorDataset(torch.randn(16, 2, generator=torch.Generator().manual_seed(0)))


def test_a_folder_holding_a_run_is_refused_and_overwrite_clears_only_diffrep_files(tmp_path, capsys):
    from diffrep.train import RunFolderError, Trainer, read_metrics
    Trainer(_Lin(), _data(), _train_cfg(2), tmp_path).train()
    before = (tmp_path / "metrics.jsonl").read_text()
    with pytest.raises(RunFolderError, match="--overwrite"):
        Trainer(_Lin(), _data(), _train_cfg(3), tmp_path).train()
    assert (tmp_path / "metrics.jsonl").read_text() == before
    (tmp_path / "mine.txt").write_text("keep")
    Trainer(_Lin(), _data(), _train_cfg(3), tmp_path).train(overwrite=True)
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [1, 2, 3]
    assert (tmp_path / "mine.txt").read_text() == "keep"
    fresh = tmp_path / "fresh"
    Trainer(_Lin(), _data(), _train_cfg(1), fresh).train(resume="latest")
    assert "starting a fresh run from step 0" in capsys.readouterr().err


def test_a_corrupt_newest_checkpoint_names_the_valid_one_and_the_resume_command(tmp_path):
    from diffrep.train import RunFolderError, Trainer
    Trainer(_Lin(), _data(), _train_cfg(2, ckpt_every=1, keep_checkpoints=2), tmp_path).train()
    newest, older = (tmp_path / "checkpoints" / f"step-0000000{s}" for s in (2, 1))
    with open(newest / "trainer_state.pt", "r+b") as fh:
        fh.seek(10)
        fh.write(b"\x00\xff\x00")
    with pytest.raises(RunFolderError) as err:
        Trainer(_Lin(), _data(), _train_cfg(3), tmp_path).train(resume="latest")
    assert str(newest) in str(err.value) and f"--resume {older}" in str(err.value)
    other = tmp_path / "other"
    Trainer(_Lin(), _data(), _train_cfg(1), other).train()
    with pytest.raises(RunFolderError, match="another run folder"):  # into a folder that holds a run
        Trainer(_Lin(), _data(), _train_cfg(3), other).train(resume=older)


def test_train_cli_has_overwrite_and_resume():
    from diffrep.cli import main
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--overwrite" in out.getvalue() and "--resume" in out.getvalue()


# ---------------------------------------------------------------- 15. signals save a checkpoint; SLURM copies refused

def test_sigint_finishes_the_step_saves_and_says_how_to_resume(tmp_path):
    from diffrep.train import Trainer, TrainingInterrupted, list_checkpoints
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN where the tests run in a background job
    with pytest.raises(TrainingInterrupted) as err:
        Trainer(_Lin(stop_at=1), _data(), _train_cfg(50), tmp_path).train()
    exc = err.value
    assert isinstance(exc, KeyboardInterrupt) and exc.step == 2  # step index 1 is the run's step 2
    assert [s for s, _ in list_checkpoints(tmp_path / "checkpoints")] == [2]
    assert f"interrupted at step {exc.step}" in str(exc)
    assert signal.getsignal(signal.SIGINT) is before  # the handler was put back


def test_the_cli_prints_how_to_resume_and_exits_130_without_a_traceback(tmp_path, capsys, monkeypatch):
    from diffrep.cli import main
    from diffrep.methods.toy_ddpm import ToyDDPM
    real = ToyDDPM.loss

    def interrupted_at_step_1(self, batch, *, step, generator=None):
        if step == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return real(self, batch, step=step, generator=generator)

    monkeypatch.setattr(ToyDDPM, "loss", interrupted_at_step_1)
    out = tmp_path / "run"
    rc = main(["train", "demo/toy-ddpm", "--out", str(out), "--train.steps", "50", "--train.batch_size", "4",
               "--data.num_images", "8", "--train.log_every", "1", "--train.ckpt_every", "0",
               "--train.sample_every", "0", "--train.device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 128 + signal.SIGINT and "Traceback" not in err
    assert "interrupted at step 2; resume with: " in err and "--resume" in err
    assert (out / "checkpoints" / "step-00000002").is_dir()


def test_quickstart_and_the_validation_scripts_take_overwrite():
    from diffrep.cli import main
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main(["quickstart", "--help"])
    assert "--overwrite" in out.getvalue()
    for script in ("validate_sami", "validate_paramrel"):
        assert '"--overwrite"' in (ROOT / "scripts" / f"{script}.py").read_text(), script


def test_slurm_tasks_without_world_size_are_refused():
    from diffrep.train import LaunchError, check_launch
    with pytest.raises(LaunchError, match="SLURM_NTASKS=4.*WORLD_SIZE"):
        check_launch({"SLURM_NTASKS": "4"})
    check_launch({"SLURM_NTASKS": "4", "WORLD_SIZE": "4"})
    check_launch({"SLURM_NTASKS": "1"})
    check_launch({})


# ---------------------------------------------------------------- 16. dataset roots; saved data settings

def test_an_explicit_root_is_never_ignored(tmp_path, monkeypatch):
    import diffrep.data as D
    monkeypatch.delenv("DIFFREP_DATA", raising=False)
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=rf"{missing}.*--data.root"):
        D.load("dsprites", root=missing, root_flag="--data.root")
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path}.*--data.root"):
        D.load("dsprites", root=tmp_path, root_flag="--data.root")  # exists but lacks the files
    monkeypatch.setenv("DIFFREP_DATA", str(missing))
    with pytest.raises(FileNotFoundError, match="DIFFREP_DATA"):
        D.load("dsprites")
    monkeypatch.setenv("DIFFREP_DATA", str(tmp_path))  # a shared folder without this dataset: said, then generated
    with pytest.warns(UserWarning, match="DIFFREP_DATA"):
        assert D.load("dsprites").source == "procedural"


@pytest.mark.parametrize("name", ["paramrel/dsprites", "paramrel/celeba64", "bfn/cifar10-discretised", "sami/celeba64",
                                  "vq/celeba64"])
def test_data_root_is_settable_from_the_training_flags(name, tmp_path):
    cfg = apply_overrides(get_recipe(name).make_config(), ["--data.root", str(tmp_path)])
    assert cfg.data.root == str(tmp_path)


def test_run_json_records_the_data_settings_model_verbs_read(tmp_path):
    from diffrep.recipes.runinfo import RUN_INFO_NAME, find_run_info, resolve_data_settings, write_run_info
    cfg = apply_overrides(get_recipe("paramrel/dsprites").make_config(), ["--data.root", str(tmp_path / "d")])
    run = tmp_path / "run"
    (run / "final").mkdir(parents=True)
    write_run_info(run, "paramrel/dsprites", cfg)
    info = json.loads((run / RUN_INFO_NAME).read_text())
    assert info["recipe"] == "paramrel/dsprites"
    assert set(info["data"]) == {"dataset", "options", "pool", "root"}
    assert (info["data"]["dataset"], info["data"]["pool"], info["data"]["root"]) == (cfg.dataset, cfg.pool,
                                                                                    str(tmp_path / "d"))
    assert find_run_info(run / "final") == info  # a model verb given run/final finds the run's settings
    s = resolve_data_settings(run / "final")
    assert s["from_run"] and s["pool"] == cfg.pool and s["dataset"] == cfg.dataset
