"""The SAMI validation report (issue 17, item 11): two tiers (CPU smoke gates, paper-fidelity checks at
the paper's thresholds), each check with its value, threshold and pass/fail; the recipe actually run
recorded; the per-band sign check."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from diffrep.analysis.sami_validation import (PAPER_CHECKS, SMOKE_GATES, band_edges, eps_mse_by_band,
                                              grade_report)
from helpers import load_script, sami_images as images, tiny_sami as tiny_model

ROOT = Path(__file__).resolve().parents[2]


def _report(**changes):
    """A report where every check passes by a margin; ``changes`` = {dotted.key: value}."""
    r = {"variability": {"v_uncond": 0.5, "v_cond_mean": 0.01, "v_data": 0.5},
         "position_transfer": {"cond_abs_error_px": 1.0, "uncond_abs_error_px": 4.0},
         "monotonicity": {"x": {"readout_spearman": 0.95, "mean_abs_spearman": 0.95},
                          "y": {"readout_spearman": 0.97, "mean_abs_spearman": 0.92},
                          "background": {"mean_abs_spearman": 0.99},
                          "knn_r2": {"x": 0.95, "y": 0.93, "background": 0.99}},
         "spectrum": {"timesteps": [0, 10, 20], "mean_var": [0.1, 0.5, 0.9]},
         "eps_mse": {"guided": 0.1, "unguided": 0.2,
                     "bands": [{"guided": 0.1, "unguided": 0.3}, {"guided": 0.5, "unguided": 0.6}]}}
    for key, val in changes.items():
        cur = r
        *path, last = key.split(".")
        for k in path:
            cur = cur[k]
        cur[last] = val
    return r


def test_every_check_passes_on_a_good_report_and_tiers_are_complete():
    g = grade_report(_report())
    assert set(g["smoke"]) == set(SMOKE_GATES) and set(g["paper"]) == set(PAPER_CHECKS)
    for tier in ("smoke", "paper"):
        for name, e in g[tier].items():
            assert set(e) == {"value", "threshold", "pass", "what"} and e["pass"] is True, name
    assert g["smoke_pass"] and g["paper_pass"]
    assert g["paper"]["position_error_at_most_half"]["value"] == pytest.approx(0.25)
    assert g["paper"]["v_cond_over_v_data_lt_0.05"]["value"] == pytest.approx(0.02)
    assert g["smoke"]["variability_ratio_ge_10"]["value"] == pytest.approx(50.0)


@pytest.mark.parametrize("change,tier,check,passes", [
    # the paper's thresholds, at and across their boundaries
    ({"position_transfer.cond_abs_error_px": 2.0}, "paper", "position_error_at_most_half", True),   # 0.5: passes
    ({"position_transfer.cond_abs_error_px": 2.01}, "paper", "position_error_at_most_half", False),
    ({"position_transfer.cond_abs_error_px": 3.0}, "smoke", "position_carried", True),              # 0.75
    ({"position_transfer.cond_abs_error_px": 3.01}, "smoke", "position_carried", False),
    ({"variability.v_cond_mean": 0.0249}, "paper", "v_cond_over_v_data_lt_0.05", True),
    ({"variability.v_cond_mean": 0.025}, "paper", "v_cond_over_v_data_lt_0.05", False),             # 0.05: fails
    ({"variability.v_uncond": 0.24, "variability.v_cond_mean": 0.024}, "smoke", "variability_ratio_ge_10", True),
    ({"variability.v_uncond": 0.2399, "variability.v_cond_mean": 0.024}, "smoke", "variability_ratio_ge_10", False),
    ({"monotonicity.knn_r2.y": 0.9}, "paper", "knn_r2_gt_0.9", False),                                # > 0.9 strictly
    ({"monotonicity.knn_r2.background": 0.9001}, "paper", "knn_r2_gt_0.9", True),
    ({"monotonicity.background.mean_abs_spearman": 0.89}, "paper", "axis_aligned_monotonicity", False),
    ({"monotonicity.x.mean_abs_spearman": 0.9}, "paper", "axis_aligned_monotonicity", True),
    ({"monotonicity.y.readout_spearman": 0.89}, "smoke", "position_sweeps_monotone", False),
    # the spectrum may fall by 2% per step, not more
    ({"spectrum.mean_var": [0.1, 0.5, 0.4901]}, "paper", "spectrum_nondecreasing", True),
    ({"spectrum.mean_var": [0.1, 0.5, 0.489]}, "paper", "spectrum_nondecreasing", False),
    # the sign per band: one band with the guidance hurting fails the paper check, not the overall gate
    ({"eps_mse.bands": [{"guided": 0.1, "unguided": 0.3}, {"guided": 0.61, "unguided": 0.6}]}, "paper",
     "guidance_sign_every_band", False),
    ({"eps_mse.bands": [{"guided": 0.1, "unguided": 0.3}, {"guided": 0.61, "unguided": 0.6}]}, "smoke",
     "guided_mse_below_unguided", True),
    ({"eps_mse.guided": 0.2}, "smoke", "guided_mse_below_unguided", False),
])
def test_thresholds(change, tier, check, passes):
    g = grade_report(_report(**change))
    assert g[tier][check]["pass"] is passes
    assert g[f"{tier}_pass"] is passes


def test_missing_measurements_fail_rather_than_vanish():
    r = _report()
    del r["monotonicity"]["knn_r2"]
    r["spectrum"]["mean_var"] = [0.3]
    r["eps_mse"]["bands"] = []
    g = grade_report(r)
    for name in ("knn_r2_gt_0.9", "spectrum_nondecreasing", "guidance_sign_every_band"):
        assert g["paper"][name]["pass"] is False and g["paper"][name]["value"] is None
    assert grade_report({})["smoke_pass"] is False
    with pytest.raises(TypeError):
        grade_report([])


def test_band_edges_cover_every_level_once():
    for T, n in ((400, 8), (20, 8), (7, 7), (1000, 3)):
        e = band_edges(T, n)
        assert len(e) == n and e[0][0] == 0 and e[-1][1] == T
        assert all(a[1] == b[0] for a, b in zip(e[:-1], e[1:])) and all(lo < hi for lo, hi in e)
    with pytest.raises(ValueError, match="num_bands"):
        band_edges(4, 5)


def test_eps_mse_by_band_matches_the_loss_with_the_same_draws():
    m = tiny_model()
    x = images(6)
    r = eps_mse_by_band(m, x, num_bands=4, seed=3)
    g = torch.Generator().manual_seed(3)
    T = m.schedule.num_timesteps

    def draw(lo, hi):
        t = torch.randint(lo, hi, (6,), generator=g)
        noise = torch.randn(x.shape, generator=g).double()
        zn = torch.randn((1, 6, 3), generator=g).double()
        with torch.no_grad():
            return m.loss(x, t=t, noise=noise, z_noise=zn), t

    out, _ = draw(0, T)
    with torch.no_grad():
        sd = (0.5 * m.encoder(x)[1]).exp().mean(0)
    assert r["posterior_std_clean"] == pytest.approx(sd.tolist(), rel=1e-12)
    assert r["kl_nats"] == pytest.approx(float(out["kl"]), rel=1e-12) and (r["num_images"], r["seed"]) == (6, 3)
    assert r["guided"] == pytest.approx(float(out["mse_guided"]), rel=1e-12)
    assert r["unguided"] == pytest.approx(float(out["mse_uncond"]), rel=1e-12)
    for band, (lo, hi) in zip(r["bands"], band_edges(T, 4)):
        ob, t = draw(lo, hi)
        assert band["t"] == [lo, hi - 1] and bool(((t >= lo) & (t < hi)).all())
        assert band["guided"] == pytest.approx(float(ob["mse_guided"]), rel=1e-12)
        assert band["unguided"] == pytest.approx(float(ob["mse_uncond"]), rel=1e-12)
    # the unguided error is ||eps - eps_theta||^2 per pixel, computed here independently
    g2 = torch.Generator().manual_seed(3)
    t = torch.randint(0, T, (6,), generator=g2)
    noise = torch.randn(x.shape, generator=g2).double()
    with torch.no_grad():
        eps = m.denoiser(m.schedule.q_sample(x, t, noise), t)
    assert r["unguided"] == pytest.approx(float(((noise - eps) ** 2).mean()), rel=1e-10)


def _load_script():
    return load_script("validate_sami")


def _tiny_run(tmp_path, recipe_json: bool):
    from diffrep.config import dump_yaml
    from diffrep.recipes.sami import SAMIDataConfig, SAMIRecipeConfig
    from diffrep.train import TrainConfig

    m = tiny_model(dtype=torch.float32, sampler="ddim")
    run = tmp_path / "run"
    m.save_pretrained(run / "final")
    dump_yaml(SAMIRecipeConfig(model=m.config, data=SAMIDataConfig("disks", size=8, num_images=16),
                               train=TrainConfig(steps=3, batch_size=4)), run / "config.yaml")
    if recipe_json:
        (run / "recipe.json").write_text(json.dumps({"recipe": "sami/disks-cpu-frozen-d8"}))
    return run


def test_script_reports_both_tiers_and_the_recipe_run(tmp_path):
    vs = _load_script()
    run = _tiny_run(tmp_path, recipe_json=True)
    out = tmp_path / "report.json"
    rc = vs.main(["--run", str(run), "--quick", "--guides", "1", "--num-samples", "2", "--position-guides", "1",
                  "--sampler", "ddim", "--num-steps", "2", "--json", str(out)])
    rep = json.loads(out.read_text())
    assert rep["recipe"] == {"recipe": "sami/disks-cpu-frozen-d8", "source": "recipe.json"}
    assert rep["config"]["recipe"] == "sami/disks-cpu-frozen-d8"  # not the CLI's default sami/disks-cpu
    assert set(rep["smoke"]) == set(SMOKE_GATES) and set(rep["paper"]) == set(PAPER_CHECKS)
    for tier in ("smoke", "paper"):
        assert all(isinstance(e["pass"], bool) and "threshold" in e for e in rep[tier].values())
    assert rc == (0 if rep["smoke_pass"] else 1)
    assert len(rep["eps_mse"]["bands"]) == 8 and all("bayes_given_position" in b for b in rep["eps_mse"]["bands"])
    assert "ratio_cond_over_data" in rep["variability"] and rep["quick"] is True
    # the grades are those of grade_report on the report's own measurements
    again = grade_report(copy.deepcopy(rep))
    assert {k: e["pass"] for k, e in again["paper"].items()} == {k: e["pass"] for k, e in rep["paper"].items()}
    # without recipe.json: matched against the registered recipes (none exactly: the closest is named)
    (run / "recipe.json").unlink()
    rec = vs.recipe_of_run(run, None)
    assert rec["recipe"] is None and rec["closest_recipe"].startswith("sami/") and rec["num_differing_fields"] > 0
    assert vs.recipe_of_run(run, "sami/disks")["recipe"] == "sami/disks"


def test_recipe_of_an_unchanged_recipe_config_is_matched_exactly(tmp_path):
    from diffrep.config import dump_yaml
    from diffrep.recipes import get_recipe

    vs = _load_script()
    dump_yaml(get_recipe("sami/disks-cpu-frozen").make_config(), tmp_path / "config.yaml")
    rec = vs.recipe_of_run(tmp_path, None)
    assert rec["recipe"] == "sami/disks-cpu-frozen" and rec["differs_in"] == []


def test_grade_values_boundaries_and_degenerate_inputs():
    g = grade_report(_report(**{"eps_mse.guided": 0.15}))
    assert g["smoke"]["guided_mse_below_unguided"]["value"] == pytest.approx(-0.05)
    # rho exactly 0.9 on the read-out passes; a band where the guidance changes nothing fails
    assert grade_report(_report(**{"monotonicity.x.readout_spearman": 0.9}))["smoke"]["position_sweeps_monotone"]["pass"]
    band0 = grade_report(_report(**{"eps_mse.bands": [{"guided": 0.3, "unguided": 0.3}]}))
    assert band0["paper"]["guidance_sign_every_band"] == {**band0["paper"]["guidance_sign_every_band"], "pass": False,
                                                          "value": 0.0}
    # the tolerance is a bound: a flat step passes at tolerance 0; two levels suffice; a zero level is no fall
    flat = grade_report(_report(**{"spectrum.mean_var": [0.5, 0.5]}), spectrum_tolerance=0.0)
    assert flat["paper"]["spectrum_nondecreasing"]["pass"] and flat["paper"]["spectrum_nondecreasing"]["value"] == 0.0
    assert grade_report(_report(**{"spectrum.mean_var": [0.4, 0.5]}))["paper"]["spectrum_nondecreasing"]["value"] \
        == pytest.approx(0.25)
    zero = grade_report(_report(**{"spectrum.mean_var": [0.0, 0.5]}))["paper"]["spectrum_nondecreasing"]
    assert zero["value"] == 0.0 and zero["pass"]
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="spectrum_tolerance"):
            grade_report(_report(), spectrum_tolerance=bad)
    # NaN or missing measurements fail; a ratio needs both parts
    nan = grade_report(_report(**{"position_transfer.cond_abs_error_px": float("nan")}))
    assert nan["paper"]["position_error_at_most_half"]["pass"] is False
    r = _report()
    del r["position_transfer"]["uncond_abs_error_px"]
    assert grade_report(r)["paper"]["position_error_at_most_half"]["value"] is None
    r = _report()
    del r["variability"]["v_cond_mean"]
    assert grade_report(r)["smoke"]["variability_ratio_ge_10"]["value"] is None
    with pytest.raises(TypeError, match="dict"):
        grade_report(None)
