"""scripts/validate_multibeta.py: end to end at toy scale (slow): the record it writes is consistent with itself
(each gate recomputed from the numbers next to it), the baseline is trained, inputs are held out, the exit
status follows the gates, and a --load-dir run of the --save-dir models reproduces the record's numbers; fast:
the gate-2 curve report (gate2_curve) against independent computations on a tiny untrained pipeline, and the
save/load of the trained models. The real run (the CPU recipe) is benches/results/multibeta_validation_cpu_*.json."""

from __future__ import annotations

import dataclasses
import json
import math
import types
from pathlib import Path

import pytest
import torch

from helpers import load_script

ROOT = Path(__file__).resolve().parents[2]


def _load():
    return load_script("validate_multibeta")


def _same(a, b) -> bool:
    """Nested records equal, floats to 1e-9 relative (NaN equal to NaN)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_same(u, v) for u, v in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15)
    return a == b


@pytest.mark.slow
def test_toy_run_writes_a_consistent_record(tmp_path):
    vm = _load()
    out = tmp_path / "rec.json"
    common = ["--num-train", "100", "--num-test", "50", "--num-images", "24", "--curve-betas", "0.3,0.7",
              "--gate2-curve-betas", "0.5,0.9", "--informative_images", "16", "--train_subset", "600",
              "--train.batch_size", "16", "--train_latent.batch_size", "16"]
    rc = vm.main(["--steps-vae", "30", "--steps-latent", "30", "--out", str(out), "--run-dir", str(tmp_path / "run"),
                  "--save-dir", str(tmp_path / "saved")] + common)
    r = json.loads(out.read_text())
    g, t = r["gates"], r["thresholds"]
    assert rc == (0 if r["passed"] else 1) and r["passed"] == all(g.values())
    c1, c2, c3 = r["claim1_information"], r["claim2_sharpness"], r["claim3_disentanglement"]
    assert c1["betas"] == [round(k / 10, 10) for k in range(11)] and len(c1["direct_mse"]) == 11
    assert g["1_direct_error_increasing"] == (c1["spearman_mse_beta"] >= t["spearman_min"])
    assert g["1_top_close_to_prior"] == (c1["top_kl_nats"] <= t["top_kl_max"])
    d = c2["mean_nearest_train_distance"]
    assert c2["ratio_denoised_over_direct"] == pytest.approx(d["denoise_then_decode"] / d["direct_decode"])
    assert g["2_denoised_nearer_real"] == (c2["ratio_denoised_over_direct"] <= t["sharp_ratio"])
    assert g["2_printed_sign_fails"] == (c2["ratio_printed_sign_over_direct"] > t["sharp_ratio"])
    assert c2["inputs_held_out"] and c2["reference_size"] == 600 and c2["num_images"] == 24
    assert d["real_images"] > 0  # held-out inputs are not in the reference set
    mb, bv, b0 = c3["multibeta_at_beta_star"], c3["beta_vae_at_beta_star"], c3["multibeta_at_beta_0"]
    assert g["3_mig_on_par_with_beta_vae"] == (mb["mig"] >= bv["mig"] - t["par_margin"])
    assert g["3_dci_clearly_above_beta_0"] == (mb["dci_disentanglement"] >= b0["dci_disentanglement"] + t["clear_margin"])
    assert [row["beta"] for row in c3["multibeta_curve"]] == [0.3, 0.7]
    assert r["steps_vae"] == 30 and r["steps_latent"] == 30
    chosen = r["representation_beta_choice"]["chosen_beta"]
    if chosen is not None:
        assert c2["beta_star"] == chosen
    for phase in ("multibeta/phase1", "multibeta/phase2", "beta_vae"):
        assert (tmp_path / "run" / phase / "checkpoints" / "step-00000030").is_dir()
    curve = r["gate2_curve_not_gated"]
    assert [row["beta"] for row in curve["rows"]] == [0.5, 0.9]
    for row in curve["rows"]:
        assert row["signs_separate"] == (row["ratio_over_direct"]["denoise_then_decode"] <= t["sharp_ratio"]
                                         < row["ratio_over_direct"]["printed_sign_denoise"])
    # the saved models, evaluated without training, give the same numbers (the training times come from the save)
    out2 = tmp_path / "rec2.json"
    rc2 = vm.main(["--steps-vae", "30", "--steps-latent", "30", "--out", str(out2), "--load-dir", str(tmp_path / "saved")]
                  + common)
    r2 = json.loads(out2.read_text())
    assert rc2 == rc and r2["gates"] == r["gates"]
    for key in ("claim1_information", "claim2_sharpness", "claim3_disentanglement", "gate2_curve_not_gated"):
        assert _same(r2[key], r[key]), key
    assert r2["times_s"]["phase1_s"] == r["times_s"]["phase1_s"] and r2["times_s"]["loaded_from"] == str(tmp_path / "saved")
    assert not (tmp_path / "run2").exists()
    # --retrain-latent with the saved run's settings trains the same denoiser again: the same numbers
    out3 = tmp_path / "rec3.json"
    rc3 = vm.main(["--steps-vae", "30", "--steps-latent", "30", "--out", str(out3), "--load-dir", str(tmp_path / "saved"),
                   "--retrain-latent", "--run-dir", str(tmp_path / "run3")] + common)
    r3 = json.loads(out3.read_text())
    assert rc3 == rc and r3["gates"] == r["gates"] and r3["retrain_latent"] and r3["times_s"]["phase2_retrained"]
    for key in ("claim1_information", "claim2_sharpness", "claim3_disentanglement", "gate2_curve_not_gated"):
        assert _same(r3[key], r[key]), key
    assert (tmp_path / "run3" / "multibeta" / "phase2" / "checkpoints" / "step-00000030").is_dir()


# -- fast: the gate-2 curve and the model save/load on a tiny untrained pipeline ---------------------------------

def _tiny():
    from diffrep.methods.multibeta import MultiBeta, multibeta_config

    torch.manual_seed(0)
    cfg = multibeta_config(image_size=32, in_channels=1, latent_dim=3, num_steps=5, vae={"hidden": 16, "beta_embed_dim": 8},
                           denoiser={"hidden": 16, "depth": 1}, representation_beta=0.8)
    m = MultiBeta(cfg)
    with torch.no_grad():
        for p in m.parameters():  # off the zero-initialised heads, so every sampler and sign moves the code
            p.add_(0.05 * torch.randn_like(p))
    return m.set_phase(2).eval()


def _imgs(n, seed):
    return torch.rand(n, 1, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _nearest(imgs, ref):  # brute force, one pair at a time
    return sum(min(float((a.double() - b.double()).pow(2).mean()) for b in ref) for a in imgs) / len(imgs)


def test_gate2_curve_equals_independent_computations():
    vm, m = _load(), _tiny()
    x, ref = _imgs(4, 1), _imgs(7, 2)
    gate_cfg = m.denoiser.config
    rep = vm.gate2_curve(m, x, ref, [0.4, 0.8], seed=3, sharp_ratio=0.6)
    assert m.denoiser.config is gate_cfg  # restored
    assert rep["betas"] == [0.4, 0.8] and rep["sampler"] == "alg2"
    f0 = m.vae.encode(x, 0.0).double()
    assert rep["f0_mean_sq_norm"] == pytest.approx(float(f0.pow(2).sum(1).mean()), rel=1e-9)
    for row, b in zip(rep["rows"], (0.4, 0.8)):
        fb = m.vae.encode(x, b).double()
        d = row["mean_nearest_train_distance"]
        assert d["real_images"] == pytest.approx(_nearest(x, ref), rel=1e-9)
        assert d["direct_decode"] == pytest.approx(_nearest(m.vae.decode(fb.float(), b), ref), rel=1e-9)

        def gate_path(cfg, noise=True):  # what the gate-2 check runs at beta*
            m.denoiser.config = cfg
            g = torch.Generator().manual_seed(3)
            z = m.encode(x, b, noise=noise, generator=g)
            code = m.denoise(z, b, 0.0, generator=g)
            img = m.denoise_decode(m.encode(x, b, noise=True, generator=g.manual_seed(3)), b, generator=g)
            m.denoiser.config = gate_cfg
            return code.double(), img

        c_fix, img_fix = gate_path(gate_cfg)
        c_pr, img_pr = gate_path(dataclasses.replace(gate_cfg, printed_sign=True))
        assert d["denoise_then_decode"] == pytest.approx(_nearest(img_fix, ref), rel=1e-9) == d["alg2"]
        assert d["printed_sign_denoise"] == pytest.approx(_nearest(img_pr, ref), rel=1e-9) == d["alg2_printed_sign"]
        assert d["denoise_then_decode"] != d["printed_sign_denoise"]
        _, img_det = gate_path(dataclasses.replace(gate_cfg, sampler="deterministic", deterministic_noise="zero",
                                                   printed_sign=True))
        assert d["deterministic_zero_printed_sign"] == pytest.approx(_nearest(img_det, ref), rel=1e-9)
        det = dataclasses.replace(gate_cfg, sampler="deterministic", deterministic_noise="zero")
        c_mean, _ = gate_path(det, noise=False)  # from the mean code: no randomness at all
        m.denoiser.config = det
        code_mean = m.denoise(m.vae.encode(x, b), b, 0.0).double()
        m.denoiser.config = gate_cfg
        assert torch.allclose(c_mean, code_mean, rtol=0, atol=0)
        assert d["deterministic_zero_from_mean"] == pytest.approx(_nearest(m.vae.decode(code_mean.float(), 0.0), ref), rel=1e-9)
        assert d["deterministic_zero_from_mean"] != d["deterministic_zero"]
        assert row["code"]["deterministic_zero_from_mean"]["sq_dist_to_f0"] == pytest.approx(
            float((code_mean - f0).pow(2).sum(1).mean()) / float(f0.pow(2).sum(1).mean()), rel=1e-9)
        for name, target in (("target_f0_decode", f0), ("target_reflection_decode", 2 * fb - f0)):
            img = m.vae.decode(target.float(), 0.0)
            assert d[name] == pytest.approx(_nearest(img, ref), rel=1e-9)
            assert row["mse_to_input"][name] == pytest.approx(float((img.double() - x.double()).pow(2).mean()), rel=1e-6)
        assert row["mse_to_input"]["printed_sign_denoise"] == pytest.approx(float((img_pr - x).double().pow(2).mean()), rel=1e-9)
        for k, v in row["ratio_over_direct"].items():
            assert v == pytest.approx(d[k] / d["direct_decode"], rel=1e-12)
        assert row["signs_separate"] == (row["ratio_over_direct"]["denoise_then_decode"] <= 0.6
                                         < row["ratio_over_direct"]["printed_sign_denoise"])
        assert row["norm_ratio"] == pytest.approx(float((fb.norm(dim=1) / f0.norm(dim=1)).mean()), rel=1e-9)
        assert row["cosine"] == pytest.approx(float(torch.nn.functional.cosine_similarity(fb, f0, dim=1).mean()), rel=1e-9)
        sig = float(m.vae.sigma(b).reshape(-1)[0])
        kl = float((0.5 * (fb.pow(2).sum(1) + 3 * (sig**2 - math.log(sig**2) - 1))).mean())
        assert row["kl_nats"] == pytest.approx(kl, rel=1e-6) and row["sigma"] == pytest.approx(sig)
        n0 = float(f0.pow(2).sum(1).mean())
        for name, c in (("denoise_then_decode", c_fix), ("printed_sign_denoise", c_pr)):
            st = row["code"][name]
            assert st["sq_dist_to_f0"] == pytest.approx(float((c - f0).pow(2).sum(1).mean()) / n0, rel=1e-9)
            assert st["sq_dist_to_reflection"] == pytest.approx(float((c - 2 * fb + f0).pow(2).sum(1).mean()) / n0, rel=1e-9)
            assert st["sq_norm"] == pytest.approx(float(c.pow(2).sum(1).mean()) / n0, rel=1e-9)
    assert rep["separating_betas"] == [r["beta"] for r in rep["rows"] if r["signs_separate"]]


def test_gate2_curve_rejects_bad_input():
    vm, m = _load(), _tiny()
    x, ref = _imgs(3, 1), _imgs(4, 2)
    for betas in ([], [0.8, 0.4], [0.0, 0.4], [0.4, 1.5]):
        with pytest.raises(ValueError, match="betas"):
            vm.gate2_curve(m, x, ref, betas)
    with pytest.raises(ValueError, match="at least 2 images"):
        vm.gate2_curve(m, x[:1], ref, [0.4])
    with pytest.raises(ValueError, match="phase 2"):
        vm.gate2_curve(m.set_phase(1), x, ref, [0.4])


def test_saved_models_load_back(tmp_path):
    vm, m, base = _load(), _tiny(), _tiny()
    with torch.no_grad():
        next(base.vae.parameters()).add_(1.0)  # the baseline's weights differ from the pipeline's
    info = {"betas": [0.4, 0.8], "explained": [0.9, 0.6], "chosen_beta": 0.8}
    vm._save_models(tmp_path, m, base, info, {"phase1_s": 1.5, "phase2_s": 2.0, "beta_vae_s": 1.0}, "multibeta/x")
    cfg = types.SimpleNamespace(model=m.config)
    m2, b2, info2, times = vm._load_models(tmp_path, cfg, torch.device("cpu"))
    assert m2.phase == 2 and m2.config.representation_beta == 0.8 and info2 == info
    assert times == {"phase1_s": 1.5, "phase2_s": 2.0, "beta_vae_s": 1.0, "loaded_from": str(tmp_path)}
    for a, b in ((m, m2), (base, b2)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    x = _imgs(3, 1)
    assert torch.equal(m.vae.encode(x, 0.8), m2.vae.encode(x, 0.8))
    other = dataclasses.replace(m.config, vae=dataclasses.replace(m.config.vae, hidden=32))
    with pytest.raises(SystemExit, match="VAE config differs"):
        vm._load_models(tmp_path, types.SimpleNamespace(model=other), torch.device("cpu"))
    with pytest.raises(SystemExit, match="validation_state.json"):
        vm._load_models(tmp_path / "nothing", cfg, torch.device("cpu"))


def test_baseline_kl_warmup_scales_only_the_kl_weight():
    """fixed_beta(..., kl_warmup=W): (B - beta) nll + min(1, step / W) beta KL, from the recon and KL the VAE reports;
    W = 0 and every step >= W are the plain Eq. 4 loss at beta; the VAE's own weights are left as they were."""
    from diffrep.methods.multibeta import MultiBetaVAE, MultiBetaVAEConfig

    vm = _load()
    torch.manual_seed(0)
    vae = MultiBetaVAE(MultiBetaVAEConfig(image_size=32, in_channels=1, latent_dim=3, hidden=16, beta_embed_dim=8,
                                          num_steps=4)).double()
    x = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 - 1

    def run(module, step):
        return module.loss(x, step=step, generator=torch.Generator().manual_seed(2))

    plain = run(vm.fixed_beta(vae, 0.75), 3)
    nll, kl = float(plain["recon"]), float(plain["kl"])
    assert float(plain["loss"]) == pytest.approx(0.25 * nll + 0.75 * kl, rel=1e-12)
    warm = vm.fixed_beta(vae, 0.75, kl_warmup=8)
    for step, scale in ((0, 0.0), (2, 0.25), (6, 0.75), (8, 1.0), (100, 1.0)):
        out = run(warm, step)
        assert float(out["loss"]) == pytest.approx(0.25 * nll + scale * 0.75 * kl, rel=1e-12)
        assert float(out["recon"]) == pytest.approx(nll, rel=1e-12) and float(out["kl"]) == pytest.approx(kl, rel=1e-12)
    assert "_weights" not in vae.__dict__ and "weights" not in vae.__dict__  # restored
    assert float(run(warm, None)["loss"]) == pytest.approx(float(plain["loss"]), rel=1e-12)
    with pytest.raises(ValueError, match="kl_warmup"):
        vm.fixed_beta(vae, 0.75, kl_warmup=-1)


