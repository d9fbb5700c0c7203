"""Slow validation of SAMI at CPU scale (issue 8 evidence; docs/methods/sami.md#validation-tiers).

Trains ``sami/disks-cpu`` (16x16 procedural disks -- the 32x32 set at half resolution -- 2000
images, d = 3; or ``--recipe``, e.g. its frozen-denoiser second stage ``sami/disks-cpu-frozen``)
unless ``--run`` names a finished run, then measures on held-out disks (drawn at the run's image
size with the same geometry): the variability of conditional vs unconditional samples and of the
held-out data (Algorithm 1, DDPM over all T steps); posterior means along factor sweeps and a k-NN
readout of the factors; whether conditional samples keep the guide's disk position; the mean
posterior variance against t; the held-out guided and unguided eps-MSE overall and in 8 noise bands,
next to the Bayes-optimal eps-MSE with no latent, with the background known and with the position
known (:mod:`diffrep.analysis.disks_bayes`).

The report grades them in two tiers, each check with its value, threshold and pass/fail
(:func:`diffrep.analysis.sami_validation.grade_report`):

(a) ``smoke``: CPU smoke gates, what the CPU recipes are expected to reach. V_uncond / V_cond >= 10;
    position sweeps monotone on the read-out direction (rho >= 0.9); conditional centre error <= 0.75x
    the unconditional; guided eps-MSE below unguided overall. They decide the exit code.
(b) ``paper``: paper-fidelity checks at the paper's thresholds: centre error <= 0.5x unconditional;
    axis-aligned monotonicity (best-axis |Spearman rho| >= 0.9 for every factor); k-NN R^2 > 0.9 for
    every factor; V_cond / V_data < 0.05 against the held-out data; the mean posterior variance
    non-decreasing in t (each step may fall by at most 2%); guided eps-MSE below unguided in every
    noise band. Reported, pass or fail; ``--strict`` makes them decide the exit code too.

The recipe recorded is the one actually run: the one trained here, or for ``--run`` the run's
``recipe.json`` (written by this script when it trains), else the registered recipe whose config the
run's ``config.yaml`` matches (exactly; else ``closest_recipe`` and ``differs_in``).

Writes a JSON report (default ``benches/results/validate_sami_cpu.json``) recording the machine.

    OMP_NUM_THREADS=1 python scripts/validate_sami.py [--steps 1500] [--run runs/sami_disks-cpu]
    OMP_NUM_THREADS=1 python scripts/validate_sami.py --recipe sami/disks-cpu-frozen --out-run /tmp/stage2 \
        --json benches/results/validate_sami_cpu_frozen_band.json -- --pretrained_denoiser=/tmp/diffrep_validate_sami/final
    OMP_NUM_THREADS=1 python scripts/validate_sami.py --recipe sami/disks-cpu-frozen-d8 --out-run /tmp/d8 \
        --json benches/results/validate_sami_cpu_frozen_d8.json   # both stages, ~35 minutes on one core
    python scripts/validate_sami.py --run RUN --quick --json /tmp/report.json   # the report format in a minute

A stage-2 recipe (``sami/disks-cpu-frozen*``) given no ``pretrained_denoiser`` trains its
``sami/disks-cpu`` stage 1 first, with the same seed, into ``OUT_RUN/stage1``.

``--config FILE.yaml`` merges a YAML file over the recipe first (as ``diffrep train --config``), for
changes that must land together, e.g. the 32x32 geometry (``model.denoiser.image_size``,
``model.convnet.image_size`` and ``data.size`` all 32). With ``--run``, the run's own
``config.yaml`` is what the report records.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch


STAGE_ONE = "sami/disks-cpu"
STAGE_TWO = "sami/disks-cpu-frozen"  # and its variants: the frozen-denoiser stage 2 on STAGE_ONE's denoiser


def train_run(recipe, cfg, run: Path, overwrite: bool = False) -> dict:
    """Train ``recipe`` with ``cfg`` into ``run``; returns the steps, seconds and final logged values.
    A ``run`` that already holds a run is refused (``overwrite``: cleared first), before anything is written."""
    from diffrep.config import dump_yaml
    from diffrep.train import Trainer, seed_everything
    from diffrep.train.rundir import check_run_dir

    check_run_dir(run, overwrite=overwrite)
    run.mkdir(parents=True, exist_ok=True)
    dump_yaml(cfg, run / "config.yaml")
    seed_everything(cfg.train.seed)
    t = time.time()
    hist = Trainer(*recipe.build(cfg), cfg.train, run).train()
    (run / "recipe.json").write_text(json.dumps({"recipe": recipe.name}))  # read back by --run
    out = {"steps": cfg.train.steps, "seconds": round(time.time() - t, 1),
           "final": {k: v for k, v in hist[-1].items() if isinstance(v, (int, float))}}
    print(f"trained {run} in {out['seconds']:.0f}s: {out['final']}", file=sys.stderr)
    return out


def recipe_of_run(run: Path, given: str | None) -> dict:
    """The recipe a finished run was trained with: ``given`` (``--recipe``), else the run's
    ``recipe.json``, else the registered recipe whose config its ``config.yaml`` matches (exactly, or the
    closest one, with the differing fields)."""
    from diffrep.config import config_to_dict, load_yaml
    from diffrep.recipes import list_recipes

    if given:
        return {"recipe": given, "source": "--recipe"}
    if (run / "recipe.json").is_file():
        return {"recipe": json.loads((run / "recipe.json").read_text())["recipe"], "source": "recipe.json"}
    if not (run / "config.yaml").is_file():
        raise FileNotFoundError(f"{run} has no recipe.json and no config.yaml: name the recipe with --recipe")
    have = _flatten(load_yaml(run / "config.yaml"))
    best = None
    for r in list_recipes():
        if not r.name.startswith("sami/"):
            continue
        ref = _flatten(config_to_dict(r.make_config()))
        diff = sorted(k for k in set(have) | set(ref) if have.get(k, "<absent>") != ref.get(k, "<absent>"))
        if best is None or len(diff) < len(best[1]):
            best = (r.name, diff)
    name, diff = best
    return {"recipe": name if not diff else None, "closest_recipe": name, "source": "config.yaml match",
            "differs_in": diff[:40], "num_differing_fields": len(diff)}


def _flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = list(v) if isinstance(v, tuple) else v
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", default=None,
                   help="recipe to train (default sami/disks-cpu); a sami/disks-cpu-frozen* stage 2 without -- "
                        "--pretrained_denoiser=RUN/final trains its sami/disks-cpu stage 1 first, into OUT_RUN/stage1. "
                        "With --run: the run's recipe when its folder does not record it")
    p.add_argument("--config", help="YAML file merged over the recipe's defaults (as diffrep train --config)")
    p.add_argument("--run", help="existing run directory (skip training)")
    p.add_argument("--out-run", default="/tmp/diffrep_validate_sami")
    p.add_argument("--overwrite", action="store_true",
                   help="clear an earlier run in --out-run (only what diffrep wrote) and replace an existing --json "
                        "record instead of refusing")
    p.add_argument("--steps", type=int, default=None, help="override train.steps")
    p.add_argument("--guides", type=int, default=4)
    p.add_argument("--position-guides", type=int, default=32,
                   help="guides for the position transfer (16 samples each); 8 leaves about +-0.2 px between draws")
    p.add_argument("--num-samples", type=int, default=64, help="samples per guide and unconditional samples")
    p.add_argument("--sampler", choices=("ddpm", "ddim"), default="ddpm")
    p.add_argument("--num-steps", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true",
                   help="tiny sample sizes (the report format in about a minute; the numbers mean nothing)")
    p.add_argument("--strict", action="store_true", help="exit non-zero when a paper-fidelity check fails too")
    p.add_argument("--json", default="benches/results/validate_sami_cpu.json",
                   help="the JSON record (default %(default)s); an existing file is refused unless --overwrite")
    p.add_argument("override", nargs="*", help="extra --a.b=value config overrides (use '--' before them)")
    args = p.parse_args(argv)
    if Path(args.json).exists() and not args.overwrite:  # before training: the default is a committed record
        p.error(f"--json {args.json} exists (an earlier record); choose another --json or add --overwrite")

    from diffrep.analysis import sami as A
    from diffrep.analysis.disks_bayes import disks_bayes_eps_mse
    from diffrep.analysis.sami_validation import band_edges, eps_mse_by_band, grade_report
    from diffrep.cli.train import resolve_config
    from diffrep.config import apply_overrides
    from diffrep.data.disks import DisksTensorDataset
    from diffrep.methods.sami import SAMI

    # sample sizes: (held-out images, eps-MSE images, spectrum images x draws, sweeps, read-out disks, Bayes grid/images)
    n_held, n_eps, n_spec, n_lines, n_readout, bayes_grid, n_bayes = (
        (16, 16, 2, 3, 100, 5, 16) if args.quick else (512, 256, 8, 16, 2000, 33, 256))
    report: dict = {"machine": platform.platform(), "cpu_threads": torch.get_num_threads(), "torch": torch.__version__,
                    "quick": args.quick}
    t0 = time.time()
    if args.run:
        run = Path(args.run)
        try:
            report["recipe"] = recipe_of_run(run, args.recipe)
            name = report["recipe"]["recipe"] or report["recipe"]["closest_recipe"]
            cfg = resolve_config(name, str(run / "config.yaml") if (run / "config.yaml").is_file() else args.config)[1]
        except (ValueError, OSError) as exc:  # a wrong --run or --recipe: a message before any work, not a traceback
            p.error(str(exc))
    else:
        name = args.recipe or STAGE_ONE
        try:
            recipe, cfg = resolve_config(name, args.config)
            if args.steps:
                cfg = apply_overrides(cfg, {"train.steps": str(args.steps), "model.kl_anneal_steps": str(args.steps // 4)})
            if args.override:
                cfg = apply_overrides(cfg, args.override)
        except (ValueError, OSError) as exc:  # an unknown recipe, config file or override: a message, not a traceback
            p.error(str(exc))
        report["recipe"] = {"recipe": name, "source": "trained here", "overrides": list(args.override),
                            "steps_override": args.steps}
        run = Path(args.out_run)
        if name.startswith(STAGE_TWO) and not cfg.pretrained_denoiser:
            # a stage 2 with no denoiser given: train its stage 1 first, with the same seed
            stage1, cfg1 = resolve_config(STAGE_ONE)
            cfg1 = apply_overrides(cfg1, {"train.seed": str(cfg.train.seed)})
            report["stage1"] = train_run(stage1, cfg1, run / "stage1", args.overwrite)
            cfg = apply_overrides(cfg, {"pretrained_denoiser": str(run / "stage1" / "final")})
        report["train"] = train_run(recipe, cfg, run, args.overwrite)
    weights = "ema" if (run / "final" / "ema.safetensors").is_file() else "model"
    model = SAMI.from_pretrained(run / "final", weights=weights).eval()
    report["weights"] = weights
    report["config"] = {"recipe": name, "config_file": args.config, "t_sampling": model.config.t_sampling, "t_band": list(model.config.t_band),
                        "pretrained_denoiser": cfg.pretrained_denoiser, "kl_weight": model.config.kl_weight, "latent_dim": model.latent_dim, "T": model.schedule.num_timesteps,
                        "image_size": model.config.denoiser.image_size, "steps": cfg.train.steps, "train_seed": cfg.train.seed,
                        "batch_size": cfg.train.batch_size, "lr": cfg.train.lr, "lr_schedule": cfg.train.lr_schedule}

    held = DisksTensorDataset(n_held, model.config.denoiser.image_size, seed=12345)
    x = held.images
    # 1. variability (conditional, unconditional, held-out data)
    t1 = time.time()
    v = A.variability_reduction(model, x[: args.guides], args.num_samples, reference=x, sampler=args.sampler,
                                num_steps=args.num_steps, seed=args.seed)
    v["seconds"] = round(time.time() - t1, 1)
    v["ratio_cond_over_data"] = v["v_cond_mean"] / v["v_data"] if v["v_data"] > 0 else float("inf")
    report["variability"] = v
    print(f"variability: uncond {v['v_uncond']:.4g}, cond {v['v_cond_mean']:.4g}, ratio {v['ratio_uncond_over_cond']:.1f}, "
          f"data {v['v_data']:.4g}", file=sys.stderr)
    # 2. monotonicity and the k-NN readout
    mono = A.posterior_mean_monotonicity(model, held.disks, num_lines=n_lines, num_readout=n_readout, seed=args.seed)
    report["monotonicity"] = mono
    print("position sweeps, rho on the read-out direction / |rho| on the best axis: "
          + ", ".join(f"{f} {mono[f]['readout_spearman']:.3f} / {mono[f]['mean_abs_spearman']:.3f}" for f in ("x", "y")),
          file=sys.stderr)
    # 2b. position transfer (DDPM like the variability measure)
    t2 = time.time()
    pos = A.disk_position_transfer(model, num_guides=args.position_guides, num_samples=16, sampler=args.sampler, num_steps=args.num_steps,
                                   seed=args.seed)
    pos["seconds"] = round(time.time() - t2, 1)
    report["position_transfer"] = pos
    print(f"position: conditional centre error {pos['cond_abs_error_px']:.2f} px, unconditional "
          f"{pos['uncond_abs_error_px']:.2f} px", file=sys.stderr)
    # 3. spectrum vs t, averaged over a few images
    specs = [A.posterior_variance_spectrum(model, x[i:i + 1], num_noise=n_spec, seed=i) for i in range(n_spec)]
    mean_var = torch.tensor([s["mean_var"] for s in specs]).mean(0)
    report["spectrum"] = {"timesteps": specs[0]["timesteps"], "mean_var": mean_var.tolist(),
                          "nondecreasing": bool((mean_var[1:] >= mean_var[:-1]).all()),
                          "num_images": n_spec, "num_noise": n_spec}
    # 4. sign consistency overall and per band, with the Bayes-optimal errors at 5 levels per band
    t3 = time.time()
    T = model.schedule.num_timesteps
    report["eps_mse"] = eps_mse_by_band(model, x[:n_eps], num_bands=8, seed=args.seed)
    levels = [[lo + k for k in sorted({i * (hi - lo) // 5 for i in range(5)})] for lo, hi in band_edges(T, 8)]
    bayes = disks_bayes_eps_mse(model, [t for lv in levels for t in lv], grid=(bayes_grid,) * 3, num_images=n_bayes,
                                seed=args.seed)
    k = 0
    for band, lv in zip(report["eps_mse"]["bands"], levels):
        for key in ("unconditional", "given_background", "given_position"):
            band[f"bayes_{key}"] = float(np.mean(bayes[key][k:k + len(lv)]))
        k += len(lv)
    report["eps_mse"]["seconds"] = round(time.time() - t3, 1)
    grades = grade_report(report)
    report.update(grades)
    report["checks"] = {k: e["pass"] for k, e in grades["smoke"].items()}  # the former flat field
    report["seconds_total"] = round(time.time() - t0, 1)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    for tier in ("smoke", "paper"):
        print(f"{tier}:", file=sys.stderr)
        for k, e in grades[tier].items():
            val = e["value"] if not isinstance(e["value"], float) else f"{e['value']:.4g}"
            print(f"  {'PASS' if e['pass'] else 'FAIL'} {k}: {val} (threshold {e['threshold']})", file=sys.stderr)
    ok = grades["smoke_pass"] and (grades["paper_pass"] or not args.strict)
    return 0 if ok else 1


if __name__ == "__main__":
    from diffrep.train.rundir import RunFolderError

    try:
        sys.exit(main())
    except RunFolderError as exc:  # a message, not a traceback
        sys.exit(f"validate_sami: {exc}")
