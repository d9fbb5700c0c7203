"""``diffrep multibeta``: the denoising multi-beta VAE (Uppal et al. 2025) from the command line.

    diffrep multibeta recipes
    diffrep multibeta train RECIPE [--out DIR] [--a.b VALUE ...]             (as diffrep train)
    diffrep multibeta encode MODEL [--beta B] [--noise] [--n 64] --out CODES.npz
    diffrep multibeta decode MODEL --codes CODES.npz [--beta B] [--denoise] [--out PNG]
    diffrep multibeta denoise MODEL --codes CODES.npz [--beta-from B] [--beta-to 0] [--out OUT.npz] [--png PNG]
    diffrep multibeta sweep MODEL [--betas 0.1,0.3,0.5,0.7,0.9] [--n 4] [--out PNG]
    diffrep multibeta traverse MODEL [--beta B] [--dims 0,1,..] [--values -2,-1,0,1,2] [--direct] [--out PNG]
    diffrep multibeta edit MODEL --direction DIM|FILE.npy --alphas -2,0,2 [--beta B] [--direct] [--out PNG]
    diffrep multibeta sample MODEL [--n 16] [--out PNG]
    diffrep multibeta curve MODEL [--betas ...] [--n 512] [--json OUT]
    diffrep multibeta eval MODEL [--beta B | --betas 0.1,0.3,..] [--eval quick|full] [--json OUT]

MODEL is a saved MultiBeta folder or a run folder (its ``final/``). Every output (``--out``, default a file
inside MODEL; ``--json``; ``--png``) is checked before the work, and an existing one is refused unless
``--overwrite`` (docs/architecture.md#outputs-never-mix). The beta of the code defaults to the model's
``representation_beta`` (set after phase 1 by the recipe: the largest beta whose code stays informative,
docs/methods/multibeta.md#recipes). The dataset, its options, pooling and root default to the ones the
model was trained with (``run.json``, docs/data.md); ``--dataset``/``--pool``/``--option``/``--root``
override them. ``curve`` reports, per beta, sigma_beta (with ``posterior_scale="per_unit"`` its root mean square
over the units), the rate (KL to the prior), the direct-decode
error and the share of variance the code explains; ``eval`` the MIG / DCI of the code at one beta or,
with ``--betas``, at several as a curve. Codes files (.npz) hold ``codes`` [n, ...] and ``beta``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from ._common import (IMAGE_SUFFIXES, add_device_flag, add_overwrite_flag, add_recipe_verbs, check_root, add_run_data_flags,
                      add_weights_flag, input_file, output_path, prepare_output, resolve_model_dir, resolve_weights, numpy_seed, run_dataset)
from .._checks import a_or_an

DEFAULT_SWEEP = "0.1,0.3,0.5,0.7,0.9"


def register(sub) -> None:
    p = sub.add_parser("multibeta", help="denoising multi-beta VAE: train, encode/decode/denoise at any beta, "
                       "sweep, traverse, edit, evaluate", description=__doc__.split("\n\n")[0],
                       epilog="Run 'diffrep multibeta VERB --help' for a verb's flags.")
    verbs = p.add_subparsers(dest="multibeta_command", metavar="VERB")
    add_recipe_verbs(verbs, "multibeta/", "train a multibeta/ recipe, both phases (same flags as diffrep train)")

    e = verbs.add_parser("encode", help="encode dataset images at a beta; write the codes (.npz)")
    _model_flags(e, n=64)
    add_run_data_flags(e)
    e.add_argument("--beta", type=float, default=None, help="beta of the code (default: the model's representation_beta)")
    e.add_argument("--noise", action="store_true", help="a draw f + sigma_beta xi of q(z_beta | x) instead of the mean f")
    e.set_defaults(func=_encode, out_default="codes.npz")

    d = verbs.add_parser("decode", help="decode codes (.npz) to images: directly at their beta, or --denoise first")
    _model_flags(d, n=None)
    d.add_argument("--codes", required=True, help=".npz with 'codes' [n, ...] (and 'beta', written by encode)")
    d.add_argument("--beta", type=float, default=None, help="beta of the codes (default: the file's 'beta')")
    d.add_argument("--denoise", action="store_true", help="denoise to beta = 0 (Algorithm 2) before decoding at 0")
    d.set_defaults(func=_decode, out_default="decoded.png")

    n = verbs.add_parser("denoise", help="run Algorithm 2 on codes (.npz) from one beta down to a lower one")
    _model_flags(n, n=None)
    n.add_argument("--codes", required=True, help=".npz with 'codes' [n, ...] (and 'beta')")
    n.add_argument("--beta-from", type=float, default=None, help="beta of the codes (default: the file's 'beta')")
    n.add_argument("--beta-to", type=float, default=0.0, help="beta to denoise to (default 0)")
    n.add_argument("--png", default=None, help="also decode the result (at --beta-to) into this PNG")
    n.set_defaults(func=_denoise, out_default="denoised.npz")

    s = verbs.add_parser("sweep", help="Fig. 2: images encoded at several beta, decoded directly and after denoising")
    _model_flags(s, n=4)
    add_run_data_flags(s)
    s.add_argument("--betas", default=DEFAULT_SWEEP, help="comma-separated betas (default %(default)s)")
    s.set_defaults(func=_sweep, out_default="sweep.png")

    v = verbs.add_parser("traverse", help="traversals of the disentangled code (vector latents), denoised and decoded")
    _model_flags(v, n=1)
    add_run_data_flags(v)
    v.add_argument("--beta", type=float, default=None, help="beta of the code (default: representation_beta)")
    v.add_argument("--dims", default=None, help="comma-separated latent units (default: all)")
    v.add_argument("--values", default="-2,-1,0,1,2", help="values each unit takes (default %(default)s; write --values=-1,1 "
                   "with '=' when the list starts with a minus)")
    v.add_argument("--direct", action="store_true", help="decode directly at beta instead of denoising first")
    v.set_defaults(func=_traverse, out_default="traverse.png")

    a = verbs.add_parser("edit", help="Fig. 1c: move codes along one direction, then denoise and decode")
    _model_flags(a, n=4)
    add_run_data_flags(a)
    a.add_argument("--beta", type=float, default=None, help="beta of the code (default: representation_beta)")
    a.add_argument("--direction", required=True, help="a latent unit k (the unit axis e_k) or a .npy file of the "
                   "latent's shape")
    a.add_argument("--alphas", default="-2,-1,0,1,2", help="step sizes along the direction (default %(default)s; write "
                   "--alphas=-1,1 with '=' when the list starts with a minus)")
    a.add_argument("--direct", action="store_true", help="decode directly at beta instead of denoising first")
    a.set_defaults(func=_edit, out_default="edit.png")

    g = verbs.add_parser("sample", help="unconditional generation (Table 3): the prior, all N denoising steps, decode")
    _model_flags(g, n=16)
    g.set_defaults(func=_sample, out_default="samples.png")

    c = verbs.add_parser("curve", help="per beta: sigma_beta (per-unit: RMS over units), rate, direct-decode error, variance explained")
    _model_flags(c, n=512, out=False)
    add_run_data_flags(c)
    c.add_argument("--betas", default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1",
                   help="comma-separated increasing betas (default %(default)s)")
    c.add_argument("--json", default=None, help="write the curve here")
    c.set_defaults(func=_curve, out_default=None)

    m = verbs.add_parser("eval", help="MIG / DCI of the code at one beta, or at several (--betas) as a curve")
    _model_flags(m, n=None, out=False)
    add_run_data_flags(m)
    grp = m.add_mutually_exclusive_group()
    grp.add_argument("--beta", type=float, default=None, help="one beta (default: representation_beta)")
    grp.add_argument("--betas", default=None, help="comma-separated betas: the metrics as a curve over beta")
    m.add_argument("--metrics", default="mig,dci", help="comma-separated subset of mig,dci,sap,modularity_explicitness,"
                   "infomec (default %(default)s)")
    m.add_argument("--eval", choices=("quick", "full"), default="quick",
                   help="sample sizes: quick (2000 / 1000) or full (10000 / 5000, disentanglement_lib's)")
    m.add_argument("--num-train", type=int, default=None, help="training points (overrides --eval's size)")
    m.add_argument("--num-test", type=int, default=None, help="test points (overrides --eval's size)")
    m.add_argument("--json", default=None, help="write the results here")
    m.set_defaults(func=_eval, out_default=None)


def _model_flags(p, n: int | None, out: bool = True) -> None:
    """The flags of every verb; ``out``: the verb writes a file named by ``--out`` (curve and eval write --json only:
    their --out was accepted and nothing written)."""
    p.add_argument("model", help="saved MultiBeta folder, or a run folder (its final/)")
    add_weights_flag(p)
    if n is not None:
        p.add_argument("--n", type=int, default=n, help=f"number of images (default {n})")
    p.add_argument("--seed", type=numpy_seed, default=0, help="seed of every draw: dataset images, noise, metric samples "
                   "(default 0)")
    add_device_flag(p)
    if out:
        p.add_argument("--out", default=None, help="output file (default: inside MODEL; see --overwrite)")
    add_overwrite_flag(p, "output file (--out, --json, --png)")


# -- helpers -----------------------------------------------------------------------------------------------

def parse_floats(text: str, flag: str) -> list[float]:
    """'0.1,0.3' -> [0.1, 0.3]; a clear error naming ``flag`` otherwise."""
    import math

    try:
        vals = [float(t) for t in str(text).split(",") if t.strip() != ""]
    except ValueError:
        raise ValueError(f"{flag} must be comma-separated numbers, got {text!r}") from None
    if not vals or not all(math.isfinite(v) for v in vals):
        raise ValueError(f"{flag} must be comma-separated finite numbers, got {text!r}")
    return vals


def parse_ints(text: str, flag: str) -> list[int]:
    try:
        vals = [int(t) for t in str(text).split(",") if t.strip() != ""]
    except ValueError:
        raise ValueError(f"{flag} must be comma-separated integers, got {text!r}") from None
    if not vals:
        raise ValueError(f"{flag} must name at least one integer, got {text!r}")
    return vals


def _device(args):
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is visible")
    return torch.device("cuda" if args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
                        else "cpu")


def load_model(args, *, need_denoiser: bool = False):
    """The MultiBeta of ``args.model`` (eval mode) and its device; clear errors for a wrong folder."""
    from ..methods.multibeta import MultiBeta
    from ..nn import load_pretrained

    if getattr(args, "n", None) is not None and args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    _check_outputs(args)  # the files named on the command line, before the model folder is read
    # the input files before the model: a mistyped name is refused at once, not after loading the weights
    if getattr(args, "codes", None) is not None:
        codes_file(args.codes)
    if getattr(args, "direction", None) is not None:
        direction_source(args.direction)
    for flag, parse in (("betas", parse_floats), ("values", parse_floats), ("alphas", parse_floats), ("dims", parse_ints)):
        if getattr(args, flag, None) is not None:  # and the number lists, read by the verbs after the model
            parse(getattr(args, flag), f"--{flag}")
    check_root(getattr(args, "root", None))
    path = Path(args.model)
    if not path.exists():  # a file: resolve_model_dir names the folder holding it
        raise FileNotFoundError(f"model folder {path} does not exist (a saved MultiBeta, e.g. a run's final/)")
    path = resolve_model_dir(path)  # a run folder: its final/ (the run printed by 'diffrep train' was refused)
    _check_outputs(args, default=True)  # the default name inside MODEL, now known to be a model's folder
    device = _device(args)
    weights = resolve_weights(path, args.weights, f"diffrep multibeta {args.multibeta_command}")
    model = load_pretrained(path, weights=weights, map_location=device).eval()
    if not isinstance(model, MultiBeta):
        raise ValueError(f"{path} holds {a_or_an(type(model).__name__)}, not a MultiBeta model")
    if need_denoiser and not int(model.denoiser.schedule_set):
        # "use the run's final/" was said of a run's own final/ too (a run of phases [1])
        hint = ("use the run's final/" if path.name == "final" and path.parent.name == "phase1" else
                f"train it: diffrep train RECIPE --phases '[2]' --vae_from {path}")
        raise ValueError(f"{path}: the latent diffusion of this model was never trained (phase 1 only); denoising, "
                         f"sampling and the sweep need phase 2 ({hint}; or decode directly)")
    return model, device


def _check_outputs(args, default: bool = False) -> None:
    """The files the verb will write, checked before the model loads (:func:`._common.prepare_output`): a folder
    written as FOLDER.npz, an unwritable folder and an existing file without --overwrite (the default names
    inside MODEL silently replaced an earlier decode, sweep, ...) fail at once, not after the work. ``default``:
    the default ``--out`` inside MODEL (once MODEL is known to be a model's folder); else the given flags."""
    name = getattr(args, "out_default", None)
    if name is not None and (args.out is None) == default:
        prepare_output(_out(args), suffixes=(".npz",) if name.endswith(".npz") else IMAGE_SUFFIXES,
                       overwrite=args.overwrite)
    if not default:
        prepare_output(getattr(args, "json", None), "--json", overwrite=args.overwrite)
        prepare_output(getattr(args, "png", None), "--png", suffixes=IMAGE_SUFFIXES, overwrite=args.overwrite)


def _check_beta(model, beta, flag: str) -> float:
    bmax = model.config.vae.beta_max
    b = model.config.representation_beta if beta is None else float(beta)
    if not 0 <= b <= bmax:
        raise ValueError(f"{flag} must lie in [0, B={bmax:g}], got {beta!r}")
    return b


def dataset_for(args, model):
    """The dataset of a verb: the run's saved data settings under the command line's flags; its images must
    have the model's size."""
    ds, settings = run_dataset(args)
    want = model.config.vae.image_size
    x0 = ds[0][0]
    if x0.shape[-1] != want or x0.shape[0] != model.config.vae.in_channels:
        raise ValueError(f"the model reads {model.config.vae.in_channels}x{want}x{want} images but {settings['dataset']} "
                         f"with options {settings['options']} and pool {settings['pool']} gives {tuple(x0.shape)}")
    return ds, settings


def _images(args, model, device):
    import torch

    ds, settings = dataset_for(args, model)
    g = torch.Generator().manual_seed(args.seed)
    idx = torch.randint(0, len(ds), (args.n,), generator=g).tolist()
    return torch.stack([ds[i][0] for i in idx]).float().to(device), idx, ds


def _out(args) -> Path:
    """The verb's output file: ``--out``, else its default name (``out_default``) inside MODEL."""
    return Path(args.out) if args.out else Path(args.model) / args.out_default


def _save_png(images, path: Path, nrow: int) -> None:
    from ..viz import save_image
    from ..viz.grids import legible_scale

    # enlarged to at least 128 px per image, as 'diffrep sample' does: the CPU recipes' 32 px grids were 200 px wide
    save_image(images.float().cpu(), path, nrow=max(1, int(nrow)), value_range=(-1, 1),
               scale=legible_scale(images.shape[-1], min_scale=1))
    print(f"wrote {path}", file=sys.stderr)


def on_grid(model, beta: float, flag: str) -> float:
    """The grid value i tau that Algorithm 2 starts from (or stops at) for ``beta`` (LatentDenoiser.grid_index), with a
    note on stderr when ``beta`` is off the grid: the chain snapped it silently, and a denoised file recorded the
    unsnapped value (docs/methods/multibeta.md#phase-2-the-latent-diffusion)."""
    den = model.denoiser
    snapped = den.grid_index(beta, flag) * den.config.tau
    if abs(snapped - beta) > 1e-9 * den.config.beta_max:
        print(f"note: {flag} {beta:g} is off the grid of Algorithm 2 (tau = B/N = {den.config.tau:g}); the chain "
              f"runs from the nearest grid value, {snapped:g} (pass a multiple of tau to avoid this)", file=sys.stderr)
    return snapped


def codes_file(path) -> Path:
    """``--codes`` as an existing file, else an error naming it (checked again before the model loads)."""
    return input_file(path, "--codes", "the .npz file that 'encode' or 'denoise' wrote")


def read_codes(path, model) -> tuple:
    """(codes tensor, beta or None) from a codes .npz; clear errors for a missing file or a wrong shape."""
    import numpy as np
    import torch

    p = codes_file(path)
    try:
        z = np.load(p, allow_pickle=False)
    except (OSError, EOFError, ValueError):  # numpy's ValueError advises allow_pickle=True, which is never taken here
        raise ValueError(f"--codes: {p} is not an .npz archive of arrays (write one with 'encode', or numpy.savez "
                         "with 'codes' and 'beta')") from None
    if not isinstance(z, np.lib.npyio.NpzFile):  # a bare .npy array: np.load returns the array itself
        raise ValueError(f"--codes: {p} is a single .npy array; pass an .npz holding 'codes' [n, ...] and 'beta' "
                         "(numpy.savez(F, codes=..., beta=...), as 'encode' writes)")
    with z:
        try:
            if "codes" not in z.files:
                raise ValueError(f"--codes: {p} has no array 'codes' (it has {', '.join(z.files) or 'none'})")
            codes = np.asarray(z["codes"])
            beta = _file_beta(z["beta"], p) if "beta" in z.files else None
        except (OSError, EOFError) as exc:
            raise ValueError(f"--codes: {p} is not a readable .npz file: {exc}") from None
        except ValueError as exc:  # an object array inside: numpy's pickle advice, never taken here
            if str(exc).startswith("--codes"):
                raise
            raise ValueError(f"--codes: {p} holds object (pickled) arrays, which are never loaded; save plain "
                             "numeric arrays") from None
    shape = model.config.vae.latent_shape
    if codes.ndim != 1 + len(shape) or tuple(codes.shape[1:]) != shape or codes.shape[0] < 1:
        raise ValueError(f"--codes: {p} holds codes of shape {codes.shape}; this model's latent is {shape} "
                         f"(expected [n, {', '.join(map(str, shape))}])")
    if not np.issubdtype(codes.dtype, np.floating) or not np.isfinite(codes).all():
        raise ValueError(f"--codes: {p}: codes must be finite floats")
    return torch.from_numpy(codes.astype(np.float32)), beta


def _file_beta(value, p: Path) -> float:
    """The 'beta' entry of a codes file: one real number (encode writes a scalar); the range is checked with the
    model's B by the verb."""
    import numpy as np

    arr = np.asarray(value)
    if arr.size != 1 or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"--codes: {p}: 'beta' must be one number (the beta of every code), got {arr.dtype} of shape "
                         f"{arr.shape}; pass --beta to override it")
    return float(arr.reshape(()))