def test_fresh_denoiser_keeps_the_vae_and_retrains_only_phase_2():
    """--retrain-latent's swap: the loaded pipeline gets the fresh build's untrained denoiser (its weights and its
    config, e.g. another sampler), keeps its VAE, beta* and sigma table, and is in phase 2 with the VAE's sigma grid
    installed as the schedule and only the denoiser trainable."""
    vm, m = _load(), _tiny()
    from diffrep.methods.multibeta import MultiBeta

    new_cfg = dataclasses.replace(m.config, phase=1,
                                  denoiser=dataclasses.replace(m.config.denoiser, sampler="ancestral"))
    fresh = MultiBeta(new_cfg)
    vae_before = {k: v.clone() for k, v in m.vae.state_dict().items()}
    den_fresh = {k: v.clone() for k, v in fresh.denoiser.state_dict().items() if k.startswith("net.")}
    assert any(not torch.equal(den_fresh[k], m.denoiser.state_dict()[k]) for k in den_fresh)  # the test can see a swap
    vm.fresh_denoiser(m, fresh)
    assert m.phase == 2 and m.config.representation_beta == 0.8 and m.config.denoiser.sampler == "ancestral"
    assert m.denoiser.config.sampler == "ancestral"
    assert all(torch.equal(m.denoiser.state_dict()[k], den_fresh[k]) for k in den_fresh)
    assert all(torch.equal(m.vae.state_dict()[k], vae_before[k]) for k in vae_before)
    assert torch.equal(m.denoiser.sigma_table, m.vae.sigma_grid().detach().to(m.denoiser.sigma_table.dtype))
    assert int(m.denoiser.schedule_set) == 1
    assert all(p.requires_grad for p in m.denoiser.parameters())
    assert not any(p.requires_grad for p in m.vae.parameters())
    other = MultiBeta(dataclasses.replace(new_cfg, vae=dataclasses.replace(new_cfg.vae, hidden=32)))
    with pytest.raises(ValueError, match="VAE config differs"):
        vm.fresh_denoiser(m, other)


