"""Latent-space figures: interpolation strips, traversals (static and animated), latent swaps.

Each builder takes ``decode``: a callable mapping a batch of codes [M, ...] to images [M, C, H, W],
so it works with any model (a VAE decoder, a diffusion decoder with fixed noise, ...).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from . import _checks
from .grids import make_grid

__all__ = ["lerp", "slerp", "interpolation_strip", "traversal_grid", "traversal_frames", "latent_swap_grid", "labelled_grid",
           "labelled_grid_figure"]

Decode = Callable[[torch.Tensor], torch.Tensor]


def _weights(n: int, like: torch.Tensor) -> torch.Tensor:
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n (the number of interpolation points) must be an int >= 2, got {n!r}")
    # integer codes get float weights (an integer linspace rounded them to 0 and 1)
    return torch.linspace(0, 1, n, dtype=like.dtype if like.is_floating_point() else torch.float32, device=like.device)


def _pair_and_weights(a, b, t, who: str, names=("a", "b")) -> torch.Tensor:
    """Checks two codes of one shape; returns the weights ``t`` (a tensor, sequence or number) as a finite vector."""
    for name, v in zip(names, (a, b)):
        # NaN codes interpolated to NaN images, complex ones to their real parts (integer codes are numbers)
        _checks.images(v, name, who)
    if a.shape != b.shape:
        raise ValueError(f"{who}: {names[0]} and {names[1]} differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    if not isinstance(t, torch.Tensor):  # a float raised "'float' object has no attribute 'reshape'"
        try:
            t = torch.as_tensor(t, dtype=a.dtype if a.is_floating_point() else torch.float32, device=a.device)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"{who}: t must be weights (a tensor, a sequence of numbers or a number), got "
                            f"{type(t).__name__}") from None
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{who}: t must hold real weights, got {t.dtype}")
    # on the codes' device: CPU weights (DiffAE.interpolate's) met codes on a GPU in torch.where and failed there
    t = t.to(a.device).reshape(-1)
    if not t.numel() or not bool(torch.isfinite(t).all()):
        raise ValueError(f"{who}: t must be a non-empty vector of finite weights, got {t.tolist()}")
    return t


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """(1 - t) a + t b for each weight of ``t`` (a tensor, a sequence or one number): returns [len(t), *a.shape]."""
    t = _pair_and_weights(a, b, t, "lerp").reshape(-1, *([1] * a.dim()))
    return (1 - t) * a[None] + t * b[None]


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor, eps: float = 1e-7, *, batched: bool = False) -> torch.Tensor:
    """Spherical interpolation sin((1-t)w)/sin(w) a + sin(tw)/sin(w) b, w the angle between a and b
    (Shoemake 1985; used for diffusion noise codes, e.g. DiffAE/DDIM interpolation). Falls back to lerp
    when a and b are (anti)parallel. ``t`` as in :func:`lerp`. Returns [len(t), *a.shape].

    ``batched=True``: a and b are batches [B, ...] and each pair a[i], b[i] is interpolated on its own
    angle, as DiffAE interpolates the x_T of each example (DiffAE Sec. 5.1); the default takes the whole
    tensor as one code. Computed in float64, returned in a's dtype."""
    t = _pair_and_weights(a, b, t, "slerp")
    eps = _checks.positive_float(eps, "eps")
    if not isinstance(batched, bool):
        raise TypeError(f"slerp: batched must be a bool, got {type(batched).__name__}")
    if batched and a.dim() < 1:
        raise ValueError("slerp: batched=True needs a and b of shape [B, ...], got 0-d tensors")
    rows = a.shape[0] if batched else 1
    af, bf = a.reshape(rows, -1).double(), b.reshape(rows, -1).double()
    cos = (af * bf).sum(1) / (af.norm(dim=1) * bf.norm(dim=1)).clamp_min(eps)
    omega = torch.arccos(cos.clamp(-1, 1))  # [rows]
    so = torch.sin(omega)
    flat = so < 1e-6  # (anti)parallel pairs: the linear blend
    td = t.double().reshape(-1, 1)  # [T, 1] against [rows]
    safe = torch.where(flat, torch.ones_like(so), so)
    wa = torch.where(flat, 1 - td, torch.sin((1 - td) * omega) / safe)
    wb = torch.where(flat, td.expand(-1, rows), torch.sin(td * omega) / safe)
    out = wa[..., None] * af[None] + wb[..., None] * bf[None]  # [T, rows, D]
    return out.to(a.dtype).reshape(len(t), *a.shape)


