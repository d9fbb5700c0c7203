"""The study report: mean +- std over seeds in the papers' layout, and plots (docs/study.md, "Report").

:func:`collect` reads the finished cells of a study folder (``study.json``, each cell's ``done.json``
and ``metrics.json``); :func:`aggregate` groups them by (method, dataset, setting) and gives, per
metric, the mean and the sample standard deviation (``ddof = 1``; none for a single seed) over the
seeds whose value is finite; :func:`write_report` writes

* ``report.md``: one table per dataset, rows = method x setting, columns = metrics, ``mean ± std``;
* ``table.csv``: the same numbers in one table, rows = method x setting, columns
  ``<dataset>/<metric>/mean`` and ``.../std`` (the papers' methods x datasets x metrics layout);
* ``cells.csv``: every finished cell's values (one row per seed);
* ``box_<metric>.png|svg``: a box per method x setting over seeds, a panel per dataset;
* ``curve_<method>_<param>.png|svg``: each metric against a grid parameter (mean, error bar = std).

A metric name is a score of ``metrics.json`` (``mig``, ``dci_disentanglement``, ...) or ``train.<key>``,
the training log's last value of ``key`` (``train.loss``, ``train.kl``). Plots use matplotlib through
``Figure`` + ``FigureCanvasAgg``: the process-wide backend is never switched.
"""

from __future__ import annotations

import csv
import math
import os
import re
import sys
from pathlib import Path

from .. import _checks
from .runner import DONE_JSON, METRICS_JSON, STUDY_JSON, _read_json, read_study_record
from .spec import StudyError, format_value

__all__ = ["collect", "aggregate", "default_metrics", "format_mean_std", "write_report"]


def _load(path: Path) -> dict:
    """The JSON object in a cell's ``done.json`` / ``metrics.json`` (the runner's reader: a file that does not
    hold an object is a StudyError naming it)."""
    return _read_json(path)


def collect(folder: str | os.PathLike) -> tuple[dict, list[dict], list[dict]]:
    """``(study, rows, missing)``: the study record, one row per finished cell (``method``, ``dataset``,
    ``setting``, ``params``, ``seed``, ``values`` = metric name -> float) and the cells not finished."""
    d = _checks.path(folder, "folder")
    if not d.is_dir():
        raise StudyError(f"study folder not found: {d}")
    if not (d / STUDY_JSON).is_file():
        raise StudyError(f"{d} is not a study folder (no {STUDY_JSON}); make one with 'diffrep study run FILE "
                         f"--out {d}'")
    study = read_study_record(d)
    rows, missing = [], []
    for c in study["cells"]:
        cd = d / c["folder"]
        done = cd / DONE_JSON
        if not done.is_file() or _load(done).get("hash") != c["hash"] or not (cd / METRICS_JSON).is_file():
            missing.append(c)
            continue
        m = _load(cd / METRICS_JSON)
        for part in ("scores", "train"):
            if not isinstance(m.get(part) or {}, dict):
                raise StudyError(f"{cd / METRICS_JSON}: '{part}' must be an object of named values, got "
                                 f"{type(m[part]).__name__}; move the cell folder away to run it again")
        values = {}
        for k, v in (m.get("scores") or {}).items():
            values[k] = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan
        for k, v in (m.get("train") or {}).items():
            if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                values[f"train.{k}"] = float(v)
        rows.append({"method": c["method"], "dataset": c["dataset"], "setting": c["setting"],
                     "params": c.get("params", {}), "seed": c["seed"], "values": values})
    return study, rows, missing


def default_metrics(rows: list[dict]) -> list[str]:
    """The evaluation scores in the order they first appear; ``train.loss`` when no cell has any."""
    if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("values"), dict) for r in rows):
        raise TypeError("rows must be a list of result rows (dicts with 'values', as collect returns), got "
                        f"{type(rows).__name__}")
    names: list[str] = []
    for r in rows:
        for k in r["values"]:
            if not k.startswith("train.") and k not in names:
                names.append(k)
    if not names and any("train.loss" in r["values"] for r in rows):
        names = ["train.loss"]
    return names


def _mean_std(values: list[float]) -> tuple[float, float, int]:
    vals = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    n = len(vals)
    if n == 0:
        return math.nan, math.nan, 0
    mean = math.fsum(vals) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in vals) / (n - 1)) if n > 1 else math.nan
    return mean, std, n