def _generator(device, seed: int):
    import torch

    return torch.Generator(device=device).manual_seed(int(seed))


# -- verbs -------------------------------------------------------------------------------------------------

def _encode(args) -> int:
    import numpy as np

    model, device = load_model(args)
    beta = _check_beta(model, args.beta, "--beta")
    x, idx, ds = _images(args, model, device)
    z = model.encode(x, beta, noise=args.noise, generator=_generator(device, args.seed))
    arrays = {"codes": z.cpu().numpy(), "beta": np.float64(beta), "indices": np.asarray(idx, np.int64),
              "noise": np.bool_(args.noise)}
    if getattr(ds, "factor_names", None):  # ground-truth data (also pooled): the factor classes of each image
        arrays["factors"] = np.stack([np.asarray(ds[i][1]) for i in idx]).astype(np.int64)
    out = _out(args)
    np.savez(output_path(out), **arrays)
    print(f"wrote {out}: {len(idx)} codes at beta = {beta:g}{' (with encoding noise)' if args.noise else ''}",
          file=sys.stderr)
    return 0


def _decode(args) -> int:
    model, device = load_model(args, need_denoiser=args.denoise)
    codes, file_beta = read_codes(args.codes, model)
    beta = args.beta if args.beta is not None else file_beta
    if beta is None:
        raise ValueError(f"--codes {args.codes} records no 'beta'; pass --beta")
    beta = _check_beta(model, beta, "--beta")
    if args.denoise:
        on_grid(model, beta, "--beta")
    z = codes.to(device)
    x = model.denoise_decode(z, beta, generator=_generator(device, args.seed)) if args.denoise else model.decode(z, beta)
    _save_png(x, _out(args), int(len(x) ** 0.5 + 0.999))
    return 0


