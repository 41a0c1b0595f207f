"""``xtrc report --plot``: a figure of the results (matplotlib, imported only here)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from xtrc.errors import XtrcError
from xtrc.report.collect import Results
from xtrc.report.tables import check_tasks, headline_metric, language_table

def plot(results: Results, path: str, *, tasks: Sequence[str] | None = None) -> None:
    """A PNG heatmap of Δ (headline metric, mean over seeds) against the baseline arm: one row per
    (task, language) — the chosen tasks' languages stacked — and one column per other arm. Cells
    that are not done (in the arm or the baseline) are left blank."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise XtrcError("--plot needs matplotlib: pip install 'xtrc[plot]'") from None
    baseline = results.plan.baseline
    if baseline is None:
        raise XtrcError("--plot draws Δ against the baseline arm, and this design has none "
                        "(an arm with no intermediate task and no augmentation)")
    chosen = check_tasks(tasks, results.tasks) if tasks else results.tasks
    others = [a.name for a in results.arms if a.name != baseline.name]
    if not others:
        raise XtrcError("--plot: the design has no arm besides the baseline")
    row_labels: list[str] = []
    grid: list[list[float]] = []
    for task in chosen:
        table = language_table(results, task, headline_metric(results, task))
        values = dict(table.rows)
        for j, lang in enumerate(table.columns[:-1]):
            row_labels.append(f"{task} {lang}")
            grid.append([values[a][j].delta if values[a][j].delta is not None else math.nan for a in others])
    data = np.asarray(grid, dtype=np.float64).reshape(len(row_labels), len(others))
    finite = data[np.isfinite(data)]
    bound = float(np.abs(finite).max()) if finite.size else 1.0
    bound = bound or 1.0
    fig = Figure(figsize=(max(4.0, 1.1 * len(others) + 3), max(3.0, 0.28 * len(row_labels) + 1.6)), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_facecolor("#dddddd")
    image = ax.imshow(np.ma.masked_invalid(data), cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto",
                      interpolation="nearest")
    ax.set_xticks(range(len(others)), labels=others, rotation=30, ha="right")
    ax.set_yticks(range(len(row_labels)), labels=row_labels)
    if data.size <= 600:
        for (i, j), v in np.ndenumerate(data):
            ax.text(j, i, "n/a" if not math.isfinite(v) else f"{v:+.1f}", ha="center", va="center", fontsize=7,
                    color="black" if not math.isfinite(v) or abs(v) < 0.6 * bound else "white")
    fig.colorbar(image, ax=ax, label=f"Δ vs {baseline.name} (headline metric)")
    ax.set_title(f"{results.plan.experiment.metadata.name}: Δ vs baseline by language")
    fig.tight_layout()
    fig.savefig(path, format="png")

