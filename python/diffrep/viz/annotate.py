"""Labelled image grids drawn with Pillow alone (no matplotlib): the quickstart's traversal figure.

:func:`labelled_rows_image` returns the PIL image (a notebook shows it); :func:`labelled_rows` saves it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch

from . import _checks
from .grids import make_grid, to_pil, upscale

__all__ = ["labelled_rows", "labelled_rows_image"]


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType: a scalable font
    except (TypeError, OSError, AttributeError):
        return ImageFont.load_default()


def labelled_rows(rows: torch.Tensor, path: str | os.PathLike, *, row_labels: Sequence[str],
                  group_size: int | None = None, group_labels: Sequence[str] | None = None, title: str | None = None,
                  value_range: tuple[float, float] = (-1.0, 1.0), scale: int = 4, padding: int = 1,
                  group_gap: int = 6, font_size: int = 16) -> Path:
    """Save :func:`labelled_rows_image` of ``rows`` to ``path``; returns the path."""
    path = _checks.image_path(path)
    canvas = labelled_rows_image(rows, row_labels=row_labels, group_size=group_size, group_labels=group_labels,
                                 title=title, value_range=value_range, scale=scale, padding=padding,
                                 group_gap=group_gap, font_size=font_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def labelled_rows_image(rows: torch.Tensor, *, row_labels: Sequence[str], group_size: int | None = None,
                        group_labels: Sequence[str] | None = None, title: str | None = None,
                        value_range: tuple[float, float] = (-1.0, 1.0), scale: int = 4, padding: int = 1,
                        group_gap: int = 6, font_size: int = 16):
    """``rows`` [R, N, C, H, W] as one PIL image: R image rows of N cells, enlarged ``scale`` times by
    nearest-neighbour, each row labelled on its left; columns in groups of ``group_size`` (default N)
    separated by ``group_gap`` pixels (before enlarging), each group titled by ``group_labels``."""
    from PIL import Image, ImageDraw

    if not isinstance(rows, torch.Tensor) or rows.dim() != 5 or min(rows.shape) < 1:
        raise ValueError(f"rows must be a tensor [R, N, C, H, W], got {tuple(getattr(rows, 'shape', ()))}")
    _checks.images(rows, "rows", "labelled_rows")
    R, N = rows.shape[:2]
    row_labels = _checks.labels(row_labels, "row_labels")
    if len(row_labels) != R:
        raise ValueError(f"row_labels has {len(row_labels)} entries for {R} rows")
    if group_size is not None:  # int() truncated 2.5 and read True as 1
        _checks.positive_int(group_size, "group_size")
    g = N if group_size is None else group_size
    if N % g:
        raise ValueError(f"group_size must divide the {N} columns, got {group_size}")
    G = N // g
    if group_labels is not None and len(_checks.labels(group_labels, "group_labels")) != G:
        raise ValueError(f"group_labels has {len(group_labels)} entries for {G} groups")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive int, got {scale!r}")
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a str or None, got {title!r}")
    _checks.non_negative_int(padding, "padding")
    _checks.non_negative_int(group_gap, "group_gap")
    _checks.positive_int(font_size, "font_size")
    lo = _checks.value_range(value_range)[0]
    groups = [upscale(to_pil(make_grid(rows[:, k * g:(k + 1) * g].reshape(R * g, *rows.shape[2:]), nrow=g,
                                       padding=padding, pad_value=lo), value_range), scale) for k in range(G)]
    font = _font(font_size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def text_w(s: str) -> int:
        box = probe.textbbox((0, 0), s, font=font)
        return box[2] - box[0]

    line = font_size + 6
    left = max(text_w(s) for s in row_labels) + 12
    top = (line if title else 0) + (line if group_labels is not None else 0) + 4
    gap = group_gap * scale
    width = left + sum(im.width for im in groups) + gap * (G - 1) + 4
    height = top + groups[0].height + 4
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    y0 = 2
    if title:
        draw.text((4, y0), title, fill="black", font=font)
        y0 += line
    x = left
    for k, im in enumerate(groups):
        canvas.paste(im.convert("RGB"), (x, top))
        if group_labels is not None:
            draw.text((x + 2, y0), group_labels[k], fill="black", font=font)
        x += im.width + gap
    cell = (rows.shape[3] + padding) * scale
    for i, s in enumerate(row_labels):
        y = top + padding * scale + i * cell + (rows.shape[3] * scale - font_size) // 2
        draw.text((4, y), s, fill="black", font=font)
    return canvas