def _denoise(args) -> int:
    import numpy as np

    model, device = load_model(args, need_denoiser=True)
    codes, file_beta = read_codes(args.codes, model)
    beta_from = args.beta_from if args.beta_from is not None else file_beta
    if beta_from is None:
        raise ValueError(f"--codes {args.codes} records no 'beta'; pass --beta-from")
    beta_from = _check_beta(model, beta_from, "--beta-from")
    beta_to = _check_beta(model, args.beta_to, "--beta-to")
    if beta_to > beta_from:
        raise ValueError(f"--beta-to ({beta_to:g}) must not exceed --beta-from ({beta_from:g}): denoising lowers beta")
    # the chain runs between grid values: the file records the beta its codes are at, and the message the steps run
    grid_from, grid_to = on_grid(model, beta_from, "--beta-from"), on_grid(model, beta_to, "--beta-to")
    steps = round((grid_from - grid_to) / model.denoiser.config.tau)
    z = model.denoise(codes.to(device), beta_from, beta_to, generator=_generator(device, args.seed))
    out = _out(args)
    np.savez(output_path(out), codes=z.cpu().numpy(), beta=np.float64(grid_to))
    print(f"wrote {out}: {len(z)} codes denoised from beta = {grid_from:g} to {grid_to:g} ({steps} step"
          f"{'' if steps == 1 else 's'} of Algorithm 2{': the codes are unchanged' if steps == 0 else ''})",
          file=sys.stderr)
    if args.png:
        _save_png(model.decode(z, beta_to), Path(args.png), int(len(z) ** 0.5 + 0.999))
    return 0


