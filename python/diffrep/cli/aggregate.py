"""``diffrep aggregate RUN... [--format text|md|csv|json] [--out FILE]``: mean +- standard deviation of
each score over runs (seeds), as disentanglement_lib's aggregation reports a configuration.

Each RUN is a result file or a folder holding one:

- an ``eval --out`` JSON (``{"scores": ...}``) or a quickstart ``metrics.json`` (its ``metrics.scores``);
- a ``metrics.jsonl`` training record (each key's last logged value: the final loss, the last periodic
  evaluation ``eval/<preset>/<score>``);
- a folder: its ``metrics.json``, else its ``metrics.jsonl``.

The runs are seeds of one configuration: runs whose files record different recipes, datasets or metric
variants are refused (:func:`check_same_configuration`), and so are training records that end at different
steps or before their run's ``train.steps`` (:func:`last_step`: a run stopped part-way); a study folder is reported
by ``diffrep study report``, and the folder of a cell that a later version of its study dropped (its ``dropped.json``,
docs/study.md) is refused: its results belong to no current cell.

Per score: the mean, the sample standard deviation (ddof = 1; undefined for one run), the number of
runs that report it, the minimum and the maximum. NaN scores (a metric's guard fired) are left out
of that score's statistics and counted in ``nan``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from ._common import add_overwrite_flag, output_path, prepare_output

FORMATS = ("text", "md", "csv", "json")


def register(sub) -> None:
    p = sub.add_parser("aggregate", help="mean +- std of scores over runs (seeds)", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="result JSON files, metrics.jsonl files or run/quickstart folders")
    p.add_argument("--format", choices=FORMATS, default="text", help="how to print the summary (default text)")
    p.add_argument("--out", help="also write the JSON summary here (an existing file is refused unless --overwrite)")
    add_overwrite_flag(p)
    p.set_defaults(func=run)


def _numeric(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if v is None:
            out[k] = float("nan")
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = float(v)
    return out


def result_file(path: str | Path) -> Path:
    """The file a RUN argument is read from: itself, or a folder's metrics.json, else its metrics.jsonl."""
    from .._checks import path as check_path

    p = check_path(path, "path")
    _refuse_dropped_cell(p)
    if p.is_dir():
        for name in ("metrics.json", "metrics.jsonl"):
            if (p / name).is_file():
                return p / name
        if (p / "study.json").is_file():  # a study folder: its cells are aggregated by the study's own report
            raise ValueError(f"{p} is a study folder; 'diffrep study report {p}' gives mean +- std over the seeds of "
                             "each of its cells (or name the cell folders here)")
        raise FileNotFoundError(f"{p}: no metrics.json (eval / quickstart result) or metrics.jsonl (training record)")
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file or folder")
    return p


def _refuse_dropped_cell(p: Path) -> None:
    """A ValueError when ``p`` (a run folder or a result file) lies in a study cell folder that a later version of
    the study dropped (``--update``; :data:`diffrep.study.runner.DROPPED_JSON`, also above a multi-phase cell's
    ``phaseN/``): a glob over the study folder picked its results up beside the current cells'."""
    from ..study.runner import DROPPED_JSON

    folder = p if p.is_dir() else p.parent
    for d in (folder, folder.parent):
        if (d / DROPPED_JSON).is_file():
            raise ValueError(f"{p}: {d} is a study cell that a later version of its study dropped ({d / DROPPED_JSON}); "
                             "its results belong to no current cell: leave it out (or add the cell back to the study)")


def read_scores(path: str | Path) -> dict[str, float]:
    """The numeric scores one run reports (see the module docstring for the files read)."""
    p = result_file(path)
    text = p.read_text(encoding="utf-8")
    if p.suffix == ".jsonl":
        last: dict = {}
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{p}: line {i} is not JSON ({exc.msg})") from None
            last.update({k: v for k, v in _numeric(rec).items() if k != "step"})
        if not last:
            raise ValueError(f"{p}: no logged values")
        return last
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if isinstance(data, dict) and isinstance(data.get("scores"), dict):
        return _numeric(data["scores"])
    if isinstance(data, dict) and isinstance(data.get("metrics"), dict) and isinstance(data["metrics"].get("scores"), dict):
        return _numeric(data["metrics"]["scores"])
    raise ValueError(f"{p}: no 'scores' (an eval --out result) or 'metrics.scores' (a quickstart metrics.json)")


