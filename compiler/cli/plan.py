"""`xtrc validate`, `xtrc plan` (with --check-data) and `xtrc render`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xtrc.cli.errors import debug
from xtrc.cli.experiment import build_plan
from xtrc.errors import EXIT_USAGE, XtrcError

if TYPE_CHECKING:
    from xtrc.plan import Plan


def validate_command(args: argparse.Namespace) -> int:
    from xtrc.errors import SpecError
    from xtrc.loader import load_with_warnings
    from xtrc.plan import build

    failed = False
    for path in args.specs:
        try:
            experiment, warnings = load_with_warnings(path)
            plan = build(experiment, fingerprint=False)
        except SpecError as exc:
            if debug():
                raise
            failed = True
            print(exc, file=sys.stderr)
            continue
        for warning in warnings:
            print(f"warning: {warning}", file=sys.stderr)
        print(f"{path}: ok ({len(plan.arms)} arms, {len(plan.stages)} stages)")
    return EXIT_USAGE if failed else 0


def plan_command(args: argparse.Namespace) -> int:
    from xtrc.plan_view import plan_summary, print_plan
    from xtrc.store import MissingBackend, Store

    plan = build_plan(args)
    exp = plan.experiment
    done: set[str] | None = None
    if not args.no_store:
        try:
            done = Store(exp.storage.uri, dict(exp.storage.options)).done_keys() & set(plan.stages)
        except MissingBackend as exc:
            raise XtrcError(f"{exc}, or pass --no-store") from None
        except ImportError:  # a bug, not an unreachable store
            raise
        except Exception as exc:  # an unreachable store must not hide the plan
            print(f"warning: cannot read store {exp.storage.uri} ({type(exc).__name__}: {exc}); "
                  "showing every stage as not done", file=sys.stderr)
    results = _check_data(plan, done or set()) if args.check_data else None
    if args.json:
        summary = plan_summary(plan, done)
        if results is not None:
            summary["check_data"] = [vars(r) for r in results]
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        print_plan(plan, done)
    revisions_code = plan.revisions.exit_code() if plan.revisions is not None else 0
    if revisions_code:
        unknown = len(plan.revisions.unresolved) + len(plan.revisions.refused)
        print(f"hub revisions: {unknown} not known; run and apply refuse to start their stages "
              "(see the warnings above)", file=sys.stderr)
    if results is None:
        return revisions_code
    from xtrc.datacheck import exit_code

    for result in results:
        if result.status == "gap":
            print(result.line(), file=sys.stderr)
    unchecked: dict[str, list[str]] = {}
    for result in results:  # one line per reason: offline, every hub split says the same
        if result.status == "unchecked":
            unchecked.setdefault(result.detail, []).append(result.label)
    for detail, labels in unchecked.items():
        shown = ", ".join(labels[:8]) + (f" and {len(labels) - 8} more" if len(labels) > 8 else "")
        print(f"cannot check {len(labels)}: {detail}: {shown}", file=sys.stderr)
    counts = {s: sum(1 for r in results if r.status == s) for s in ("ok", "gap", "unchecked")}
    print(f"check-data: {counts['ok']} ok, {counts['gap']} gap(s), {counts['unchecked']} not checked",
          file=sys.stderr)
    return max(exit_code(results), revisions_code)


def _check_data(plan: Plan, done: set[str]) -> list[Any]:
    from xtrc.datacheck import CheckDataError, check_stages

    try:
        return check_stages(s for k, s in plan.stages.items() if k not in done)
    except CheckDataError as exc:
        raise XtrcError(str(exc)) from None


def render_command(args: argparse.Namespace) -> int:
    from xtrc.render import RENDER_NOTE, Renderer

    plan = build_plan(args)
    keys = None
    note = RENDER_NOTE
    if args.ready_only:
        keys = _ready_keys(plan)
        note += (f"# --ready-only: {len(keys)} of {len(plan.stages)} stages (the others are done in the store "
                 "or wait for an upstream stage)\n")
    manifests = Renderer(args.charts).iter_render(plan, keys)
    if args.output:
        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        count = 0
        for manifest in manifests:
            (out / manifest.filename).write_text(manifest.text, encoding="utf-8")
            count += 1
        print(f"wrote {count} manifests to {out}", file=sys.stderr)
    else:
        write = sys.stdout.write
        write(note)
        for i, manifest in enumerate(manifests):
            write(manifest.text if i == 0 else "---\n" + manifest.text)
    return 0


def _ready_keys(plan: Plan) -> set[str]:
    """Stages not done whose upstream stages are all done in the store."""
    from xtrc.store import Store

    exp = plan.experiment
    try:
        done = Store(exp.storage.uri, dict(exp.storage.options)).done_keys()
    except Exception as exc:  # noqa: BLE001 - any store failure: say which store and why
        raise XtrcError(f"--ready-only reads the store {exp.storage.uri}: {type(exc).__name__}: {exc}") from None
    return {key for key, stage in plan.stages.items() if key not in done and all(u in done for u in stage.upstream)}