def interpolation_strip(decode: Decode, z_a: torch.Tensor, z_b: torch.Tensor, n: int = 8, *,
                        mode: str = "lerp") -> torch.Tensor:
    """Decode n codes between ``z_a`` and ``z_b`` (a single code each) -> images [n, C, H, W]."""
    if mode not in ("lerp", "slerp"):
        raise ValueError(f"mode must be 'lerp' or 'slerp', got {mode!r}")
    _checks.decoder(decode)
    _pair_and_weights(z_a, z_b, 0.0, "interpolation_strip", ("z_a", "z_b"))
    w = _weights(n, z_a)
    codes = lerp(z_a, z_b, w) if mode == "lerp" else slerp(z_a, z_b, w)
    return decode(codes)


def _check_code(z: torch.Tensor) -> None:
    _checks.code(z, "z", "traversal")
    if z.dim() != 1:
        raise ValueError(f"traversal: z must be a single code of shape [d], got {tuple(z.shape)}")


def _traversal_args(z: torch.Tensor, values, dims) -> tuple[torch.Tensor, list[int]]:
    """The checked ``values`` (a non-empty finite vector) and ``dims`` (indices into ``z``)."""
    _check_code(z)
    try:
        values = torch.as_tensor(values, dtype=z.dtype, device=z.device).reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"values must be a vector of numbers, got {type(values).__name__}") from None
    if values.numel() == 0 or not torch.isfinite(values).all():
        raise ValueError(f"values must be a non-empty vector of finite numbers, got {values.tolist()}")
    dims = list(range(z.shape[0])) if dims is None else list(dims)
    if not dims or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or not 0 <= d < z.shape[0]
                       for d in dims):
        raise ValueError(f"dims must be a non-empty list of ints in [0, {z.shape[0]}) (the entries of z), got {dims}")
    return values, [int(d) for d in dims]


def _grid_args(padding, pad_value) -> None:
    _checks.non_negative_int(padding, "padding")
    _checks.pad_value(pad_value)


def traversal_grid(decode: Decode, z: torch.Tensor, values: Sequence[float] | torch.Tensor, *,
                   dims: Sequence[int] | None = None, padding: int = 2, pad_value: float = 0.0) -> torch.Tensor:
    """Static traversal (disentanglement_lib ``latent_traversal_1d_multi_dim``): row i sets dimension
    ``dims[i]`` of code ``z`` [d] to each of ``values`` in turn. Returns the grid [C, H', W']."""
    _checks.decoder(decode)
    values, dims = _traversal_args(z, values, dims)
    _grid_args(padding, pad_value)
    codes = z[None, None].repeat(len(dims), len(values), 1)
    for i, d in enumerate(dims):
        codes[i, :, d] = values
    images = decode(codes.reshape(-1, z.shape[0]))
    return make_grid(images, nrow=len(values), padding=padding, pad_value=pad_value)


def traversal_frames(decode: Decode, z: torch.Tensor, values: Sequence[float] | torch.Tensor, *,
                     dims: Sequence[int] | None = None, padding: int = 2, pad_value: float = 0.0) -> list[torch.Tensor]:
    """Animated traversal (disentanglement_lib ``animated_traversals``): frame k is a grid with one cell per
    dimension, that dimension set to ``values[k]``. Save with :func:`diffrep.viz.save_gif`."""
    _checks.decoder(decode)
    values, dims = _traversal_args(z, values, dims)
    _grid_args(padding, pad_value)  # checked before decoding, not after
    codes = z[None, None].repeat(len(values), len(dims), 1)
    for i, d in enumerate(dims):
        codes[:, i, d] = values
    images = decode(codes.reshape(-1, z.shape[0]))
    images = images.reshape(len(values), len(dims), *images.shape[1:])
    nrow = max(1, int(round(len(dims) ** 0.5)))
    return [make_grid(images[k], nrow=nrow, padding=padding, pad_value=pad_value) for k in range(len(values))]


def latent_swap_grid(decode: Decode, targets: torch.Tensor, source: torch.Tensor, *, inputs: torch.Tensor | None = None,
                     units: Sequence[int] | None = None, padding: int = 2, pad_value: float = 0.0) -> torch.Tensor:
    """EncDiff/DisDiff interchange grid: the first row shows ``inputs`` (or the decoded ``targets``);
    row i+1 decodes the targets with latent unit ``units[i]`` replaced by the source's unit.

    ``targets`` [B, N, ...] holds B codes of N units (a [B, N] vector code has scalar units);
    ``source`` [N, ...] is one code. Returns the grid [C, H', W'] with B columns.
    """
    _checks.decoder(decode)
    _checks.code(targets, "targets", "latent_swap_grid")
    _checks.code(source, "source", "latent_swap_grid")
    if inputs is not None:
        _checks.images(inputs, "inputs", "latent_swap_grid")
    _grid_args(padding, pad_value)
    if targets.dim() < 2 or source.shape != targets.shape[1:]:
        raise ValueError(f"targets must be [B, N, ...] and source [N, ...]; got {tuple(targets.shape)} and {tuple(source.shape)}")
    N = targets.shape[1]
    units = list(range(N)) if units is None else list(units)
    if not units or any(isinstance(u, bool) or not isinstance(u, (int, np.integer)) or not 0 <= u < N for u in units):
        raise ValueError(f"units must be a non-empty list of ints in [0, {N}), got {units}")
    B = targets.shape[0]
    swapped = targets[None].repeat(len(units), *([1] * targets.dim()))
    for i, u in enumerate(units):
        swapped[i, :, u] = source[u]
    images = decode(swapped.reshape(-1, *targets.shape[1:]))
    top = inputs if inputs is not None else decode(targets)
    if top.shape[0] != B or top.shape[1:] != images.shape[1:]:
        raise ValueError(f"inputs must have shape {(B, *images.shape[1:])} (B from targets), got {tuple(top.shape)}")
    return make_grid(torch.cat([top, images]), nrow=B, padding=padding, pad_value=pad_value)


