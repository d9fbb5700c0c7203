"""Run folders that never mix: refuse to train into a folder that holds a run, clear only what
diffrep wrote (``overwrite``), resolve ``resume="latest"`` to the newest *valid* checkpoint, refuse a resume
with another train config and drop what the run it continues wrote after its step, and the exceptions the
command line turns into messages.

What the trainer writes into a run folder (docs/architecture.md, "Run folders"): ``metrics.jsonl``,
``checkpoints/step-XXXXXXXX/`` (and ``.tmp-step-*`` while one is being written), ``images/samples/``,
``final/``, ``tb/`` and ``wandb/`` (W&B's run folders); the command line adds ``config.yaml`` and ``run.json``. A folder *holds a run*
when one of the trainer's outputs is there with content; ``config.yaml`` / ``run.json`` alone (a run
stopped before its first step) do not count.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from pathlib import Path

from .._checks import flag, path as _path
from .checkpoint import MANIFEST_NAME, list_checkpoints, verify_checkpoint
from .config import RESUMABLE, resume_changes
from .loggers import WANDB_RUNS

__all__ = ["RunFolderError", "TrainingInterrupted", "run_contents", "looks_like_run", "check_run_dir", "clear_run",
           "resolve_resume"]

_STEP_DIR = re.compile(r"^(\.tmp-|\.old-)?step-\d+")
_WANDB_RUN = re.compile(r"^(offline-run|run)-\d{8}_\d{6}-\w+$")
_SAMPLE_PNG = re.compile(r"^(step-\d+|sample-seed\d+)\.png$")
_FINAL_FILES = ("config.json", "model.safetensors", "ema.safetensors", "run.json")
# What the model verbs write by default into the folder they were given (a run folder or its final/), from its
# model: ``diffrep multibeta`` (codes.npz, decoded.png, ...) and ``diffrep paramrel`` (samples.png, <task>.png) at
# its top, ``diffrep sami sample`` in images/, ``diffrep sample`` in images/samples/, ``diffrep sami analyze`` in
# analysis/. Cleared with the run: after --overwrite they showed the earlier model beside the new run.
_VERB_FILES = re.compile(r"^(codes|denoised)\.npz$|^(decoded|sweep|traverse|edit|samples|reconstruct|time-varying|"
                         r"interpolate|attributes-encoding)\.png$")
_VERB_IMAGES = re.compile(r"^sami-(prior|uncond|cond)-seed\d+\.png$")
_ANALYSIS_FILES = re.compile(r"^(analysis\.json|analysis\.incomplete|spectrum|perturb_axes|perturb_pair|global_axes|"
                             r"guidance_magnitude|straightness)(\.png)?$")


class RunFolderError(ValueError):
    """The run folder cannot be used as asked (it holds another run, a checkpoint is corrupt, ...)."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on SIGINT/SIGTERM after saving a checkpoint at ``step`` (``checkpoint``).

    A ``KeyboardInterrupt``, so code that handles Ctrl-C keeps working; ``signal`` is the signal number.
    """

    def __init__(self, step: int, checkpoint: Path | None, signum: int, run_dir: Path):
        self.step, self.checkpoint, self.signum, self.run_dir = int(step), checkpoint, int(signum), Path(run_dir)
        where = f"checkpoint {checkpoint}" if checkpoint is not None else "no checkpoint"
        super().__init__(f"interrupted at step {self.step} (signal {self.signum}); saved {where}; "
                         f"resume with resume='latest' on run folder {self.run_dir}")


def _nonempty_dir(p: Path) -> bool:
    return p.is_dir() and any(p.iterdir())


def run_contents(run_dir: str | os.PathLike) -> list[str]:
    """The trainer outputs present in ``run_dir`` with content (relative names); [] when none."""
    d = _path(run_dir, "run_dir")
    found = []
    m = d / "metrics.jsonl"
    if m.is_file() and m.stat().st_size > 0:
        found.append("metrics.jsonl")
    ck = d / "checkpoints"
    if ck.is_dir():
        found += [f"checkpoints/{p.name}" for p in sorted(ck.iterdir()) if _STEP_DIR.match(p.name)]
    for sub in ("final", "images/samples", "tb", "wandb"):
        if _nonempty_dir(d / sub):
            found.append(sub + "/")
    return found


def _metrics_is_ours(path: Path) -> bool:
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    rec = json.loads(line)
                    if not isinstance(rec, dict) or "step" not in rec:
                        return False
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return True


def _final_is_ours(final: Path) -> bool:
    try:
        cfg = json.loads((final / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(cfg, dict) and "_diffrep_version" in cfg


def looks_like_run(run_dir: str | os.PathLike) -> bool:
    """Whether ``run_dir`` carries a diffrep signature: a ``metrics.jsonl`` of step records, a
    checkpoint with a manifest, or a ``final/config.json`` written by diffrep."""
    d = _path(run_dir, "run_dir")
    m = d / "metrics.jsonl"
    if m.is_file() and m.stat().st_size > 0 and _metrics_is_ours(m):
        return True
    if list_checkpoints(d / "checkpoints"):
        return True
    return (d / "final").is_dir() and _final_is_ours(d / "final")


def _rmdir_if_empty(p: Path) -> None:
    try:
        p.rmdir()
    except OSError:
        pass


def _clear_verb_outputs(folder: Path, prefix: str) -> list[str]:
    """Delete the model verbs' default outputs in ``folder`` (:data:`_VERB_FILES` and the rest); their names."""
    removed = []
    for sub, pattern in (("", _VERB_FILES), ("images", _VERB_IMAGES), ("images/samples", re.compile(r"^sample-seed\d+\.png$")),
                         ("analysis", _ANALYSIS_FILES)):
        d = folder / sub if sub else folder
        if not d.is_dir():
            continue
        for p in sorted(d.iterdir()):
            if p.is_file() and not p.is_symlink() and pattern.match(p.name):
                p.unlink()
                removed.append(f"{prefix}{sub + '/' if sub else ''}{p.name}")
    for sub in ("analysis", "images/samples", "images"):
        _rmdir_if_empty(folder / sub)
    return removed


