"""``diffrep quickstart``: train ParamReL_d on procedural dSprites, then write its figures and metrics.

One command from a fresh install (no downloads): trains the ``paramrel/dsprites`` recipe (a discrete
BFN, K = 2, on dSprites max-pooled to 32 x 32, 6 latent dimensions, an encoder that reads the clean
image x) with a progress bar, then writes into ``--out`` (figures enlarged by nearest-neighbour to at
least 4x and 128 px per image, ``diffrep.viz.legible_scale``):

- ``reconstructions.png``: inputs (top row) and their reconstructions by reverse-sampling with the
  exact inverse update followed by deterministic decoding (bottom row);
- ``samples.png``: 16 unconditional samples of the n-step BFN sampler (SepDiff Alg. 1, ParamReL Eq. 4)
  from the uniform prior, with sender noise at each step. What z the decoder reads depends on the
  recipe's ``z_source``: the CPU recipes (``paramrel/dsprites``, ``paramrel/digits``) use
  ``"prior_fixed"``, one z ~ N(0, I) per image drawn once and held for all n steps; their encoder reads
  x, which generation does not have, so it is never called while sampling. Only recipes with
  ``z_source="encoder"`` (encoder reading theta) re-encode z from theta at every step;
- ``traversals.png``: one row per latent, ordered by how much it tells about its best ground-truth
  factor (normalised mutual information, MIG's estimator) and labelled with that factor, the score and
  how far the traversal moves the object's centroid; three blocks of columns, one per data example
  chosen far apart in factor space (shown first), each decoded from z alone with z_d swept between its
  2 % and 98 % quantiles over the data (``write_traversals``; docs/methods/paramrel.md#quickstart);
- ``time_varying.png``: rows = inputs, then regenerations with z fixed at t* = 0.9, 0.8, 0.7;
- ``metrics.json``: MIG, DCI, FactorVAE, SAP, modularity/explicitness and InfoMEC of the encoder mean
  z_0, with sample sizes, seeds, timings and the machine; ``traversal`` (per-latent best factor and
  NMI, the bases, the values) and ``traversal_centroid_shift`` (per latent, the mean end-to-end
  centroid displacement x and y in pixels of the model's images, the best latent per axis and whether
  it reaches the 8 px gate); ``model/`` (save_pretrained); a summary table.

``--recipe`` runs any ParamReL recipe the same way (``paramrel/celeba64`` on a GPU: ``--device auto``
picks CUDA when present); metrics need a dataset with ground-truth factors and are skipped otherwise.
"""

from __future__ import annotations

import difflib
import json
import platform
import sys
import time
from pathlib import Path

from ._common import add_device_flag, numpy_seed

# evaluation sample sizes: "quick" fits the 15-minute CPU budget, "full" is disentanglement_lib's
EVAL_SIZES = {
    "quick": dict(num_train=2000, num_test=1000, factor_vae=dict(num_train=300, num_eval=150,
                                                                   num_variance_estimate=2000, batch_size=64)),
    "full": dict(num_train=10000, num_test=5000, factor_vae=dict(num_train=10000, num_eval=5000,
                                                                  num_variance_estimate=10000, batch_size=64)),
}
POSITION_GATE_PX = 8.0  # issue 17 item 8: some latent's traversal moves the object >= 8 px along x, and one along y
METRICS = ("mig", "dci", "factor_vae", "sap", "modularity_explicitness", "infomec")
SUMMARY = (("MIG", "mig"), ("DCI disentanglement", "dci_disentanglement"), ("DCI completeness", "dci_completeness"),
           ("DCI informativeness", "dci_informativeness_test"), ("FactorVAE", "factor_vae_eval"), ("SAP", "sap"),
           ("modularity", "modularity"), ("explicitness", "explicitness_test"), ("InfoM", "infom"),
           ("InfoE", "infoe"), ("InfoC", "infoc"))


