"""Metric logging (JSONL always; TensorBoard optional) and the rank-0 progress display."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

__all__ = ["MetricLogger", "Progress", "read_metrics"]


class MetricLogger:
    """Appends one JSON object per log call to ``metrics.jsonl``; mirrors scalars to TensorBoard if asked."""

    def __init__(self, run_dir: str | os.PathLike, *, tensorboard: bool = False, resume_step: int | None = None):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.exists():
            # drop lines written after the checkpoint we resume from (a killed run's tail)
            kept = [ln for ln in self.path.read_text(encoding="utf-8").splitlines()
                    if ln.strip() and _step_of(ln) <= resume_step]
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(k + "\n" for k in kept), encoding="utf-8")
            os.replace(tmp, self.path)
        self._fh = open(self.path, "a", encoding="utf-8")
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise ImportError("tensorboard=True needs the 'tensorboard' package (pip install tensorboard)") from exc
            self._tb = SummaryWriter(str(Path(run_dir) / "tb"))

    def log(self, step: int, metrics: dict) -> None:
        rec = {"step": int(step), **{k: (float(v) if isinstance(v, (int, float)) else v) for k, v in metrics.items()}}
        self._fh.write(json.dumps(rec) + "\n")
        self._fh.flush()
        if self._tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and math.isfinite(v):
                    self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        self._fh.close()
        if self._tb is not None:
            self._tb.close()


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
        return 1 << 62


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """All records of a ``metrics.jsonl`` file."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(ln) for ln in fh if ln.strip()]


class Progress:
    """A tqdm bar when tqdm is installed and stderr is a TTY (and ``TQDM_DISABLE`` is unset);
    otherwise a plain line per ``update(..., log=True)``. Silent when ``enabled`` is False (ranks > 0)."""

    def __init__(self, total: int, initial: int = 0, enabled: bool = True):
        self.enabled, self.total, self._t0, self._n0 = enabled, total, time.time(), initial
        self._bar = None
        if enabled and sys.stderr.isatty() and not os.environ.get("TQDM_DISABLE"):
            try:
                from tqdm.auto import tqdm

                self._bar = tqdm(total=total, initial=initial, dynamic_ncols=True)
            except ImportError:
                pass

    def update(self, step: int, metrics: dict | None = None, log: bool = False) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(step - self._bar.n)
            if metrics and log:
                self._bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items() if isinstance(v, float)})
        elif log:
            rate = (step - self._n0) / max(time.time() - self._t0, 1e-9)
            parts = " ".join(f"{k}={v:.4g}" for k, v in (metrics or {}).items() if isinstance(v, float))
            print(f"step {step}/{self.total} {parts} ({rate:.2f} it/s)", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