def test_retrain_latent_flag_combinations_are_refused(capsys):
    vm = _load()
    for argv, msg in ((["--retrain-latent"], "goes with --load-dir"),
                      (["--load-dir", "/x", "--save-dir", "/y"], "exclude each other"),
                      (["--load-dir", "/x", "--save-dir", "/x", "--retrain-latent"], "must differ")):
        with pytest.raises(SystemExit):
            vm.main(argv)
        assert msg in capsys.readouterr().err


def test_loaded_pipeline_takes_sampling_overrides_and_refuses_trained_ones():
    """--load-dir without --retrain-latent: the call's sampler / deterministic_noise / encoding_noise reach the loaded
    denoiser (what the gates then run), and the denoiser's samples follow them; a trained field (e.g. hidden) that
    differs is refused, never silently ignored."""
    vm, m = _load(), _tiny()
    same = types.SimpleNamespace(model=m.config)
    assert vm.apply_sampling(m, same) == [] and m.config.denoiser.sampler == "alg2"
    want = dataclasses.replace(m.config, encoding_noise=False, denoiser=dataclasses.replace(
        m.config.denoiser, sampler="deterministic", deterministic_noise="zero"))
    changed = vm.apply_sampling(m, types.SimpleNamespace(model=want))
    assert sorted(changed) == ["model.denoiser.deterministic_noise", "model.denoiser.sampler", "model.encoding_noise"]
    assert m.denoiser.config.sampler == "deterministic" and m.denoiser.config.deterministic_noise == "zero"
    assert m.config.denoiser == m.denoiser.config and m.config.encoding_noise is False
    z = torch.randn(4, 3, generator=torch.Generator().manual_seed(3))
    a = m.denoise(z, 0.8, generator=torch.Generator().manual_seed(1))
    b = m.denoise(z, 0.8, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)  # xi = 0: no sampler noise
    bad = dataclasses.replace(m.config, denoiser=dataclasses.replace(m.config.denoiser, hidden=32))
    with pytest.raises(SystemExit, match="model.denoiser.hidden"):
        vm.apply_sampling(m, types.SimpleNamespace(model=bad))


