"""`xtrc report`: tables, figures and the research question's answer from the stored results."""

from __future__ import annotations

import argparse
import os
import sys

from xtrc.cli.experiment import build_plan
from xtrc.errors import XtrcError


def report_command(args: argparse.Namespace) -> int:
    from xtrc.report import build_report, check_tasks, collect, local_status, plot, print_tables, render
    from xtrc.store import Store

    from xtrc.report.plot import check_plot

    if args.plot:
        check_plot(args.plot)  # before any reading: a figure that cannot be written fails now
    plan = build_plan(args)
    exp = plan.experiment
    if args.task:
        check_tasks(args.task, exp.target_tasks)
    store = Store(exp.storage.uri, dict(exp.storage.options))
    try:
        from xtrc.local import state_dir_for

        markers = store.done_markers(workers=args.workers)
        if not set(markers) & set(plan.stages):
            how = "xtrc run" if store.uri.startswith("file://") else "xtrc apply"
            print(f"0/{len(plan.stages)} stages done in {store.uri}; run `{how} {args.spec}`", file=sys.stderr)
            return 1
        status: dict[str, str] = {}
        if state_dir_for(store.uri).is_dir():  # stages run here: their state files say running/failed
            status = local_status(plan, store, set(markers))
        results = collect(plan, store, status=status, workers=args.workers, markers=markers,
                          predictions=args.bootstrap > 0)
    except OSError as exc:
        raise XtrcError(f"cannot read store {store.uri}: {type(exc).__name__}: {exc}") from None
    report = build_report(results, tasks=args.task, by=args.by, bootstrap=args.bootstrap, seed=args.seed)
    if args.format == "table":
        from rich.console import Console

        from xtrc.report.render import PIPE_WIDTH

        piped = not sys.stdout.isatty() and not os.environ.get("COLUMNS")
        print_tables(report, Console(width=PIPE_WIDTH) if piped else Console())
    else:
        sys.stdout.write(render(report, args.format))
    if args.plot:
        plot(results, args.plot, tasks=args.task, kind=args.plot_kind, report=report)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0
