"""scripts/validate_multibeta.py end to end at toy scale (slow): the record it writes is consistent with itself
(each gate recomputed from the numbers next to it), the baseline is trained, inputs are held out, and the exit
status follows the gates. The real run (the CPU recipe) is benches/results/multibeta_validation_cpu_*.json."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _load():
    spec = importlib.util.spec_from_file_location("validate_multibeta", ROOT / "scripts" / "validate_multibeta.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["validate_multibeta"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_toy_run_writes_a_consistent_record(tmp_path):
    vm = _load()
    out = tmp_path / "rec.json"
    rc = vm.main(["--steps-vae", "30", "--steps-latent", "30", "--num-train", "100", "--num-test", "50",
                  "--num-images", "24", "--curve-betas", "0.3,0.7", "--out", str(out), "--run-dir", str(tmp_path / "run"),
                  "--informative_images", "16", "--train_subset", "600", "--train.batch_size", "16",
                  "--train_latent.batch_size", "16"])
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
