"""Running a study: train and evaluate each cell into its own folder (docs/study.md, "Running").

The study folder holds ``study.json`` (the normalised study, its hash and every cell) and
``study.yaml`` (a copy of the file), and one folder per cell (``<method>/<dataset>/<setting>/seed<k>``)
with what ``diffrep train`` writes there (``config.yaml``, ``run.json``, ``metrics.jsonl``,
``checkpoints/``, ``final/``), plus

* ``cell.json``: the cell (recipe, overrides, evaluation settings, config hash), written first;
* ``trained.json``: written when training finished (the log's last record);
* ``metrics.json``: the metric :class:`~diffrep.metrics.results.Result` (``scores``, ``meta``) and
  the training log's last record (``train``);
* ``done.json``: the completion marker, written last, with the cell's hash;
* ``calibrated/``: with ``eval.calibrate``, the model after ``model.<calibrate>(images)``, what the
  metrics read (:func:`_calibrate`);
* ``dropped.json``: in the folder of a cell that a later version of the study (``update``) no longer has,
  naming that version: its results stay on disk but belong to no current cell, so the report (which reads
  only the cells of ``study.json``) and ``diffrep aggregate`` (which refuses such a folder) never count
  them; removed when a later version has the cell again.

A recipe whose config has a ``train_phases`` hook (the multi-phase multibeta/* recipes) trains through
it, one trainer run per phase in sub-folders (``phase1/``, ...), as ``diffrep train`` does.

A cell with ``done.json`` of the same hash is never run again; a cell without it resumes from its
newest valid checkpoint (``resume="latest"``), or re-evaluates when only the evaluation was missing.
A cell folder whose ``cell.json`` carries another hash (the study file changed that cell) is refused
unless ``redo_changed``, which deletes what the study wrote there and runs the cell again; a study
folder made from another study is refused unless ``update`` (then the new study is recorded, unchanged
cells keep their results). Cells are split between processes by ``index % world == rank``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

from .spec import Cell, Study, StudyError
from .._checks import a_or_an
from .._files import write_text_atomic

__all__ = ["STUDY_JSON", "CELL_JSON", "DONE_JSON", "TRAINED_JSON", "METRICS_JSON", "DROPPED_JSON", "CALIBRATED",
           "partition", "shard_from_env",
           "cell_state", "check_folder", "check_surface", "read_study_record", "run_study", "run_cell"]

STUDY_JSON, STUDY_YAML = "study.json", "study.yaml"
CELL_JSON, TRAINED_JSON, METRICS_JSON, DONE_JSON, FAILED_JSON, DROPPED_JSON = (
    "cell.json", "trained.json", "metrics.json", "done.json", "failed.json", "dropped.json")
CALIBRATED = "calibrated"  # the model after eval.calibrate (what the metrics read), beside final/


def partition(n_cells: int, rank: int, world: int) -> list[int]:
    """The cell indices process ``rank`` of ``world`` runs: ``i % world == rank`` (every cell exactly once)."""
    for name, v in (("rank", rank), ("world", world), ("n_cells", n_cells)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"partition: {name} must be an int, got {type(v).__name__}")
    if world < 1:
        raise StudyError(f"--world must be >= 1, got {world}")
    if not 0 <= rank < world:
        raise StudyError(f"--rank must be in [0, {world - 1}] for --world {world}, got {rank}")
    if n_cells < 0:
        raise ValueError(f"partition: n_cells must be >= 0, got {n_cells}")
    return list(range(rank, n_cells, world))


def shard_from_env(rank: int | None, world: int | None, env=None) -> tuple[int, int]:
    """``(rank, world)``: the flags when given, else a SLURM array job's task (``SLURM_ARRAY_TASK_ID`` minus
    ``SLURM_ARRAY_TASK_MIN``, of ``SLURM_ARRAY_TASK_COUNT``), else ``(0, 1)``. One flag without the other is
    an error."""
    env = os.environ if env is None else env
    if (rank is None) != (world is None):
        raise StudyError("--rank and --world go together (this process runs the cells i with i % world == rank)")
    if rank is not None:
        partition(0, rank, world)  # the kinds and the range of rank and world, named as the flags
        return rank, world
    if "SLURM_ARRAY_TASK_ID" in env:
        try:
            task = int(env["SLURM_ARRAY_TASK_ID"])
            lo = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
            count = int(env["SLURM_ARRAY_TASK_COUNT"])
            step = int(env.get("SLURM_ARRAY_TASK_STEP", "1") or 1)
        except KeyError as exc:
            raise StudyError(f"SLURM_ARRAY_TASK_ID is set but {exc.args[0]} is not; pass --rank and --world") from None
        except ValueError as exc:
            raise StudyError(f"the SLURM array variables are not integers ({exc}); pass --rank and --world") from None
        rank, off = divmod(task - lo, step) if step >= 1 else (-1, 0)
        if step < 1 or off or not 0 <= rank < count:
            # an array that is not lo, lo+step, ... (e.g. --array=1,5,7) would drop or duplicate cells
            raise StudyError(f"SLURM array task {task} is not one of MIN + k * STEP (MIN={lo}, STEP={step}, "
                             f"COUNT={count}); use a regular array (--array=0-{count - 1}) or pass --rank and --world")
        return rank, count
    return 0, 1


def _write_json(path: Path, obj) -> None:
    """Write ``obj`` to ``path`` atomically (a temporary file renamed over it)."""
    write_text_atomic(path, json.dumps(obj, indent=1, sort_keys=False, default=str) + "\n")


_CELL_HINT = "move the cell folder away to run it again"


def _read_json(path: Path, hint: str = _CELL_HINT) -> dict:
    """The JSON object in ``path``; an unreadable file, or one whose top level is not an object (an
    empty list, a string: a file written by hand or by something else), is a StudyError naming it
    and what to do (``hint``), not an AttributeError from the first ``.get``."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StudyError(f"{path} cannot be read ({exc}); {hint}") from None
    if not isinstance(obj, dict):
        raise StudyError(f"{path} holds a JSON {type(obj).__name__}, not the object the study writes there; {hint}")
    return obj


