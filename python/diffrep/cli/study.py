"""``diffrep study run FILE`` and ``diffrep study report FOLDER``: every method on the same data,
metrics and seeds (docs/study.md).

``run`` checks the whole study file (recipes, config paths and values, metrics) before anything
trains, then trains and evaluates each cell into ``--out`` (default ``studies/<study name>``), one
folder per cell; finished cells are skipped, crashed ones resume from their newest checkpoint.
``--rank R --world W`` (or a SLURM array job's task id and count) runs the cells i with
i % W == R. ``report`` aggregates the finished cells over seeds into Markdown, CSV and plots.
"""

from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("study", help="run a study file (methods x grids x datasets x seeds) and report it",
                       description=__doc__.split("\n\n")[0])
    verbs = p.add_subparsers(dest="study_command", metavar="VERB")
    r = verbs.add_parser("run", help="train and evaluate the cells of a study file",
                         description="Train and evaluate every cell of a study file (YAML; docs/study.md).")
    r.add_argument("file", help="study file (YAML)")
    r.add_argument("--out", help="study folder (default: studies/<study name>)")
    r.add_argument("--dry-run", action="store_true", help="list the cells (and their state in --out), check --out as the run would, and exit (2 when the "
                   "run would stop)")
    r.add_argument("--rank", type=int, help="this process's share: the cells i with i %% world == rank")
    r.add_argument("--world", type=int, help="number of processes/jobs sharing the study")
    r.add_argument("--update", action="store_true",
                   help="record a changed study file in a folder made from an earlier version of it")
    r.add_argument("--redo-changed", action="store_true",
                   help="clear and rerun the cells whose configuration changed (deletes only what the study wrote)")
    r.add_argument("--keep-going", action="store_true", help="record a failed cell and go on (exit code 1 at the end)")
    r.set_defaults(func=run_cmd)
    rep = verbs.add_parser("report", help="aggregate a study folder over seeds: Markdown, CSV, plots",
                           description="Mean ± std over seeds of every finished cell, in the papers' layout "
                                       "(methods x datasets x metrics), with box plots and metric-vs-parameter "
                                       "curves (PNG and SVG).")
    rep.add_argument("folder", help="study folder (the --out of 'diffrep study run')")
    rep.add_argument("--out", help="report folder (default: FOLDER/report)")
    rep.add_argument("--metrics", help="comma-separated metrics to show (scores such as mig, dci_disentanglement, "
                     "or train.<key>; default: the study's report.metrics, else every score)")
    rep.add_argument("--digits", type=int, default=3, help="decimals in the Markdown table (default 3)")
    rep.add_argument("--no-plots", action="store_true", help="write only the tables")
    rep.set_defaults(func=report_cmd)


def run_cmd(args) -> int:
    from pathlib import Path

    from ..study import StudyError, cell_state, load_study, partition, run_study, shard_from_env
    from ..study.runner import check_folder

    study = load_study(args.file)
    out = Path(args.out or Path("studies") / study.name)
    rank, world = shard_from_env(args.rank, args.world)
    mine = partition(len(study.cells), rank, world)
    if args.dry_run:
        print(f"study {study.name}: {len(study.cells)} cells; this process (rank {rank} of {world}) runs "
              f"{len(mine)}; folder {out}")
        for i in mine:
            c = study.cells[i]
            print(f"{c.index:4d}  {c.folder:60s}  {c.recipe:28s}  {cell_state(c, out)}")
        try:  # the run's own checks: the listing alone showed cells as ready in a folder the run then refused
            check_folder(study, out, [study.cells[i] for i in mine], update=args.update, redo_changed=args.redo_changed)
        except StudyError as exc:
            print(f"diffrep study run would stop with these flags: {exc}", file=sys.stderr)
            return 2
        return 0
    counts = run_study(study, out, rank=rank, world=world, update=args.update, redo_changed=args.redo_changed,
                       keep_going=args.keep_going)
    print(f"study {study.name} (rank {rank} of {world}): ran {counts['ran']}, skipped {counts['skipped']} "
          f"finished, failed {counts['failed']}; folder {out}; report with: diffrep study report {out}",
          file=sys.stderr)
    return 1 if counts["failed"] else 0


def report_cmd(args) -> int:
    from ..study import write_report

    # "" or "," named nothing: an error, not the default list nor "the cells hold no metric values"
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics is not None else None
    files = write_report(args.folder, args.out, metrics=metrics, plots=not args.no_plots, digits=args.digits)
    for f in files:
        print(f)
    return 0
