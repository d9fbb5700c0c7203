"""Validate DyGA + Skip Dropout at CPU scale (slow; not part of the default test run).

    python scripts/validate_dyga.py [--seeds 0 1 2] [--steps 700] [--quick] [--arms baseline dyga_sd]
                                    [--device cpu] [--out benches/results/dyga_validation_cpu.json] [--overwrite]
    python scripts/validate_dyga.py --combine A.json B.json ... --out C.json [--note TEXT]

Two arms with the same seed, data order and steps, on the CPU recipe ``encdiff/shapes3d-cpu``
(pixel space, no first stage; a 5,120-image sub-grid of procedural Shapes3D pooled to 16 x 16).
``--device cuda`` trains and evaluates this recipe on a GPU with the same seeded CPU generators: a GPU run
starts from the CPU run's weights with its t, noise and data order (the dropout masks come from the GPU's
stream):

- ``baseline``: EncDiff without DyGA and without Skip Dropout (the Table 4 baseline);
- ``dyga_sd``: EncDiff + DyGA (paper mode, anchors refreshed every epoch) + Skip Dropout 0.2.

Recorded per arm and seed (docs/methods/encdiff.md#validation):

- attribute separation: a fresh DyGA anchor selection (paper defaults, the same for both arms) on the
  tokens of the whole dataset; for each factor, the best unit's normalised mutual information between
  its Gaussian assignment and the factor, averaged over factors (on raw tokens c, and on the aligned
  tokens c~ for the DyGA arm);
- FactorVAE and DCI disentanglement on the PCA-per-unit codes (the paper's protocol, reduced sizes);
- condition reliance: Eq. 2 loss with tokens shuffled across the batch over the loss with the true
  tokens, t uniform in [200, 800); with both losses and, as ``loss_gap``, their difference (shuffled -
  true; summarised in ``reliance_parts_*``, not gated);
- anchors per unit at each refresh, and Eq. 5's densities (what drives the number of anchors).

The claim holds at this scale if, on the seed means, DyGA + SD separates attributes better (+0.05),
loses at most 0.02 of FactorVAE and DCI, and relies more on the condition. Exit status 0 either way;
the JSON says which.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path


# arm -> recipe switches (the Table 4 arms); the claim compares "dyga_sd" with "baseline"
ARMS = {"baseline": dict(conditioning="none", skip_dropout=0.0), "dyga_sd": {},
        "dyga": dict(skip_dropout=0.0), "sd": dict(conditioning="none")}


DEVICES = ("cpu", "cuda", "auto")  # auto: cuda when torch sees a GPU (diffrep.cli._common.resolve_device)


def parse_device(parser, value: str):
    """``--device`` as a torch.device, or the parser's usage error (exit 2) before any work when CUDA is asked
    for and torch sees no GPU (``diffrep.cli._common.resolve_device``, the verbs' check): otherwise the run met it
    as torch's traceback at the first model move, after the dataset was rendered."""
    import torch
    from diffrep.cli._common import resolve_device

    try:
        return torch.device(resolve_device(value))
    except ValueError as exc:
        parser.error(str(exc))


def rng_state(device) -> tuple:
    """The global RNG states a diagnostic must leave as it found them: the CPU one and, on a GPU, that GPU's
    (Skip Dropout and the ResBlock dropout draw their masks on the device of the activations)."""
    import torch

    device = torch.device(device)
    return (torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None)


def set_rng_state(state: tuple, device) -> None:
    import torch

    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], torch.device(device))


def nmi(a, b) -> float:
    from sklearn.metrics import normalized_mutual_info_score
    return float(normalized_mutual_info_score(a, b))


def separation(tokens, factors, seed: int) -> dict:
    """Per factor, the best unit's NMI between a fresh DyGA assignment of that unit and the factor."""
    import numpy as np

    from diffrep.methods.dyga import DyGA, DyGAConfig

    n, U, D = tokens.shape
    # on the tokens' device (DyGA draws its subsamples from seeded CPU generators: the same on every device)
    dy = DyGA(DyGAConfig(num_units=U, token_dim=D, seed=seed)).to(tokens.device)
    fit = dy.fit(tokens)
    lab = dy.assign(tokens).cpu().numpy()
    F = factors.shape[1]
    table = np.array([[nmi(lab[:, u], factors[:, j]) for u in range(U)] for j in range(F)])
    dy0 = DyGA(DyGAConfig(num_units=U, token_dim=D, seed=seed, p_arbitrary=0.0)).to(tokens.device)
    fit0 = dy0.fit(tokens)
    return {"separation": float(table.max(1).mean()), "best_unit": table.argmax(1).tolist(),
            "nmi_best": table.max(1).tolist(), "anchors": fit["n_anchors"], "anchors_no_random_splits": fit0["n_anchors"],
            "density_max": fit["density_max"], "density_max_raw": fit["density_max_raw"],
            "clusters_above_psi": fit["clusters_above_psi"], "splits": fit["splits"]}