_STUDY_HINT = "this study folder's record is damaged: use another --out"
# the fields of each study.json cell that the runner and the report read (Cell.describe writes them)
_RECORD_FIELDS = {"folder": str, "hash": str, "method": str, "dataset": str, "setting": str, "seed": int}


def read_study_record(folder: Path) -> dict:
    """``folder/study.json`` as the runner wrote it: an object whose ``cells`` is a list of objects with
    the fields of :data:`_RECORD_FIELDS`; anything else is a StudyError naming the file and the entry
    (the report and the version check would fail on it with a KeyError or TypeError)."""
    p = folder / STUDY_JSON
    rec = _read_json(p, _STUDY_HINT)
    cells = rec.get("cells")
    if not isinstance(cells, list) or not cells:
        raise StudyError(f"{p} lists no cells; {_STUDY_HINT}")
    for i, c in enumerate(cells):
        if not isinstance(c, dict):
            raise StudyError(f"{p}: cells[{i}] is {a_or_an(type(c).__name__)}, not a cell record; {_STUDY_HINT}")
        bad = [k for k, t in _RECORD_FIELDS.items() if not isinstance(c.get(k), t) or isinstance(c.get(k), bool)]
        if bad:
            raise StudyError(f"{p}: cells[{i}] lacks {bad} (a cell record has {list(_RECORD_FIELDS)}); {_STUDY_HINT}")
    return rec


def cell_state(cell: Cell, out: str | os.PathLike) -> str:
    """``"done"`` (finished, same hash), ``"changed"`` (the folder holds this cell under another hash),
    ``"trained"`` (evaluation missing), ``"partial"`` (started, not finished), ``"failed"`` (a recorded
    failure) or ``"new"``."""
    d = _cell_dir(cell, out, "cell_state")
    if not d.is_dir() or not any(d.iterdir()):
        return "new"
    for name in (DONE_JSON, CELL_JSON):
        if (d / name).is_file() and _read_json(d / name).get("hash") != cell.hash:
            return "changed"
    if (d / DONE_JSON).is_file():
        return "done"
    if not (d / CELL_JSON).is_file():
        return "changed"  # a folder the study did not start: never mixed into
    if (d / FAILED_JSON).is_file():
        return "failed"
    return "trained" if (d / TRAINED_JSON).is_file() else "partial"