def clear_run(run_dir: str | os.PathLike) -> list[str]:
    """Delete what the trainer wrote into ``run_dir`` and nothing else; return what was removed.

    Refuses (RunFolderError, deleting nothing) when the folder does not look like a diffrep run or
    when one of the names the trainer uses holds something diffrep did not write (a ``metrics.jsonl``
    that is not step records, a ``final/`` without diffrep's ``config.json``). Other files and folders
    in ``run_dir`` (and ``config.yaml`` / ``run.json``, which the command line rewrites) are kept; the model
    verbs' default outputs there and in ``final/`` (computed from the earlier model) are deleted with the run.
    """
    d = _path(run_dir, "run_dir")
    contents = run_contents(d)
    if not contents:
        return []
    if not looks_like_run(d):
        raise RunFolderError(f"{d} does not look like a diffrep run folder (no metrics.jsonl of step records, no "
                             f"checkpoint manifest, no final/config.json written by diffrep) but holds "
                             f"{', '.join(contents)}; overwrite deletes nothing there: choose another output folder")
    m = d / "metrics.jsonl"
    if m.is_file() and m.stat().st_size > 0 and not _metrics_is_ours(m):
        raise RunFolderError(f"{m} is not a diffrep metrics log (lines are not JSON step records); overwrite deletes "
                             "nothing: move it away or choose another output folder")
    final = d / "final"
    if _nonempty_dir(final) and not _final_is_ours(final):
        raise RunFolderError(f"{final} was not written by diffrep (no config.json with _diffrep_version); overwrite "
                             "deletes nothing: move it away or choose another output folder")
    removed = _clear_verb_outputs(d, "")
    if final.is_dir():
        removed += _clear_verb_outputs(final, "final/")
    for name in ("metrics.jsonl", "metrics.jsonl.tmp"):
        if (d / name).is_file():
            (d / name).unlink()
            removed.append(name)
    ck = d / "checkpoints"
    if ck.is_dir():
        for p in sorted(ck.iterdir()):
            if p.is_dir() and _STEP_DIR.match(p.name):
                shutil.rmtree(p)
                removed.append(f"checkpoints/{p.name}")
        _rmdir_if_empty(ck)
    if final.is_dir():
        for name in _FINAL_FILES:
            if (final / name).is_file():
                (final / name).unlink()
                removed.append(f"final/{name}")
        _rmdir_if_empty(final)
    samples = d / "images" / "samples"
    if samples.is_dir():
        for p in sorted(samples.iterdir()):
            if p.is_file() and _SAMPLE_PNG.match(p.name):
                p.unlink()
                removed.append(f"images/samples/{p.name}")
        _rmdir_if_empty(samples)
        _rmdir_if_empty(d / "images")
    tb = d / "tb"
    if tb.is_dir():
        for p in sorted(tb.iterdir()):
            if p.is_file() and p.name.startswith("events.out.tfevents."):
                p.unlink()
                removed.append(f"tb/{p.name}")
        _rmdir_if_empty(tb)
    wb = d / "wandb"
    if wb.is_dir():  # train.wandb: W&B's run folders and its links to the newest one
        for p in sorted(wb.iterdir()):
            if (p.is_symlink() and p.name in ("latest-run", "debug.log", "debug-internal.log")) or (
                    p.is_file() and p.name == WANDB_RUNS):
                p.unlink()
                removed.append(f"wandb/{p.name}")
            elif p.is_dir() and _WANDB_RUN.match(p.name):
                shutil.rmtree(p)
                removed.append(f"wandb/{p.name}")
        _rmdir_if_empty(wb)
    return removed