def run_identity(path: str | Path) -> dict:
    """What a run must share with the others of one aggregate (mean +- std over seeds of one configuration):
    ``recipe`` (the run's ``run.json``, a study cell's record or a quickstart's), ``dataset`` and each metric's
    ``variant`` (an eval result's ``meta``). Keys a run's files do not record are left out."""
    p = result_file(path)
    ident: dict = {}
    run_json = p.parent / "run.json"
    try:
        info = json.loads(run_json.read_text(encoding="utf-8")) if run_json.is_file() else {}
        data = {} if p.suffix == ".jsonl" else json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return ident  # read_scores names an unreadable result file; a damaged run.json only loses the check
    info, data = (x if isinstance(x, dict) else {} for x in (info, data))
    meta = data.get("meta") if isinstance(data.get("meta"), dict) else {}
    if isinstance(data.get("metrics"), dict) and isinstance(data["metrics"].get("meta"), dict):  # quickstart
        meta = data["metrics"]["meta"]
    cell = data.get("cell") if isinstance(data.get("cell"), dict) else {}
    recipe = info.get("recipe") or cell.get("recipe") or data.get("recipe")
    if isinstance(recipe, str):
        ident["recipe"] = recipe
    if isinstance(meta.get("dataset"), str):
        ident["dataset"] = meta["dataset"]
    parts = meta.get("parts") if isinstance(meta.get("parts"), list) else []
    for part in parts:
        if isinstance(part, dict) and isinstance(part.get("metric"), str) and isinstance(part.get("variant"), str):
            ident[f"{part['metric']} variant"] = part["variant"]
    return ident


def check_same_configuration(runs: list, identities: list[dict]) -> None:
    """A ValueError naming the first two runs that differ in a recorded key of :func:`run_identity`: the mean
    of two methods, two datasets or two variants of a metric (robust and parity MIG, two TAD variants) is no
    spread over seeds, and ``diffrep aggregate runs/*`` mixed them without a word."""
    for key in dict.fromkeys(k for ident in identities for k in ident):  # first-seen order: one message per input
        seen = [(r, ident[key]) for r, ident in zip(runs, identities) if key in ident]
        other = next(((r, v) for r, v in seen if v != seen[0][1]), None)
        if other is not None:
            raise ValueError(f"{seen[0][0]} and {other[0]} differ in {key} ({seen[0][1]!r} vs {other[1]!r}); "
                             "aggregate takes runs of one configuration (its seeds): aggregate each apart")


def last_step(path: str | Path) -> int | None:
    """The last logged step of a training record (a RUN read from ``metrics.jsonl``); None for a result file.
    A ValueError when the run's ``config.yaml`` beside it sets a larger ``train.steps``: a run stopped part-way
    (killed, or still training) was averaged as if finished, its loss at step 300 beside the others' at 1000."""
    p = result_file(path)
    if p.suffix != ".jsonl":
        return None
    steps = [rec["step"] for line in p.read_text(encoding="utf-8").splitlines() if line.strip()
             for rec in [json.loads(line)] if isinstance(rec, dict) and isinstance(rec.get("step"), int)]
    last = max(steps, default=None)
    cfg = p.parent / "config.yaml"
    if last is not None and cfg.is_file():
        import yaml

        try:
            planned = (yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}).get("train", {}).get("steps")
        except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError):
            planned = None
        if isinstance(planned, int) and last < planned:
            raise ValueError(f"{path}: its training record ends at step {last} of train.steps={planned} ({cfg}): a run "
                             "stopped part-way; resume it (diffrep train ... --resume latest) or leave it out")
    return last