def _cell_dir(cell, out, who: str) -> Path:
    """``out/<cell.folder>``, with ``cell`` a :class:`Cell` and ``out`` a path (checked for ``who``)."""
    from .. import _checks

    if not isinstance(cell, Cell):
        raise TypeError(f"{who}: cell must be a Cell (one of load_study(FILE).cells), got {type(cell).__name__}")
    return _checks.path(out, "out") / cell.folder


def _check_log(log, who: str):
    """``log`` (a callable taking one message, or None: print to stderr) as a callable."""
    if log is None:
        return lambda s: print(s, file=sys.stderr, flush=True)
    if not callable(log):
        raise TypeError(f"{who}: log must be a callable taking one message (or None), got {type(log).__name__}")
    return log


def _check_study_folder(study: Study, out: Path, update: bool) -> None:
    p = out / STUDY_JSON
    if not p.is_file():
        if out.is_dir() and any(q.name != STUDY_YAML and not q.name.startswith(".") for q in out.iterdir()):
            raise StudyError(f"{out} already holds files but no {STUDY_JSON}; it is not this study's folder. "
                             "Choose another --out")
        return
    old = read_study_record(out)
    if isinstance(old.get("study"), str) and old["study"] != study.name:
        # another study altogether, not a version of this one: --update would record it over the other's
        # study.json and leave that study's cells orphaned in the folder
        raise StudyError(f"{out} holds the study {old['study']!r}, not {study.name!r}; use another --out (the "
                         f"default is studies/{study.name})")
    if old.get("hash") == study.hash or update:
        return
    old_cells = {c["folder"]: c["hash"] for c in old["cells"]}
    new_cells = {c.folder: c.hash for c in study.cells}
    changed = sorted(f for f in new_cells if f in old_cells and old_cells[f] != new_cells[f])
    added = sorted(set(new_cells) - set(old_cells))
    dropped = sorted(set(old_cells) - set(new_cells))
    parts = [f"{len(changed)} cells changed (e.g. {changed[0]})" if changed else "",
             f"{len(added)} cells added" if added else "", f"{len(dropped)} cells dropped" if dropped else ""]
    what = "; ".join(p for p in parts if p) or "the study's settings changed"
    raise StudyError(f"{out} holds results of another version of this study ({what}); the two would mix. "
                     f"Use another --out, or --update to record the new study there (unchanged cells keep their "
                     f"results; a dropped cell's folder keeps its results, marked {DROPPED_JSON} and left out of the "
                     f"report; add --redo-changed to rerun the changed ones)")


def _mark_dropped_cells(study: Study, out: Path) -> None:
    """Before ``study`` is recorded over an earlier version's ``study.json`` (``update``): write
    :data:`DROPPED_JSON` into each folder of a cell the new version no longer has, and remove it from the folders
    of the cells it has (a cell dropped once and added back). The dropped cells' results stay, marked."""
    current = {c.folder for c in study.cells}
    old = read_study_record(out) if (out / STUDY_JSON).is_file() else {"cells": []}
    for c in old["cells"]:
        d = out / c["folder"]
        if c["folder"] not in current and d.is_dir() and not (d / DROPPED_JSON).is_file():
            _write_json(d / DROPPED_JSON, {"study": study.name, "dropped_by": study.hash,
                                           "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                           "why": "a later version of the study (--update) has no such cell; "
                                                  "its results are not part of the study's report"})
    for folder in current:
        (out / folder / DROPPED_JSON).unlink(missing_ok=True)