def _sweep(args) -> int:
    import torch

    model, device = load_model(args, need_denoiser=True)
    betas = [_check_beta(model, b, "--betas") for b in parse_floats(args.betas, "--betas")]
    for b in betas:
        on_grid(model, b, "--betas")
    x, _, _ = _images(args, model, device)
    res = model.beta_sweep(x, betas, generator=_generator(device, args.seed))
    # rows: per image, the input then the direct decodes, then the input again and the denoised decodes
    rows = []
    for i in range(len(x)):
        rows.append(torch.cat([x[i:i + 1], res["direct"][:, i]]))
        rows.append(torch.cat([x[i:i + 1], res["denoised"][:, i]]))
    _save_png(torch.cat(rows), _out(args), len(betas) + 1)
    print(f"columns: input, then beta = {', '.join(f'{b:g}' for b in betas)}; for each image a row decoded directly, "
          "then a row denoised to beta = 0 first", file=sys.stderr)
    return 0


def _traverse(args) -> int:
    model, device = load_model(args, need_denoiser=not args.direct)
    beta = _check_beta(model, args.beta, "--beta")
    if model.config.vae.latent != "vector":
        raise ValueError("traverse moves single latent units: it needs a vector latent (use 'edit' with a direction)")
    dims = None if args.dims is None else parse_ints(args.dims, "--dims")
    d = model.config.vae.latent_dim
    if dims is not None and any(not 0 <= k < d for k in dims):
        raise ValueError(f"--dims must be latent units in 0..{d - 1}, got {args.dims!r}")
    values = parse_floats(args.values, "--values")
    if not args.direct:
        on_grid(model, beta, "--beta")
    x, _, _ = _images(args, model, device)
    grid = model.traverse(x, beta, dims=dims, values=values, denoise=not args.direct,
                          generator=_generator(device, args.seed))
    _save_png(grid.reshape(-1, *grid.shape[3:]), _out(args), len(values))
    return 0


