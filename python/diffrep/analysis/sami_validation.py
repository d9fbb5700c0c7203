"""What a SAMI validation certifies: the per-band sign check, and the grading of a validation report into
two tiers (``scripts/validate_sami.py``; docs/methods/sami.md#validation-tiers).

- **CPU smoke gates** (``smoke``): what the CPU-scale recipes are expected to reach; they decide the
  script's exit code. Variability ratio V_uncond / V_cond >= 10, position sweeps monotone on the
  read-out direction (rho >= 0.9 for c_x and c_y), position carried (conditional centre error <= 0.75x
  the unconditional one), guided eps-MSE below unguided overall.
- **Paper-fidelity checks** (``paper``), at the paper's thresholds (SAMI Sec. 3, Fig. 2, A.6; the
  checklist of docs/methods/sami.md#validation-tiers): conditional centre error <= 0.5x unconditional;
  axis-aligned monotonicity (best single latent axis, mean |Spearman rho| >= 0.9 for c_x, c_y and
  I_bg); k-NN R^2 > 0.9 of each factor from the posterior means; V_cond / V_data < 0.05 against the
  data (not only against unconditional samples); the mean posterior variance non-decreasing in t,
  each step allowed to fall by at most ``SPECTRUM_TOLERANCE`` (2%) of the previous value (Monte Carlo
  noise of 8 images x 8 draws); the guided eps-MSE below the unguided one in every noise band.

Every entry is ``{"value", "threshold", "pass", "what"}``; nothing is skipped silently (a missing
measurement is ``pass: False`` with value None).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .._checks import non_negative_int, positive_int
from ..methods.sami import SAMI
from ..ops._full_precision import autocast_off
from .encoding import check_model, model_images

__all__ = ["eps_mse_by_band", "grade_report", "band_edges", "SPECTRUM_TOLERANCE", "SMOKE_GATES", "PAPER_CHECKS"]

SPECTRUM_TOLERANCE = 0.02  # relative drop allowed between consecutive noise levels
SMOKE_GATES = ("variability_ratio_ge_10", "position_sweeps_monotone", "position_carried", "guided_mse_below_unguided")
PAPER_CHECKS = ("position_error_at_most_half", "axis_aligned_monotonicity", "knn_r2_gt_0.9",
                "v_cond_over_v_data_lt_0.05", "spectrum_nondecreasing", "guidance_sign_every_band")


def band_edges(T: int, num_bands: int) -> list[tuple[int, int]]:
    """``num_bands`` contiguous timestep bands [lo, hi) covering 0..T-1, as equal as integers allow."""
    positive_int(T, "T")
    positive_int(num_bands, "num_bands")
    if num_bands > T:
        raise ValueError(f"num_bands={num_bands} exceeds the {T} timesteps")
    e = np.linspace(0, T, num_bands + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(e[:-1], e[1:])]


@autocast_off  # eps_theta, g and the KL in the model's own precision, not the caller's autocast (docs/architecture.md#autocast)
def eps_mse_by_band(model: SAMI, images, *, num_bands: int = 8, seed: int = 0) -> dict:
    """Held-out guided (eps_theta - gamma_t g) and unguided (eps_theta) eps-MSE per pixel: ``overall``
    (t uniform on all levels) and per band (t uniform in the band), the same images throughout, one
    z ~ q(z | x_0) draw per training sample (``config.train_samples``). Also the KL (nats) and the
    mean posterior std of the clean images."""
    model = check_model(model)
    x = model_images(model, images)
    T = model.schedule.num_timesteps
    g = torch.Generator().manual_seed(non_negative_int(seed, "seed"))
    S, B, d = model.config.train_samples, x.shape[0], model.latent_dim

    def draw(lo, hi):
        t = torch.randint(lo, hi, (B,), generator=g)
        noise = torch.randn(x.shape, generator=g).to(x)
        zn = torch.randn((S, B, d), generator=g).to(x)
        with torch.no_grad():
            return model.loss(x, t=t.to(x.device), noise=noise, z_noise=zn)

    out = draw(0, T)
    with torch.no_grad():
        sig0 = (0.5 * model.posterior(x)[1]).exp().mean(0)
    res = {"guided": float(out["mse_guided"]), "unguided": float(out["mse_uncond"]), "kl_nats": float(out["kl"]),
           "posterior_std_clean": sig0.tolist(), "num_images": B, "seed": seed, "bands": []}
    for lo, hi in band_edges(T, num_bands):
        ob = draw(lo, hi)
        res["bands"].append({"t": [lo, hi - 1], "guided": float(ob["mse_guided"]), "unguided": float(ob["mse_uncond"])})
    return res


def _entry(value, threshold: str, ok, what: str) -> dict:
    bad = value is None or (isinstance(value, float) and math.isnan(value))
    return {"value": value, "threshold": threshold, "pass": bool(ok) and not bad, "what": what}


def _get(report: dict, *keys):
    cur = report
    for k in keys:
        if not isinstance(cur, dict) or k not in cur:
            return None
        cur = cur[k]
    return cur


def _ratio(a, b):
    if a is None or b is None or not b:
        return None
    return float(a) / float(b)


def grade_report(report: dict, spectrum_tolerance: float = SPECTRUM_TOLERANCE) -> dict:
    """``{"smoke": {...}, "paper": {...}}`` for a validation report holding ``variability``
    (:func:`~diffrep.analysis.variability.variability_reduction` with ``reference``), ``monotonicity``
    (:func:`~diffrep.analysis.disks_probes.posterior_mean_monotonicity`), ``position_transfer``,
    ``spectrum`` (``mean_var`` over increasing ``timesteps``) and ``eps_mse``
    (:func:`eps_mse_by_band`). Each check: value, threshold, pass, what it measures."""
    if not isinstance(report, dict):
        raise TypeError(f"report must be a dict, got {type(report).__name__}")
    if not 0 <= spectrum_tolerance < 1:
        raise ValueError(f"spectrum_tolerance must be in [0, 1), got {spectrum_tolerance}")
    v_unc, v_cond, v_data = (_get(report, "variability", k) for k in ("v_uncond", "v_cond_mean", "v_data"))
    pos = _ratio(_get(report, "position_transfer", "cond_abs_error_px"),
                 _get(report, "position_transfer", "uncond_abs_error_px"))
    mono = report.get("monotonicity") or {}
    readout = [_get(mono, f, "readout_spearman") for f in ("x", "y")]
    best_axis = {f: _get(mono, f, "mean_abs_spearman") for f in ("x", "y", "background")}
    knn = {f: _get(mono, "knn_r2", f) for f in ("x", "y", "background")}
    g, u = _get(report, "eps_mse", "guided"), _get(report, "eps_mse", "unguided")
    bands = _get(report, "eps_mse", "bands") or []
    mean_var = _get(report, "spectrum", "mean_var")

    smoke = {
        "variability_ratio_ge_10": _entry(_ratio(v_unc, v_cond), ">= 10", (_ratio(v_unc, v_cond) or 0) >= 10,
                                          "V_uncond / V_cond (unconditional over conditional sample variability)"),
        "position_sweeps_monotone": _entry(None if None in readout else min(readout), ">= 0.9 (c_x and c_y)",
                                           None not in readout and min(readout) >= 0.9,
                                           "mean Spearman rho of position sweeps on the position read-out direction"),
        "position_carried": _entry(pos, "<= 0.75", pos is not None and pos <= 0.75,
                                   "conditional / unconditional mean |disk centre error| against the guide"),
        "guided_mse_below_unguided": _entry(None if g is None or u is None else g - u, "< 0 (guided - unguided)",
                                            g is not None and u is not None and g < u,
                                            "held-out eps-MSE, guided minus unguided, t uniform"),
    }
    worst_axis = None if None in best_axis.values() else min(best_axis.values())
    worst_knn = None if None in knn.values() else min(knn.values())
    v_ratio = _ratio(v_cond, v_data)
    if mean_var is not None and len(mean_var) >= 2:
        drops = [(b - a) / a if a > 0 else 0.0 for a, b in zip(mean_var[:-1], mean_var[1:])]
        worst_drop = float(min(drops))
    else:
        worst_drop = None
    band_gaps = [b["guided"] - b["unguided"] for b in bands]
    paper = {
        "position_error_at_most_half": _entry(pos, "<= 0.5", pos is not None and pos <= 0.5,
                                              "conditional / unconditional mean |disk centre error| (Fig. 2C)"),
        "axis_aligned_monotonicity": _entry(worst_axis, ">= 0.9 (each factor)", worst_axis is not None and worst_axis >= 0.9,
                                            "min over c_x, c_y, I_bg of the best single axis' mean |Spearman rho| "
                                            f"along sweeps (Fig. 2D-F); per factor: {best_axis}"),
        "knn_r2_gt_0.9": _entry(worst_knn, "> 0.9 (each factor)", worst_knn is not None and worst_knn > 0.9,
                                f"min over factors of the k-NN R^2 from the posterior means; per factor: {knn}"),
        "v_cond_over_v_data_lt_0.05": _entry(v_ratio, "< 0.05", v_ratio is not None and v_ratio < 0.05,
                                             "V_cond / V_data: conditional sample variability over the held-out data's "
                                             "(paper: 4e-3 / 0.56 = 0.007, Sec. 3)"),
        "spectrum_nondecreasing": _entry(worst_drop, f">= -{spectrum_tolerance:g} (relative step)",
                                         worst_drop is not None and worst_drop >= -spectrum_tolerance,
                                         "largest relative fall of the mean posterior variance between consecutive "
                                         "noise levels (Fig. 3D)"),
        "guidance_sign_every_band": _entry(max(band_gaps) if band_gaps else None, "< 0 in every band",
                                           bool(band_gaps) and max(band_gaps) < 0,
                                           f"max over {len(band_gaps)} noise bands of guided minus unguided eps-MSE; "
                                           f"per band: {[round(x, 6) for x in band_gaps]}"),
    }
    return {"smoke": smoke, "paper": paper,
            "smoke_pass": all(e["pass"] for e in smoke.values()), "paper_pass": all(e["pass"] for e in paper.values())}
