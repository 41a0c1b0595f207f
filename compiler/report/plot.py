"""``xtrc report --plot FILE``: the figure of the answer (matplotlib, imported only here).

``forest`` (the default) draws, per (intermediate, augmentation) pair, combined − intermediate-only,
combined − augmentation-only and the interaction for every task and the mean over tasks, each with
its 95% interval over seeds and test examples. ``heatmap`` draws Δ against the baseline arm by
(task, language) × arm. The file's suffix sets the format.
"""

from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np

from xtrc.errors import XtrcError
from xtrc.report.collect import Results
from xtrc.report.tables import check_tasks, headline_metric, language_table
from xtrc.report.values import AVERAGE, CONTRASTS, DEGENERATE_MARK, Report

FORMATS = ("png", "svg", "pdf")
KINDS = ("forest", "heatmap")
_TITLES = {"combined-intermediate": "combined − intermediate-only", "combined-augmentation":
           "combined − augmentation-only", "interaction": "interaction (C − I − A + B)"}


def check_plot(path: str) -> str:
    """The figure format of ``path`` (from its suffix), once matplotlib and the directory are there:
    every reason the figure could not be written, before the report reads anything."""
    suffix = os.path.splitext(path)[1].lower().lstrip(".")
    if suffix not in FORMATS:
        raise XtrcError(f"--plot {path}: the suffix sets the format; use one of "
                        f"{', '.join('.' + f for f in FORMATS)}")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise XtrcError(f"--plot {path}: no directory {directory}; create it first")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise XtrcError("--plot needs matplotlib: pip install 'xtrc[plot]'") from None
    return suffix


def plot(results: Results, path: str, *, tasks: Sequence[str] | None = None, kind: str = "forest",
         report: Report | None = None) -> None:
    """Write the ``kind`` figure to ``path``; the forest plot draws ``report``'s comparisons."""
    fmt = check_plot(path)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if kind == "heatmap":
        fig = _heatmap(results, tasks, Figure)
    elif kind == "forest":
        if report is None:
            from xtrc.report.tables import build_report

            report = build_report(results, tasks=tasks)
        fig = _forest(report, Figure)
    else:
        raise XtrcError(f"--plot-kind {kind}: choose one of {', '.join(KINDS)}")
    FigureCanvasAgg(fig)
    fig.savefig(path, format=fmt)


def _forest(report: Report, figure: type) -> object:
    if not report.comparisons:
        raise XtrcError("the forest plot draws combined against each single method and the interaction, and this "
                        "design lacks an intermediate-only, augmentation-only and combined arm for the same levels; "
                        "use --plot-kind heatmap")
    pairs = list(dict.fromkeys((c.intermediate, c.augmentation) for c in report.comparisons))
    targets = list(dict.fromkeys(c.task for c in report.comparisons))
    targets = [t for t in targets if t != AVERAGE] + ([AVERAGE] if AVERAGE in targets else [])
    rows = [(pair, task) for pair in pairs for task in targets]
    fig = figure(figsize=(12.0, max(2.6, 0.36 * len(rows) + 1.9)), dpi=120)
    axes = fig.subplots(1, len(CONTRASTS), sharey=True)
    by_key = {(c.intermediate, c.augmentation, c.contrast, c.task): c for c in report.comparisons}
    y = np.arange(len(rows))[::-1]
    labels = []
    for pair, task in rows:
        name = "mean over tasks" if task == AVERAGE else task
        labels.append(f"{pair[0]} × {pair[1]}: {name}" if len(pairs) > 1 else name)
    for ax, contrast in zip(axes, CONTRASTS):
        ax.axvline(0.0, color="#888888", linewidth=0.8)
        for yi, (pair, task) in zip(y, rows):
            c = by_key.get((*pair, contrast, task))
            bold = task == AVERAGE
            if c is None or c.estimate is None:
                ax.text(0.0, yi, "n/a", ha="center", va="center", fontsize=8, color="#999999")
                continue
            colour = "#1f4e9c" if not bold else "#b2182b"
            if c.interval is not None:
                ax.plot([c.low, c.high], [yi, yi], color=colour, linewidth=2.4 if bold else 1.6)
            if c.seeds_interval is not None:
                ax.plot(list(c.seeds_interval), [yi - 0.22] * 2, color="#777777", linewidth=1.0)
            ax.plot([c.estimate], [yi], marker="D" if bold else "o", color=colour, markersize=6 if bold else 4.5)
            if c.degenerate:
                ax.annotate(DEGENERATE_MARK, (c.estimate, yi), textcoords="offset points", xytext=(4, 3),
                            fontsize=9, color="#b35806")
        ax.set_title(_TITLES[contrast], fontsize=10)
        ax.set_xlabel("difference (headline metric points)", fontsize=8)
        ax.grid(axis="x", color="#eeeeee")
        ax.tick_params(labelsize=8)
    axes[0].set_yticks(y, labels=labels)
    axes[0].set_ylim(-0.8, len(rows) - 0.2)
    covers = next((c.covers for c in report.comparisons if c.interval is not None), "seeds and test examples")
    note = (f"point: estimate; bar: 95% interval over {covers} ({report.bootstrap} bootstrap replicates)"
            + ("; grey: over seeds alone (paired t)" if any(c.seeds_interval for c in report.comparisons) else "")
            + (f"; {DEGENERATE_MARK}: rests on degenerate cells" if any(c.degenerate for c in report.comparisons)
               else ""))
    fig.suptitle(f"{report.experiment}: does combining beat each method alone?", fontsize=11)
    fig.text(0.5, 0.01, note, ha="center", fontsize=8, color="#444444")
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    return fig


def _heatmap(results: Results, tasks: Sequence[str] | None, figure: type) -> object:
    """Δ (headline metric, mean over seeds) against the baseline arm: one row per (task, language),
    one column per other arm; cells not done (in the arm or the baseline) are blank. The colour
    scale spans the 95th percentile of |Δ|, so one extreme cell does not wash out the rest."""
    baseline = results.plan.baseline
    if baseline is None:
        raise XtrcError("--plot-kind heatmap draws Δ against the baseline arm, and this design has none "
                        "(an arm with no intermediate task and no augmentation)")
    chosen = check_tasks(tasks, results.tasks) if tasks else results.tasks
    others = [a.name for a in results.arms if a.name != baseline.name]
    if not others:
        raise XtrcError("--plot-kind heatmap: the design has no arm besides the baseline")
    row_labels: list[str] = []
    grid: list[list[float]] = []
    for task in chosen:
        table = language_table(results, task, headline_metric(results, task))
        values = dict(table.rows)
        for j, lang in enumerate(table.columns[:-1]):
            row_labels.append(f"{task} {lang}")
            grid.append([values[a][j].delta if values[a][j].delta is not None else math.nan for a in others])
    data = np.asarray(grid, dtype=np.float64).reshape(len(row_labels), len(others))
    finite = np.abs(data[np.isfinite(data)])
    bound = float(np.percentile(finite, 95)) if finite.size else 1.0
    bound = bound or 1.0
    fig = figure(figsize=(max(4.0, 1.1 * len(others) + 3), max(3.0, 0.28 * len(row_labels) + 1.6)), dpi=110)
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
    fig.colorbar(image, ax=ax, label=f"Δ vs {baseline.name} (headline metric; scale clipped at ±{bound:.1f})",
                 extend="both")
    ax.set_title(f"{results.plan.experiment.metadata.name}: Δ vs baseline by language")
    fig.tight_layout()
    return fig