def direction_source(text: str) -> int | Path:
    """``--direction``: a latent unit index, else an existing file (checked again before the model loads)."""
    try:
        return int(text)
    except ValueError:
        p = Path(text)
    if not p.is_file():
        raise FileNotFoundError(f"--direction: {p} is neither a latent unit index nor an existing .npy file")
    return p


def _direction(text: str, model):
    import numpy as np
    import torch

    shape = model.config.vae.latent_shape
    k = direction_source(text)
    if isinstance(k, int):
        if len(shape) != 1 or not 0 <= k < shape[0]:
            raise ValueError(f"--direction {text}: a unit index needs a vector latent and 0 <= k < {shape[0] if len(shape) == 1 else '?'}"
                             "; pass a .npy file of the latent's shape otherwise")
        e = torch.zeros(shape)
        e[k] = 1.0
        return e
    p = k
    try:
        arr = np.load(p, allow_pickle=False)
    except (OSError, ValueError, EOFError):  # numpy's ValueError advises allow_pickle=True, which is never taken here
        raise ValueError(f"--direction: {p} is not a .npy array file (write one with numpy.save)") from None
    if not isinstance(arr, np.ndarray):  # an .npz archive
        arr.close()
        raise ValueError(f"--direction: {p} is an .npz archive; pass a .npy file holding one array (numpy.save)")
    if tuple(arr.shape) != shape or not np.issubdtype(arr.dtype, np.floating) or not np.isfinite(arr).all():
        raise ValueError(f"--direction: {p} must hold finite floats of the latent's shape {shape}, got {arr.shape} "
                         f"{arr.dtype}")
    return torch.from_numpy(arr.astype(np.float32))