def train_arm(arm: str, seed: int, steps: int, ds, on_step=None, device="cpu"):
    """Train one arm (seeded model, optimiser, data order and noise) on ``device``; ``on_step(model, n)`` is
    called after each of the ``n`` = 1..steps optimiser steps (a diagnostic must leave the global RNG as it
    found it: Skip Dropout and the ResBlock dropout draw from it). Returns (model, losses, train seconds).
    The model is initialised on the CPU and then moved, and the noise and data order come from CPU
    generators (EncDiff.loss draws on its generator's device), so a GPU run starts from the CPU run's weights."""
    import torch

    from diffrep.recipes.encdiff import shapes3d_cpu
    from diffrep.methods.encdiff import EncDiff

    cfg = shapes3d_cpu(**ARMS[arm])
    torch.manual_seed(seed)
    model = EncDiff(cfg.model).to(device)
    bs = cfg.train.batch_size
    spe = len(ds) // bs
    if model.dyga is not None:
        model.attach_anchor_data(ds, spe)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    losses = []
    model.train()
    for step in range(steps):
        epoch, off = divmod(step, spe)
        perm = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed * 7919 + epoch))
        idx = perm[off * bs:(off + 1) * bs]
        x = (ds.images01[idx] * 2 - 1).to(device)
        out = model.loss(x, step=step, generator=g)
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        opt.step()
        losses.append(float(out["loss"].detach()))
        if on_step is not None:
            on_step(model, step + 1)
    return model, losses, time.perf_counter() - t0


def reliance_with_gap(model, xb, seed: int, repeats: int) -> dict:
    """The condition reliance (ratio, which the claim's check reads) and, as a separate field, the
    absolute gap loss(shuffled tokens) - loss(true tokens): a ratio falls when the true-token loss rises
    even if shuffling costs as much as before (docs/methods/encdiff.md#validation)."""
    import torch

    rel = model.condition_reliance(xb, t_range=(200, 800), generator=torch.Generator().manual_seed(seed),
                                   repeats=repeats)
    rel["loss_gap"] = rel["loss_shuffled"] - rel["loss_true"]
    return rel


def run_arm(arm: str, seed: int, steps: int, ds, quick: bool, device="cpu") -> dict:
    import numpy as np
    import torch

    from diffrep.metrics.dci import dci
    from diffrep.metrics.pca import pca1_representation, pca1_units
    from diffrep.metrics.protocols import factor_vae_score

    model, losses, train_s = train_arm(arm, seed, steps, ds, device=device)
    model.eval()
    factors = ds.factors
    raw = model.features(ds)
    rec = {"arm": arm, "seed": seed, "steps": steps, "train_seconds": round(train_s, 1),
           "loss_last100": float(np.mean(losses[-100:])),
           "anchor_history": [{k: h[k] for k in ("epoch", "n_anchors", "splits", "density_max", "density_max_raw",
                                                 "clusters_above_psi")}
                              for h in model.anchor_history]}
    rec["sep_raw"] = separation(raw, factors, seed)
    if model.dyga is not None:
        rec["sep_aligned"] = separation(model.features(ds, aligned=True), factors, seed)
    # PCA-per-unit codes on the aligned tokens (eval: hard argmax; the baseline's tokens are its raw ones)
    fit_obs = ds.sample_observations_from_factors(ds.sample_factors(2000, np.random.RandomState(1)))

    def rep(obs):
        x = (torch.as_tensor(np.asarray(obs)).permute(0, 3, 1, 2).float() * 2 - 1).to(device)
        return model.tokens(x).reshape(x.shape[0], -1).cpu().numpy()

    fn = pca1_representation(rep, model.config.num_units, fit_obs)
    nt, ne = (200, 100) if quick else (500, 300)
    fv = factor_vae_score(ds, fn, seed=0, batch_size=32, num_train=nt, num_eval=ne, num_variance_estimate=2000)
    rec["factor_vae"] = float(fv["factor_vae_eval"])
    codes = pca1_units(model.features(ds, aligned=True)).cpu().numpy()
    rs = np.random.RandomState(seed)
    order = rs.permutation(len(ds))
    tr, te = order[:3000], order[3000:4500]
    d = dci(codes[tr], factors[tr], codes[te], factors[te])
    rec["dci_disentanglement"] = float(d["dci_disentanglement"])
    rec["dci_informativeness_test"] = float(d["dci_informativeness_test"])
    xb = (ds.images01[torch.from_numpy(order[:256])] * 2 - 1).to(device)
    rec["reliance"] = reliance_with_gap(model, xb, seed, repeats=2 if quick else 4)
    return rec


