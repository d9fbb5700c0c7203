"""Validate DiffAE, InfoDiffusion and DisDiff at CPU scale (slow; not part of the default test run).

    python scripts/validate_diffusion_baselines.py [--scale 1.0] [--seed 0] [--eval-steps 25]
        [--methods diffae infodiffusion disdiff]
        [--out benches/results/diffusion_baselines_validation_cpu.json] [--overwrite]
        [--pretrain-steps N] [--disentangle-steps N] [--recon-loss l1|l2] [--swap-pairs 64]
        [--save-dir DIR] [--load-pretrained DIR] [--load-model DIR] [--partial-out FILE]   (DisDiff)

Each method trains its CPU recipe (``diffae/shapes3d-cpu`` stage 1 then stage 2 ``latent``;
``infodiffusion/shapes3d-cpu``; ``disdiff/shapes3d-cpu-pretrain`` then ``disdiff/shapes3d-cpu``) with
:class:`diffrep.train.Trainer` on the 5,120-image procedural Shapes3D sub-grid pooled to 16 x 16
(``--scale`` multiplies every step count). Recorded (docs/methods/diffae.md#validation and the other pages):

- every method: the final training losses, MIG of ``encode`` on the whole sub-grid (DisDiff: the
  PCA-per-unit codes), and the same MIG of the untrained model;
- DiffAE: the reconstruction MSE from (z_sem, x_T by DDIM inversion), from (z_sem, x_T ~ N(0, I)), and
  the MSE of unconditional samples (latent DDIM, then the decoder) to the same images, on 64 held images.
  Gates: reconstruction from (z_sem, x_T) beats unconditional samples (holds even untrained: DDIM
  inversion round-trips any near-identity model), and decoding z_sem from fresh noise beats them;
- InfoDiffusion: the reconstruction MSEs (inverted and random x_T), the sample MSE;
- DisDiff: latent swaps. For 64 (target, source) pairs and each unit c: decode the target's units with
  unit c from the source, from the target's inverted x_T; read the factors of every decoded image with
  the ground-truth renderer (the nearest of the 5,120 rendered sub-grid images in pixel space); the
  change matrix M[c, f] = fraction of pairs whose factor f differs from that of the target's own
  reconstruction (pairs whose source and target differ in every factor). Gate: for every unit that
  changes anything (max rate >= 0.1), one factor changes more than the others (its rate exceeds the
  second largest by >= 0.1). The same matrix is also recorded from one fresh x_T shared by the base and
  the swaps (``*_fresh_xT``; the authors' code draws swap grids from fresh noise). Diagnostics beside it:
  the frozen model's eps error per band of t with and without the shifts, its samples' distance to the
  nearest valid render, the factors read after decoding each image's units from fresh noise, and how
  often a second fresh x_T alone changes them (docs/methods/disdiff.md#validation).

Exit status 0 either way; the JSON says which gates hold.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import shutil
import tempfile
import time
from pathlib import Path


def _train(model, ds, train_cfg, run_dir, steps):
    from diffrep.train import Trainer

    cfg = dataclasses.replace(train_cfg, steps=max(1, steps), device="cpu")
    t0 = time.perf_counter()
    hist = Trainer(model, ds, cfg, run_dir).train()
    last = {k: v for k, v in (hist[-1] if hist else {}).items() if isinstance(v, (int, float))}
    return {"steps": cfg.steps, "seconds": round(time.perf_counter() - t0, 1), "last": last}


def _mig(codes, factors) -> float:
    import torch

    from diffrep.metrics.mig import mig

    r = mig(torch.as_tensor(codes, dtype=torch.float64), torch.as_tensor(factors))
    return float(r.get("discrete_mig", next(iter(r.values()))))


def _encode_all(model, x, fn="encode"):
    import torch

    with torch.no_grad():
        return torch.cat([getattr(model, fn)(x[i:i + 256]) for i in range(0, len(x), 256)])


def _readout(images, grid_images, grid_factors):
    """The factor classes of the nearest rendered sub-grid image (pixel MSE)."""
    import torch

    d = torch.cdist(images.flatten(1).double(), grid_images.flatten(1).double())
    return grid_factors[d.argmin(1)]


def _held_mse(model, held, args):
    """DiffAE's and InfoDiffusion's pixel MSE to the held images: of the reconstruction from (code, x_T by
    DDIM inversion), from (code, x_T ~ N(0, I)), and of as many unconditional samples; ``--eval-steps``
    DDIM steps, one generator seeded ``--seed`` drawing the x_T, then the samples."""
    import torch

    g = torch.Generator().manual_seed(args.seed)
    n = args.eval_steps
    with torch.no_grad():
        rec = model.reconstruct(held, num_steps=n)
        rec_noise = model.reconstruct(held, num_steps=n, stochastic=False, generator=g)
        samples = model.sample(held.shape[0], generator=g, num_steps=n)
    mse = lambda a: float((a - held).pow(2).mean())  # noqa: E731
    return {"recon_mse_inverted_xT": mse(rec), "recon_mse_random_xT": mse(rec_noise), "sample_mse": mse(samples)}


def run_diffae(ds, x_all, factors, held, args, out):
    import torch

    from diffrep.methods.diffae import DiffAE
    from diffrep.recipes import diffae as R

    torch.manual_seed(args.seed)
    cfg = R.shapes3d_cpu()
    model = DiffAE(cfg.model)
    res = {"mig_untrained": _mig(_encode_all(model, x_all), factors)}
    with tempfile.TemporaryDirectory() as d:
        res["train_autoencoder"] = _train(model, ds, cfg.train, Path(d) / "ae", int(cfg.train.steps * args.scale))
        model.eval()
        model.fit_latent_stats(_encode_all(model, x_all))
        model.set_stage("latent")
        res["train_latent"] = _train(model, ds, cfg.train, Path(d) / "lat", int(R.shapes3d_cpu("latent").train.steps * args.scale))
    model.eval()
    res["mig"] = _mig(_encode_all(model, x_all), factors)
    res.update(_held_mse(model, held, args))
    res["gate_recon_beats_samples"] = res["recon_mse_inverted_xT"] < res["sample_mse"]
    # the gate above holds even untrained (DDIM inversion round-trips any near-identity model); this one
    # asks z_sem itself to carry the image: decoding z_sem from fresh noise beats unconditional samples
    res["gate_zsem_decoding_beats_samples"] = res["recon_mse_random_xT"] < res["sample_mse"]
    out["diffae"] = res


def run_infodiffusion(ds, x_all, factors, held, args, out):
    import torch

    from diffrep.methods.infodiffusion import InfoDiffusion
    from diffrep.recipes import infodiffusion as R

    torch.manual_seed(args.seed)
    cfg = R.shapes3d_cpu()
    model = InfoDiffusion(cfg.model)
    res = {"mig_untrained": _mig(_encode_all(model, x_all), factors)}
    with tempfile.TemporaryDirectory() as d:
        res["train"] = _train(model, ds, cfg.train, Path(d) / "run", int(cfg.train.steps * args.scale))
    model.eval()
    res["mig"] = _mig(_encode_all(model, x_all), factors)
    res.update(_held_mse(model, held, args))
    out["infodiffusion"] = res


def _verdicts(M):
    """Per unit: "inactive" (max change rate < 0.1), "one_factor" (the largest rate exceeds the second by
    >= 0.1) or "mixed"."""
    out = []
    for row in M:
        s = sorted(row, reverse=True)
        out.append("inactive" if s[0] < 0.1 else ("one_factor" if s[0] - s[1] >= 0.1 else "mixed"))
    return out


def _gate(verdicts):
    active = [v for v in verdicts if v != "inactive"]
    return bool(active) and all(v == "one_factor" for v in active)


def _nearest_mse(images, grid_images):
    """Per image: the pixel MSE to the nearest rendered sub-grid image (how close a decoded image is to a
    valid render)."""
    import torch

    d = torch.cdist(images.flatten(1).double(), grid_images.flatten(1).double())
    return d.min(1).values.pow(2) / images[0].numel()


def _disdiff_diagnostics(model, x_all, factors, args):
    """Is the frozen model good, and do the units carry the image? (recorded beside the gate)"""
    import torch

    res = {}
    g = torch.Generator().manual_seed(args.seed + 7)
    n = args.eval_steps
    idx = torch.randperm(len(x_all), generator=g)[:256]
    x0, f0 = x_all[idx], factors[idx]
    # the scale of "a valid render": the MSE between a grid image and its nearest other grid image
    d = torch.cdist(x0.flatten(1).double(), x_all.flatten(1).double())
    d[torch.arange(len(idx)), idx] = float("inf")
    res["grid_nearest_other_mse_median"] = float(d.min(1).values.pow(2).median() / x0[0].numel())
    with torch.no_grad():
        # the frozen eps model: its L_simple on 256 images x 4 noise levels, per band of t
        T = model.schedule.num_timesteps
        bands = {}
        for lo, hi in ((0, T // 4), (T // 4, T // 2), (T // 2, 3 * T // 4), (3 * T // 4, T)):
            t = torch.randint(lo, hi, (len(x0),), generator=g)
            noise = torch.randn(x0.shape, generator=g)
            x_t = model.schedule.q_sample(x0, t, noise)
            eps, gsh = model.predict(x_t, t, model.encode_units(x0))
            pred = eps + model._gather("shift_coef", t, x0) * gsh.sum(1)
            bands[f"{lo}-{hi}"] = {"eps_theta_mse": float((eps - noise).pow(2).mean()),
                                   "shifted_mse": float((pred - noise).pow(2).mean())}
        res["loss_by_t_band"] = bands
        # unconditional samples of the frozen model: how close to valid renders, and which factors
        samples = model.sample(64, generator=g, num_steps=n)
        res["sample_nearest_mse_median"] = float(_nearest_mse(samples, x_all).median())
        # do the units alone carry the image? decode each image's units from fresh noise
        u = model.encode_units(x0[:64])
        xT = torch.randn(x0[:64].shape, generator=g)
        dec = model.decode(u, xT, num_steps=n)
        res["units_fresh_xT_mse"] = float((dec - x0[:64]).pow(2).mean())
        res["sample_mse"] = float((samples - x0[:64]).pow(2).mean())
        res["units_fresh_xT_factor_accuracy"] = (_readout(dec, x_all, factors) == f0[:64]).double().mean(0).tolist()
        # the same units from a second fresh x_T: how much the noise alone changes the read factors
        dec2 = model.decode(u, torch.randn(x0[:64].shape, generator=g), num_steps=n)
        res["fresh_xT_null_change"] = (_readout(dec2, x_all, factors) != _readout(dec, x_all, factors)).double().mean(0).tolist()
        res["units_fresh_xT_gate_beats_samples"] = res["units_fresh_xT_mse"] < res["sample_mse"]
    return res


def run_disdiff(ds, x_all, factors, args, out):
    import torch

    from diffrep.methods.disdiff import DisDiff
    from diffrep.recipes import disdiff as R

    torch.manual_seed(args.seed)
    pre = R.shapes3d_cpu_pretrain()
    cfg = R.shapes3d_cpu()
    if args.recon_loss:  # the disentangling stage's L_r error (the authors' configs: l1)
        cfg.model.recon_loss = pre.model.recon_loss = args.recon_loss
    if args.dis_weight is not None:  # the weight of L_d (the authors' CLI runs every config at 1.0)
        cfg.model.dis_weight = pre.model.dis_weight = args.dis_weight
    model = DisDiff(pre.model)
    res = {}
    n_pre = args.pretrain_steps if args.pretrain_steps is not None else int(pre.train.steps * args.scale)
    n_dis = args.disentangle_steps if args.disentangle_steps is not None else int(cfg.train.steps * args.scale)
    save = Path(args.save_dir) if args.save_dir else None
    if save is not None and not args.load_model:  # --overwrite (checked up front): the earlier run's pair goes as one
        for stale in ("pretrain", "disentangle"):
            if (save / stale).is_dir():
                shutil.rmtree(save / stale)
    out["disdiff"] = res
    if args.load_model:  # evaluate a saved final model (no training)
        model = DisDiff.from_pretrained(args.load_model)
        res["loaded_model"] = str(args.load_model)
    else:
        with tempfile.TemporaryDirectory() as d:
            if args.load_pretrained:
                model.load_pretrained_diffusion(DisDiff.from_pretrained(args.load_pretrained).unet)
                res["train_pretrain"] = {"loaded": str(args.load_pretrained)}
            else:
                res["train_pretrain"] = _train(model, ds, pre.train, Path(d) / "pre", n_pre)
                if save:
                    model.save_pretrained(save / "pretrain")
            model.set_stage("disentangle")
            model.fit_code_pca(x_all[:2048])
            res["mig_untrained"] = _mig(_encode_all(model, x_all), factors)
            res["train_disentangle"] = _train(model, ds, cfg.train, Path(d) / "dis", n_dis)
        if save:
            model.save_pretrained(save / "disentangle")
        if args.partial_out:
            Path(args.partial_out).write_text(json.dumps(res, indent=1))
    model.eval()
    model.fit_code_pca(x_all)
    res["mig"] = _mig(_encode_all(model, x_all), factors)
    res["diagnostics"] = _disdiff_diagnostics(model, x_all, factors, args)
    # swaps: pairs differing in every factor
    g = torch.Generator().manual_seed(args.seed + 1)
    n_pairs, N = args.swap_pairs, model.config.num_units
    ti, si = [], []
    while len(ti) < n_pairs:
        a, b = torch.randint(0, len(x_all), (2,), generator=g).tolist()
        if bool((factors[a] != factors[b]).all()):
            ti.append(a)
            si.append(b)
    tgt, src = x_all[ti], x_all[si]
    f_src = factors[si]
    with torch.no_grad():
        u, us = model.encode_units(tgt), model.encode_units(src)
        x_T = {"inverted_xT": model.encode_stochastic(tgt, u, num_steps=args.eval_steps),
               # the authors' code draws swap grids from fresh noise (log_images, plot_swapped_concepts):
               # the base and every swap here share one fresh x_T (DDIM, eta = 0)
               "fresh_xT": torch.randn(tgt.shape, generator=g)}
        for mode, xT in x_T.items():
            base = model.decode(u, xT, num_steps=args.eval_steps)
            f_base = _readout(base, x_all, factors)
            M, toward_source = [], []
            for c in range(N):
                u2 = u.clone()
                u2[:, c] = us[:, c]
                f_sw = _readout(model.decode(u2, xT, num_steps=args.eval_steps), x_all, factors)
                M.append((f_sw != f_base).double().mean(0).tolist())
                toward_source.append((f_sw == f_src).double().mean(0).tolist())
            key = "" if mode == "inverted_xT" else "_fresh_xT"
            res["recon_mse" + ("_inverted_xT" if not key else key)] = float((base - tgt).pow(2).mean())
            res["recon_factor_accuracy" + key] = (f_base == factors[ti]).double().mean(0).tolist()
            res["swap_change_matrix" + key] = M
            res["swap_takes_source_value" + key] = toward_source
            res["unit_verdicts" + key] = _verdicts(M)
            res["gate_one_factor_per_active_unit" + key] = _gate(res["unit_verdicts" + key])
            res["units_one_factor" + key] = sum(v == "one_factor" for v in res["unit_verdicts" + key])
    res["factor_names"] = list(ds.factor_names)
    if not args.load_model:
        res["steps"] = {"pretrain": n_pre if not args.load_pretrained else None, "disentangle": n_dis}
    out["disdiff"] = res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=float, default=1.0, help="multiplies every training step count")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-steps", type=int, default=25, help="DDIM steps of inversion and decoding in evaluation")
    p.add_argument("--methods", nargs="+", default=["diffae", "infodiffusion", "disdiff"],
                   choices=["diffae", "infodiffusion", "disdiff"])
    p.add_argument("--out", default="benches/results/diffusion_baselines_validation_cpu.json",
                   help="the JSON record (an existing file is refused unless --overwrite: the committed, dated "
                        "records stay as they were)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out record (and --partial-out, "
                   "and the models of an earlier run in --save-dir)")
    p.add_argument("--pretrain-steps", type=int, default=None, help="DisDiff: pre-training steps (default: the recipe's x --scale)")
    p.add_argument("--disentangle-steps", type=int, default=None, help="DisDiff: disentangling steps (default: the recipe's x --scale)")
    p.add_argument("--swap-pairs", type=int, default=64, help="DisDiff: (target, source) pairs of the swap measurement")
    p.add_argument("--save-dir", default=None, help="DisDiff: save the pre-trained and the final model (save_pretrained) here")
    p.add_argument("--recon-loss", choices=["l1", "l2"], default=None, help="DisDiff: the error of L_r (default: the recipe's)")
    p.add_argument("--dis-weight", type=float, default=None,
                   help="DisDiff: the weight of the disentangling loss L_d (default: the recipe's, the paper's 0.05; "
                        "the authors' CLI trains with 1.0)")
    p.add_argument("--load-model", default=None, help="DisDiff: evaluate a saved final model folder (no training)")
    p.add_argument("--partial-out", default=None, help="DisDiff: write the training record here before the evaluation")
    p.add_argument("--load-pretrained", default=None, help="DisDiff: a saved model folder whose eps model is loaded (skips pre-training)")
    args = p.parse_args(argv)
    if not args.scale > 0:
        p.error("--scale must be positive")
    for name in ("pretrain_steps", "disentangle_steps"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.dis_weight is not None and not (args.dis_weight >= 0 and math.isfinite(args.dis_weight)):
        p.error(f"--dis-weight must be a finite number >= 0, got {args.dis_weight}")
    if args.swap_pairs < 1:
        p.error("--swap-pairs must be at least 1")
    # checked before anything trains: each of these failed only after the earlier methods' minutes of training
    if not 1 <= args.eval_steps <= 1000:  # the three CPU recipes' schedules have T = 1000
        p.error(f"--eval-steps must be in [1, 1000] (DDIM steps of a 1000-step schedule), got {args.eval_steps}")
    if args.seed < 0:
        p.error(f"--seed must be >= 0, got {args.seed}")
    disdiff_only = [f"--{k.replace('_', '-')}" for k in ("pretrain_steps", "disentangle_steps", "save_dir", "recon_loss",
                                                         "dis_weight", "load_model", "partial_out", "load_pretrained")
                    if getattr(args, k) is not None]
    if disdiff_only and "disdiff" not in args.methods:
        p.error(f"{', '.join(disdiff_only)}: DisDiff only (its training and swap measurement); add disdiff to --methods")
    if args.load_model and (args.load_pretrained or args.pretrain_steps or args.disentangle_steps):
        p.error("--load-model evaluates a saved model without training: drop --load-pretrained, --pretrain-steps and "
                "--disentangle-steps")
    for flag, folder in (("--load-model", args.load_model), ("--load-pretrained", args.load_pretrained)):
        if folder and not (Path(folder) / "config.json").is_file():
            hint = f" (a run folder: give {Path(folder) / 'final'})" if (Path(folder) / "final" / "config.json").is_file() else ""
            p.error(f"{flag} {folder}: not a saved model folder (no config.json){hint}")
        if folder:  # a DiffAE folder failed with a traceback after the dataset had rendered
            try:
                name = json.loads((Path(folder) / "config.json").read_text()).get("_class_name")
            except (ValueError, AttributeError, OSError):
                name = None
            if name != "DisDiff":
                p.error(f"{flag} {folder}: holds {'a ' + name if isinstance(name, str) else 'no diffrep model'}, "
                        "not a DisDiff (the final/ folder of a disdiff/ run, or --save-dir's pretrain/ or disentangle/)")
    if Path(args.out).exists() and not args.overwrite:
        p.error(f"--out {args.out} exists (an earlier record); choose another --out or add --overwrite")
    # an earlier run's models there: a run stopped after its pre-training left the new pretrain/ beside the old
    # disentangle/, which --load-model then evaluated as this run's
    held = [n for n in ("pretrain", "disentangle") if args.save_dir and (Path(args.save_dir) / n / "config.json").exists()]
    if held and not args.overwrite:
        p.error(f"--save-dir {args.save_dir} holds an earlier run's {' and '.join(held)}/; choose another --save-dir or "
                "add --overwrite")
    if args.partial_out and Path(args.partial_out).exists() and not args.overwrite:
        p.error(f"--partial-out {args.partial_out} exists (an earlier record); choose another --partial-out or add "
                "--overwrite")

    import torch

    from diffrep.recipes.encdiff import Shapes3DSubgrid

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    ds = Shapes3DSubgrid(4)
    x_all = ds.images01 * 2 - 1
    factors = torch.from_numpy(ds.factors)
    held = x_all[torch.randperm(len(x_all), generator=torch.Generator().manual_seed(123))[:64]]
    out = {"script": "scripts/validate_diffusion_baselines.py", "args": vars(args), "machine": platform.platform(),
           "processor": platform.processor(), "torch": torch.__version__, "dataset": "Shapes3D sub-grid 5120 x 16px"}
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    for m in args.methods:
        t = time.perf_counter()
        if m == "diffae":
            run_diffae(ds, x_all, factors, held, args, out)
        elif m == "infodiffusion":
            run_infodiffusion(ds, x_all, factors, held, args, out)
        else:
            run_disdiff(ds, x_all, factors, args, out)
        out[m]["seconds_total"] = round(time.perf_counter() - t, 1)
        out["seconds"] = round(time.perf_counter() - t0, 1)
        path.write_text(json.dumps(out, indent=1))  # written after every method
        print(m, json.dumps({k: v for k, v in out[m].items() if not isinstance(v, (list, dict))}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
