"""Metric logging and the rank-0 progress display.

``metrics.jsonl`` is always written (the run's record, read by ``read_metrics`` and ``diffrep
aggregate``). Optional mirrors: TensorBoard (``tensorboard=True``: scalars, sample grids, the
hyper-parameters as text and, at the end, as an HParams entry with the last logged values; needs the
``tensorboard`` package) and Weights & Biases (``wandb=True``: offline by default, written under
``<run>/wandb``; needs the ``wandb`` package). A missing package is an ImportError naming it, raised
before training starts.

A resume drops the abandoned tail (the steps after the checkpoint) from ``metrics.jsonl`` and TensorBoard
(``purge_step``). A W&B run's history cannot be cut that way: W&B drops a logged step at or below the run's
last one, so continuing the earlier W&B run would lose the continuation's steps and keep the abandoned ones.
Every process therefore logs to a *new* W&B run (``id`` chosen here, ``resume="never"``, named
``<name>-from-step-N`` on a resume), listed with its first step in ``<run>/wandb/diffrep-runs.jsonl``, and a resume
names on stderr the earlier W&B runs, which keep what they logged, the abandoned steps included
(docs/architecture.md#run-folders). W&B's rewind (``resume_from="ID?_step=N"``) would cut the history but is a
preview of its online service only.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

from .._checks import flag, non_negative_int, path as _path
from .._files import write_text_atomic
from ..config import flatten_dict

__all__ = ["MetricLogger", "Progress", "read_metrics", "check_logger_packages", "WANDB_RUNS"]

# in <run>/wandb/: one JSON line per W&B run this run folder logged to (its id, name and first step)
WANDB_RUNS = "diffrep-runs.jsonl"


def check_logger_packages(tensorboard: bool = False, wandb: bool = False) -> None:
    """ImportError naming the package when a requested logger's package is not installed (checked
    without importing it, so the command line can refuse before building anything)."""
    import importlib.util

    flag(tensorboard, "tensorboard")  # "no" would read as True and ask for the package
    flag(wandb, "wandb")
    if tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise ImportError("train.tensorboard / --report-to tensorboard needs the 'tensorboard' package "
                          "(pip install tensorboard)", name="tensorboard")
    if wandb and importlib.util.find_spec("wandb") is None:
        raise ImportError("train.wandb / --report-to wandb needs the 'wandb' package (pip install wandb)",
                          name="wandb")


class MetricLogger:
    """Appends one JSON object per log call to ``metrics.jsonl``; mirrors scalars to TensorBoard if asked."""

    def __init__(self, run_dir: str | os.PathLike, *, tensorboard: bool = False, resume_step: int | None = None,
                 wandb: bool = False, wandb_project: str = "diffrep", wandb_mode: str = "offline",
                 hparams: dict | None = None, run_name: str | None = None):
        self.path = _path(run_dir, "run_dir") / "metrics.jsonl"
        self._hparams = flatten_dict(hparams or {})
        self._last: dict[str, float] = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.exists():
            # drop lines written after the checkpoint we resume from (a killed run's tail)
            kept = [ln for ln in self.path.read_text(encoding="utf-8").splitlines()
                    if ln.strip() and _step_of(ln) <= resume_step]
            write_text_atomic(self.path, "".join(k + "\n" for k in kept))
        self._tb = self._wandb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise ImportError("train.tensorboard / --report-to tensorboard needs the 'tensorboard' package "
                                  "(pip install tensorboard)", name="tensorboard") from exc
        if wandb:
            try:
                import wandb as _wandb
            except ImportError as exc:
                raise ImportError("train.wandb / --report-to wandb needs the 'wandb' package (pip install wandb)",
                                  name="wandb") from exc
        self._fh = open(self.path, "a", encoding="utf-8")
        if tensorboard:
            # resuming: TensorBoard hides the killed run's events after the checkpoint (as metrics.jsonl drops its
            # tail above); they were shown beside the continuation's, two curves over the same steps
            purge = {"purge_step": resume_step + 1} if resume_step is not None else {}
            self._tb = SummaryWriter(str(Path(run_dir) / "tb"), **purge)
            if self._hparams:
                self._tb.add_text("hparams", "\n".join(f"    {k}: {v}" for k, v in self._hparams.items()), 0)
        if wandb:
            self._wandb = _wandb
            _start_wandb_run(_wandb, Path(run_dir), project=wandb_project, mode=wandb_mode, name=run_name,
                             config=self._hparams, resume_step=resume_step)

    def log(self, step: int, metrics: dict) -> None:
        step = non_negative_int(step, "step")
        if not isinstance(metrics, dict):
            raise TypeError(f"metrics must be a dict of name -> value, got {type(metrics).__name__}")
        rec = {"step": int(step), **{k: (float(v) if isinstance(v, (int, float)) else v) for k, v in metrics.items()}}
        self._fh.write(json.dumps(rec) + "\n")
        self._fh.flush()
        scalars = {k: float(v) for k, v in metrics.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}
        self._last.update(scalars)
        if self._tb is not None:
            for k, v in scalars.items():
                self._tb.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log(scalars, step=int(step))

    def log_image(self, tag: str, path: str | os.PathLike, step: int) -> None:
        """Mirror an image file written into the run (a sample grid) to TensorBoard / W&B."""
        # checked with no logger too, so a wrong call shows in the runs that mirror nothing
        if not isinstance(tag, str) or not tag:
            raise TypeError(f"log_image: tag must be a non-empty str, got {tag!r}")
        if not _path(path, "path").is_file():
            raise FileNotFoundError(f"log_image: path {str(path)!r} is not an image file")
        non_negative_int(step, "step")
        if self._tb is None and self._wandb is None:
            return
        import numpy as np
        from PIL import Image

        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
        if self._tb is not None:
            self._tb.add_image(tag, arr, int(step), dataformats="HWC")
        if self._wandb is not None:
            self._wandb.log({tag: self._wandb.Image(arr)}, step=int(step))

    def close(self) -> None:
        self._fh.close()
        if self._tb is not None:
            if self._hparams:
                self._tb.add_hparams(self._hparams, {f"hparam/{k}": v for k, v in self._last.items()}, run_name=".")
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def _start_wandb_run(wb, run_dir: Path, *, project: str, mode: str, name: str | None, config: dict,
                     resume_step: int | None) -> str:
    """Start a new W&B run for this process and record it in ``<run>/wandb/diffrep-runs.jsonl``; returns its id.

    ``resume="never"`` with an id chosen here: ``resume="allow"`` took a ``WANDB_RUN_ID`` from the environment and
    continued that run, where W&B drops every step at or below its last logged one (its history only grows), so a
    resumed run's steps were lost and the abandoned ones kept. On a resume (``resume_step``) the new run is named
    ``<name>-from-step-N``, its config records ``resumed_from_step`` and stderr names the earlier W&B runs, which may
    hold steps after N (the ones ``metrics.jsonl`` and TensorBoard dropped)."""
    import secrets

    folder = run_dir / "wandb"
    folder.mkdir(exist_ok=True)  # run_dir itself is the logger's, made before
    record = folder / WANDB_RUNS
    earlier = []
    if record.is_file():
        for line in record.read_text(encoding="utf-8").splitlines():
            try:
                earlier.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line damaged by hand: the others still name their runs (the file is written whole)
    run_id = secrets.token_hex(4)  # 8 characters of W&B's id alphabet (lowercase letters and digits)
    if resume_step is not None:
        name = f"{name or run_dir.name}-from-step-{resume_step}"
        config = {**config, "resumed_from_step": int(resume_step)}
    wb.init(project=project, mode=mode, dir=str(run_dir), name=name, config=config, id=run_id, resume="never")
    first = 0 if resume_step is None else int(resume_step) + 1
    write_text_atomic(record, "".join(json.dumps(e) + "\n" for e in earlier)
                      + json.dumps({"id": run_id, "name": name, "first_step": first}) + "\n")
    if resume_step is not None:
        ids = [str(e.get("id")) for e in earlier if isinstance(e, dict)]
        keep = (f"the earlier W&B runs of this folder ({', '.join(ids)}) keep what they logged" if ids else
                "an earlier W&B run of this folder (none is listed) keeps what it logged")
        print(f"W&B: resuming at step {resume_step}, logging to a new W&B run {run_id} ({name}); W&B cannot drop "
              f"logged steps from a run, so {keep}, including any steps after {resume_step} that this resume "
              f"abandons (metrics.jsonl and TensorBoard dropped them; {record} lists each W&B run's first step)",
              file=sys.stderr, flush=True)
    return run_id


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line).get("step", 0))
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
        return 1 << 62


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """All records of a ``metrics.jsonl`` file."""
    with open(_path(path, "path"), encoding="utf-8") as fh:
        return [json.loads(ln) for ln in fh if ln.strip()]


def format_eta(seconds: float) -> str:
    """``3725`` -> ``1:02:05``; ``65`` -> ``1:05``; unknown -> ``?``."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


class Progress:
    """A tqdm bar (with ETA) when tqdm is installed and stderr is a TTY or ``DIFFREP_PROGRESS=1`` (and neither
    ``DIFFREP_PROGRESS=0`` nor ``TQDM_DISABLE`` is set); otherwise a plain line with the rate and the ETA per
    ``update(..., log=True)``. Silent when ``enabled`` is False (ranks > 0)."""

    def __init__(self, total: int, initial: int = 0, enabled: bool = True):
        self.enabled, self.total, self._t0, self._n0 = enabled, total, time.time(), initial
        self._bar = None
        from .._progress import progress_enabled

        forced = progress_enabled()  # DIFFREP_PROGRESS=0 / 1
        if enabled and forced is not False and (forced or sys.stderr.isatty()) and not os.environ.get("TQDM_DISABLE"):
            try:
                from tqdm.auto import tqdm

                self._bar = tqdm(total=total, initial=initial, dynamic_ncols=True, unit="step", desc="train")
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
            eta = (self.total - step) / rate if rate > 0 else float("inf")
            print(f"step {step}/{self.total} {parts} ({rate:.2f} it/s, ETA {format_eta(eta)})", file=sys.stderr,
                  flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