def refresh_note(steps: int, arms, n_images: int) -> str | None:
    """A warning when no DyGA arm reaches its first anchor refresh (the first step of epoch 2, Alg. 1): a
    short smoke run (--steps 2) then compares EncDiff with EncDiff, which the record does not say."""
    from diffrep.recipes.encdiff import shapes3d_cpu

    spe = n_images // shapes3d_cpu().train.batch_size
    dyga = [a for a in arms if ARMS[a].get("conditioning", "dyga") == "dyga"]
    if dyga and steps <= spe:
        return (f"note: --steps {steps} ends before the first anchor refresh (step {spe}, one epoch of {spe} steps): "
                f"the arms {', '.join(dyga)} train without DyGA alignment")
    return None


KEYS = ("separation", "factor_vae", "dci", "reliance")
# what combine() reads of each run (the summary's values and the merge's identity)
RUN_FIELDS = ("arm", "seed", "steps", "sep_raw", "factor_vae", "dci_disentanglement", "reliance")


def _value(r, key):
    return {"separation": lambda: r["sep_raw"]["separation"], "factor_vae": lambda: r["factor_vae"],
            "dci": lambda: r["dci_disentanglement"], "reliance": lambda: r["reliance"]["reliance"]}[key]()


def _reliance_parts(runs) -> dict:
    """Seed mean/std of the two losses behind the reliance ratio and their gap (shuffled - true), for an
    arm whose runs all hold both losses (the gap is derived from them where a run predates its field);
    {} otherwise. Not part of the claim's checks, which read the ratio."""
    import numpy as np

    rels = [r["reliance"] for r in runs]
    if not rels or not all("loss_true" in v and "loss_shuffled" in v for v in rels):
        return {}
    vals = {"loss_true": [v["loss_true"] for v in rels], "loss_shuffled": [v["loss_shuffled"] for v in rels],
            "loss_gap": [v.get("loss_gap", v["loss_shuffled"] - v["loss_true"]) for v in rels]}
    return {k: (float(np.mean(v)), float(np.std(v))) for k, v in vals.items()}


def summarize(runs, arms) -> dict:
    """Seed means/stds per arm, each arm's mean difference from the baseline, and the claim's checks
    (dyga_sd against baseline: separation +0.05, FactorVAE and DCI within -0.02, reliance higher)."""
    import numpy as np

    summary = {}
    for arm in arms:
        vals = {k: [_value(r, k) for r in runs if r["arm"] == arm] for k in KEYS}
        summary[arm] = {k: (float(np.mean(v)), float(np.std(v))) for k, v in vals.items() if v}
    deltas = {}
    if "baseline" in summary:
        b = summary["baseline"]
        deltas = {arm: {k: summary[arm][k][0] - b[k][0] for k in KEYS if k in summary[arm] and k in b}
                  for arm in summary if arm != "baseline"}
    per_seed = {}
    for r in runs:
        per_seed.setdefault(str(r["seed"]), {})[r["arm"]] = {k: _value(r, k) for k in KEYS}
    for vals in per_seed.values():
        if "baseline" in vals:
            vals["deltas_vs_baseline"] = {arm: {k: v[k] - vals["baseline"][k] for k in KEYS}
                                          for arm, v in list(vals.items()) if arm != "baseline"}
    parts = {arm: _reliance_parts([r for r in runs if r["arm"] == arm]) for arm in summary}
    parts = {arm: v for arm, v in parts.items() if v}
    part_deltas = {arm: {k: parts[arm][k][0] - parts["baseline"][k][0] for k in parts[arm]}
                   for arm in parts if arm != "baseline"} if "baseline" in parts else {}
    checks = {}
    if "baseline" in summary and "dyga_sd" in summary:
        b, d = summary["baseline"], summary["dyga_sd"]
        checks = {"separation_plus_0.05": d["separation"][0] >= b["separation"][0] + 0.05,
                  "factor_vae_within_0.02": d["factor_vae"][0] >= b["factor_vae"][0] - 0.02,
                  "dci_within_0.02": d["dci"][0] >= b["dci"][0] - 0.02,
                  "reliance_higher": d["reliance"][0] > b["reliance"][0]}
    return {"what": "scripts/validate_dyga.py: the Table 4 arms of EncDiff (baseline, +DyGA, +SD, +DyGA+SD), "
                    "same seeds/steps/data order",
            "setting": "pixel space 16x16, procedural Shapes3D sub-grid (5120 images), recipe encdiff/shapes3d-cpu",
            "summary_mean_std": summary, "std": "population (ddof=0) over the seeds each arm has",
            "seeds_per_arm": {arm: sorted(r["seed"] for r in runs if r["arm"] == arm) for arm in summary},
            "deltas_vs_baseline": deltas,
            "reliance_parts_mean_std": parts, "reliance_parts_deltas_vs_baseline": part_deltas,
            "checks": checks, "claim_holds": bool(checks) and all(checks.values()),
            "per_seed": dict(sorted(per_seed.items(), key=lambda kv: int(kv[0])))}