def check_run_dir(run_dir: str | os.PathLike, *, resume=None, overwrite: bool = False) -> list[str]:
    """Refuse to start a new run in a folder that holds one, or clear it when ``overwrite``.

    ``resume`` (``"latest"`` or a checkpoint path) continues the run in the folder, so nothing is
    refused or cleared. Returns what ``overwrite`` removed.
    """
    flag(overwrite, "overwrite")
    if overwrite and resume is not None:
        raise RunFolderError("overwrite and resume exclude each other: --resume continues the run in the folder, "
                             "--overwrite deletes it")
    d = _path(run_dir, "run_dir")
    if resume is not None:
        # a typo ('--resume lastest') or a missing path was called "a checkpoint of another run folder"
        if str(resume) != "latest" and not Path(resume).is_dir():
            what = "is not a folder" if Path(resume).exists() else "does not exist"
            raise FileNotFoundError(f"--resume {resume}: {what}; give 'latest' (the newest checkpoint of the run "
                                    f"folder) or a checkpoint folder such as {d / 'checkpoints' / 'step-00001000'}")
        if str(resume) != "latest" and run_contents(d):
            ckpt_parent = Path(resume).resolve().parent
            if ckpt_parent != (d / "checkpoints").resolve():
                raise RunFolderError(f"--resume {resume} is a checkpoint of another run folder, and {d} already "
                                     f"holds a run; continuing there would mix the two runs. Start the continuation "
                                     f"in a new --out (or use --resume latest to continue the run in {d})")
        return []
    if d.exists() and not d.is_dir():
        raise RunFolderError(f"run folder {d} exists and is not a directory")
    contents = run_contents(d)
    if not contents:
        return []
    if overwrite:
        return clear_run(d)
    shown = ", ".join(contents[:6]) + (", ..." if len(contents) > 6 else "")
    raise RunFolderError(f"run folder {d} already holds a run ({shown}); training into it would mix the two runs. "
                         f"Continue it with --resume latest, replace it with --overwrite (deletes only what diffrep "
                         f"wrote there), or choose another --out")