def aggregate(runs: list[dict[str, float]]) -> dict[str, dict]:
    """Per score over ``runs``: mean, std (sample, ddof=1; NaN for one value), n, nan, min, max."""
    if not runs:
        raise ValueError("aggregate: no runs")
    keys: list[str] = []
    for r in runs:
        keys += [k for k in r if k not in keys]
    out = {}
    for k in keys:
        vals = [r[k] for r in runs if k in r]
        good = [v for v in vals if not math.isnan(v)]
        n = len(good)
        mean = sum(good) / n if n else float("nan")
        std = math.sqrt(sum((v - mean) ** 2 for v in good) / (n - 1)) if n > 1 else float("nan")
        out[k] = {"mean": mean, "std": std, "n": n, "nan": len(vals) - n,
                  "min": min(good) if good else float("nan"), "max": max(good) if good else float("nan")}
    return out


def _f(v: float) -> str:
    return "n/a" if math.isnan(v) else f"{v:.4g}"


def format_summary(summary: dict, fmt: str, total: int) -> str:
    if fmt == "json":
        return json.dumps({k: {s: (None if isinstance(x, float) and math.isnan(x) else x) for s, x in v.items()}
                           for k, v in summary.items()}, indent=2)
    if fmt == "csv":
        rows = ["score,mean,std,n,nan,min,max"]
        rows += [",".join([k] + ["" if isinstance(v[s], float) and math.isnan(v[s]) else repr(v[s])
                                 for s in ("mean", "std", "n", "nan", "min", "max")]) for k, v in summary.items()]
        return "\n".join(rows)
    if fmt == "md":
        rows = [f"| score | mean +- std (of {total} runs) | n | min | max |", "| --- | ---: | ---: | ---: | ---: |"]
        rows += [f"| {k} | {_f(v['mean'])} +- {_f(v['std'])} | {v['n']} | {_f(v['min'])} | {_f(v['max'])} |"
                 for k, v in summary.items()]
        return "\n".join(rows)
    w = max([len(k) for k in summary] + [5])
    rows = [f"{'score':<{w}}  {'mean':>10}  {'std':>10}  {'n':>3}  {'min':>10}  {'max':>10}"]
    rows += [f"{k:<{w}}  {_f(v['mean']):>10}  {_f(v['std']):>10}  {v['n']:>3}  {_f(v['min']):>10}  {_f(v['max']):>10}"
             + (f"  ({v['nan']} NaN)" if v["nan"] else "") for k, v in summary.items()]
    return "\n".join(rows)


def run(args) -> int:
    out = prepare_output(args.out, overwrite=args.overwrite)
    first: dict[Path, str] = {}
    for r in args.runs:  # one run named twice (a folder and its metrics.json, a repeated glob) would count twice
        f = result_file(r).resolve()
        if f in first:
            raise ValueError(f"{r} and {first[f]} are the same run (both read {f}); name each run once, or the mean "
                             f"and std count it twice")
        first[f] = r
    runs = [read_scores(r) for r in args.runs]
    check_same_configuration(args.runs, [run_identity(r) for r in args.runs])
    ends = [(r, s) for r in args.runs if (s := last_step(r)) is not None]  # training records of unequal length
    other = next(((r, s) for r, s in ends if s != ends[0][1]), None)
    if other is not None:
        raise ValueError(f"{ends[0][0]} and {other[0]} differ in their last logged step ({ends[0][1]} vs {other[1]}): "
                         "aggregate takes runs of one configuration trained to the same step")
    summary = aggregate(runs)
    if len(runs) == 1:
        print("diffrep aggregate: one run: no standard deviation", file=sys.stderr)
    print(format_summary(summary, args.format, len(runs)))
    if out is not None:
        output_path(out).write_text(format_summary(summary, "json", len(runs)) + "\n", encoding="utf-8")
    return 0