def register(sub) -> None:
    p = sub.add_parser("quickstart", help="train ParamReL on dSprites (CPU, minutes) and write figures + metrics",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/quickstart", help="output folder (default runs/quickstart)")
    p.add_argument("--recipe", default="paramrel/dsprites", help="a ParamReL recipe (default paramrel/dsprites)")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: the recipe's)")
    add_device_flag(p)
    p.add_argument("--sample-steps", type=int, default=None, help="BFN steps n for the figures (default: recipe's)")
    p.add_argument("--eval", choices=tuple(EVAL_SIZES) + ("none",), default="quick",
                   help="metric sample sizes: quick (default), full (disentanglement_lib's) or none")
    p.add_argument("--seed", type=numpy_seed, default=0, help="seed of the training run (train.seed; default 0)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier quickstart run in --out")
    p.add_argument("--resume", action="store_true",
                   help="continue the quickstart run in --out from its newest checkpoint (an interrupted one: the "
                        "same --recipe and --seed; --steps may be raised), then write its figures and metrics")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads for torch (default 1: these small convolutions gain little from more, and "
                        "2 threads on a busy 2-core machine measured 30x slower); 0 keeps torch's default")
    p.set_defaults(func=run)


# what a quickstart writes into --out besides the training run in run/ (--overwrite deletes these and nothing else)
OUTPUT_FILES = ("reconstructions.png", "samples.png", "traversals.png", "time_varying.png", "metrics.json",
                "quickstart.json")
MODEL_FILES = ("config.json", "model.safetensors", "ema.safetensors", "run.json")
# the settings a resumed quickstart must share with the run it continues (the training's seed and model)
RECORD_NAME = "quickstart.json"


def clear_outputs(out: Path, keep_record: bool = False) -> list[str]:
    """Delete an earlier quickstart's figures, metrics and model/ from ``out`` (its run/ is the trainer's to
    clear), so that a replaced run never leaves the earlier run's results beside the new one's; ``keep_record``
    (a resume) keeps ``quickstart.json``, which the continuation is checked against."""
    removed = []
    for name in OUTPUT_FILES:
        if keep_record and name == RECORD_NAME:
            continue
        if (out / name).is_file():
            (out / name).unlink()
            removed.append(name)
    model_dir = out / "model"
    for name in MODEL_FILES:
        if (model_dir / name).is_file():
            (model_dir / name).unlink()
            removed.append(f"model/{name}")
    if model_dir.is_dir() and not any(model_dir.iterdir()):
        model_dir.rmdir()
    return removed


def check_resume_record(out: Path, recipe: str, seed: int) -> None:
    """Refuse ``--resume`` of a quickstart run made with another recipe or seed (its ``quickstart.json``)."""
    f = out / RECORD_NAME
    if not f.is_file():
        raise ValueError(f"--resume: {out} has no {RECORD_NAME} (the --recipe and --seed of the quickstart run it "
                         f"continues); start a run without --resume")
    try:
        saved = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"--resume: {f} is not readable JSON ({exc}); start again with --overwrite") from None
    for key, now in (("recipe", recipe), ("seed", seed)):
        if saved.get(key) != now:
            flag = "--recipe" if key == "recipe" else "--seed"
            raise ValueError(f"--resume: the run in {out} was started with {flag} {saved.get(key)}, not {now}; "
                             f"resume it with {flag} {saved.get(key)}, or start a new one with --overwrite")


def resume_command(args) -> str:
    """The ``diffrep quickstart`` command line that continues an interrupted run with the same settings."""
    import shlex

    parts = ["diffrep", "quickstart", "--out", str(args.out), "--resume", "--recipe", args.recipe,
             "--seed", str(args.seed)]
    for flag, value in (("--steps", args.steps), ("--sample-steps", args.sample_steps)):
        if value is not None:
            parts += [flag, str(value)]
    if args.device != "auto":
        parts += ["--device", args.device]
    if args.eval != "quick":
        parts += ["--eval", args.eval]
    return shlex.join(parts)


