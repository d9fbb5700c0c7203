"""Validate the denoising multi-beta VAE end to end on the CPU recipe against a beta-VAE trained the same way
(slow: minutes on one CPU thread; docs/methods/multibeta.md#validation).

    python scripts/validate_multibeta.py [--recipe multibeta/dsprites-cpu] [--steps-vae N] [--steps-latent N]
        [--eval quick|full] [--out benches/results/multibeta_validation_cpu.json] [--gate2-curve-betas B1,B2,...]
        [--save-dir DIR | --load-dir DIR] [--posterior-scale isotropic|per_unit] [--a.b VALUE ...]

1. trains the recipe's multi-beta VAE (phase 1, Algorithm 1), picks the beta of the representation beta* (the
   largest candidate beta whose code still explains half the variance of the beta = 0 code, as the recipe
   does) and trains the latent diffusion (phase 2, Eq. 19) on the frozen VAE;
2. trains the beta-VAE baseline: the same networks and initialisation, the same steps and optimiser, with beta
   fixed at beta* instead of drawn per example, so its objective (B - beta*) nll + beta* KL has exactly the KL
   weight of the multi-beta code at beta* (a beta-VAE with KL weight beta* / (B - beta*) in the usual form);
3. checks the paper's three qualitative claims (the issue's gates; none is relaxed here):

   (1) information falls with beta: sigma_beta strictly increases along the grid; the direct-decode error
       ||x - g(f(x, beta), beta)||^2 increases with beta (Spearman >= 0.9 over beta = 0, 0.1, .., 1); the
       code at beta = B is close to the prior (mean KL(q(z_B | x) || N(0, I)) <= --top-kl-max nats);
   (2) denoising restores sharpness (Fig. 1): at beta*, for held-out inputs, denoise-then-decode images are
       nearer real images than direct decodes: mean distance to the nearest training image (the whole
       training subset, or a --reference-size random part of the training set) at most --sharp-ratio (0.6)
       times the direct decodes'; the sampler with the
       printed sign of Algorithm 2 step 3 must fail this (ratio > --sharp-ratio). Reconstruction error to
       the input is reported, not gated (the blurred decode is close to E[x | z], which minimises it); so are
       the same ratio for every sampler (alg2, ancestral, deterministic with xi = eps_hat or 0, each with
       either sign) and for the held-out real images themselves (what a perfect sampler would score);
   (3) disentanglement on par: MIG and DCI disentanglement of the multi-beta code at beta* at least the
       beta-VAE's minus --par-margin (0.05), and above the beta = 0 code's by at least --clear-margin (0.05).

Writes a JSON record (numbers, gates, timings, machine and load) and exits with status 1 when a gate fails.

``--posterior-scale per_unit`` sets the VAE's ``posterior_scale`` and the denoiser's ``schedule`` together (a
per-unit sigma_beta, a departure from Eq. 3: docs/methods/multibeta.md#departures-from-the-paper); the default
keeps the recipe's (isotropic, the paper). With a per-unit sigma, ``sigma_at_betas``, ``sigma_0`` and
``sigma_top`` are root mean squares over the units, and ``sigma_units_*`` list every unit's.

Reported, never gated (the gates and beta* above do not change):

- ``--gate2-curve-betas 0.5,0.7,0.9``: the gate-2 measurements repeated at each of those betas
  (:func:`gate2_curve`: distances and ratios of the direct decode, the configured sampler with either sign
  and every other sampler, the deterministic xi = 0 sampler from the mean code, the decodes of the exact-head
  end points f(x, 0) and 2 f(x, beta) - f(x, 0), the held-out real images; the mean ||f(x, beta)|| / ||f(x, 0)||, the mean cosine
  of f(x, beta) and f(x, 0), the mean KL at beta; where each sampler's denoised code lands relative to
  f(x, 0) and to the reflection 2 f(x, beta) - f(x, 0)). Written under ``gate2_curve_not_gated``.
- ``--save-dir DIR`` saves the trained multi-beta pipeline (``DIR/multibeta``, with beta* as its
  representation_beta) and the beta-VAE baseline (``DIR/beta_vae``), each as config.json + safetensors,
  plus ``DIR/validation_state.json`` (the beta* choice and the training times); ``--load-dir DIR`` skips
  the training and evaluates those models (same recipe and overrides: the VAE config must match).
- ``--load-dir DIR --retrain-latent [--steps-latent N] [--model.denoiser.X V ...] [--save-dir NEW]``: keeps the
  loaded phase-1 VAE and its beta*, and trains phase 2 again (:func:`fresh_denoiser`: the denoiser a full run
  starts from, built with this call's ``model.denoiser`` fields, then ``cfg.train_latent`` with this call's
  overrides), e.g. a longer phase 2; the baseline stays the loaded one (or ``--retrain-baseline``). With the saved
  run's settings it retrains exactly the saved denoiser. The record says ``retrain_latent`` and ``load_dir``;
  every record has the ``argv`` and the ``git_commit`` it ran with.
- ``--load-dir DIR`` alone takes the call's sampling settings (``--model.denoiser.sampler``,
  ``--model.denoiser.deterministic_noise``, ``--model.encoding_noise``: :func:`apply_sampling`) and refuses other
  ``model.denoiser`` overrides (they need ``--retrain-latent``); ``sampler_config`` in the record says what ran.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import time
from pathlib import Path


def _load() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover
        return []


def fixed_beta(vae, beta: float, kl_warmup: int = 0):
    """The beta-VAE baseline's trainable module: the VAE's Eq. 4 loss with beta fixed at ``beta`` for every
    example (what the Trainer trains; the VAE is trained in place). ``kl_warmup`` > 0: the KL weight ramps
    linearly from 0 to ``beta`` over the first ``kl_warmup`` steps ((B - beta) nll + min(1, step / kl_warmup) beta
    KL), the usual guard of a beta-VAE against posterior collapse; the final objective, and so the matched KL
    weight, is unchanged."""
    import torch
    from torch import nn

    if isinstance(kl_warmup, bool) or not isinstance(kl_warmup, int) or kl_warmup < 0:
        raise ValueError(f"kl_warmup must be an int >= 0, got {kl_warmup!r}")

    class FixedBetaVAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.vae = vae

        def kl_scale(self, step) -> float:
            if not kl_warmup or step is None:
                return 1.0
            return min(1.0, float(step) / kl_warmup)

        def loss(self, batch, *, step=None, generator=None):
            x = batch[0] if isinstance(batch, (list, tuple)) else batch
            b = torch.full((x.shape[0],), float(beta), device=x.device)
            scale = self.kl_scale(step)
            if scale == 1.0:
                return self.vae.loss(batch, step=step, generator=generator, beta=b)
            plain = type(self.vae)._weights  # the weights MultiBetaVAE.loss applies (beta checked there)

            def weights(bb):  # the Eq. 4 weights with the KL weight scaled (only during the warm-up)
                w_rec, w_kl = plain(self.vae, bb)
                return w_rec, w_kl * scale

            self.vae._weights = weights
            try:
                out = self.vae.loss(batch, step=step, generator=generator, beta=b)
            finally:
                del self.vae._weights
            out["kl_scale"] = scale
            return out

    return FixedBetaVAE()


def _git_commit() -> str:
    """The commit of the checkout this script runs from ("unknown" outside a git checkout)."""
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):  # pragma: no cover
        return "unknown"


def _images(dataset, idx, chunk: int = 1024):
    """Images [n, C, H, W] of ``dataset`` at ``idx``, fetched in batches (``__getitems__`` where the dataset has it)."""
    import torch

    out = []
    for i in range(0, len(idx), chunk):
        part = idx[i:i + chunk]
        items = dataset.__getitems__(part) if hasattr(dataset, "__getitems__") else [dataset[j] for j in part]
        out.append(torch.stack([it[0] for it in items]).float())
    return torch.cat(out)


# the samplers of the gate-2 report, by name (each run with the fixed sign and with the printed sign of Alg. 2 step 3)
SAMPLERS = (("alg2", dict(sampler="alg2")), ("ancestral", dict(sampler="ancestral")),
            ("deterministic_eps_hat", dict(sampler="deterministic", deterministic_noise="eps_hat")),
            ("deterministic_zero", dict(sampler="deterministic", deterministic_noise="zero")))


def _denoised(model, x, beta: float, seed: int, denoiser_cfg, noise: bool | None = None):
    """(code at beta = 0, its decode) for held-out ``x``: z = f(x, beta) (+ sigma_beta xi when ``noise``, default the
    pipeline's ``encoding_noise``), Algorithm 2 down to 0 with ``denoiser_cfg``, decode at 0; the generator seeded with
    ``seed`` as the gate-2 check seeds it (so the configured sampler at beta* reproduces the gate's images)."""
    import torch

    keep = model.denoiser.config
    gen = torch.Generator(device=x.device)
    try:
        model.denoiser.config = denoiser_cfg
        gen.manual_seed(seed)
        z = model.encode(x, beta, noise=model.config.encoding_noise if noise is None else noise, generator=gen)
        code = model.denoise(z, beta, 0.0, generator=gen)
        return code, model.decode(code, 0.0)
    finally:
        model.denoiser.config = keep


def gate2_curve(model, x, reference, betas, *, seed: int = 0, sharp_ratio: float = 0.6, samplers=SAMPLERS) -> dict:
    """The gate-2 measurements of the module docstring at each beta of ``betas`` (a report, NOT a gate).

    ``model``: a trained :class:`diffrep.methods.multibeta.MultiBeta` in phase 2 (eval mode); ``x`` held-out images
    [n, C, H, W]; ``reference`` the training images searched for the nearest one; ``betas`` strictly increasing in
    (0, B]. Per beta (``rows``):

    - ``mean_nearest_train_distance``: real images, the direct decode g(f(x, beta), beta), ``denoise_then_decode``
      (the configured sampler, as the gate runs it), ``printed_sign_denoise`` (the same with the printed sign),
      each of ``samplers`` with either sign (``<name>`` / ``<name>_printed_sign``), the deterministic sampler with
      xi = 0 started from the mean code f(x, beta) instead of a noisy draw (``deterministic_zero_from_mean`` and
      ``deterministic_zero_from_mean_printed_sign``: the noise-free limit), and the decodes at 0 of where
      exact heads would carry the mean code noise-free: ``target_f0_decode`` g(f(x, 0), 0) (fixed sign) and
      ``target_reflection_decode`` g(2 f(x, beta) - f(x, 0), 0) (printed sign); ``ratio_over_direct`` each divided
      by the direct decode's; ``mse_to_input`` each image's mean squared error to its input;
    - ``signs_separate``: ``denoise_then_decode`` ratio <= ``sharp_ratio`` < ``printed_sign_denoise`` ratio (what
      gates 2a and 2b ask at beta*);
    - ``norm_ratio``: mean_x ||f(x, beta)|| / ||f(x, 0)||; ``cosine``: mean_x cos(f(x, beta), f(x, 0));
      ``kl_nats`` (mean KL(q(z_beta | x) || N(0, I))), ``sigma``, ``direct_mse``, ``explained`` r(beta)
      (:func:`diffrep.analysis.multibeta.information_curve` on ``x``);
    - ``code``: per sampler, where the denoised code c lands, as ratios to mean_x ||f(x, 0)||^2:
      ``sq_dist_to_f0`` (mean_x ||c - f(x, 0)||^2; the fixed sign's target), ``sq_dist_to_reflection``
      (mean_x ||c - (2 f(x, beta) - f(x, 0))||^2; where exact heads carry the printed sign, noise-free) and
      ``sq_norm`` (mean_x ||c||^2).
    """
    import dataclasses

    import torch

    from diffrep.analysis.multibeta import information_curve, nearest_distance

    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[0] < 2:
        raise ValueError("gate2_curve: x must be a batch of at least 2 images [n, C, H, W]")
    bmax = float(model.config.vae.beta_max)
    bs = [float(b) for b in betas]
    if not bs or any(not 0 < b <= bmax for b in bs) or any(b2 <= b1 for b1, b2 in zip(bs, bs[1:])):
        raise ValueError(f"gate2_curve: betas must be strictly increasing values in (0, B={bmax:g}], got {list(betas)}")
    if model.phase != 2:
        raise ValueError(f"gate2_curve: the model must be in phase 2 (a trained latent diffusion), got phase {model.phase}")
    gate_cfg = model.denoiser.config
    noisy = model.config.encoding_noise  # (denoiser config, start from f + sigma xi) per name
    configs = {"denoise_then_decode": (gate_cfg, noisy),
               "printed_sign_denoise": (dataclasses.replace(gate_cfg, printed_sign=True), noisy)}
    for name, kw in samplers:
        for sign in (False, True):
            configs[name + ("_printed_sign" if sign else "")] = (dataclasses.replace(gate_cfg, printed_sign=sign, **kw), noisy)
    for sign in (False, True):  # the noise-free limit of the exact-head analysis: from the mean code, xi = 0
        configs["deterministic_zero_from_mean" + ("_printed_sign" if sign else "")] = (dataclasses.replace(
            gate_cfg, printed_sign=sign, sampler="deterministic", deterministic_noise="zero"), False)
    with torch.no_grad():
        info = information_curve(model.vae, x, [0.0] + bs)
        f0 = model.vae.encode(x, 0.0)
        code_shape = f0.shape
        f0 = f0.flatten(1).double()
    ref = reference.cpu()
    d_real = float(nearest_distance(x.cpu(), ref).mean())
    f0_sq = float(f0.pow(2).sum(1).mean())
    rows = []
    for k, b in enumerate(bs):
        with torch.no_grad():
            fb = model.vae.encode(x, b)
            direct = model.vae.decode(fb, b)
        fb = fb.flatten(1).double()
        norms = fb.norm(dim=1) / f0.norm(dim=1).clamp_min(1e-300)
        cos = (fb * f0).sum(1) / (fb.norm(dim=1) * f0.norm(dim=1)).clamp_min(1e-300)
        dist = {"real_images": d_real, "direct_decode": float(nearest_distance(direct.cpu(), ref).mean())}
        mse = {"direct_decode": float((direct - x).double().pow(2).mean())}
        with torch.no_grad():  # where exact heads would carry z = f(x, beta) noise-free: f(x, 0) (fixed sign), the reflection (printed)
            for name, target in (("target_f0_decode", f0), ("target_reflection_decode", 2 * fb - f0)):
                img = model.decode(target.to(x.dtype).reshape(code_shape), 0.0)
                dist[name] = float(nearest_distance(img.cpu(), ref).mean())
                mse[name] = float((img - x).double().pow(2).mean())
        code_stats, done = {}, {}
        for name, cfg in configs.items():
            key = next((n for n, c in done.items() if c == cfg), None)  # the gate's sampler is one of the named ones
            if key is not None:
                dist[name], mse[name], code_stats[name] = dist[key], mse[key], code_stats[key]
                continue
            with torch.no_grad():
                code, img = _denoised(model, x, b, seed, *cfg)
            c = code.flatten(1).double()
            dist[name] = float(nearest_distance(img.cpu(), ref).mean())
            mse[name] = float((img - x).double().pow(2).mean())
            code_stats[name] = {"sq_dist_to_f0": float((c - f0).pow(2).sum(1).mean()) / f0_sq,
                                "sq_dist_to_reflection": float((c - (2 * fb - f0)).pow(2).sum(1).mean()) / f0_sq,
                                "sq_norm": float(c.pow(2).sum(1).mean()) / f0_sq}
            done[name] = cfg
        ratio = {n: v / max(dist["direct_decode"], 1e-12) for n, v in dist.items() if n != "direct_decode"}
        rows.append({"beta": b, "sigma": info["sigma"][k + 1], "kl_nats": info["rate"][k + 1],
                     "direct_mse": info["mse"][k + 1], "explained": info["explained"][k + 1],
                     "norm_ratio": float(norms.mean()), "cosine": float(cos.mean()),
                     "mean_nearest_train_distance": dist, "ratio_over_direct": ratio, "mse_to_input": mse,
                     "signs_separate": bool(ratio["denoise_then_decode"] <= sharp_ratio < ratio["printed_sign_denoise"]),
                     "code": code_stats})
    return {"not_a_gate": "a report: the gates read beta* only", "betas": bs, "sampler": gate_cfg.sampler,
            "sharp_ratio": sharp_ratio, "f0_mean_sq_norm": f0_sq, "rows": rows,
            "separating_betas": [r["beta"] for r in rows if r["signs_separate"]]}


def _save_models(where: Path, model, baseline, info: dict, times: dict, recipe: str) -> None:
    """``where/multibeta`` and ``where/beta_vae`` (save_pretrained: config.json + safetensors) and
    ``where/validation_state.json`` (the beta* choice, the training times, the recipe), written last: the earlier
    one goes first, so a save stopped part-way is no folder --load-dir reads (it needs validation_state.json)."""
    (where / "validation_state.json").unlink(missing_ok=True)
    model.save_pretrained(where / "multibeta")
    baseline.save_pretrained(where / "beta_vae")
    state = {"recipe": recipe, "representation_beta_choice": info, "times_s": times}
    (where / "validation_state.json").write_text(json.dumps(state, indent=1, default=float), encoding="utf-8")


def fresh_denoiser(model, fresh) -> None:
    """--retrain-latent: give the trained pipeline ``model`` (a loaded MultiBeta) the untrained latent denoiser of
    ``fresh`` (a MultiBeta the recipe just built after seeding, so its denoiser has a full run's initial weights and
    this call's ``model.denoiser`` config), keep ``model``'s VAE and representation beta, and switch to phase 2
    (which installs the VAE's sigma table as the noise schedule and leaves only the denoiser trainable)."""
    if fresh.config.vae != model.config.vae:
        raise ValueError("fresh_denoiser: the fresh pipeline's VAE config differs from the loaded one's")
    model.denoiser = fresh.denoiser.to(next(model.vae.parameters()).device)
    model.config = dataclasses.replace(model.config, denoiser=fresh.config.denoiser, phase=1)
    model.set_phase(2)


# fields a loaded pipeline may take from the call's config without retraining: how it samples, not what it learned
SAMPLING_FIELDS = ("sampler", "deterministic_noise")


def apply_sampling(model, cfg) -> list[str]:
    """--load-dir without --retrain-latent: give the loaded pipeline the call's sampling settings (``model.denoiser``
    ``sampler`` / ``deterministic_noise`` and ``model.encoding_noise``); any other ``model.denoiser`` field that differs
    from the saved denoiser's is an error (the denoiser was trained with it: retrain phase 2 to change it), never
    ignored. Returns the names of the fields it changed."""
    have, want = model.config.denoiser, cfg.model.denoiser
    differ = [f.name for f in dataclasses.fields(want) if getattr(want, f.name) != getattr(have, f.name)]
    trained = [k for k in differ if k not in SAMPLING_FIELDS]
    if trained:
        raise SystemExit(f"--load-dir: model.denoiser.{', model.denoiser.'.join(trained)} of this call differ from the "
                         "saved denoiser's; add --retrain-latent to train phase 2 with them")
    new = dataclasses.replace(have, **{k: getattr(want, k) for k in differ})
    changed = [f"model.denoiser.{k}" for k in differ]
    if cfg.model.encoding_noise != model.config.encoding_noise:
        changed.append("model.encoding_noise")
    model.config = dataclasses.replace(model.config, denoiser=new, encoding_noise=cfg.model.encoding_noise)
    model.denoiser.config = new
    return changed


def _load_models(where: Path, cfg, device):
    """What :func:`_save_models` wrote: (multi-beta pipeline in phase 2, beta-VAE baseline, beta* choice, training
    times); the VAE config of both must equal the recipe's (with the overrides of this call)."""
    from diffrep.methods.multibeta import MultiBeta

    state_file = where / "validation_state.json"
    if not state_file.is_file():
        raise SystemExit(f"--load-dir {where}: no validation_state.json (save one with --save-dir)")
    state = json.loads(state_file.read_text(encoding="utf-8"))
    model = MultiBeta.from_pretrained(where / "multibeta")
    baseline = MultiBeta.from_pretrained(where / "beta_vae")
    for name, m in (("multibeta", model), ("beta_vae", baseline)):
        if m.config.vae != cfg.model.vae:
            raise SystemExit(f"--load-dir {where}/{name}: its VAE config differs from this recipe's model.vae; pass "
                             "the recipe and overrides of the --save-dir run")
    if model.phase != 2:
        raise SystemExit(f"--load-dir {where}/multibeta: saved in phase {model.phase}, not after phase 2")
    times = {k: v for k, v in state["times_s"].items() if k in ("phase1_s", "phase2_s", "beta_vae_s")}
    times["loaded_from"] = str(where)
    return model.to(device).eval(), baseline.to(device).eval(), state["representation_beta_choice"], times


def main(argv=None) -> int:
    import torch

    from diffrep.analysis.multibeta import information_curve, nearest_distance, spearman
    from diffrep.cli.multibeta import code_metrics
    from diffrep.config import apply_overrides
    from diffrep.recipes import get_recipe
    from diffrep.recipes.multibeta import MultiBetaRecipeConfig, TrainSubset, choose_representation_beta
    from diffrep.train import Trainer, seed_everything
    from diffrep.train.rundir import run_contents

    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", default="multibeta/dsprites-cpu", help="a multibeta/ recipe (default %(default)s); "
                    "any --a.b VALUE after the flags overrides its config, as in diffrep train")
    ap.add_argument("--steps-vae", type=int, default=None, help="phase-1 steps (default: the recipe's); the "
                    "beta-VAE trains as many")
    ap.add_argument("--steps-latent", type=int, default=None, help="phase-2 steps (default: the recipe's)")
    ap.add_argument("--seed", type=int, default=0, help="train.seed and train_latent.seed of both models, and the "
                    "seed of the image draws, the sampler noise and the metrics (default 0)")
    ap.add_argument("--eval", choices=("quick", "full"), default="quick", help="metric sample sizes")
    ap.add_argument("--num-train", type=int, default=None, help="metric training points (overrides --eval)")
    ap.add_argument("--num-test", type=int, default=None, help="metric test points (overrides --eval)")
    ap.add_argument("--num-images", type=int, default=256, help="images for the decode and distance checks")
    ap.add_argument("--reference-size", type=int, default=20000, help="training images searched for the nearest one")
    ap.add_argument("--curve-betas", default="0.1,0.3,0.5,0.7,0.9", help="betas of the metric curve ('' for none)")
    ap.add_argument("--spearman-min", type=float, default=0.9, help="gate 1: least Spearman rho of the direct-decode "
                    "error against beta (default %(default)s, the issue's)")
    ap.add_argument("--top-kl-max", type=float, default=0.1, help="gate 1: most mean KL (nats) of the code at beta = B "
                    "to the prior (default %(default)s)")
    ap.add_argument("--sharp-ratio", type=float, default=0.6, help="gate 2: most ratio of the denoised to the direct "
                    "decodes' distance to the nearest training image (default %(default)s, the issue's)")
    ap.add_argument("--par-margin", type=float, default=0.05, help="gate 3: MIG / DCI at beta* at least the beta-VAE's "
                    "minus this (default %(default)s, the issue's)")
    ap.add_argument("--clear-margin", type=float, default=0.05, help="gate 3: MIG / DCI at beta* at least the beta = 0 "
                    "code's plus this (default %(default)s)")
    ap.add_argument("--out", default="benches/results/multibeta_validation_cpu.json",
                    help="the JSON record (default %(default)s); an existing file is refused unless --overwrite")
    ap.add_argument("--run-dir", default="runs/validate_multibeta", help="training folders of both models "
                    "(default %(default)s; an existing run there is refused unless --overwrite)")
    ap.add_argument("--overwrite", action="store_true", help="replace earlier runs in --run-dir, an existing --out and "
                    "the models of an earlier run in --save-dir")
    ap.add_argument("--gate2-curve-betas", default="", help="report (not a gate): the gate-2 measurements at these "
                    "betas, e.g. 0.5,0.7,0.9 ('' for none; gate2_curve)")
    ap.add_argument("--save-dir", default="", help="save the trained models here (config.json + safetensors)")
    ap.add_argument("--load-dir", default="", help="evaluate the models a --save-dir run saved instead of training")
    ap.add_argument("--baseline-kl-warmup", type=int, default=0, help="beta-VAE baseline: ramp its KL weight from 0 "
                    "to beta* over this many first steps (0: none); the final, matched KL weight is unchanged")
    ap.add_argument("--retrain-baseline", action="store_true", help="with --load-dir: train the beta-VAE baseline again "
                    "(same seed and initialisation as a full run; e.g. with another --baseline-kl-warmup) instead of loading it")
    ap.add_argument("--retrain-latent", action="store_true", help="with --load-dir: keep the loaded phase-1 VAE and "
                    "beta*, and train phase 2 again from the full run's initial denoiser weights, with this call's "
                    "--steps-latent and model.denoiser / train_latent overrides (e.g. --steps-latent 15000); "
                    "--save-dir may then save the result")
    ap.add_argument("--posterior-scale", choices=("isotropic", "per_unit"), default=None,
                    help="sigma_beta of Eq. 3: isotropic (the paper) or per_unit (one per latent unit, a departure); "
                    "sets model.vae.posterior_scale and model.denoiser.schedule (default: the recipe's)")
    args, rest = ap.parse_known_args(argv)
    if args.retrain_baseline and not args.load_dir:
        ap.error("--retrain-baseline goes with --load-dir (a full run trains the baseline anyway)")
    if args.retrain_latent and not args.load_dir:
        ap.error("--retrain-latent goes with --load-dir (a full run trains phase 2 anyway)")
    if args.save_dir and args.load_dir and not args.retrain_latent:
        ap.error("--save-dir and --load-dir exclude each other unless --retrain-latent (a loaded run is already saved)")
    if args.save_dir and args.load_dir and Path(args.save_dir).resolve() == Path(args.load_dir).resolve():
        ap.error("--save-dir must differ from --load-dir (the loaded models stay as they were)")
    try:
        curve2_betas = [float(b) for b in args.gate2_curve_betas.split(",") if b.strip()]
    except ValueError:
        ap.error(f"--gate2-curve-betas must be numbers separated by commas, got {args.gate2_curve_betas!r}")
    for flag, v in (("--num-images", args.num_images), ("--reference-size", args.reference_size)):
        if v < 2:
            ap.error(f"{flag} must be >= 2")
    # checked before any training: 0 steps read as "the recipe's" (a full run), a bad --curve-betas or metric size
    # failed only after both models had trained
    for flag, v in (("--steps-vae", args.steps_vae), ("--steps-latent", args.steps_latent)):
        if v is not None and v < 1:
            ap.error(f"{flag} must be >= 1 (leave it out for the recipe's steps), got {v}")
    if args.baseline_kl_warmup < 0:
        ap.error(f"--baseline-kl-warmup must be >= 0, got {args.baseline_kl_warmup}")
    for flag, v in (("--num-train", args.num_train), ("--num-test", args.num_test)):
        if v is not None and v < 10:
            ap.error(f"{flag} must be >= 10, got {v}")
    try:
        curve_betas = [float(b) for b in args.curve_betas.split(",") if b.strip()]
    except ValueError:
        ap.error(f"--curve-betas must be numbers separated by commas, got {args.curve_betas!r}")
    # the gates' thresholds and the record's path, before any training: a NaN or negative threshold made its gate fail
    # (or pass) whatever the models did, and a folder given as --out failed with a traceback after the whole run
    for flag, v, ok, want in (("--spearman-min", args.spearman_min, lambda v: -1 <= v <= 1, "in [-1, 1] (a correlation)"),
                              ("--top-kl-max", args.top_kl_max, lambda v: v >= 0, ">= 0 (nats)"),
                              ("--sharp-ratio", args.sharp_ratio, lambda v: v > 0, "> 0 (a ratio of distances)"),
                              ("--par-margin", args.par_margin, lambda v: True, "(MIG / DCI units)"),
                              ("--clear-margin", args.clear_margin, lambda v: True, "(MIG / DCI units)")):
        if not (math.isfinite(v) and ok(v)):
            ap.error(f"{flag} must be a finite number {want}, got {v}")
    if Path(args.out).is_dir():
        ap.error(f"--out {args.out} is a folder; give the JSON record's file path")
    if args.load_dir and not (Path(args.load_dir) / "validation_state.json").is_file():
        what = "does not exist" if not Path(args.load_dir).exists() else "holds no validation_state.json"
        ap.error(f"--load-dir {args.load_dir} {what} (a folder that a --save-dir run wrote)")

    t_start = time.perf_counter()
    commit = _git_commit()  # the code this run started with (HEAD may move while it runs)
    over = ["--train.seed", str(args.seed), "--train_latent.seed", str(args.seed)]
    if args.steps_vae is not None:  # (0 is refused above; it used to mean "the recipe's")
        over += ["--train.steps", str(args.steps_vae)]
    if args.steps_latent is not None:
        over += ["--train_latent.steps", str(args.steps_latent)]
    if args.posterior_scale:
        over += ["--model.vae.posterior_scale", args.posterior_scale, "--model.denoiser.schedule", args.posterior_scale]
    try:
        recipe = get_recipe(args.recipe)
        cfg = recipe.make_config()
        if not isinstance(cfg, MultiBetaRecipeConfig):  # before the overrides: it read "config field 'train_latent.seed':
            # unknown field", the first override the script adds
            ap.error(f"{args.recipe} is not a multibeta recipe (list them with 'diffrep multibeta recipes')")
        cfg = apply_overrides(cfg, over + list(rest))
    except ValueError as exc:  # an unknown recipe or config override: a message before any work, not a traceback
        ap.error(str(exc))
    bmax = cfg.model.vae.beta_max
    if any(not 0 <= b <= bmax for b in curve_betas):
        ap.error(f"--curve-betas must lie in [0, B={bmax:g}], got {curve_betas}")
    if curve2_betas and (any(not 0 < b <= bmax for b in curve2_betas)
                         or any(b2 <= b1 for b1, b2 in zip(curve2_betas, curve2_betas[1:]))):
        ap.error(f"--gate2-curve-betas must be strictly increasing values in (0, B={bmax:g}], got {curve2_betas}")
    if Path(args.out).exists() and not args.overwrite:  # before training: it was replaced after hours of work
        ap.error(f"--out {args.out} exists (an earlier record); choose another --out or add --overwrite")
    if args.save_dir and (Path(args.save_dir) / "validation_state.json").exists() and not args.overwrite:
        # a run stopped between its two saves left the new pipeline beside the earlier baseline and state
        ap.error(f"--save-dir {args.save_dir} holds an earlier run's models (validation_state.json); choose another "
                 "--save-dir or add --overwrite")
    run = Path(args.run_dir)
    trains = (["multibeta/phase1", "multibeta/phase2", "beta_vae"] if not args.load_dir else
              ["multibeta/phase2"] * args.retrain_latent + ["beta_vae"] * args.retrain_baseline)
    held = [t for t in trains if run_contents(run / t)]
    if held and not args.overwrite:  # the trainer's refusal came as a traceback, after the data was built
        ap.error(f"--run-dir {run} already holds runs ({', '.join(held)}); pass --overwrite to replace them or "
                 "choose another --run-dir")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    times = {}
    sampling_changed: list[str] = []

    if args.load_dir:
        model, baseline, info, times = _load_models(Path(args.load_dir), cfg, device)
        beta_star = model.config.representation_beta
        dataset = recipe.build(cfg)[1]
        print(f"loaded the trained models from {args.load_dir} (beta* = {beta_star:g}); no phase-1 training", file=sys.stderr,
              flush=True)
        if args.retrain_latent:  # phase 2 again on the loaded VAE, from the full run's initial denoiser weights
            seed_everything(cfg.train.seed)
            fresh_denoiser(model, recipe.build(cfg)[0])
            t0 = time.perf_counter()
            Trainer(model, dataset, cfg.train_latent, run / "multibeta" / "phase2").train(overwrite=args.overwrite)
            times["phase2_s"] = time.perf_counter() - t0
            times["phase2_retrained"] = True
            model.to(device).eval()
        sampling_changed = apply_sampling(model, cfg)  # after --retrain-latent: only model.encoding_noise can differ
        if args.retrain_baseline:  # the full run's baseline: a build right after seeding (the same initial weights)
            seed_everything(cfg.train.seed)
            baseline, dataset = recipe.build(cfg)
            t0 = time.perf_counter()
            Trainer(fixed_beta(baseline.vae, beta_star, args.baseline_kl_warmup), dataset, cfg.train,
                    run / "beta_vae").train(overwrite=args.overwrite)
            times["beta_vae_s"] = time.perf_counter() - t0
            times["baseline_retrained"] = True
            baseline.to(device).eval()
    else:
        # -- 1. the multi-beta VAE and its latent diffusion -------------------------------------------
        seed_everything(cfg.train.seed)
        model, dataset = recipe.build(cfg)
        seed_everything(cfg.train.seed)
        baseline, _ = recipe.build(cfg)  # same initial weights
        t0 = time.perf_counter()
        Trainer(model, dataset, cfg.train, run / "multibeta" / "phase1").train(overwrite=args.overwrite)
        times["phase1_s"] = time.perf_counter() - t0
        model.to(device)
        info = choose_representation_beta(cfg, model, dataset, device)
        beta_star = info["chosen_beta"] if info["chosen_beta"] is not None else model.config.representation_beta
        model.config = dataclasses.replace(model.config, representation_beta=beta_star)
        print(f"beta* = {beta_star:g} (explained variance per candidate: "
              f"{dict(zip(info['betas'], [round(r, 3) for r in info['explained']]))})", file=sys.stderr, flush=True)
        model.set_phase(2)
        t0 = time.perf_counter()
        Trainer(model, dataset, cfg.train_latent, run / "multibeta" / "phase2").train(overwrite=args.overwrite)
        times["phase2_s"] = time.perf_counter() - t0
        model.to(device).eval()

        # -- 2. the beta-VAE baseline: the same VAE, beta fixed at beta* --------------------------------
        t0 = time.perf_counter()
        Trainer(fixed_beta(baseline.vae, beta_star, args.baseline_kl_warmup), dataset, cfg.train, run / "beta_vae").train(overwrite=args.overwrite)
        times["beta_vae_s"] = time.perf_counter() - t0
        baseline.to(device).eval()
        if args.save_dir:
            _save_models(Path(args.save_dir), model, baseline, info, times, args.recipe)

    if args.load_dir and args.save_dir:  # --retrain-latent: the new pipeline with the loaded (or retrained) baseline
        _save_models(Path(args.save_dir), model, baseline, info, times, args.recipe)

    # -- 3. the checks --------------------------------------------------------------------------------
    t0 = time.perf_counter()
    # held-out inputs (images outside the training subset when the recipe trains on one); the reference set of
    # "real images" is the training set itself (all of a training subset, else --reference-size of it)
    full = dataset.base if isinstance(dataset, TrainSubset) else dataset  # shares the rendered-image cache
    g = torch.Generator().manual_seed(args.seed + 1000)
    train_idx = set(dataset.indices) if isinstance(dataset, TrainSubset) else set()
    pool = [i for i in torch.randperm(len(full), generator=g)[: args.num_images + len(train_idx)].tolist()
            if i not in train_idx]
    idx = pool[: args.num_images]
    x = _images(full, idx).to(device)
    if isinstance(dataset, TrainSubset):
        ref_idx = list(range(len(dataset)))
    else:
        ref_idx = torch.randperm(len(dataset), generator=g)[: args.reference_size].tolist()
    reference = _images(dataset, ref_idx)
    bmax = cfg.model.vae.beta_max
    betas = [round(k * bmax / 10, 10) for k in range(11)]
    with torch.no_grad():
        curve = information_curve(model.vae, x, betas)
        sig_grid = model.vae.sigma_grid().detach().cpu()
        f_top = model.vae.encode(x, bmax)
    rho = spearman(betas, curve["mse"])
    rms = [float(row.double().pow(2).mean().sqrt()) for row in (sig_grid[0], sig_grid[-1])]  # = sigma when isotropic
    claim1 = {"sigma_grid_strictly_increasing": bool(model.vae.sigma_is_increasing()),
              "posterior_scale": model.config.vae.posterior_scale,
              "sigma_at_betas": curve["sigma"], "direct_mse": curve["mse"], "rate_nats": curve["rate"],
              "explained": curve["explained"], "betas": betas, "spearman_mse_beta": rho,
              "top_kl_nats": curve["rate"][-1], "sigma_top": rms[1], "sigma_0": rms[0],
              "top_mean_sq_norm_per_dim": float(f_top.pow(2).mean())}
    if sig_grid.dim() > 1:  # per-unit sigma: every unit's value
        claim1["sigma_units_at_betas"] = curve["sigma_units"]
        claim1["sigma_units_0"] = sig_grid[0].reshape(-1).tolist()
        claim1["sigma_units_top"] = sig_grid[-1].reshape(-1).tolist()
    gates = {"1_sigma_increasing": claim1["sigma_grid_strictly_increasing"],
             "1_direct_error_increasing": rho >= args.spearman_min,
             "1_top_close_to_prior": claim1["top_kl_nats"] <= args.top_kl_max}

    gen = torch.Generator(device=device)
    with torch.no_grad():
        direct = model.decode(model.encode(x, beta_star), beta_star)
        gen.manual_seed(args.seed)
        z = model.encode(x, beta_star, noise=model.config.encoding_noise, generator=gen)
        denoised = model.denoise_decode(z, beta_star, generator=gen)
        printed_cfg = dataclasses.replace(model.denoiser.config, printed_sign=True)
        fixed_cfg = model.denoiser.config
        model.denoiser.config = printed_cfg
        gen.manual_seed(args.seed)
        z = model.encode(x, beta_star, noise=model.config.encoding_noise, generator=gen)
        printed = model.denoise_decode(z, beta_star, generator=gen)
        others = {}  # the other samplers, reported but not gated (the gate reads the configured sampler)
        for name, kw in (("alg2", dict(sampler="alg2")), ("ancestral", dict(sampler="ancestral")),
                         ("deterministic_eps_hat", dict(sampler="deterministic", deterministic_noise="eps_hat")),
                         ("deterministic_zero", dict(sampler="deterministic", deterministic_noise="zero"))):
            for sign in (False, True):
                model.denoiser.config = dataclasses.replace(fixed_cfg, printed_sign=sign, **kw)
                gen.manual_seed(args.seed)
                z = model.encode(x, beta_star, noise=model.config.encoding_noise, generator=gen)
                others[name + ("_printed_sign" if sign else "")] = model.denoise_decode(z, beta_star, generator=gen)
        model.denoiser.config = fixed_cfg
        gen.manual_seed(args.seed)
        samples = model.sample(args.num_images, generator=gen)
        bvae_direct = baseline.decode(baseline.encode(x, beta_star), beta_star)
        bvae_rate = information_curve(baseline.vae, x, [0.0, beta_star] if beta_star > 0 else [0.0])["rate"][-1]
    dist = {name: nearest_distance(imgs.cpu(), reference) for name, imgs in
            (("real_images", x), ("direct_decode", direct), ("denoise_then_decode", denoised),
             ("printed_sign_denoise", printed), ("unconditional_samples", samples), ("beta_vae_decode", bvae_direct))}
    mean_d = {k: float(v.mean()) for k, v in dist.items()}
    by_sampler = {name: {"mean_nearest_train_distance": float(nearest_distance(imgs.cpu(), reference).mean()),
                         "mse_to_input": float((imgs - x).pow(2).mean())} for name, imgs in others.items()}
    for v in by_sampler.values():
        v["ratio_over_direct"] = v["mean_nearest_train_distance"] / max(mean_d["direct_decode"], 1e-12)
    ratio = mean_d["denoise_then_decode"] / max(mean_d["direct_decode"], 1e-12)
    ratio_printed = mean_d["printed_sign_denoise"] / max(mean_d["direct_decode"], 1e-12)
    # what a perfect sampler would score: outputs distributed like held-out real images (not gated)
    ratio_real = mean_d["real_images"] / max(mean_d["direct_decode"], 1e-12)
    mse_in = {name: float((imgs - x).pow(2).mean()) for name, imgs in
              (("direct_decode", direct), ("denoise_then_decode", denoised), ("printed_sign_denoise", printed),
               ("beta_vae_decode", bvae_direct))}
    claim2 = {"beta_star": beta_star, "mean_nearest_train_distance": mean_d, "ratio_denoised_over_direct": ratio,
              "ratio_printed_sign_over_direct": ratio_printed,
              "ratio_real_images_over_direct_not_gated": ratio_real, "mse_to_input_not_gated": mse_in,
              "samplers_not_gated": by_sampler, "sampler": fixed_cfg.sampler,
              "reference_size": len(ref_idx), "num_images": len(idx), "inputs_held_out": bool(train_idx)}
    gates["2_denoised_nearer_real"] = ratio <= args.sharp_ratio
    gates["2_printed_sign_fails"] = ratio_printed > args.sharp_ratio

    metrics = ("mig", "dci")
    kw = dict(num_train=args.num_train, num_test=args.num_test)
    ev = {"multibeta_at_beta_star": code_metrics(model, full, beta_star, device, metrics, args.eval, args.seed, **kw),
          "beta_vae_at_beta_star": code_metrics(baseline, full, beta_star, device, metrics, args.eval, args.seed, **kw),
          "multibeta_at_beta_0": code_metrics(model, full, 0.0, device, metrics, args.eval, args.seed, **kw)}
    ev["multibeta_curve"] = [{"beta": b, **code_metrics(model, full, b, device, metrics, args.eval, args.seed, **kw)}
                             for b in curve_betas]
    mb, bv, b0 = ev["multibeta_at_beta_star"], ev["beta_vae_at_beta_star"], ev["multibeta_at_beta_0"]
    for key, name in (("mig", "mig"), ("dci_disentanglement", "dci")):
        gates[f"3_{name}_on_par_with_beta_vae"] = mb[key] >= bv[key] - args.par_margin
        gates[f"3_{name}_clearly_above_beta_0"] = mb[key] >= b0[key] + args.clear_margin
    times["eval_s"] = time.perf_counter() - t0
    curve2 = None
    if curve2_betas:  # a report: the gates above read beta* only
        t1 = time.perf_counter()
        curve2 = gate2_curve(model, x, reference, curve2_betas, seed=args.seed, sharp_ratio=args.sharp_ratio)
        times["gate2_curve_s"] = time.perf_counter() - t1
    times["total_s"] = time.perf_counter() - t_start

    record = {
        "script": "scripts/validate_multibeta.py", "argv": sys.argv[1:] if argv is None else list(argv),
        "git_commit": commit, "recipe": args.recipe, "seed": args.seed,
        "load_dir": args.load_dir or None, "retrain_latent": bool(args.retrain_latent),
        "loaded_sampling_changed": sampling_changed, "sampler_config": {
            "sampler": model.denoiser.config.sampler, "deterministic_noise": model.denoiser.config.deterministic_noise,
            "encoding_noise": model.config.encoding_noise},
        "steps_vae": cfg.train.steps, "steps_latent": cfg.train_latent.steps, "eval_sizes": args.eval,
        "metric_points": {"num_train": args.num_train, "num_test": args.num_test},
        "gates": gates, "passed": all(gates.values()),
        "thresholds": {"spearman_min": args.spearman_min, "top_kl_max": args.top_kl_max, "sharp_ratio": args.sharp_ratio,
                       "par_margin": args.par_margin, "clear_margin": args.clear_margin},
        "representation_beta_choice": {k: info[k] for k in ("betas", "explained", "mse", "rate", "chosen_beta",
                                                            "informative_fraction")},
        "claim1_information": claim1, "claim2_sharpness": claim2, "claim3_disentanglement": ev,
        "gate2_curve_not_gated": curve2,
        "times_s": times, "device": str(device), "torch_threads": torch.get_num_threads(),
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpus": os.cpu_count(), "load_avg_at_end": _load()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "baseline": "beta-VAE = the recipe's MultiBetaVAE (same nets, same init, same TrainConfig) trained with beta "
                    "fixed at beta* (objective (B - beta*) nll + beta* KL)"
                    + (f"; KL weight ramped from 0 over the first {args.baseline_kl_warmup} steps"
                       if args.baseline_kl_warmup else ""),
        "baseline_kl_warmup": args.baseline_kl_warmup,
        "beta_vae_rate_nats": bvae_rate,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1, default=float), encoding="utf-8")
    print(json.dumps({"gates": gates, "beta_star": beta_star, "spearman": rho, "top_kl": claim1["top_kl_nats"],
                      "ratio": ratio, "ratio_printed": ratio_printed, "ratio_real": ratio_real,
                      "ratios_not_gated": {k: round(v["ratio_over_direct"], 3) for k, v in by_sampler.items()}, "metrics": {k: ev[k] for k in
                      ("multibeta_at_beta_star", "beta_vae_at_beta_star", "multibeta_at_beta_0")},
                      "gate2_curve_not_gated": None if curve2 is None else {
                          "separating_betas": curve2["separating_betas"],
                          "ratios": {r["beta"]: {k: round(r["ratio_over_direct"][k], 3) for k in
                                                 ("denoise_then_decode", "printed_sign_denoise", "real_images")}
                                     for r in curve2["rows"]}},
                      "times_s": times}, indent=1, default=float))
    print(f"wrote {out}; {'all gates passed' if record['passed'] else 'FAILED: ' + ', '.join(k for k, v in gates.items() if not v)}",
          file=sys.stderr)
    return 0 if record["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
