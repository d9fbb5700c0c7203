"""Training curves of a run as a matplotlib ``Figure`` with labelled axes (no pyplot, no backend switch)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Sequence

from . import _checks

__all__ = ["training_curves"]


def _records(source) -> list[dict]:
    if isinstance(source, (str, os.PathLike)):
        p = Path(source)
        if p.is_dir():
            p = p / "metrics.jsonl"
        if not p.is_file():
            raise FileNotFoundError(f"{p}: no metrics.jsonl (a run folder written by diffrep.train)")
        records = []
        for k, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{p}: line {k} is not a JSON record ({exc.msg}; a run killed mid-write leaves a "
                                 "truncated last line: delete it)") from None
            if not isinstance(rec, dict):
                raise ValueError(f"{p}: line {k} is not a JSON object (a metrics record), got {type(rec).__name__}")
            records.append(rec)
        return records
    if isinstance(source, (list, tuple)) and all(isinstance(r, dict) for r in source):
        return list(source)
    raise TypeError("training_curves: source must be a run folder, a metrics.jsonl path or a list of records, got "
                    f"{type(source).__name__}")


def training_curves(source, keys: Sequence[str] | None = None, *, log_y: Sequence[str] = ("loss",),
                    panel_inches: tuple[float, float] = (4.0, 2.6)):
    """One panel per logged quantity against the optimiser step (x: "optimiser step", y: the quantity's
    name), from a run folder, its ``metrics.jsonl`` or ``Trainer.train``'s records. ``keys`` picks the
    quantities (default: every numeric one but ``lr``); those named in ``log_y`` use a log scale when
    positive. Returns a ``matplotlib.figure.Figure``."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("training_curves needs matplotlib, an optional dependency: pip install matplotlib",
                          name="matplotlib") from exc
    # one name is one quantity (a str was read letter by letter: "loss" -> "l", "o", ...)
    keys = [keys] if isinstance(keys, str) else keys
    log_y = (log_y,) if isinstance(log_y, str) else log_y
    if keys is not None:
        _checks.labels(keys, "keys")
    _checks.labels(log_y, "log_y")
    if not isinstance(panel_inches, (tuple, list)) or len(panel_inches) != 2:
        raise ValueError(f"panel_inches must be (width, height) in inches, got {panel_inches!r}")
    panel_inches = tuple(_checks.positive_float(v, "panel_inches") for v in panel_inches)
    records = _records(source)
    if not records:
        raise ValueError("training_curves: no records")
    if keys is None:
        keys = []
        for r in records:
            keys += [k for k, v in r.items() if k not in ("step", "lr") and k not in keys
                     and isinstance(v, (int, float)) and not isinstance(v, bool)]
    keys = list(keys)
    if not keys:
        raise ValueError("training_curves: no numeric quantities to plot")
    missing = [k for k in keys if not any(k in r for r in records)]
    if missing:
        raise ValueError(f"training_curves: keys {missing} never logged (logged: {sorted({k for r in records for k in r})})")
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig = Figure(figsize=(panel_inches[0] * cols, panel_inches[1] * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, k in enumerate(keys):
        ax = axes[i // cols][i % cols]
        pts = [(r["step"], r[k]) for r in records if k in r and r[k] is not None and "step" in r]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="." if len(pts) < 30 else None)
        ax.set_xlabel("optimiser step")
        ax.set_ylabel(k)
        if k in log_y and pts and all(p[1] > 0 for p in pts):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    for j in range(len(keys), rows * cols):
        axes[j // cols][j % cols].set_visible(False)
    return fig