def test_bad_arguments_are_refused_before_any_training(tmp_path, capsys):
    """What a newcomer gets wrong is refused at once (exit 2, a message): --steps-vae 0 read as "the recipe's" and
    started the full 3000 + 3000-step run; a bad --curve-betas / metric size failed only after both models had
    trained; a missing --load-dir or a --run-dir holding runs came as exit 1 or a traceback."""
    vm = _load()
    held = tmp_path / "held"
    (held / "beta_vae").mkdir(parents=True)
    (held / "beta_vae" / "metrics.jsonl").write_text('{"step": 1}\n')
    (tmp_path / "empty").mkdir()
    cases = [(["--steps-vae", "0"], "--steps-vae must be >= 1"),
             (["--steps-latent", "-3"], "--steps-latent must be >= 1"),
             (["--baseline-kl-warmup", "-1"], "--baseline-kl-warmup must be >= 0"),
             (["--num-train", "5"], "--num-train must be >= 10"),
             (["--num-test", "0"], "--num-test must be >= 10"),
             (["--curve-betas", "0.1,x"], "--curve-betas must be numbers"),
             (["--curve-betas", "0.5,1.5"], "--curve-betas must lie in [0, B=1]"),
             (["--curve-betas", "nan"], "--curve-betas must lie in [0, B=1]"),
             (["--load-dir", str(tmp_path / "missing")], "does not exist (a folder that a --save-dir run wrote)"),
             (["--load-dir", str(tmp_path / "empty")], "holds no validation_state.json"),
             (["--run-dir", str(held)], "already holds runs (beta_vae); pass --overwrite"),
             # a gate threshold that makes its gate meaningless started the run (--sharp-ratio -1 trained both
             # models, then failed gate 2a whatever they did); a folder as --out was a traceback after the run;
             # another family's recipe read "config field 'train_latent.seed': unknown field"
             (["--sharp-ratio", "-1"], "--sharp-ratio must be a finite number > 0 (a ratio of distances), got -1.0"),
             (["--sharp-ratio", "0"], "--sharp-ratio must be a finite number > 0"),
             (["--spearman-min", "1.5"], "--spearman-min must be a finite number in [-1, 1] (a correlation), got 1.5"),
             (["--top-kl-max", "nan"], "--top-kl-max must be a finite number >= 0 (nats), got nan"),
             (["--top-kl-max", "-0.1"], "--top-kl-max must be a finite number >= 0"),
             (["--par-margin", "inf"], "--par-margin must be a finite number (MIG / DCI units), got inf"),
             (["--clear-margin", "nan"], "--clear-margin must be a finite number"),
             (["--out", str(tmp_path / "empty")], f"--out {tmp_path / 'empty'} is a folder; give the JSON record's file"),
             (["--recipe", "vae/beta-vae-cpu"], "vae/beta-vae-cpu is not a multibeta recipe (list them with 'diffrep "
                                                "multibeta recipes')")]
    # a toy scale first (each case's own flag comes later and wins), so that a check that let its case through
    # would start a run of seconds, not the recipe's 3000 + 3000 steps
    toy = ["--steps-vae", "2", "--steps-latent", "2", "--num-train", "20", "--num-test", "20", "--num-images", "4",
           "--reference-size", "8", "--curve-betas", "", "--run-dir", str(tmp_path / "run"), "--out",
           str(tmp_path / "rec.json")]
    tail = ["--informative_images", "8", "--train_subset", "64", "--train.batch_size", "4",
            "--train_latent.batch_size", "4", "--train.num_workers", "0", "--train_latent.num_workers", "0"]
    for argv, msg in cases:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exc:
            vm.main(toy + argv + tail)
        err = capsys.readouterr().err
        assert exc.value.code == 2 and msg in err and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "rec.json").exists()
    # --help describes every flag (the gate thresholds, --out, --run-dir, --recipe and --seed had none)
    with pytest.raises(SystemExit) as exc:
        vm.main(["--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0
    for flag in ("--recipe", "--seed", "--spearman-min", "--top-kl-max", "--sharp-ratio", "--par-margin",
                 "--clear-margin", "--out", "--run-dir"):
        block = out.split(f"  {flag} ")[1].split("\n  --")[0]
        assert len(block.split()) > 2, (flag, block)
