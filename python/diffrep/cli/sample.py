"""``diffrep sample PATH [--n 16] [--seed 0] [--weights auto|ema|model] [--steps N] [--out grid.png]``.

PATH is a ``save_pretrained`` directory, a checkpoint directory, or a run directory (its newest
checkpoint is used). The model's ``sample(n, generator=...)`` draws the images; the same seed gives
the same grid; an existing output file is refused unless ``--overwrite`` (docs/architecture.md#outputs-never-mix).
``--weights auto`` (default) takes the EMA weights when present, else the raw ones
(said on stderr; diffrep.cli._common). The output is checked before sampling; its folder is made
when the grid is written.
"""

from __future__ import annotations

import inspect
import math
import sys
from pathlib import Path

from ._common import (IMAGE_SUFFIXES, torch_seed, add_device_flag, add_overwrite_flag, add_threads_flag, add_weights_flag, apply_threads, prepare_output, resolve_device,
                      resolve_model_dir as _resolve_model_dir, resolve_weights)
from .._checks import a_or_an


def register(sub) -> None:
    p = sub.add_parser("sample", help="draw a sample grid from a trained model", description=__doc__.split("\n\n")[0])
    add_sample_arguments(p)


def add_sample_arguments(p) -> None:
    """The flags of ``diffrep sample`` (shared with ``diffrep bfn sample``)."""
    p.add_argument("path", help="model, checkpoint or run directory")
    p.add_argument("--n", type=int, default=16, help="number of samples (default 16)")
    p.add_argument("--seed", type=torch_seed, default=0, help="seed of the sampler's generator (default 0)")
    add_weights_flag(p)
    p.add_argument("--steps", type=int, default=None, help="sampling steps, for models whose sample() takes num_steps")
    p.add_argument("--nrow", type=int, default=None, help="images per row (default sqrt(n))")
    add_device_flag(p)
    add_threads_flag(p)
    p.add_argument("--upscale", type=int, default=None,
                   help="enlarge by this integer factor, nearest-neighbour (default: at least 128 px per image)")
    p.add_argument("--out", help="output PNG (default: <path>/images/samples/sample-seed<seed>.png)")
    add_overwrite_flag(p)
    p.set_defaults(func=run)


def resolve_model_dir(path: Path) -> Path:
    """A directory holding config.json: ``path`` itself, its newest checkpoint, or its ``final/``."""
    return _resolve_model_dir(path)


def run(args) -> int:
    import torch

    from ..nn import load_pretrained
    from ..viz import legible_scale, save_image

    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    if args.upscale is not None and args.upscale < 1:
        raise ValueError(f"--upscale must be >= 1, got {args.upscale}")
    if args.nrow is not None and args.nrow < 1:
        raise ValueError(f"--nrow must be >= 1, got {args.nrow}")
    path = Path(args.path)
    device = resolve_device(args.device)
    apply_threads(args.threads)
    out = prepare_output(args.out, suffixes=IMAGE_SUFFIXES, overwrite=args.overwrite) if args.out else None  # before any work
    model_dir = resolve_model_dir(path)
    weights = resolve_weights(model_dir, args.weights, "diffrep sample")
    if out is None:  # the default inside the (now known to exist) model folder
        out = prepare_output(path / "images" / "samples" / f"sample-seed{args.seed}.png", overwrite=args.overwrite)
    model = load_pretrained(model_dir, weights=weights, map_location=device).eval()
    want = getattr(args, "model_class", None)  # set by a method's own verb (diffrep bfn sample)
    if want is not None and type(model).__name__ != want:
        raise ValueError(f"{model_dir} holds {a_or_an(type(model).__name__)}, not {a_or_an(want)}; use 'diffrep sample' for any model")
    sample = getattr(model, "sample", None)
    if not callable(sample):
        raise TypeError(f"{type(model).__name__} has no sample() method")
    kwargs = {}
    if args.steps is not None:
        if "num_steps" not in inspect.signature(sample).parameters:
            raise ValueError(f"{type(model).__name__}.sample() takes no num_steps; drop --steps")
        kwargs["num_steps"] = args.steps
    gen = torch.Generator(device=device).manual_seed(args.seed)
    with torch.no_grad():
        images = sample(args.n, generator=gen, **kwargs)
    scale = args.upscale if args.upscale is not None else legible_scale(images.shape[-1], min_scale=1)
    save_image(images.float().cpu(), out, nrow=args.nrow or max(1, math.isqrt(args.n)), value_range=(-1.0, 1.0),
               scale=scale)
    print(f"wrote {args.n} samples from {model_dir} ({weights} weights) to {out}", file=sys.stderr)
    return 0