def resolve_resume(spec, ckpt_root: str | os.PathLike) -> tuple[Path | None, bool]:
    """``(checkpoint, verified)`` for ``resume=spec``; ``(None, False)`` when ``spec == "latest"`` and
    there is no checkpoint (the run starts fresh).

    ``"latest"`` is the newest complete checkpoint, verified against its manifest; when it is corrupt,
    RunFolderError names it, the newest older checkpoint that verifies and the ``--resume PATH`` to
    continue from that one (diffrep never silently falls back to an older step).
    """
    root = Path(ckpt_root)
    if str(spec) != "latest":
        path = Path(spec)
        if not path.is_dir():
            raise FileNotFoundError(f"--resume: checkpoint directory not found: {path}")
        if not (path / MANIFEST_NAME).is_file() and list_checkpoints(path / "checkpoints"):
            raise RunFolderError(f"--resume {path}: that is a run folder, not a checkpoint; use --resume latest "
                                 f"with --out {path}, or a checkpoint under {path / 'checkpoints'}")
        return path, False
    found = list_checkpoints(root)
    if not found:
        return None, False
    newest = found[-1][1]
    try:
        verify_checkpoint(newest)
        return newest, True
    except ValueError as exc:
        reason = str(exc)
    for step, path in reversed(found[:-1]):
        try:
            verify_checkpoint(path)
        except ValueError:
            continue
        raise RunFolderError(f"--resume latest: the newest checkpoint {newest} is corrupt ({reason}). The newest "
                             f"valid one is {path} (step {step}); resume from it with --resume {path}")
    raise RunFolderError(f"--resume latest: the newest checkpoint {newest} is corrupt ({reason}) and no older "
                         f"checkpoint under {root} is valid; start again with --overwrite or another --out")


def _check_resumed_config(path: Path, saved, cfg) -> None:
    """Refuse a resume whose train config differs from the checkpoint's outside :data:`RESUMABLE` (the library
    resumed with another lr, batch or seed without a word; ``diffrep train`` checks its whole config.yaml first).
    Fields only one side has come from another diffrep version and are not changes."""
    if not isinstance(saved, dict):
        return
    shown = resume_changes(saved, cfg.to_dict(), RESUMABLE)
    if shown:
        raise ValueError(f"resume: the train config differs from checkpoint {path}'s in {shown}; a resumed run "
                         f"keeps its config (only steps and the logging, checkpoint, sampling, evaluation and device "
                         f"settings may change): resume with the run's values, or start a new run (another run "
                         f"folder, or overwrite)")


def _drop_outputs_after(run_dir: Path, start: int, steps: int) -> None:
    """On resuming from step ``start``: remove the checkpoints past it (left by the run this one branches from,
    e.g. ``--resume checkpoints/step-2`` beside step-3 and step-4: a later ``--resume latest`` took step-4 of the
    abandoned run, and the log's tail is dropped already) and, when steps remain, ``final/`` (an earlier end's
    weights, which a kill of this continuation left beside its config as if complete). Said on stderr."""
    dropped = [p for step, p in list_checkpoints(run_dir / "checkpoints") if step > start]
    for p in dropped:
        shutil.rmtree(p)
    final = run_dir / "final"
    old_final = start < steps and (final / "config.json").is_file()
    if old_final:
        for name in _FINAL_FILES:
            (final / name).unlink(missing_ok=True)
    if dropped or old_final:
        what = [f"the checkpoints after step {start} ({', '.join(p.name for p in dropped)})"] if dropped else []
        what += ["final/ (it is written again at the end)"] if old_final else []
        print(f"resuming from step {start}: removed {' and '.join(what)}", file=sys.stderr, flush=True)