def aggregate(rows: list[dict], metrics: list[str]) -> list[dict]:
    """Groups of (method, dataset, setting) in first-appearance order, each with ``seeds``, ``params``
    and ``stats[metric] = (mean, std, n)`` over the seeds' finite values (std with ``ddof = 1``)."""
    if isinstance(rows, (str, bytes, dict)) or not hasattr(rows, "__iter__"):
        raise TypeError(f"aggregate: rows must be a list of per-cell dicts (from collect()), got {type(rows).__name__}")
    if isinstance(metrics, (str, bytes)) or not hasattr(metrics, "__iter__") or \
            not all(isinstance(m, str) for m in metrics):
        raise TypeError(f"aggregate: metrics must be a list of metric names, got {metrics!r}")
    rows = list(rows)
    need = ("method", "dataset", "setting", "params", "seed", "values")
    for i, r in enumerate(rows):
        if not isinstance(r, dict) or any(k not in r for k in need):
            raise ValueError(f"aggregate: rows[{i}] must be a dict with keys {list(need)} (from collect()), got "
                             f"{sorted(r) if isinstance(r, dict) else type(r).__name__}")
    groups: dict[tuple, dict] = {}
    for r in rows:
        key = (r["method"], r["dataset"], r["setting"])
        g = groups.setdefault(key, {"method": r["method"], "dataset": r["dataset"], "setting": r["setting"],
                                    "params": r["params"], "seeds": [], "values": {m: [] for m in metrics}})
        g["seeds"].append(r["seed"])
        for m in metrics:
            g["values"][m].append(r["values"].get(m, math.nan))
    out = []
    for g in groups.values():
        g["stats"] = {m: _mean_std(g["values"][m]) for m in metrics}
        out.append(g)
    return out


def _check_digits(digits) -> None:
    if isinstance(digits, bool) or not isinstance(digits, int) or not 0 <= digits <= 10:
        raise ValueError(f"digits must be an int in [0, 10], got {digits!r}")


def format_mean_std(mean: float, std: float, n: int, n_seeds: int, digits: int = 3) -> str:
    """``0.412 ± 0.021``; ``–`` with no value; ``(n=k)`` when fewer seeds gave a value than ran."""
    for name, v in (("mean", mean), ("std", std)):
        if isinstance(v, bool) or not isinstance(v, (int, float)):  # NaN / inf are values ("–", the mean alone)
            raise TypeError(f"{name} must be a number, got {v!r}")
    n_seeds = _checks.positive_int(n_seeds, "n_seeds")
    if _checks.non_negative_int(n, "n") > n_seeds:
        raise ValueError(f"n must be at most n_seeds={n_seeds} (seeds that gave a value of those that ran), got {n}")
    _check_digits(digits)
    if n == 0 or not math.isfinite(mean):
        return "–"
    text = f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if math.isfinite(std) else "")
    return text + (f" (n={n})" if n < n_seeds else "")


def _order(study: dict, groups: list[dict]) -> tuple[list[str], list[tuple]]:
    datasets = []
    for c in study["cells"]:
        if c["dataset"] not in datasets:
            datasets.append(c["dataset"])
    rows = []
    for c in study["cells"]:
        k = (c["method"], c["setting"])
        if k not in rows:
            rows.append(k)
    present = {(g["method"], g["setting"]) for g in groups}
    return datasets, [r for r in rows if r in present]


def _markdown(study: dict, groups: list[dict], metrics: list[str], missing: list[dict], digits: int) -> str:
    datasets, order = _order(study, groups)
    by = {(g["method"], g["dataset"], g["setting"]): g for g in groups}
    n_cells = len(study["cells"])
    lines = [f"# Study {study['study']}", "",
             f"{n_cells - len(missing)} of {n_cells} cells finished; seeds {study['spec'].get('seeds')}; "
             f"mean ± sample std (ddof 1) over seeds; '(n=k)': k seeds gave a finite value.", ""]
    for ds in datasets:
        lines += [f"## {ds}", "", "| method | setting | seeds | " + " | ".join(metrics) + " |",
                  "|---|---|---|" + "---|" * len(metrics)]
        for method, setting in order:
            g = by.get((method, ds, setting))
            if g is None:
                continue
            n_seeds = len(g["seeds"])
            cells = [format_mean_std(*g["stats"][m], n_seeds, digits) for m in metrics]
            lines.append(f"| {method} | {setting} | {n_seeds} | " + " | ".join(cells) + " |")
        lines.append("")
    if missing:
        lines += ["## Not finished", ""] + [f"- {c['folder']}" for c in missing] + [""]
    return "\n".join(lines)


def _num(x: float) -> str:
    return "" if not math.isfinite(x) else repr(float(x))


