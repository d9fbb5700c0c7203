"""``diffrep sample PATH [--n 16] [--seed 0] [--weights ema|model] [--steps N] [--out grid.png]``.

PATH is a ``save_pretrained`` directory, a checkpoint directory, or a run directory (its newest
checkpoint is used). The model's ``sample(n, generator=...)`` draws the images; the same seed gives
the same grid.
"""

from __future__ import annotations

import inspect
import math
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("sample", help="draw a sample grid from a trained model", description=__doc__.split("\n\n")[0])
    p.add_argument("path", help="model, checkpoint or run directory")
    p.add_argument("--n", type=int, default=16, help="number of samples (default 16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", choices=("ema", "model"), default="ema", help="EMA (default) or raw weights")
    p.add_argument("--steps", type=int, default=None, help="sampling steps, for models whose sample() takes num_steps")
    p.add_argument("--nrow", type=int, default=None, help="images per row (default sqrt(n))")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--out", help="output PNG (default: <path>/images/samples/sample-seed<seed>.png)")
    p.set_defaults(func=run)


def resolve_model_dir(path: Path) -> Path:
    """A directory holding config.json: ``path`` itself, its newest checkpoint, or its ``final/``."""
    from ..train.checkpoint import list_checkpoints

    if (path / "config.json").is_file():
        return path
    found = list_checkpoints(path / "checkpoints")
    if found:
        return found[-1][1]
    if (path / "final" / "config.json").is_file():
        return path / "final"
    raise FileNotFoundError(f"{path}: no config.json, no complete checkpoint under checkpoints/, no final/")


def run(args) -> int:
    import torch

    from ..nn import load_pretrained
    from ..viz import save_image

    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    path = Path(args.path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a directory")
    model_dir = resolve_model_dir(path)
    if args.weights == "ema" and not (model_dir / "ema.safetensors").is_file():
        raise FileNotFoundError(f"{model_dir} has no ema.safetensors; use --weights model")
    device = "cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available()) else "cpu"
    model = load_pretrained(model_dir, weights=args.weights, map_location=device).eval()
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
    out = Path(args.out) if args.out else path / "images" / "samples" / f"sample-seed{args.seed}.png"
    save_image(images.float().cpu(), out, nrow=args.nrow or max(1, math.isqrt(args.n)), value_range=(-1.0, 1.0))
    print(f"wrote {args.n} samples from {model_dir} ({args.weights} weights) to {out}", file=sys.stderr)
    return 0
