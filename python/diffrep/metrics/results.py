"""Metric results with provenance (docs/metrics.md#policy-parity-and-robust-modes, "Result files").

A :class:`Result` is a flat ``dict`` of named float scores (what the issue's score names index),
with the provenance in ``.meta``: the metric, its mode/variant, the estimator, sample sizes, seeds,
every guard that fired (``flags``) and the versions of diffrep, numpy, scipy, scikit-learn and torch.
``Result.to_json()`` gives ``{"scores": ..., "meta": ...}``; ``to_markdown()`` / ``to_csv()`` give a
table of the scores (a notebook renders a Result as that markdown table, ``_repr_markdown_``).
"""

from __future__ import annotations

import json
import math
import platform


def versions() -> dict:
    """Versions of the libraries a score can depend on (sklearn solvers changed between releases)."""
    import numpy
    import scipy
    import sklearn
    import torch

    from .. import __version__

    return {"diffrep": __version__, "numpy": numpy.__version__, "scipy": scipy.__version__,
            "scikit-learn": sklearn.__version__, "torch": torch.__version__,
            "python": platform.python_version()}


class Result(dict):
    """Flat dict of scores plus ``meta`` (metric, variant, sizes, seeds, flags, versions)."""

    def __init__(self, scores: dict, metric: str, variant: str, **meta):
        if not isinstance(scores, dict):
            raise TypeError(f"scores must be a dict of named scores, got {type(scores).__name__}")
        for name, v in (("metric", metric), ("variant", variant)):
            if not isinstance(v, str) or not v:
                raise TypeError(f"{name} must be a non-empty str (it labels the result), got {v!r}")
        super().__init__({k: _num(v) for k, v in scores.items()})
        flags = meta.pop("flags", None) or []
        self.meta = {"metric": metric, "variant": variant, **meta, "flags": list(flags),
                     "versions": versions()}

    @property
    def variant(self) -> str:
        return self.meta["variant"]

    @property
    def flags(self) -> list:
        return self.meta["flags"]

    def to_json(self) -> dict:
        return {"scores": {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in self.items()},
                "meta": _jsonable(self.meta)}

    def dumps(self, **kw) -> str:
        return json.dumps(self.to_json(), **kw)

    def scalar_items(self) -> list[tuple[str, float]]:
        """The (name, value) pairs that are numbers, in insertion order."""
        return [(k, v) for k, v in self.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]

    def to_markdown(self) -> str:
        """A markdown table of the scores, then the variant and every flag."""
        lines = ["| score | value |", "| --- | ---: |"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in self.scalar_items()]
        foot = [f"*{self.meta.get('metric')}* ({self.variant})"]
        foot += [f"- {f}" for f in self.flags]
        return "\n".join(lines) + "\n\n" + "\n".join(foot) + "\n"

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def to_csv(self) -> str:
        """``score,value`` rows (full precision; NaN as an empty value)."""
        rows = ["score,value"]
        rows += [f"{k},{'' if isinstance(v, float) and math.isnan(v) else repr(float(v))}" for k, v in self.scalar_items()]
        return "\n".join(rows) + "\n"


def merge(results: list, metric: str = "suite", **meta) -> Result:
    """Union of several results' scores; each part's meta is kept under ``meta['parts']``."""
    if not isinstance(results, (list, tuple)) or not all(isinstance(r, Result) for r in results):
        raise TypeError(f"results must be a list of Result, got {results!r:.80}")
    scores: dict = {}
    parts = []
    for r in results:
        scores.update(r)
        parts.append(r.meta)
    flags = [f"{p['metric']}: {f}" for p in parts for f in p["flags"]]
    return Result(scores, metric, "suite", parts=parts, flags=flags, **meta)


def _fmt(v) -> str:
    return "nan" if isinstance(v, float) and math.isnan(v) else f"{v:.4g}"


def _num(v):
    try:
        return float(v) if not isinstance(v, (int, bool)) else v
    except (TypeError, ValueError):
        return v


def _jsonable(x):
    import numpy as np

    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        return None if math.isnan(float(x)) else float(x)
    return x