def labelled_grid_figure(rows: Sequence[torch.Tensor], *, row_labels: Sequence[str] | None = None,
                         col_labels: Sequence[str] | None = None, value_range: tuple[float, float] = (0.0, 1.0),
                         title: str | None = None, cell_inches: float = 1.0, xlabel: str | None = None,
                         ylabel: str | None = None):
    """A matplotlib ``Figure`` of image rows ([n_cols, C, H, W] each) with row/column labels (e.g. "Factor i")
    and optional axis titles; pixels drawn as sharp squares whatever the cell size.

    Built with ``matplotlib.figure.Figure`` directly: pyplot is not imported and the process-wide backend is
    left as it is (a notebook displays the returned figure; ``fig.savefig`` writes it). Needs matplotlib
    (an optional dependency)."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("labelled_grid needs matplotlib, an optional dependency: pip install matplotlib",
                          name="matplotlib") from exc
    if not isinstance(rows, (list, tuple)) or not all(isinstance(r, torch.Tensor) for r in rows):
        raise TypeError(f"labelled_grid: rows must be a sequence of image tensors [n_cols, C, H, W], got "
                        f"{type(rows).__name__}")
    if not rows:
        raise ValueError("labelled_grid: no rows")
    for r in rows:
        _checks.images(r, "rows", "labelled_grid")
        if r.dim() != 4 or r.shape[1] not in (1, 3):
            raise ValueError(f"labelled_grid: rows must be [n_cols, C in (1, 3), H, W] each, got {tuple(r.shape)}")
    for name, v in (("title", title), ("xlabel", xlabel), ("ylabel", ylabel)):
        if v is not None and not isinstance(v, str):
            raise TypeError(f"{name} must be a str or None, got {v!r}")
    for name, v in (("row_labels", row_labels), ("col_labels", col_labels)):
        if v is not None:
            _checks.labels(v, name)
    lo, hi = _checks.value_range(value_range)
    cell_inches = _checks.positive_float(cell_inches, "cell_inches")
    ncols = rows[0].shape[0]
    if any(r.shape[0] != ncols for r in rows):
        raise ValueError("labelled_grid: rows must have the same number of images")
    if row_labels is not None and len(row_labels) != len(rows):
        raise ValueError(f"row_labels has {len(row_labels)} entries for {len(rows)} rows")
    if col_labels is not None and len(col_labels) != ncols:
        raise ValueError(f"col_labels has {len(col_labels)} entries for {ncols} columns")
    fig = Figure(figsize=(ncols * cell_inches, len(rows) * cell_inches))
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    for i, row in enumerate(rows):
        for j in range(ncols):
            img = ((row[j].detach().float().cpu() - lo) / (hi - lo)).clamp(0, 1)
            ax = axes[i][j]
            if img.shape[0] == 1:
                ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.imshow(img.permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if j == 0 and row_labels is not None:
                ax.set_ylabel(row_labels[i])
            if i == 0 and col_labels is not None:
                ax.set_title(col_labels[j], fontsize=8)
    if title:
        fig.suptitle(title)
    if xlabel:
        fig.supxlabel(xlabel)
    if ylabel:
        fig.supylabel(ylabel)
    return fig


def labelled_grid(rows: Sequence[torch.Tensor], path: str | os.PathLike, *, row_labels: Sequence[str] | None = None,
                  col_labels: Sequence[str] | None = None, value_range: tuple[float, float] = (0.0, 1.0),
                  title: str | None = None, cell_inches: float = 1.0, dpi: int = 100) -> Path:
    """Save :func:`labelled_grid_figure` of ``rows`` to ``path`` (PNG, PDF, ... by suffix); returns the path.
    The process-wide matplotlib backend is not touched."""
    fig = labelled_grid_figure(rows, row_labels=row_labels, col_labels=col_labels, value_range=value_range,
                               title=title, cell_inches=cell_inches)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path
