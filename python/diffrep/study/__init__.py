"""Studies: every method on the same data, metrics and seeds (docs/study.md).

A study file (YAML) names methods (recipes) with hyper-parameter grids, datasets, seeds, the training
length and the metrics; :func:`load_study` checks it and expands its cells, :func:`run_study` trains
and evaluates them (one folder per cell, resumable, shardable over processes or SLURM array tasks)
and :func:`write_report` aggregates the results over seeds into Markdown, CSV and plots. This layer
sits between ``recipes`` (which it runs) and ``cli`` (``diffrep study run|report``).
"""

from .report import aggregate, collect, write_report
from .runner import cell_state, partition, run_cell, run_study, shard_from_env
from .spec import Cell, Study, StudyError, load_study, parse_study

__all__ = ["Cell", "Study", "StudyError", "load_study", "parse_study", "partition", "shard_from_env", "cell_state",
           "run_cell", "run_study", "collect", "aggregate", "write_report"]