def _record_study(study: Study, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    _mark_dropped_cells(study, out)
    _write_json(out / STUDY_JSON, {"study": study.name, "hash": study.hash, "source": study.source,
                                   "spec": study.spec, "cells": [c.describe() for c in study.cells]})
    src = Path(study.source)
    if src.is_file():
        tmp = out / f".{STUDY_YAML}.{os.getpid()}.tmp"
        shutil.copyfile(src, tmp)
        os.replace(tmp, out / STUDY_YAML)


_OURS = (CELL_JSON, TRAINED_JSON, METRICS_JSON, DONE_JSON, FAILED_JSON, DROPPED_JSON, "config.yaml", "run.json")


def _clear_cell(d: Path) -> None:
    """Delete what the study and the trainer wrote into cell folder ``d`` (nothing else)."""
    from ..recipes.multibeta import prepare_phase_folders
    from ..train.rundir import clear_run, looks_like_run

    clear_run(d)
    prepare_phase_folders(d, overwrite=True)  # a multi-phase cell's phase folders, with their information.json
    for p in _subfolders(d):  # a multi-phase run's sub-runs (phase1/, ...)
        if looks_like_run(p):
            clear_run(p)
    for name in _OURS:
        if (d / name).is_file():
            (d / name).unlink()
    if (d / CALIBRATED / "config.json").is_file():
        shutil.rmtree(d / CALIBRATED)


def _last_record(run_dir: Path) -> dict:
    m = run_dir / "metrics.jsonl"
    last = {}
    if m.is_file():
        for line in m.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(rec, dict) and "step" in rec:
                    last = rec
    return last


def check_surface(model, cell: Cell) -> None:
    """A study method needs the trainable surface of :mod:`diffrep.methods.base` (``loss`` with keywords
    ``step`` and ``generator``, save/load), and ``encode`` when the cell measures metrics; checked before
    training, so a cell never trains in vain."""
    from ..methods.base import TrainableModel, surface_problems

    if not isinstance(cell, Cell):
        raise TypeError(f"check_surface: cell must be a Cell (one of load_study(FILE).cells), got {type(cell).__name__}")
    problems = surface_problems(model, TrainableModel)
    if cell.eval.metrics and not callable(getattr(model, "encode", None)):
        problems.append("no encode() (the metrics read it; give this method eval: {metrics: []})")
    if problems:
        raise StudyError(f"method {cell.method} ({cell.recipe}): {type(model).__name__} lacks the study surface "
                         f"(docs/study.md): {'; '.join(problems)}")


def _train(cell: Cell, d: Path, log) -> dict:
    from ..config import dump_yaml
    from ..recipes import get_recipe
    from ..recipes.runinfo import write_run_info
    from ..train import Trainer, seed_everything

    recipe = get_recipe(cell.recipe)
    dump_yaml(cell.config, d / "config.yaml")
    write_run_info(d, recipe.name, cell.config)
    seed_everything(cell.config.train.seed)
    model, dataset = recipe.build(cell.config)
    check_surface(model, cell)
    from ..train.rundir import run_contents

    # a multi-phase recipe (multibeta/*): its own train_phases hook, one Trainer run per phase in sub-folders
    phased = getattr(cell.config, "train_phases", None)
    started = run_contents(d) or (callable(phased) and any(run_contents(p) for p in _subfolders(d)))
    # a crashed run: "latest" = its newest valid checkpoint, or a fresh start that drops its log
    resume = "latest" if started else None
    if resume:
        log(f"  resuming {cell.folder} from its newest valid checkpoint")
    if callable(phased):
        phased(model, dataset, d, resume=resume)
    else:
        Trainer(model, dataset, cell.config.train, d).train(resume=resume)
    if not (d / "final").is_dir():
        raise StudyError(f"{cell.folder}: training wrote no final/ model ({type(model).__name__} has no "
                         "save_pretrained); a study method needs the common surface of diffrep.methods.base")
    write_run_info(d / "final", recipe.name, cell.config)
    last = _train_record(d)
    _write_json(d / TRAINED_JSON, {"hash": cell.hash, "last": last})
    return last


def _subfolders(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.is_dir() and p.name not in ("final", CALIBRATED)) if d.is_dir() else []


def _train_record(d: Path) -> dict:
    """The training log's last record: of the cell folder's ``metrics.jsonl``, or, for a multi-phase run
    (logs in sub-folders such as ``phase1/``, ``phase2/``), of the last sub-folder in name order, with
    every phase's last record under ``phases``."""
    last = _last_record(d)
    if last:
        return last
    phases = {p.name: rec for p in _subfolders(d) if (rec := _last_record(p))}
    if not phases:
        return {}
    return {**phases[list(phases)[-1]], "phases": phases}


def _calibrate(cell: Cell, d: Path, log, weights: str) -> Path:
    """The calibrated model folder ``d/calibrated``: the trained model (``weights`` of ``final/``) after
    ``model.<eval.calibrate>(images)`` on ``eval.calibrate_images`` images of the cell's dataset (factor rows
    drawn from ``RandomState(eval.seed + 1)``, a stream apart from the metric rows; ``eval.item_format``),
    saved with ``save_pretrained`` and the run's ``run.json``."""
    import torch

    from ..nn import load_pretrained
    from ..recipes.encode import calibrate_model
    from ..recipes.runinfo import dataset_from_settings, resolve_data_settings, write_run_info

    ev = cell.eval
    dev = "cuda" if ev.device == "cuda" or (ev.device == "auto" and torch.cuda.is_available()) else "cpu"
    model = load_pretrained(d / "final", weights=weights, map_location=dev).eval()
    fit = getattr(model, ev.calibrate, None)
    if not callable(fit):
        raise StudyError(f"method {cell.method}: eval.calibrate names {ev.calibrate}(), which "
                         f"{type(model).__name__} does not have")
    settings = resolve_data_settings(d / "final")
    ds = dataset_from_settings(settings, **({"source": "auto"} if settings["dataset"] != "toy_shapes" else {}))
    if not hasattr(ds, "sample_observations_from_factors"):
        raise StudyError(f"method {cell.method}: eval.calibrate needs a ground-truth dataset (factor rows to draw)")
    log(f"  calibrating: {type(model).__name__}.{ev.calibrate}() on {ev.calibrate_images} images")
    calibrate_model(model, ds, ev.calibrate, ev.calibrate_images, ev.seed, ev.item_format, dev)
    out = d / CALIBRATED
    if out.exists():
        shutil.rmtree(out)
    model.save_pretrained(out)
    write_run_info(out, cell.recipe, cell.config)
    return out


def _evaluate(cell: Cell, d: Path, log) -> dict:
    from ..metrics.suite import compute
    from ..nn.pretrained import resolve_weights
    from ..recipes.encode import encode_dataset

    ev = cell.eval
    train_last = _read_json(d / TRAINED_JSON).get("last", {}) if (d / TRAINED_JSON).is_file() else {}
    if not ev.metrics:
        return {"scores": {}, "meta": {"metric": "none"}, "train": train_last}
    # auto: the EMA copy when final/ has one, else the raw weights; the verbs' own rule (--weights)
    model_dir = d / "final"
    weights = trained_weights = resolve_weights(model_dir, ev.weights, "diffrep study", flag="eval.weights")
    if ev.calibrate:  # the calibrated folder holds the chosen weights as its only ones
        model_dir, weights = _calibrate(cell, d, log, trained_weights), "model"
    src = encode_dataset(str(model_dir), None, ev.num_train, ev.num_test, ev.seed, ev.batch_size, weights,
                         ev.item_format, None, "auto", ev.device)
    settings = src.pop("_settings")
    result = compute(src, list(ev.metrics), ev.mode, ev.estimator, ev.tad_variant)
    result.meta.update(model=str(model_dir), dataset=settings["dataset"], dataset_options=settings["options"],
                       pool=settings["pool"], seed=ev.seed, num_train=ev.num_train, num_test=ev.num_test,
                       weights=weights)
    if ev.calibrate:
        result.meta.update(calibrate=ev.calibrate, calibrate_images=ev.calibrate_images, calibrated_from=str(d / "final"),
                           calibrated_weights=trained_weights)
    return {**result.to_json(), "train": train_last}


def run_cell(cell: Cell, out: str | os.PathLike, *, log=None) -> dict:
    """Train (or resume) and evaluate one cell into ``out/<cell.folder>``; returns its metrics.json content.
    The caller checked the folder's state (:func:`cell_state`): "new", "partial", "trained" or "failed"."""
    log = _check_log(log, "run_cell")
    d = _cell_dir(cell, out, "run_cell")
    d.mkdir(parents=True, exist_ok=True)
    if (d / FAILED_JSON).is_file():
        (d / FAILED_JSON).unlink()
    _write_json(d / CELL_JSON, cell.describe())
    t0 = time.time()
    if not (d / TRAINED_JSON).is_file():
        _train(cell, d, log)
    t1 = time.time()
    metrics = _evaluate(cell, d, log)
    metrics["cell"] = cell.describe()
    metrics["seconds"] = {"train": round(t1 - t0, 3), "eval": round(time.time() - t1, 3)}
    _write_json(d / METRICS_JSON, metrics)
    _write_json(d / DONE_JSON, {"hash": cell.hash, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return metrics


def check_folder(study: Study, out: str | os.PathLike, cells, *, update: bool, redo_changed: bool) -> dict:
    """The states (:func:`cell_state`, by cell index) of ``cells`` in the study folder ``out``, after the checks
    :func:`run_study` makes before it writes anything: ``out`` is a folder of this study (or of an earlier
    version with ``update``) and no cell folder holds another configuration (unless ``redo_changed``); a
    StudyError otherwise. ``diffrep study run --dry-run`` calls it too, so the listing says that a run
    would stop rather than showing every cell as ready."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise StudyError(f"study folder {out} exists and is not a directory")
    _check_study_folder(study, out, update)
    states = {c.index: cell_state(c, out) for c in cells}
    changed = [c for c in cells if states[c.index] == "changed"]
    if changed and not redo_changed:
        raise StudyError(f"{len(changed)} cell folders hold results of another configuration (e.g. "
                         f"{out / changed[0].folder}); rerun with --redo-changed to replace them, or use another --out")
    return states


def run_study(study: Study, out: str | os.PathLike, *, rank: int = 0, world: int = 1, update: bool = False,
              redo_changed: bool = False, keep_going: bool = False, log=None) -> dict:
    """Run this process's share of ``study``'s cells into ``out``; returns counts by outcome
    (``ran``, ``skipped`` (done before), ``failed``). See the module docstring for the guards."""
    if not isinstance(study, Study):
        raise TypeError(f"run_study: study must be a Study (load_study(FILE)), got {type(study).__name__}")
    from .. import _checks

    for name, value in (("update", update), ("redo_changed", redo_changed), ("keep_going", keep_going)):
        _checks.flag(value, name)
    log = _check_log(log, "run_study")
    out = _checks.path(out, "out")
    if int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        raise StudyError("diffrep study run trains one cell per process; under torchrun (WORLD_SIZE > 1) every "
                         "rank would run the same cells. Share the cells with --rank/--world (or a SLURM array) "
                         "instead")
    mine = [study.cells[i] for i in partition(len(study.cells), rank, world)]
    states = check_folder(study, out, mine, update=update, redo_changed=redo_changed)
    _record_study(study, out)
    counts = {"ran": 0, "skipped": 0, "failed": 0}
    for k, c in enumerate(mine):
        state = states[c.index]
        if state == "done":
            counts["skipped"] += 1
            log(f"[{k + 1}/{len(mine)}] {c.folder}: done before, skipped")
            continue
        if state == "changed":
            log(f"[{k + 1}/{len(mine)}] {c.folder}: configuration changed, --redo-changed: clearing it")
            _clear_cell(out / c.folder)
        log(f"[{k + 1}/{len(mine)}] {c.folder}: {'resuming' if state in ('partial', 'trained') else 'running'} "
            f"({c.recipe}, seed {c.seed})")
        try:
            m = run_cell(c, out, log=log)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001  (recorded in failed.json; re-raised unless keep_going)
            d = out / c.folder
            _write_json(d / FAILED_JSON, {"hash": c.hash, "error": f"{type(exc).__name__}: {exc}",
                                          "traceback": traceback.format_exc()})
            if not keep_going:
                raise StudyError(f"cell {c.folder} failed: {type(exc).__name__}: {exc} (details in "
                                 f"{d / FAILED_JSON}; rerun the same command to resume it)") from exc
            counts["failed"] += 1
            log(f"  failed: {type(exc).__name__}: {exc}")
            continue
        counts["ran"] += 1
        shown = ", ".join(f"{k2} {v:.4g}" for k2, v in list(m["scores"].items())[:4] if isinstance(v, (int, float)))
        log(f"  done in {sum(m['seconds'].values()):.1f} s{': ' + shown if shown else ''}")
    return counts