def representation_fn(model, device, batch: int = 256):
    """observations (n, H, W, C) float in [0, 1] -> encoder means (n, L) as numpy (for diffrep.metrics)."""
    import numpy as np
    import torch

    def fn(obs):
        x = torch.from_numpy(np.ascontiguousarray(obs)).permute(0, 3, 1, 2).float() * 2 - 1
        with torch.no_grad():
            return torch.cat([model.encode(x[i:i + batch].to(device)).cpu() for i in range(0, len(x), batch)]).numpy()

    return fn


def evaluate_representation(model, dataset, device, sizes: str = "quick", seed: int = 0):
    """The disentanglement suite of ``METRICS`` on ``model.encode`` (eval mode) -> diffrep Result."""
    from ..metrics import evaluate

    if sizes not in EVAL_SIZES:
        raise ValueError(f"sizes must be one of {tuple(EVAL_SIZES)}, got {sizes!r}")
    s = EVAL_SIZES[sizes]
    was = model.training
    model.eval()
    try:
        return evaluate(dataset, representation_fn(model, device), metrics=METRICS, seed=seed,
                        num_train=s["num_train"], num_test=s["num_test"], factor_vae_kwargs=s["factor_vae"])
    finally:
        model.train(was)


def format_table(rows: list[tuple[str, str]]) -> str:
    w = max(len(a) for a, _ in rows)
    return "\n".join(f"  {a:<{w}}  {b}" for a, b in rows)


def _factor_sample(dataset, n: int, seed: int):
    """(factors (n, F) int, observations [n, C, H, W] in [-1, 1]) from a ground-truth dataset, or (None, images)
    drawn from the dataset's items when it has no factors."""
    import numpy as np
    import torch

    if hasattr(dataset, "sample_factors") and hasattr(dataset, "sample_observations_from_factors"):
        rng = np.random.default_rng(seed)
        f = np.asarray(dataset.sample_factors(n, rng))
        obs = np.asarray(dataset.sample_observations_from_factors(f, rng))
        return f, torch.from_numpy(np.ascontiguousarray(obs)).permute(0, 3, 1, 2).float() * 2 - 1
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(dataset), (min(n, len(dataset)),), generator=gen).tolist()
    return None, torch.stack([dataset[i][0] for i in idx]).float()


