"""`xtrc report`: read every cell's results from the store and answer the research question.

Three steps, each usable on its own:

* :func:`collect` (:mod:`.collect`) reads each cell's ``metrics.json`` and per-example prediction
  records from the store, and checks each cell's headline against its records (:mod:`.verify`;
  what a check found is kept in the results index, so records are read for it once per commit of
  a stage: :func:`verify_cells` is how the orchestration loop checks cells as they finish).
* :func:`build_report` (:mod:`.tables`, :mod:`.contrasts`) turns them into tables and into the
  research question's answer, with paired bootstrap intervals (:mod:`.stats`).
* :func:`render` (:mod:`.render`) writes a report as rich tables, CSV, JSON, Markdown or LaTeX;
  :func:`plot` (:mod:`.plot`) draws a figure.

Bootstrap: per task and language, examples are resampled with replacement; the same resampled
indices serve every arm and seed (paired). In each replicate, a cell's metric is recomputed from
the resampled records (the mean of per-example scores; micro F1 from summed entity counts for
tagging; macro-F1 from gold/prediction for classification), averaged over the task's languages,
then over seeds (pooled). The interval is the 2.5–97.5 percentile range of the replicate contrasts;
the point estimate is the contrast of the stored headline values (the numbers in the main table).

Nothing is averaged over a subset: a cell with any seed not done, or an aggregate over cells any of
which is not done, shows the state of what is missing and how much of it is, never a number.
Never imports torch, transformers or datasets; matplotlib only inside :func:`plot`.
"""

from xtrc.report.collect import (BLOCKED, DONE, FAILED, INVALID, MISSING, RUNNING, Records, Results, StageResult,
                                 collect, local_status, parse_records, verify_cells)
from xtrc.report.contrasts import design_quads
from xtrc.report.plot import plot
from xtrc.report.render import FORMATS, print_tables, render
from xtrc.report.tables import build_report, check_tasks
from xtrc.report.values import AVERAGE, CONFIDENCE, CONTRASTS, Comparison, Report, Table, Value, latex_escape

__all__ = [
    "AVERAGE", "BLOCKED", "CONFIDENCE", "CONTRASTS", "DONE", "FAILED", "FORMATS", "INVALID", "MISSING", "RUNNING",
    "Comparison", "Records", "Report", "Results", "StageResult", "Table", "Value", "build_report", "check_tasks",
    "collect", "design_quads", "latex_escape", "local_status", "parse_records", "plot", "print_tables", "render",
    "verify_cells",
]
