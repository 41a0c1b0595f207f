"""A report as text: rich tables, CSV, JSON, Markdown or LaTeX."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import Any

from xtrc.errors import XtrcError
from xtrc.report.fit import print_fitted
from xtrc.report.collect import BLOCKED, FAILED, INVALID, MISSING, RUNNING
from xtrc.report.values import AVERAGE, CONTRASTS, DEGENERATE_MARK, Comparison, Report, Table, Value, latex_escape

FORMATS = ("table", "csv", "json", "markdown", "latex")
PIPE_WIDTH = 100_000
"""The console width when output goes to a file or pipe without COLUMNS: nothing wraps or is cut."""

def render(report: Report, fmt: str) -> str:
    """The report as text in one of :data:`FORMATS` (``table`` renders rich tables to a string)."""
    if fmt == "json":
        return json.dumps(report.as_dict(), indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        return _csv(report)
    if fmt == "markdown":
        return _markdown(report)
    if fmt == "latex":
        return _latex(report)
    if fmt == "table":
        from rich.console import Console

        console = Console(file=io.StringIO(), width=PIPE_WIDTH, record=True)
        print_tables(report, console)
        return "\n".join(line.rstrip() for line in console.export_text().splitlines()) + "\n"
    raise XtrcError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _comparison_tables(report: Report) -> list[tuple[str, list[str], list[tuple[str, list[str]]]]]:
    """One table per (intermediate, augmentation) pair: rows = contrasts (and, with three seeds or
    more, their paired t intervals over seeds), columns = tasks (+ the mean over tasks)."""
    groups: dict[tuple[str, str], list[Comparison]] = {}
    for c in report.comparisons:
        groups.setdefault((c.intermediate, c.augmentation), []).append(c)
    out = []
    for (inter, aug), comps in groups.items():
        roles = comps[0].arms
        columns = list(dict.fromkeys(c.task for c in comps))
        rows: list[tuple[str, list[str]]] = []
        for kind in CONTRASTS:
            cells = [next(c for c in comps if c.contrast == kind and c.task == t) for t in columns]
            rows.append((_CONTRAST_LABEL[kind], [_comparison_text(c) for c in cells]))
            if any(c.seeds_interval for c in cells):
                rows.append(("  over seeds alone (paired t)", [_interval_text(c.seeds_interval) for c in cells]))
        title = (f"intermediate '{inter}' x augmentation '{aug}': combined {roles['combined']}, intermediate-only "
                 f"{roles['intermediate_only']}, augmentation-only {roles['augmentation_only']}, baseline "
                 f"{roles['baseline']} (estimate [95% interval over {comps[0].covers}; {report.bootstrap} "
                 "bootstrap replicates of the examples])")
        out.append((title, columns, rows))
    return out


_CONTRAST_LABEL = {
    "combined-intermediate": "combined − intermediate-only",
    "combined-augmentation": "combined − augmentation-only",
    "interaction": "interaction (C − I − A + B)",
}


def _comparison_text(c: Comparison) -> str:
    if c.estimate is None:
        return "n/a"
    mark = DEGENERATE_MARK if c.degenerate else ""
    if c.interval is None:
        return f"{c.estimate:+.2f}{mark}"
    return f"{c.estimate:+.2f} {_interval_text(c.interval)}{mark}"


def _interval_text(interval: tuple[float, float] | None) -> str:
    return "" if interval is None else f"[{interval[0]:+.2f}, {interval[1]:+.2f}]"


def print_tables(report: Report, console: Any) -> None:
    from rich.text import Text

    style = {FAILED: "red", INVALID: "red", BLOCKED: "magenta", RUNNING: "yellow", MISSING: "dim"}

    def cell(value: Value) -> Text:
        return Text(value.text().replace(" (", "\n(", 1), style=style.get(value.state, ""))

    def arm_label(arm: str) -> str:
        return arm + ("\n(baseline)" if arm == report.baseline else "")

    for table in [report.main, *report.by_language]:
        print_fitted(console, table.title, "arm", [arm_label(arm) for arm, _ in table.rows],
                     [label.replace(" (", "\n(", 1) for label in table.labels],
                     [[cell(v) for v in values] for _, values in table.rows])
    for title, columns, rows in _comparison_tables(report):
        print_fitted(console, title, "contrast", [label for label, _ in rows],
                     ["mean over tasks" if column == AVERAGE else column for column in columns],
                     [[t.replace(" [", "\n[", 1) for t in texts] for _, texts in rows])
    if report.comparisons:
        console.print(Text("The answer:", style="bold"))
        for c in _ordered_statements(report):
            console.print(Text("  • " + c.statement()))
    elif report.baseline is None:
        console.print(Text("No baseline arm (no intermediate task, no augmentation): no Δ and no comparisons."))
    else:
        console.print(Text("The design lacks an intermediate-only, augmentation-only and combined arm for the "
                           "same levels: no research-question comparisons."))
    console.print(Text(_LEGEND, style="dim"))
    for note in report.notes:
        console.print(Text("note: " + note, style="dim"))
    for warning in report.warnings:
        console.print(Text("warning: " + warning, style="yellow"))


_LEGEND = ("A cell shows a number only when every seed is done and its results agree with its prediction records "
           "(an aggregate: every cell of its row); otherwise the worst state and, as k/n, how many seeds or cells "
           f"are not done. mean ± std over seeds; no ± where every seed shares one run. {DEGENERATE_MARK}: rests on "
           "degenerate predictions (see the warnings).")


def _ordered_statements(report: Report) -> list[Comparison]:
    """The average first (the answer), then per task."""
    return sorted(report.comparisons, key=lambda c: (c.intermediate, c.augmentation, c.task != AVERAGE,
                                                     CONTRASTS.index(c.contrast)))


def _csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "task", "arm", "column", "state", "mean", "std", "n_seeds", "delta_vs_baseline",
                     "not_done", "of", "seeds", "ci_low", "ci_high", "seeds_ci_low", "seeds_ci_high", "detail"])

    def value_row(section: str, task: str, arm: str, column: str, v: Value) -> list[Any]:
        return [section, task, arm, column, v.state, _fmt(v.mean), _fmt(v.std), v.n_seeds, _fmt(v.delta),
                v.not_done, v.of, ";".join(f"{s}={_fmt(x)}" for s, x in v.seeds.items()), "", "", "", "",
                v.detail()]

    for arm, values in report.main.rows:
        for column, v in zip(report.main.columns, values):
            section = "aggregate" if column in (AVERAGE, "xtreme") else "cell"
            writer.writerow(value_row(section, column if section == "cell" else "", arm, column, v))
    for table in report.by_language:
        for arm, values in table.rows:
            for column, v in zip(table.columns, values):
                writer.writerow(value_row("language", table.task or "", arm, column, v))
    for c in report.comparisons:
        writer.writerow(["comparison", c.task, c.arms["combined"], c.contrast, "done" if c.estimate is not None
                         else "missing", _fmt(c.estimate), "", c.n_seeds, "", "", "", "", _fmt(c.low), _fmt(c.high),
                         _fmt(c.seeds_low), _fmt(c.seeds_high), c.statement()])
    return out.getvalue()


def _fmt(value: float | None) -> str:
    return "" if value is None or not math.isfinite(value) else f"{value:.6g}"


def _md(text: str) -> str:
    return text.replace("|", r"\|")


def _markdown(report: Report) -> str:
    lines: list[str] = []

    def table(title: str, header: list[str], rows: list[list[str]]) -> None:
        lines.extend([f"**{_md(title)}**", "", "| " + " | ".join(_md(h) for h in header) + " |",
                      "|" + "|".join([" --- "] + [" ---: "] * (len(header) - 1)) + "|"])
        lines.extend("| " + " | ".join(_md(x) for x in row) + " |" for row in rows)
        lines.append("")

    def arm_label(arm: str) -> str:
        return arm + (" (baseline)" if arm == report.baseline else "")

    for t in [report.main, *report.by_language]:
        table(t.title, ["arm", *t.labels], [[arm_label(arm), *(v.text() for v in values)] for arm, values in t.rows])
    for title, columns, rows in _comparison_tables(report):
        table(title, ["contrast", *("mean over tasks" if c == AVERAGE else c for c in columns)],
              [[label, *texts] for label, texts in rows])
    if report.comparisons:
        lines.append("**The answer**")
        lines.append("")
        lines.extend(f"- {_md(c.statement())}" for c in _ordered_statements(report))
        lines.append("")
    lines.extend(f"> note: {_md(n)}" for n in report.notes)
    lines.extend(f"> warning: {_md(w)}" for w in report.warnings)
    return "\n".join(lines).rstrip() + "\n"


def _latex(report: Report) -> str:
    parts: list[str] = [f"% xtrc report: {latex_escape(report.experiment)} (needs \\usepackage{{booktabs}})"]

    def tabular(title: str, header: list[str], rows: list[list[str]]) -> None:
        parts.append(f"% {latex_escape(title)}")
        parts.append(r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}")
        parts.append(r"\toprule")
        parts.append(" & ".join(latex_escape(h) for h in header) + r" \\")
        parts.append(r"\midrule")
        parts.extend(" & ".join(row) + r" \\" for row in rows)
        parts.append(r"\bottomrule")
        parts.append(r"\end{tabular}")
        parts.append("")

    for t in [report.main, *report.by_language]:
        tabular(t.title, ["arm", *t.labels],
                [[latex_escape(arm) + (r" \textit{(baseline)}" if arm == report.baseline else ""),
                  *(v.latex() for v in values)] for arm, values in t.rows])
    for title, columns, rows in _comparison_tables(report):
        tabular(title, ["contrast", *("mean over tasks" if c == AVERAGE else c for c in columns)],
                [[latex_escape(label), *(latex_escape(t) for t in texts)] for label, texts in rows])
    return "\n".join(parts)


