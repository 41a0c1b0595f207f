"""`xtrc status` and `xtrc logs`, of a run on Kubernetes or on this machine."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from xtrc.cli.experiment import is_local, kube_experiment, kube_store, pinned_plan
from xtrc.errors import XtrcError

if TYPE_CHECKING:
    from xtrc.plan import Plan


def status_command(args: argparse.Namespace) -> int:
    from xtrc.kube import KubernetesBackend, api_client, stage_rows

    exp = kube_experiment(args)
    plan = pinned_plan(args, exp)
    if is_local(args, exp):
        return _local_status(args, plan)
    backend = KubernetesBackend(plan, api_client(args.context), require_remote_store=False)
    statuses = backend.poll()  # before the store: a stage that ends in between is seen done, not failed
    store = kube_store(exp)
    try:
        done = store.done_keys() & set(plan.stages)
    except Exception as exc:  # the store may need credentials only the cluster has
        print(f"warning: cannot read store {exp.storage.uri} ({type(exc).__name__}: {exc}); stages count as done "
              "only when their Job completed", file=sys.stderr)
        done = {key for key, status in statuses.items() if status.state == "finished"}
    rows = stage_rows(plan, done, backend, statuses)
    _add_progress(rows, store)
    return _print_status(rows, f"{exp.metadata.name} in namespace {backend.namespace}", as_json=args.json)


def _local_status(args: argparse.Namespace, plan: Plan) -> int:
    """`xtrc status` of a run on this machine: the same rows, from the local run state and the store."""
    import socket

    from xtrc.local import LocalBackend, local_rows
    from xtrc.store import Store

    exp = plan.experiment
    store = Store(exp.storage.uri, dict(exp.storage.options))
    backend = LocalBackend(store)
    statuses = backend.poll()
    try:
        done = store.done_keys() & set(plan.stages)
    except Exception as exc:
        raise XtrcError(f"cannot read store {store.uri}: {type(exc).__name__}: {exc}") from None
    rows = local_rows(plan, done, backend, statuses)
    return _print_status(rows, f"{exp.metadata.name} on {socket.gethostname()} (local run)", as_json=args.json)


def _add_progress(rows: list[Any], store: Any) -> None:
    """A running stage's reason: its progress record (step/total, ETA), where it wrote one."""
    from xtrc.live import progress_text, read_progress

    for row in rows:
        if row.state == "running" and not row.reason:
            row.reason = progress_text(read_progress(store, row.key))


def _print_status(rows: list[Any], where: str, *, as_json: bool) -> int:
    from xtrc.kube import STATUS_STATES, age_text

    if as_json:
        print(json.dumps([row.as_dict() for row in rows], indent=2, sort_keys=True))
        return 0
    from rich.console import Console
    from rich.table import Table

    colours = {"cached": "green", "succeeded": "green", "running": "cyan", "pending": "yellow", "ready": "blue",
               "waiting": "dim", "failed": "red", "blocked": "yellow"}
    counts = {state: sum(1 for r in rows if r.state == state) for state in STATUS_STATES}
    title = f"{where}: " + ", ".join(
        f"{n} {state}" for state, n in counts.items() if n)
    table = Table(title=title, show_header=True, header_style="bold", box=None)
    for column in ("stage", "what", "state", "pod phase", "node", "age", "attempts", "reason"):
        table.add_column(column, overflow="fold")
    for r in rows:
        table.add_row(r.key[:12], r.what, f"[{colours[r.state]}]{r.state}[/]", r.phase, r.node, age_text(r.age),
                      str(r.attempts or ""), r.reason)
    console = Console()
    if not console.is_terminal:  # piped or logged: one line per stage, however long its reason
        console = Console(width=max(console.width, 240))
    console.print(table)
    return 0


def logs_command(args: argparse.Namespace) -> int:
    import codecs

    from xtrc.kube import KubernetesBackend, api_client, newest_pod, pod_log, resolve_stage
    from xtrc.live import describe

    exp = kube_experiment(args)
    plan = pinned_plan(args, exp)
    key = resolve_stage(plan, args.stage, args.seed)
    if is_local(args, exp):
        return _local_logs(args, plan, key)
    backend = KubernetesBackend(plan, api_client(args.context), require_remote_store=False)
    pod, count = newest_pod(backend, key)
    print(f"==> stage {key} ({describe(plan, key)}): pod {pod.metadata.name}, attempt {count}", file=sys.stderr)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for chunk in pod_log(backend, pod.metadata.name, follow=args.follow):
        sys.stdout.write(decoder.decode(chunk))
        sys.stdout.flush()
    sys.stdout.write(decoder.decode(b"", final=True))
    return 0


def _local_logs(args: argparse.Namespace, plan: Plan, key: str) -> int:
    from xtrc.live import describe
    from xtrc.local import LocalBackend, follow_log
    from xtrc.store import Store

    exp = plan.experiment
    backend = LocalBackend(Store(exp.storage.uri, dict(exp.storage.options)))
    record = backend.record(key)
    where = str(backend.log_path(key)) if backend.log_path(key).exists() else "the store's log.txt"
    attempt = f", attempt {record['attempts']}" if record.get("attempts") else ""
    print(f"==> stage {key} ({describe(plan, key)}): {where}{attempt}", file=sys.stderr)
    if not follow_log(backend, key, sys.stdout.buffer, follow=args.follow):
        raise XtrcError(f"stage {key} has no log yet: it has not run on this machine, and the store holds no "
                        "log.txt for it")
    return 0