def write_traversals(model, dataset, out: Path, device, steps: int | None, seed: int, *, num_values: int = 7,
                     num_bases: int = 3, num_codes: int = 1000, scale: int | None = None) -> dict:
    """``traversals.png`` and the ``traversal`` record of metrics.json (docs/methods/paramrel.md#quickstart).

    Codes: encoder means of ``num_codes`` examples. Rows: every latent, ordered by the NMI of its best factor
    (MIG's estimator), labelled "z<d>: <factor> <NMI>" and the centroid shift of its traversal. Columns:
    ``num_bases`` real examples chosen far apart in factor space, each shown first, then decoded from z alone
    (:func:`diffrep.analysis.traversal.prior_decoder`) with z_d set to ``num_values`` points between the 2 %
    and 98 % quantiles of z_d over the data."""
    import torch

    from ..analysis import traversal as tr
    from ..viz import labelled_rows, legible_scale

    factors, x = _factor_sample(dataset, num_codes, seed)
    codes = torch.cat([model.encode(x[i:i + 256].to(device)).cpu() for i in range(0, len(x), 256)])
    L = codes.shape[1]
    spread = codes.std(0).tolist()
    if factors is not None:
        names = list(getattr(dataset, "factor_names", None) or [f"factor {j}" for j in range(factors.shape[1])])
        sc = tr.latent_factor_scores(codes, factors, names)
        bases = tr.spread_bases(factors, num_bases, sizes=list(dataset.factor_sizes))
        best_f, best_s = sc["best_factor"], sc["best_score"]
    else:
        sc, names, bases = None, [], list(range(min(num_bases, len(x))))
        best_f, best_s = ["?"] * L, [0.0] * L
    order = tr.order_latents(best_s, spread)
    values = tr.traversal_values(codes, num_values)
    decode = tr.prior_decoder(model, steps)
    sh = tr.centroid_shifts(decode, codes[bases], order, values)
    imgs = sh["images"]  # [L, B, V, C, H, W]
    base_imgs = x[bases].cpu()[None, :, None].expand(L, -1, 1, *x.shape[1:])
    rows = torch.cat([base_imgs, imgs], 2).reshape(L, len(bases) * (num_values + 1), *x.shape[1:])
    per = sh["per_latent"]
    labels = [f"{tr.row_label(d, best_f[d], best_s[d])}  dx {per[d]['dx']:+.1f} dy {per[d]['dy']:+.1f}"
              for d in order]
    glabels = [("data: " + " ".join(f"{n}={int(v)}" for n, v in zip(names, factors[b]))) if factors is not None
               else f"data {b}" for b in bases]
    px = x.shape[-1]
    labelled_rows(rows, out / "traversals.png", row_labels=labels, group_size=num_values + 1, group_labels=glabels,
                  title=f"latent traversals decoded from z alone (first cell of each block: the data example; "
                        f"z_d from its 2% to 98% quantile); label: best factor, NMI, centroid shift (px of {px})",
                  scale=scale or legible_scale(px), font_size=max(12, min(20, px // 2)))
    shift = {f"z{d}": {"x": per[d]["dx"], "y": per[d]["dy"], "range_x": per[d]["range_x"],
                       "range_y": per[d]["range_y"], "empty_fraction": per[d]["empty"]} for d in order}
    return {
        "decoder": "z alone: deterministic decoding from the prior state with z fixed at every step",
        "image_pixels": px, "num_codes": num_codes, "num_values": num_values, "value_quantiles": [0.02, 0.98],
        "bases": [{"index_in_sample": int(b), "factors": (dict(zip(names, map(int, factors[b])))
                                                          if factors is not None else None)} for b in bases],
        "latent_order": [int(d) for d in order],
        "latents": [{"latent": int(d), "best_factor": best_f[d], "nmi": best_s[d], "spread": spread[d],
                     "values": [float(v) for v in values[d]]} for d in order],
        "nmi_matrix": sc["nmi"].tolist() if sc is not None else None, "factor_names": names,
        "traversal_centroid_shift": shift,
        "best_x": {"latent": sh["best_x"], "shift_px": sh["max_abs_dx"]},
        "best_y": {"latent": sh["best_y"], "shift_px": sh["max_abs_dy"]},
        "gate": {"threshold_px": POSITION_GATE_PX, "x": bool(sh["max_abs_dx"] >= POSITION_GATE_PX),
                 "y": bool(sh["max_abs_dy"] >= POSITION_GATE_PX)},
    }


def write_figures(model, dataset, out: Path, device, steps: int | None, seed: int) -> tuple[dict, dict]:
    """reconstructions / samples / traversals / time-varying PNGs (enlarged to be legible); returns
    ({name: seconds}, the traversal record)."""
    import torch

    from ..viz import legible_scale, save_image

    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(dataset), (8,), generator=gen).tolist()
    x = torch.stack([dataset[i][0] for i in idx]).to(device)
    scale = legible_scale(x.shape[-1])
    model.eval()
    times = {}
    t0 = time.perf_counter()
    rec = model.reconstruct(x, steps)
    save_image(torch.cat([x, rec]).cpu(), out / "reconstructions.png", nrow=8, value_range=(-1, 1), scale=scale)
    times["reconstructions"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    g = torch.Generator(device=device).manual_seed(seed)
    save_image(model.sample(16, generator=g, num_steps=steps).cpu(), out / "samples.png", nrow=8, value_range=(-1, 1),
               scale=scale)
    times["samples"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    trav = write_traversals(model, dataset, out, device, steps, seed, scale=scale)
    times["traversals"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    tv = model.time_varying(x, (0.9, 0.8, 0.7), steps)
    save_image(torch.cat([x[None], tv]).reshape(-1, *x.shape[1:]).cpu(), out / "time_varying.png", nrow=8,
               value_range=(-1, 1), scale=scale)
    times["time_varying"] = time.perf_counter() - t0
    return times, trav


def run(args) -> int:
    import torch

    from ..config import apply_overrides
    from ..recipes import get_recipe, list_recipes
    from ..recipes.runinfo import write_run_info
    from ..train.rundir import run_contents
    from ..train import Trainer, TrainingInterrupted, seed_everything
    from ..train.config import TrainConfig

    from ._common import resolve_device

    t_start = time.perf_counter()
    resolve_device(args.device)  # --device cuda without a GPU: a message before any work
    if args.threads < 0:
        raise ValueError(f"--threads must be >= 0, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    paramrel = sorted(r.name for r in list_recipes() if r.name.startswith("paramrel/"))
    if args.recipe not in paramrel:
        close = difflib.get_close_matches(args.recipe, paramrel, n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(f"--recipe must be a ParamReL recipe, got {args.recipe!r}.{hint} "
                         f"ParamReL recipes: {', '.join(paramrel)}")
    recipe = get_recipe(args.recipe)
    cfg = recipe.make_config()
    if not hasattr(cfg, "model") or type(cfg.model).__name__ != "ParamReLConfig":
        raise ValueError(f"--recipe must be a ParamReL recipe (paramrel/...), got {args.recipe!r}")
    overrides = ["--train.device", args.device, "--train.seed", str(args.seed)]
    if args.steps is not None:
        if args.steps < 1:
            raise ValueError(f"--steps must be >= 1, got {args.steps}")
        overrides += ["--train.steps", str(args.steps)]
    if args.sample_steps is not None and args.sample_steps < 1:
        raise ValueError(f"--sample-steps must be >= 1, got {args.sample_steps}")
    cfg = apply_overrides(cfg, overrides)
    assert isinstance(cfg.train, TrainConfig)
    out = Path(args.out)
    if (out / "study.json").is_file():  # a study folder holds no run at its top: the check below passed it
        raise ValueError(f"{out} holds a study (its study.json), not a quickstart folder; choose another --out")
    other = run_contents(out)  # a `diffrep train` run in --out itself: its files and ours would mix
    if other:
        raise ValueError(f"{out} holds a training run ({', '.join(other[:3])}), not a quickstart folder; "
                         f"choose another --out (--overwrite replaces only an earlier quickstart run)")
    resume = bool(getattr(args, "resume", False))
    if resume and args.overwrite:
        raise ValueError("--resume continues the quickstart run in --out, --overwrite deletes it: give one of them")
    if resume:
        check_resume_record(out, recipe.name, args.seed)
        from ..train.checkpoint import list_checkpoints

        found = list_checkpoints(out / "run" / "checkpoints")
        if found and found[-1][0] > cfg.train.steps:
            raise ValueError(f"--resume: the run in {out} is at step {found[-1][0]}, past --steps {cfg.train.steps}; "
                             f"pass --steps N with N >= {found[-1][0]}")
    elif run_contents(out / "run") and not args.overwrite:  # before any work: the earlier run stays whole
        how = "continue it with --resume, " if (out / RECORD_NAME).is_file() else ""  # --resume reads the record
        raise ValueError(f"{out} already holds a quickstart run; {how}replace it with --overwrite (only what diffrep "
                         f"wrote is deleted), or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        if args.overwrite:
            removed = clear_outputs(out)
            if removed:
                print(f"--overwrite: removed the earlier quickstart's {', '.join(removed)} from {out}", file=sys.stderr)
        (out / RECORD_NAME).write_text(json.dumps({"recipe": recipe.name, "seed": args.seed}) + "\n",
                                       encoding="utf-8")
    seed_everything(cfg.train.seed)
    model, dataset = recipe.build(cfg)
    device = torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
                          else "cpu")
    n_params = sum(p.numel() for p in model.parameters())
    print(f"diffrep quickstart: {recipe.name} ({n_params / 1e6:.2f}M parameters) for {cfg.train.steps} steps on "
          f"{device}; writing to {out}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    cleared = []

    def clear_earlier_end(*_args) -> None:
        # resuming a finished quickstart with more --steps: its earlier end's model/, figures and metrics.json sat,
        # as if complete, beside the continuation until it ended (or forever, were it killed); cleared at the first
        # resumed step, once the trainer has accepted the checkpoint (a refused resume leaves them)
        if not cleared:
            cleared.append(True)
            removed = clear_outputs(out, keep_record=True)
            if removed:
                print(f"--resume: removed the earlier end's {', '.join(removed)} from {out} (written again at the "
                      f"end)", file=sys.stderr, flush=True)

    try:
        history = Trainer(model, dataset, cfg.train, out / "run", name=recipe.name,
                          callbacks=[clear_earlier_end] if resume else []).train(
            resume="latest" if resume else None, overwrite=args.overwrite)
    except TrainingInterrupted as exc:
        print(f"diffrep quickstart: interrupted at step {exc.step}; continue with: {resume_command(args)}",
              file=sys.stderr, flush=True)
        return 128 + exc.signum
    t_train = time.perf_counter() - t0
    model.to(device)
    model.save_pretrained(out / "model")
    write_run_info(out / "model", recipe.name, cfg)  # the data settings the model verbs read
    print("writing figures ...", file=sys.stderr, flush=True)
    fig_times, trav = write_figures(model, dataset, out, device, args.sample_steps, args.seed)
    result, t_eval = None, 0.0
    if args.eval != "none" and hasattr(dataset, "sample_observations_from_factors"):
        print(f"evaluating the representation ({args.eval} sample sizes) ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        result = evaluate_representation(model, dataset, device, args.eval, args.seed)
        t_eval = time.perf_counter() - t0
    wall = time.perf_counter() - t_start
    last = next((r for r in reversed(history) if "loss" in r), {})  # not a periodic-evaluation record
    record = {"recipe": recipe.name, "steps": cfg.train.steps, "device": str(device),
              "final_train_loss": last.get("loss"), "bfn_loss_per_dim": last.get("bfn_loss_per_dim"),
              "seconds": {"train": t_train, "figures": fig_times, "metrics": t_eval, "total": wall},
              "machine": {"platform": platform.platform(), "processor": platform.processor(),
                          "torch_threads": torch.get_num_threads(),
                          "gpu": torch.cuda.get_device_name(0) if device.type == "cuda" else None},
              "eval_sizes": args.eval, "metrics": result.to_json() if result is not None else None,
              "traversal": trav, "traversal_centroid_shift": trav["traversal_centroid_shift"]}
    (out / "metrics.json").write_text(json.dumps(record, indent=2), encoding="utf-8")
    rows = [("training", f"{cfg.train.steps} steps in {t_train:.0f} s, final loss {last.get('loss', float('nan')):.4g} "
                         f"({last.get('bfn_loss_per_dim', float('nan')):.4f} nats/dim)")]
    if result is not None:
        rows += [(name, f"{result[key]:.3f}") for name, key in SUMMARY if key in result]
    for axis in ("x", "y"):
        b = trav[f"best_{axis}"]
        rows.append((f"traversal moves {axis}", f"z{b['latent']} by {b['shift_px']:.1f} px "
                                                 f"({'>=' if trav['gate'][axis] else '<'} {POSITION_GATE_PX} px)"))
    rows += [("wall time", f"{wall / 60:.1f} min"), ("output", str(out))]
    print("\nParamReL quickstart summary\n" + format_table(rows))
    return 0
