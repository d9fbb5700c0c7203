"""``diffrep data``: inspect datasets (``info``) and write a labelled grid of samples (``preview``)."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("data", help="inspect datasets: factors, sizes, source; preview grids")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")

    from ._common import add_overwrite_flag, numpy_seed

    def common(q):
        from ..data import available

        q.add_argument("name", help=f"dataset name ({', '.join(sorted(available()))})")
        q.add_argument("--root", default=None, help="folder holding the original files (default $DIFFREP_DATA)")
        q.add_argument("--source", default="auto", choices=("auto", "file", "procedural"),
                       help="where the images come from (default auto: the files when a root is set, else the generator)")
        q.add_argument("--split", default=None, help="split of a dataset that has them (mnist, cifar10, celeba, lsun, ...: "
                       "docs/data.md; default: the dataset's)")
        q.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                       help="reader or generator option passed to diffrep.data.load (a YAML value), e.g. "
                            "--option size=32, --option crop=diffae (docs/data.md)")

    info = dsub.add_parser("info", help="print factors, sizes and source")
    common(info)
    info.add_argument("--json", action="store_true", help="print as JSON")
    prev = dsub.add_parser("preview", help="write a labelled PNG grid of random samples")
    common(prev)
    prev.add_argument("--out", required=True, help="output PNG path (an existing one is refused unless --overwrite)")
    add_overwrite_flag(prev)
    prev.add_argument("-n", "--num", type=int, default=16, help="number of samples (default 16)")
    prev.add_argument("--seed", type=numpy_seed, default=0, help="seed of the samples shown (default 0)")
    prev.add_argument("--scale", type=int, default=2, help="integer upscaling of each image (default 2)")
    p.set_defaults(func=run)


def format_info(d: dict) -> str:
    lines = [f"{d['name']}  source={d['source']}  length={d['length']}  observation_shape={tuple(d['observation_shape'])}"]
    if "factors" in d:
        lines.append("factors (slowest first):")
        for f in d["factors"]:
            v = [f"{x:g}" for x in f["values"]]
            vals = ", ".join(v[:3] + ["...", v[-1]] if f["size"] > 4 else v)
            lines.append(f"  {f['name']:<18s} size {f['size']:>4d}   values {vals}")
    elif d.get("targets"):
        t = d["targets"]
        lines.append(f"targets: {', '.join(t[:8])}{' ...' if len(t) > 8 else ''} ({len(t)})")
    if "binarize" in d:
        lines.append(f"binarize: {d['binarize']}")
    return "\n".join(lines)


def _label(ds, target) -> str:
    import numpy as np

    t = np.asarray(target).reshape(-1)
    if getattr(ds, "factor_names", ()):
        return ",".join(str(int(v)) for v in t)
    if t.size == 1:
        return str(int(t[0]))
    return f"{int(t.sum())} attrs" if t.size else ""


def preview_grid(ds, num: int, seed: int, scale: int = 2):
    """A PIL image: ``num`` random samples of ``ds`` in a grid, each captioned with its factor classes
    (ground-truth data) or label."""
    import numpy as np
    from PIL import Image, ImageDraw

    from .._progress import progress

    if num < 1 or num > 256:
        raise ValueError(f"--num must be in [1, 256], got {num}")
    if scale < 1 or scale > 16:
        raise ValueError(f"--scale must be in [1, 16], got {scale}")
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(ds), size=min(num, len(ds)), replace=False))
    chunks = range(0, len(idx), 16)  # rendered/read in chunks so that a slow source shows a bar
    imgs = np.concatenate([ds.observations(idx[i:i + 16]) for i in progress(
        chunks, total=len(chunks), desc=f"reading {ds.name}", unit="chunk")]) if len(idx) else ds.observations(idx)
    targets = [ds._targets(np.array([i]))[0] for i in idx]
    n, h, w, c = imgs.shape
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    cw, chh, cap = w * scale, h * scale, 12
    cw = max(cw, 8 * 6 + 4) if getattr(ds, "factor_names", ()) else cw
    canvas = Image.new("RGB", (cols * (cw + 4) + 4, rows * (chh + cap + 4) + 4 + 14), "white")
    draw = ImageDraw.Draw(canvas)
    names = getattr(ds, "factor_names", ())
    draw.text((4, 2), f"{ds.name} [{ds.source}]" + (f" factors: {','.join(names)}" if names else ""), fill="black")
    for k in range(n):
        a = (np.clip(imgs[k], 0, 1) * 255).round().astype(np.uint8)
        pil = Image.fromarray(a[..., 0] if c == 1 else a, "L" if c == 1 else "RGB").convert("RGB")
        pil = pil.resize((w * scale, h * scale), Image.NEAREST)
        x0 = 4 + (k % cols) * (cw + 4)
        y0 = 18 + (k // cols) * (chh + cap + 4)
        canvas.paste(pil, (x0, y0))
        draw.text((x0, y0 + chh), _label(ds, targets[k]), fill="black")
    return canvas


def run(args) -> int:
    from ..data import load

    from ._common import output_path, parse_options, prepare_output

    if args.data_command == "preview":  # before loading: the grid is always PNG, whatever the name says
        args.out = prepare_output(args.out, suffixes=(".png",), overwrite=args.overwrite)
    ds = load(args.name, root=args.root, source=args.source, split=args.split, root_flag="--root", source_flag="--source",
              **parse_options(args.option))
    if args.data_command == "info":
        d = ds.describe()
        print(json.dumps(d, indent=2, default=list) if args.json else format_info(d))
        return 0
    img = preview_grid(ds, args.num, args.seed, args.scale)
    img.save(output_path(args.out), format="PNG")
    print(f"wrote {args.out} ({img.size[0]}x{img.size[1]}, {min(args.num, len(ds))} samples of {ds.name})")
    return 0