def _write_csvs(out: Path, study: dict, groups: list[dict], rows: list[dict], metrics: list[str]) -> list[Path]:
    datasets, order = _order(study, groups)
    by = {(g["method"], g["dataset"], g["setting"]): g for g in groups}
    table = out / "table.csv"
    with open(table, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["method", "setting"] + [f"{ds}/{m}/{s}" for ds in datasets for m in metrics
                                            for s in ("mean", "std", "n")])
        for method, setting in order:
            row = [method, setting]
            for ds in datasets:
                g = by.get((method, ds, setting))
                for m in metrics:
                    mean, std, n = g["stats"][m] if g else (math.nan, math.nan, 0)
                    row += [_num(mean), _num(std), n]
            w.writerow(row)
    cells = out / "cells.csv"
    params = []
    for r in rows:
        for k in r["params"]:
            if k not in params:
                params.append(k)
    with open(cells, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["method", "dataset", "setting", "seed"] + params + metrics)
        for r in rows:
            w.writerow([r["method"], r["dataset"], r["setting"], r["seed"]] +
                       [format_value(r["params"][k]) if k in r["params"] else "" for k in params] +
                       [_num(r["values"].get(m, math.nan)) for m in metrics])
    return [table, cells]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]", "_", name)


def _save(fig, base: Path, written: list[Path] = ()) -> list[Path]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    paths = []
    for ext in ("png", "svg"):
        p = base.with_name(base.name + "." + ext)
        if p in written:  # two plots of one report under one name: the second replaced the first silently
            raise StudyError(f"two plots of the report would both be written to {p} (names that differ only in "
                             f"characters a file name cannot hold); rename a metric, method or grid parameter")
        fig.savefig(p, format=ext, dpi=120, bbox_inches="tight")
        paths.append(p)
    return paths


def _plots(out: Path, study: dict, groups: list[dict], metrics: list[str]) -> list[Path]:
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise StudyError("the report's plots need matplotlib (pip install 'diffrep[plot]'); pass --no-plots to "
                         "write only the tables") from None
    datasets, order = _order(study, groups)
    by = {(g["method"], g["dataset"], g["setting"]): g for g in groups}
    written: list[Path] = []
    for m in metrics:  # box plots: one figure per metric, a panel per dataset
        fig = Figure(figsize=(max(4.0, 0.9 * len(order) + 1.5) * len(datasets), 3.6), layout="constrained")
        axes = fig.subplots(1, len(datasets), squeeze=False)[0]
        for ax, ds in zip(axes, datasets):
            data, labels = [], []
            for method, setting in order:
                g = by.get((method, ds, setting))
                if g is None:
                    continue
                vals = [v for v in g["values"][m] if math.isfinite(v)]
                data.append(vals if vals else [math.nan])
                labels.append(method if setting == "default" else f"{method}\n{setting}")
            if data:
                ax.boxplot(data, positions=list(range(1, len(data) + 1)), widths=0.6)
                for i, vals in enumerate(data, start=1):  # each seed's value, over its box
                    ax.plot([i] * len(vals), vals, "o", ms=3, alpha=0.6, color="C0")
                ax.set_xticks(list(range(1, len(data) + 1)))
                ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
            ax.set_title(ds)
            ax.set_ylabel(m)
            ax.grid(axis="y", alpha=0.3)
        written += _save(fig, out / f"box_{_safe(m)}", written)
    for spec in study["spec"].get("methods", []):  # curves: each metric against each grid parameter
        grid = spec.get("grid") or {}
        # a plot is named by the parameter's last name (curve_vae_beta), or by its whole path when two grid
        # parameters of the method share it (train.lr and train_latent.lr both wrote curve_<method>_lr)
        last = [param.split(".")[-1] for param in grid]
        for param, values in grid.items():
            if len(values) < 2:
                continue
            numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
            xs_of = ({format_value(v): float(v) for v in values} if numeric
                     else {format_value(v): float(i) for i, v in enumerate(values)})
            ncols = min(3, len(metrics))
            nrows = -(-len(metrics) // ncols)
            fig = Figure(figsize=(4.2 * ncols, 3.3 * nrows), layout="constrained")
            axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
            for ax in axes[len(metrics):]:
                ax.set_visible(False)
            for ax, m in zip(axes, metrics):
                lines: dict[tuple, list] = {}
                for g in groups:
                    if g["method"] != spec["label"] or param not in g["params"]:
                        continue
                    others = tuple((k, format_value(v)) for k, v in g["params"].items() if k != param)
                    mean, std, n = g["stats"][m]
                    lines.setdefault((g["dataset"],) + others, []).append(
                        (xs_of[format_value(g["params"][param])], mean, std if math.isfinite(std) else 0.0))
                for key, pts in lines.items():
                    pts.sort()
                    label = ", ".join([key[0]] + [f"{k.split('.')[-1]}={v}" for k, v in key[1:]])
                    ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o",
                                capsize=3, label=label)
                if numeric and min(xs_of.values()) > 0 and max(xs_of.values()) / min(xs_of.values()) >= 100:
                    ax.set_xscale("log")
                if not numeric:
                    ax.set_xticks(list(xs_of.values()))
                    ax.set_xticklabels(list(xs_of))
                ax.set_xlabel(param)
                ax.set_ylabel(m)
                ax.grid(alpha=0.3)
            axes[0].legend(fontsize=7)
            fig.suptitle(spec["label"])
            short = param.split(".")[-1]
            written += _save(fig, out / f"curve_{_safe(spec['label'])}_{_safe(short if last.count(short) == 1 else param)}",
                             written)
    return written