def _edit(args) -> int:
    model, device = load_model(args, need_denoiser=not args.direct)
    beta = _check_beta(model, args.beta, "--beta")
    direction = _direction(args.direction, model)
    alphas = parse_floats(args.alphas, "--alphas")
    if not args.direct:
        on_grid(model, beta, "--beta")
    x, _, _ = _images(args, model, device)
    grid = model.edit(x, beta, direction.to(device), alphas, denoise=not args.direct,
                      generator=_generator(device, args.seed))
    import torch

    _save_png(torch.cat([x[:, None], grid], 1).reshape(-1, *grid.shape[2:]), _out(args), len(alphas) + 1)
    return 0


def _sample(args) -> int:
    model, device = load_model(args, need_denoiser=True)
    x = model.sample(args.n, generator=_generator(device, args.seed))
    _save_png(x, _out(args), int(args.n ** 0.5 + 0.999))
    return 0


def _curve(args) -> int:
    import math

    from ..analysis.multibeta import information_curve, informative_beta

    model, device = load_model(args)
    betas = [_check_beta(model, b, "--betas") for b in parse_floats(args.betas, "--betas")]
    if any(b2 <= b1 for b1, b2 in zip(betas, betas[1:])):  # information_curve's own message named "betas"
        raise ValueError(f"--betas must be strictly increasing, got {args.betas!r}")
    if args.n < 2:
        raise ValueError(f"--n must be >= 2 for a variance, got {args.n}")
    x, _, _ = _images(args, model, device)
    curve = information_curve(model.vae, x, betas)
    rep = model.config.representation_beta
    print(f"{'beta':>6s} {'sigma':>8s} {'rate':>9s} {'mse':>9s} {'explained':>9s}")
    for i, b in enumerate(curve["betas"]):
        mark = "  <- representation_beta" if abs(b - rep) < 1e-9 else ""
        print(f"{b:6.3f} {curve['sigma'][i]:8.4f} {curve['rate'][i]:9.3f} {curve['mse'][i]:9.5f} "
              f"{curve['explained'][i]:9.3f}{mark}")
    if not any(math.isfinite(r) for r in curve["explained"]):  # a bare "nan" column explained nothing
        why = ("it is relative to the beta = 0 code: add 0 to --betas" if curve["betas"][0] != 0.0 else
               f"the beta = 0 code's decode error ({curve['mse'][0]:.4g}) is not below the data's variance "
               f"({curve['variance']:.4g}): that code explains none of it (an untrained model?)")
        print(f"explained is nan: {why}", file=sys.stderr)
    try:
        curve["informative_beta_0.5"] = informative_beta({"betas": curve["betas"][1:], "explained": curve["explained"][1:]})
    except ValueError:
        curve["informative_beta_0.5"] = None
    curve["representation_beta"] = rep
    if args.json:
        output_path(args.json).write_text(json.dumps(curve, indent=1), encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


EVAL_KEYS = (("MIG", "mig"), ("DCI-D", "dci_disentanglement"), ("DCI-C", "dci_completeness"),
             ("DCI-I", "dci_informativeness_test"), ("SAP", "sap"), ("modularity", "modularity"),
             ("InfoM", "infom"))


def code_metrics(model, dataset, beta: float, device, metrics, sizes: str = "quick", seed: int = 0, *,
                 num_train: int | None = None, num_test: int | None = None) -> dict:
    """Metrics (diffrep.metrics.evaluate) of the encoder mean f(x, beta) on a ground-truth dataset, with the
    sample sizes of ``sizes`` (the quickstart's ``EVAL_SIZES``) unless ``num_train`` / ``num_test`` are given."""
    import numpy as np
    import torch

    from ..metrics import evaluate
    from .quickstart import EVAL_SIZES

    def rep(obs):
        x = torch.from_numpy(np.ascontiguousarray(obs)).permute(0, 3, 1, 2).float() * 2 - 1
        out = []
        with torch.no_grad():
            for i in range(0, len(x), 256):
                out.append(model.encode(x[i:i + 256].to(device), beta).reshape(min(256, len(x) - i), -1).cpu())
        return torch.cat(out).double().numpy()

    s = EVAL_SIZES[sizes]
    res = evaluate(dataset, rep, metrics=tuple(metrics), seed=seed,  # an explicit 0 is evaluate()'s error, not the default
                   num_train=s["num_train"] if num_train is None else num_train,
                   num_test=s["num_test"] if num_test is None else num_test)
    return {key: float(res[key]) for _, key in EVAL_KEYS if key in res}


def _eval(args) -> int:
    model, device = load_model(args)
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    known = ("mig", "dci", "sap", "modularity_explicitness", "infomec")
    bad = [m for m in metrics if m not in known]
    if bad or not metrics:
        raise ValueError(f"--metrics: unknown {bad or metrics}; choose from {', '.join(known)}")
    for flag, v in (("--num-train", args.num_train), ("--num-test", args.num_test)):
        if v is not None and v < 10:
            raise ValueError(f"{flag} must be >= 10, got {v}")
    ds, settings = dataset_for(args, model)
    if not hasattr(ds, "sample_observations_from_factors"):
        given = f"--dataset {settings['dataset']}" if args.dataset else f"the run's dataset {settings['dataset']}"
        raise ValueError(f"{given}: has no ground-truth factors (MIG / DCI need them); pass --dataset NAME of one "
                         "that has (dsprites, shapes3d, mpi3d_toy, cars3d, ...)")
    betas = ([_check_beta(model, args.beta, "--beta")] if args.betas is None
             else [_check_beta(model, b, "--betas") for b in parse_floats(args.betas, "--betas")])
    rows = []
    for b in betas:
        rows.append({"beta": b, **code_metrics(model, ds, b, device, metrics, args.eval, args.seed,
                                               num_train=args.num_train, num_test=args.num_test)})
    keys = [(name, key) for name, key in EVAL_KEYS if key in rows[0]]
    print(f"{'beta':>6s} " + " ".join(f"{name:>10s}" for name, _ in keys))
    rep = model.config.representation_beta
    for r in rows:
        mark = "  <- representation_beta" if abs(r["beta"] - rep) < 1e-9 else ""
        print(f"{r['beta']:6.3f} " + " ".join(f"{r[key]:10.3f}" for _, key in keys) + mark)
    if args.json:
        output_path(args.json).write_text(json.dumps({"dataset": settings["dataset"], "sizes": args.eval,
                                               "representation_beta": rep, "curve": rows}, indent=1), encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