def combine(paths, out_path, note: str | None = None) -> dict:
    """Merge the runs of several records (e.g. arms run as separate jobs, or an earlier combined record
    and new seeds) and recompute the summary. Each (arm, seed) may appear once over all inputs, so a
    combined record cannot be merged again with one of its own sources; all runs must share one step
    count and metric size (``quick``). ``combined_from`` names each input by file name, and for an input
    that was itself combined, its own sources."""
    named = {}
    for p in paths:
        if Path(p).resolve() in named:
            raise SystemExit(f"--combine {p}: given twice (as {named[Path(p).resolve()]}); name each record once")
        named[Path(p).resolve()] = p
    recs = []
    for p in paths:
        try:
            rec = json.loads(Path(p).read_text())
        except (OSError, ValueError) as e:
            raise SystemExit(f"--combine {p}: cannot read a JSON record ({e})")
        if not isinstance(rec, dict) or not isinstance(rec.get("runs"), list):
            raise SystemExit(f"--combine {p}: not a validate_dyga record (no 'runs' list)")
        if not rec["runs"]:
            raise SystemExit(f"--combine {p}: its 'runs' list is empty; nothing to combine")
        for i, r in enumerate(rec["runs"]):
            # a run without these read as KeyError tracebacks (or "the records mix step counts []")
            missing = [k for k in RUN_FIELDS if not isinstance(r, dict) or k not in r]
            if missing:
                raise SystemExit(f"--combine {p}: run {i} is not a validate_dyga run (no {', '.join(map(repr, missing))})")
        recs.append(rec)
    runs = [r for rec in recs for r in rec["runs"]]
    arms = list(dict.fromkeys(r["arm"] for r in runs))
    steps = sorted({r["steps"] for r in runs})
    if len(steps) != 1:
        raise SystemExit(f"the records mix step counts {steps}; combine runs of one length")
    quick = {rec["quick"] for rec in recs if "quick" in rec}
    if len(quick) > 1:
        raise SystemExit("the records mix --quick and full metric sizes; combine runs of one kind")
    seen = {}
    for p, rec in zip(paths, recs):
        for r in rec["runs"]:
            key = (r["arm"], r["seed"])
            if key in seen:
                raise SystemExit(f"arm {key[0]!r} seed {key[1]} is in both {seen[key]} and {p} (a combined record "
                                 f"and one of its sources?); each run may appear once")
            seen[key] = p
    out = summarize(runs, arms)
    sources = [Path(p).name if "combined_from" not in rec else {"record": Path(p).name,
                                                                "combined_from": rec["combined_from"]}
               for p, rec in zip(paths, recs)]
    out.update({"seeds": sorted({r["seed"] for r in runs}), "steps": steps[0], "runs": runs, "combined_from": sources,
                "seconds": round(sum(rec.get("seconds", 0) for rec in recs), 1), "machine": recs[0].get("machine")})
    if quick:
        out["quick"] = quick.pop()
    if note is not None:
        out["note"] = note
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)   # as a training run does: a new folder is no error
    Path(out_path).write_text(json.dumps(out, indent=1))
    return out