def clear_earlier_report(dest: Path) -> list[str]:
    """Delete an earlier report's files from ``dest`` (a folder holding ``report.md``): its tables and every
    ``box_*`` / ``curve_*`` plot, nothing else; a report of other metrics (or with ``--no-plots``) left the
    earlier plots beside the new tables."""
    if not (dest / "report.md").is_file():
        return []
    removed = [p.name for p in sorted(dest.iterdir()) if p.is_file() and (
        p.name in ("report.md", "table.csv", "cells.csv")
        or (p.name.startswith(("box_", "curve_")) and p.suffix in (".png", ".svg")))]
    for name in removed:
        (dest / name).unlink()
    return removed


def write_report(folder: str | os.PathLike, out: str | os.PathLike | None = None, *, metrics=None,
                 plots: bool = True, digits: int = 3) -> list[Path]:
    """Write the report of study folder ``folder`` into ``out`` (default ``folder/report``); returns the
    files written. ``metrics``: names to show (default :func:`default_metrics`); an unknown name is an
    error listing the known ones."""
    _check_digits(digits)
    _checks.flag(plots, "plots")
    _checks.path(out, "out", optional=True)
    if metrics is not None and not isinstance(metrics, str) and not (
            isinstance(metrics, (list, tuple)) and all(isinstance(m, str) for m in metrics)):
        raise TypeError(f"metrics must be a metric name or a list of names, got {metrics!r}")
    if metrics is not None and not (metrics if isinstance(metrics, str) else [m for m in metrics if m]):
        raise StudyError("--metrics names no metric (give names such as mig,dci_disentanglement, or leave it out)")
    if out is not None and Path(out).exists() and not Path(out).is_dir():  # mkdir said only "File exists"
        raise StudyError(f"--out {out} is a file; give the report's folder")
    study, rows, missing = collect(folder)
    if not rows:
        raise StudyError(f"{folder}: no cell has finished yet ({len(missing)} cells); run 'diffrep study run' first")
    known = []
    for r in rows:
        known += [k for k in r["values"] if k not in known]
    origin = "--metrics"
    spec = study.get("spec") if isinstance(study.get("spec"), dict) else {}
    shown = (spec.get("report") if isinstance(spec.get("report"), dict) else {}).get("metrics")
    if metrics is None and isinstance(shown, list) and shown and all(isinstance(m, str) for m in shown):
        metrics = list(shown)  # the study file's report.metrics
        origin = f"the study file's report.metrics ({study.get('source', 'study.json')})"
    if metrics is None:
        metrics = default_metrics(rows)
    else:
        metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        bad = [m for m in metrics if m not in known]
        if bad:
            raise StudyError(f"{origin}: {bad} not in the results; known: {', '.join(known)}")
    if not metrics:
        raise StudyError(f"{folder}: the cells hold no metric values; known: {', '.join(known) or 'none'}")
    groups = aggregate(rows, metrics)
    dest = Path(out) if out is not None else Path(folder) / "report"
    removed = clear_earlier_report(dest)
    if removed:
        print(f"diffrep study report: {dest} held an earlier report; removed its {len(removed)} files "
              f"({', '.join(removed[:4])}{', ...' if len(removed) > 4 else ''})", file=sys.stderr)
    dest.mkdir(parents=True, exist_ok=True)
    md = dest / "report.md"
    md.write_text(_markdown(study, groups, metrics, missing, digits), encoding="utf-8")
    written = [md] + _write_csvs(dest, study, groups, rows, metrics)
    if plots:
        written += _plots(dest, study, groups, metrics)
    return written