DEFAULT_OUT = "benches/results/dyga_validation_cpu.json"


def machine(device) -> dict:
    """The record's machine: the CPU setting of the committed records and, for a GPU run, the device and GPU."""
    import torch

    out = {"platform": platform.platform(), "cpu_threads": torch.get_num_threads(), "note": "2 shared cores, one thread"}
    if device.type == "cuda":
        out.update(device=str(device), gpu=torch.cuda.get_device_name(device), note="one GPU, one CPU thread")
    return out


def main(argv=None) -> int:
    import torch

    from diffrep.recipes.encdiff import Shapes3DSubgrid

    ap = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                    help="seeds, each training every arm (distinct, >= 0; default: %(default)s)")
    ap.add_argument("--steps", type=int, default=700,
                    help="training steps of each arm (160 per epoch; DyGA aligns from the first refresh, step 160; "
                         "default: %(default)s)")
    ap.add_argument("--quick", action="store_true", help="smaller metric sizes (for the slow test)")
    ap.add_argument("--arms", nargs="+", default=["baseline", "dyga_sd"], choices=sorted(ARMS),
                    help="arms to train (the claim check needs baseline and dyga_sd)")
    ap.add_argument("--device", default="cpu", choices=DEVICES,
                    help="where the arms train and are evaluated (cuda: refused at once where torch sees no GPU)")
    ap.add_argument("--out", default=DEFAULT_OUT,
                    help="the JSON record (an existing file is refused unless --overwrite: the committed, dated "
                         "records stay as they were); with --device cuda the default name ends in _cuda.json")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing --out record")
    ap.add_argument("--combine", nargs="+", metavar="JSON",
                    help="merge these records' runs (per-job records or earlier combined ones) into --out and exit")
    ap.add_argument("--note", help="with --combine: a note stored in the record (what ran, machine, load)")
    args = ap.parse_args(argv)
    device = parse_device(ap, args.device)
    if args.out == DEFAULT_OUT and device.type == "cuda":
        args.out = DEFAULT_OUT.replace("_cpu.json", "_cuda.json")   # a GPU record is not named a CPU one
    if args.note is not None and not args.combine:
        ap.error("--note goes with --combine (a training run records its own setting)")
    if not args.combine:
        # --steps 0 recorded a NaN loss and an untrained model; a repeated seed or arm trained it twice and
        # counted it twice in the means (and the record could not be combined later)
        if args.steps < 1:
            ap.error(f"--steps must be >= 1, got {args.steps}")
        if min(args.seeds) < 0:
            ap.error(f"--seeds must be non-negative, got {args.seeds}")
        for name, vals in (("--seeds", args.seeds), ("--arms", args.arms)):
            if len(set(vals)) != len(vals):
                ap.error(f"{name} repeats a value: {vals}")
    if Path(args.out).is_dir():  # --overwrite trained every arm, then failed with IsADirectoryError
        ap.error(f"--out {args.out} is a folder; give the JSON record's file path")
    if Path(args.out).exists() and not args.overwrite:
        ap.error(f"--out {args.out} exists (an earlier record); choose another --out or add --overwrite")
    if args.combine:
        out = combine(args.combine, args.out, note=args.note)
        print(json.dumps({k: out[k] for k in ("summary_mean_std", "deltas_vs_baseline", "checks", "claim_holds")},
                         indent=1))
        return 0
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    ds = Shapes3DSubgrid(pool=4)
    note = refresh_note(args.steps, args.arms, len(ds))
    if note:
        print(note, file=sys.stderr, flush=True)
    runs = []
    for seed in args.seeds:
        for arm in args.arms:
            r = run_arm(arm, seed, args.steps, ds, args.quick, device=device)
            print(json.dumps({k: r[k] for k in ("arm", "seed", "factor_vae", "dci_disentanglement", "train_seconds")}
                             | {"separation": r["sep_raw"]["separation"], "reliance": r["reliance"]["reliance"]}),
                  flush=True)
            runs.append(r)

    out = summarize(runs, args.arms)
    out.update({"seeds": args.seeds, "steps": args.steps, "quick": args.quick, "runs": runs,
                "seconds": round(time.perf_counter() - t0, 1),
                "machine": machine(device)})
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps({k: out[k] for k in ("summary_mean_std", "deltas_vs_baseline", "checks", "claim_holds")},
                     indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
